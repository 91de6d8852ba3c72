package packets_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// connect5 builds an MQTT 5 CONNECT with the given flags, no properties,
// and the payload fields.
func connect5(flags byte, payload ...[]byte) []byte {
	return frame(0x10, str("MQTT"), []byte{5, flags}, u16(30), props(), cat(payload...))
}

// malformed and protocol are the two kinds of MQTT 5 decode failure.
const (
	malformed = packets.MalformedPacket
	protocol  = packets.ProtocolError
)

// TestDecodeV5Invalid feeds MQTT 5 packets that break a rule through a
// Reader set to MQTT 5, and checks each fails naming the statement (or
// section) it breaks, as a Malformed Packet where the packet cannot be
// parsed or the specification says so, as a Protocol Error where it parses
// but holds what the protocol forbids (section 1.2): [v5 MQTT-1.5.4-1]
// [v5 MQTT-1.5.4-2] [v5 MQTT-1.5.5-1] [v5 MQTT-2.1.3-1] [v5 MQTT-2.2.1-3]
// [v5 MQTT-3.1.2-3] [v5 MQTT-3.1.2-9] [v5 MQTT-3.1.2-11] [v5 MQTT-3.1.2-12]
// [v5 MQTT-3.1.2-13] [v5 MQTT-3.1.2-16] [v5 MQTT-3.1.2-17]
// [v5 MQTT-3.1.2-18] [v5 MQTT-3.1.2-19] [v5 MQTT-3.1.3-3] [v5 MQTT-3.1.3-4]
// [v5 MQTT-3.1.3-11] [v5 MQTT-3.1.3-12] [v5 MQTT-3.2.2-1] [v5 MQTT-3.2.2-6]
// [v5 MQTT-3.3.1-2] [v5 MQTT-3.3.1-4] [v5 MQTT-3.3.2-1] [v5 MQTT-3.3.2-2]
// [v5 MQTT-3.6.1-1] [v5 MQTT-3.8.1-1] [v5 MQTT-3.8.3-1] [v5 MQTT-3.8.3-2]
// [v5 MQTT-3.8.3-4] [v5 MQTT-3.8.3-5] [v5 MQTT-3.8.4-6] [v5 MQTT-3.10.1-1]
// [v5 MQTT-3.10.3-2] [v5 MQTT-3.11.3-1] [v5 MQTT-3.14.1-1]
// [v5 MQTT-3.15.1-1] [v5 MQTT-4.7.0-1] [v5 MQTT-4.7.3-1], and sections
// 2.1.2, 2.1.4, 3.3.2.1, 3.8.3.1 and 3.15.2.2.2.
func TestDecodeV5Invalid(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		rule string
		code packets.ReasonCode
	}{
		// Fixed header (section 2.1).
		{"reserved type 0", []byte{0x00, 0}, "2.1.2", malformed},
		{"CONNACK flags", []byte{0x21, 3, 0, 0, 0}, "MQTT-2.1.3-1", malformed},
		{"PUBREL flags", []byte{0x60, 2, 0, 1}, "MQTT-3.6.1-1", malformed},
		{"SUBSCRIBE flags", frame(0x80, u16(1), props(), str("a"), []byte{0}), "MQTT-3.8.1-1", malformed},
		{"UNSUBSCRIBE flags", frame(0xA0, u16(1), props(), str("a")), "MQTT-3.10.1-1", malformed},
		{"DISCONNECT flags", []byte{0xE1, 0}, "MQTT-3.14.1-1", malformed},
		{"PINGREQ flags", []byte{0xCF, 0}, "MQTT-2.1.3-1", malformed},
		{"PINGRESP with a body", []byte{0xD0, 1, 0}, "3.13.1", malformed},
		{"AUTH flags", []byte{0xF2, 0}, "MQTT-3.15.1-1", malformed},
		{"PUBLISH QoS 3", frame(0x36, str("t"), u16(1), props()), "MQTT-3.3.1-4", malformed},
		{"PUBLISH DUP at QoS 0", frame(0x38, str("t"), props()), "MQTT-3.3.1-2", malformed},
		{"Remaining Length longer than it needs", []byte{0xC0, 0x80, 0x00}, "MQTT-1.5.5-1", malformed},
		{"Remaining Length of five bytes", []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, "2.1.4", malformed},

		// CONNECT (section 3.1).
		{"CONNECT reserved flag", connect5(0x03, str("c")), "MQTT-3.1.2-3", malformed},
		{"CONNECT will QoS 3", connect5(0x1C, str("c"), props(), str("t"), str("m")), "MQTT-3.1.2-12", malformed},
		{"CONNECT will QoS without will flag", connect5(0x08, str("c")), "MQTT-3.1.2-11", protocol},
		{"CONNECT will retain without will flag", connect5(0x20, str("c")), "MQTT-3.1.2-13", protocol},
		{"CONNECT without keep alive", frame(0x10, str("MQTT"), []byte{5, 2, 0}), "2.1.4", malformed},
		{"CONNECT without properties", frame(0x10, str("MQTT"), []byte{5, 2}, u16(0)), "2.1.4", malformed},
		{"CONNECT without client id", connect5(0x02), "MQTT-3.1.3-3", malformed},
		{"CONNECT client id ill-formed UTF-8", connect5(0x02, str("\xff")), "MQTT-1.5.4-1", malformed},
		{"CONNECT client id with U+0000", connect5(0x02, str("a\x00")), "MQTT-1.5.4-2", malformed},
		{"CONNECT will flag without will properties", connect5(0x04, str("c")), "MQTT-3.1.2-9", malformed},
		{"CONNECT will flag without will topic", connect5(0x04, str("c"), props()), "MQTT-3.1.2-9", malformed},
		{"CONNECT will flag without will payload", connect5(0x04, str("c"), props(), str("t")), "MQTT-3.1.2-9", malformed},
		{"CONNECT empty will topic", connect5(0x04, str("c"), props(), str(""), str("m")), "MQTT-4.7.3-1", protocol},
		{"CONNECT will topic with wildcard", connect5(0x04, str("c"), props(), str("a/+"), str("m")), "MQTT-4.7.0-1", protocol},
		{"CONNECT will topic ill-formed UTF-8", connect5(0x04, str("c"), props(), str("\xed\xa0\x80"), str("m")), "MQTT-1.5.4-1", malformed},
		{"CONNECT user name flag without user name", connect5(0x80, str("c")), "MQTT-3.1.2-17", malformed},
		{"CONNECT user name ill-formed UTF-8", connect5(0x80, str("c"), str("\xc0\xaf")), "MQTT-1.5.4-1", malformed},
		{"CONNECT password flag without password", connect5(0x40, str("c")), "MQTT-3.1.2-19", malformed},
		{"CONNECT bytes after client id", connect5(0x02, str("c"), str("u")), "MQTT-3.1.2-16", malformed},
		{"CONNECT bytes after will", connect5(0x04, str("c"), props(), str("t"), str("m"), str("u")), "MQTT-3.1.2-16", malformed},
		{"CONNECT bytes after user name", connect5(0x80, str("c"), str("u"), str("p")), "MQTT-3.1.2-18", malformed},
		{"CONNECT bytes after password", connect5(0x40, str("c"), str("p"), []byte{0}), "2.1.4", malformed},

		// CONNACK (section 3.2).
		{"CONNACK reserved acknowledge flag", frame(0x20, []byte{2, 0}, props()), "MQTT-3.2.2-1", malformed},
		{"CONNACK session present with refusal", frame(0x20, []byte{1, 0x80}, props()), "MQTT-3.2.2-6", protocol},
		{"CONNACK without properties", []byte{0x20, 2, 0, 0}, "2.1.4", malformed},
		{"CONNACK bytes after properties", frame(0x20, []byte{0, 0}, props(), []byte{0}), "3.2.3", malformed},

		// PUBLISH (section 3.3).
		{"PUBLISH empty topic without a Topic Alias", frame(0x30, str(""), props(), []byte("x")), "3.3.2.1", protocol},
		{"PUBLISH empty topic, User Property only", frame(0x30, str(""), props(pUser("k", "v"))), "3.3.2.1", protocol},
		{"PUBLISH topic with +", frame(0x30, str("a/+"), props()), "MQTT-3.3.2-2", protocol},
		{"PUBLISH topic with # and an alias", frame(0x30, str("#"), props(pU16(packets.PropTopicAlias, 1))), "MQTT-3.3.2-2", protocol},
		{"PUBLISH topic ill-formed UTF-8", frame(0x30, str("a\xe2\x82"), props()), "MQTT-1.5.4-1", malformed},
		{"PUBLISH topic with U+0000", frame(0x30, str("a\x00"), props()), "MQTT-1.5.4-2", malformed},
		{"PUBLISH QoS 1 zero packet id", frame(0x32, str("t"), u16(0), props()), "MQTT-2.2.1-3", protocol},
		{"PUBLISH QoS 1 without packet id", frame(0x32, str("t")), "2.1.4", malformed},
		{"PUBLISH without properties", frame(0x30, str("t")), "2.1.4", malformed},
		{"PUBLISH Session Expiry", frame(0x30, str("t"), props(pU32(packets.PropSessionExpiry, 1))), "2.2.2.2", malformed},
		{"PUBLISH Response Topic ill-formed", frame(0x30, str("t"), props(pStr(packets.PropResponseTopic, "\xff"))), "MQTT-1.5.4-1", malformed},

		// PUBACK, PUBREC, PUBREL, PUBCOMP (sections 3.4 to 3.7).
		{"PUBACK zero packet id", []byte{0x40, 2, 0, 0}, "MQTT-2.2.1-3", protocol},
		{"PUBACK too short", []byte{0x40, 1, 1}, "2.1.4", malformed},
		{"PUBACK Session Expiry", frame(0x40, u16(1), []byte{0}, props(pU32(packets.PropSessionExpiry, 1))), "2.2.2.2", malformed},
		{"PUBACK bytes after properties", frame(0x40, u16(1), []byte{0}, props(), []byte{0}), "3.4.3", malformed},
		{"PUBREC Property Length past the end", []byte{0x50, 4, 0, 1, 0, 1}, "2.2.2.1", malformed},
		{"PUBCOMP bytes after properties", frame(0x70, u16(1), []byte{0}, props(), []byte{0}), "3.7.3", malformed},

		// SUBSCRIBE (section 3.8).
		{"SUBSCRIBE no filter", frame(0x82, u16(1), props()), "MQTT-3.8.3-2", protocol},
		{"SUBSCRIBE without properties", frame(0x82, u16(1)), "2.1.4", malformed},
		{"SUBSCRIBE zero packet id", frame(0x82, u16(0), props(), str("a"), []byte{0}), "MQTT-2.2.1-3", protocol},
		{"SUBSCRIBE reserved option bit 6", frame(0x82, u16(1), props(), str("a"), []byte{0x40}), "MQTT-3.8.3-5", malformed},
		{"SUBSCRIBE reserved option bit 7", frame(0x82, u16(1), props(), str("a"), []byte{0x81}), "MQTT-3.8.3-5", malformed},
		{"SUBSCRIBE QoS 3", frame(0x82, u16(1), props(), str("a"), []byte{3}), "3.8.3.1", protocol},
		{"SUBSCRIBE Retain Handling 3", frame(0x82, u16(1), props(), str("a"), []byte{0x30}), "3.8.3.1", protocol},
		{"SUBSCRIBE No Local on a shared subscription", frame(0x82, u16(1), props(), str("$share/g/a"), []byte{0x04}), "MQTT-3.8.3-4", protocol},
		{"SUBSCRIBE empty filter", frame(0x82, u16(1), props(), str(""), []byte{0}), "MQTT-4.7.3-1", protocol},
		{"SUBSCRIBE filter ill-formed UTF-8", frame(0x82, u16(1), props(), str("\x80"), []byte{0}), "MQTT-1.5.4-1", malformed},
		{"SUBSCRIBE missing options", frame(0x82, u16(1), props(), str("a")), "2.1.4", malformed},
		{"SUBSCRIBE Topic Alias", frame(0x82, u16(1), props(pU16(packets.PropTopicAlias, 1)), str("a"), []byte{0}), "2.2.2.2", malformed},

		// SUBACK (section 3.9), UNSUBSCRIBE (3.10), UNSUBACK (3.11).
		{"SUBACK no Reason Code", frame(0x90, u16(1), props()), "MQTT-3.8.4-6", protocol},
		{"UNSUBSCRIBE no filter", frame(0xA2, u16(1), props()), "MQTT-3.10.3-2", protocol},
		{"UNSUBSCRIBE empty filter", frame(0xA2, u16(1), props(), str("")), "MQTT-4.7.3-1", protocol},
		{"UNSUBSCRIBE Subscription Identifier", frame(0xA2, u16(1), props(pVBI(packets.PropSubscriptionID, 1)), str("a")), "2.2.2.2", malformed},
		{"UNSUBACK no Reason Code", frame(0xB0, u16(1), props()), "MQTT-3.11.3-1", protocol},
		{"UNSUBACK without properties", []byte{0xB0, 2, 0, 1}, "2.1.4", malformed},

		// DISCONNECT (section 3.14), AUTH (3.15).
		{"DISCONNECT Assigned Client Identifier", frame(0xE0, []byte{0}, props(pStr(packets.PropAssignedClientID, "x"))), "2.2.2.2", malformed},
		{"DISCONNECT bytes after properties", frame(0xE0, []byte{0}, props(), []byte{0}), "3.14.3", malformed},
		{"AUTH Reason Code without properties", []byte{0xF0, 1, 0x18}, "2.1.4", malformed},
		{"AUTH without Authentication Method", frame(0xF0, []byte{0x18}, props(pStr(packets.PropAuthData, "d"))), "3.15.2.2.2", protocol},
		{"AUTH Success with empty properties", frame(0xF0, []byte{0}, props()), "3.15.2.2.2", protocol},
		{"AUTH bytes after properties", frame(0xF0, []byte{0x18}, props(pStr(packets.PropAuthMethod, "m")), []byte{0}), "3.15.3", malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodeWireV(t, packets.Level5, tc.wire)
			assert.Nil(t, p, "decoded a packet with an error")
			wantV5(t, err, tc.rule, tc.code, nil)
		})
	}
}

// TestDecodeV5FailureLeavesValue: a failed Decode does not half-fill a
// reused value, even a failure found after the properties.
func TestDecodeV5FailureLeavesValue(t *testing.T) {
	keep := packets.Publish{Version: 5, Topic: "keep", Props: packets.PublishProps{SubscriptionIDs: []uint32{7}, Raw: []byte{1}}}
	p := keep
	p.Props.SubscriptionIDs = []uint32{7}
	body := cat(str(""), props(pVBI(packets.PropSubscriptionID, 1), pUser("k", "v")))
	err := p.Decode(packets.FixedHeader{Type: packets.TypePublish, Remaining: len(body)}, body)
	wantV5(t, err, "3.3.2.1", protocol, nil)
	assert.Equal(t, keep, p)
}

// TestAppendV5Invalid: Append refuses what an MQTT 5 receiver would
// reject, naming the same statements as decoding does.
func TestAppendV5Invalid(t *testing.T) {
	c5 := func(c packets.Connect) *packets.Connect {
		c.ProtocolName, c.ProtocolLevel, c.ClientID = "MQTT", 5, "id"
		return &c
	}
	big := strings.Repeat("a", 65536)
	sub := func(s packets.Subscription) *packets.Subscribe {
		return &packets.Subscribe{Version: 5, PacketID: 1, Subscriptions: []packets.Subscription{s}}
	}
	tests := []struct {
		name string
		p    packets.Packet
		rule string
		code packets.ReasonCode
	}{
		{"CONNECT will QoS 3", c5(packets.Connect{WillFlag: true, WillQoS: 3, WillTopic: "t"}), "MQTT-3.1.2-12", malformed},
		{"CONNECT will QoS without will", c5(packets.Connect{WillQoS: 1}), "MQTT-3.1.2-11", protocol},
		{"CONNECT will retain without will", c5(packets.Connect{WillRetain: true}), "MQTT-3.1.2-13", protocol},
		{"CONNECT will properties without will", c5(packets.Connect{WillProperties: packets.Properties{WillDelay: new(uint32(1))}}), "3.1.2.5", malformed},
		{"CONNECT user name without flag", c5(packets.Connect{Username: "u"}), "MQTT-3.1.2-16", malformed},
		{"CONNECT password without flag", c5(packets.Connect{Password: []byte("p")}), "MQTT-3.1.2-18", malformed},
		{"CONNECT will topic wildcard", c5(packets.Connect{WillFlag: true, WillTopic: "a/#"}), "MQTT-4.7.0-1", protocol},
		{"CONNECT empty will topic", c5(packets.Connect{WillFlag: true}), "MQTT-4.7.3-1", protocol},
		{"CONNECT client id not UTF-8", &packets.Connect{ProtocolLevel: 5, ClientID: "\xff"}, "MQTT-1.5.4-1", malformed},
		{"CONNECT password too long", c5(packets.Connect{PasswordFlag: true, Password: []byte(big)}), "1.5.4", malformed},
		{"CONNECT Will Delay in the CONNECT properties", c5(packets.Connect{Properties: packets.Properties{WillDelay: new(uint32(1))}}), "2.2.2.2", malformed},
		{"CONNECT Session Expiry in the Will properties", c5(packets.Connect{WillFlag: true, WillTopic: "t",
			WillProperties: packets.Properties{SessionExpiry: new(uint32(1))}}), "2.2.2.2", malformed},
		{"CONNACK session present when refused", &packets.Connack{Version: 5, SessionPresent: true, ReturnCode: 0x80}, "MQTT-3.2.2-6", protocol},
		{"CONNACK Topic Alias", &packets.Connack{Version: 5, Properties: packets.Properties{TopicAlias: new(uint16(1))}}, "2.2.2.2", malformed},
		{"PUBACK zero id", &packets.Puback{Version: 5}, "MQTT-2.2.1-3", protocol},
		{"PUBREL Content Type", &packets.Pubrel{Version: 5, PacketID: 1, Properties: packets.Properties{ContentType: "x"}}, "2.2.2.2", malformed},
		{"SUBSCRIBE zero id", &packets.Subscribe{Version: 5, Subscriptions: []packets.Subscription{{Filter: "a"}}}, "MQTT-2.2.1-3", protocol},
		{"SUBSCRIBE no filter", &packets.Subscribe{Version: 5, PacketID: 1}, "MQTT-3.8.3-2", protocol},
		{"SUBSCRIBE QoS 3", sub(packets.Subscription{Filter: "a", QoS: 3}), "3.8.3.1", protocol},
		{"SUBSCRIBE Retain Handling 3", sub(packets.Subscription{Filter: "a", RetainHandling: 3}), "3.8.3.1", protocol},
		{"SUBSCRIBE No Local shared", sub(packets.Subscription{Filter: "$share/g/#", NoLocal: true}), "MQTT-3.8.3-4", protocol},
		{"SUBSCRIBE empty filter", sub(packets.Subscription{}), "MQTT-4.7.3-1", protocol},
		{"SUBACK no Reason Code", &packets.Suback{Version: 5, PacketID: 1}, "MQTT-3.8.4-6", protocol},
		{"UNSUBSCRIBE no filter", &packets.Unsubscribe{Version: 5, PacketID: 1}, "MQTT-3.10.3-2", protocol},
		{"UNSUBACK no Reason Code", &packets.Unsuback{Version: 5, PacketID: 1}, "MQTT-3.11.3-1", protocol},
		{"AUTH in 3.1.1", &packets.Auth{}, "2.2.1", malformed},
		{"AUTH Continue without a method", &packets.Auth{Version: 5, ReasonCode: packets.ContinueAuthentication}, "3.15.2.2.2", protocol},
		{"AUTH properties without a method", &packets.Auth{Version: 5, Properties: packets.Properties{ReasonString: "x"}}, "3.15.2.2.2", protocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Append([]byte{9})
			assert.Equal(t, []byte{9}, got, "appended on failure")
			if tc.name == "AUTH in 3.1.1" {
				// Type 15 is reserved in 3.1.1: the error is a 3.1.1 one.
				wantRule(t, err, tc.rule, packets.ErrInvalidPacket)
				return
			}
			wantV5(t, err, tc.rule, tc.code, packets.ErrInvalidPacket)
		})
	}
}

// TestErrorMessagesV5: an MQTT 5 failure says which specification its
// statement is from, and whether it is a Protocol Error.
func TestErrorMessagesV5(t *testing.T) {
	tests := []struct {
		wire []byte
		want string
	}{
		{frame(0x30, str("t"), props(pU16(packets.PropTopicAlias, 0))),
			"mqtt: protocol error (Topic Alias invalid) in PUBLISH: Topic Alias is 0 [v5 MQTT-3.3.2-8]"},
		{frame(0x30, str("a/+"), props()), "mqtt: protocol error in PUBLISH: topic name contains a wildcard character [v5 MQTT-3.3.2-2]"},
		{frame(0x82, u16(1), props(), str("a"), []byte{0x40}),
			"mqtt: malformed SUBSCRIBE: reserved subscription option bits are set [v5 MQTT-3.8.3-5]"},
		{[]byte{0xF0, 1, 0x18}, "mqtt: malformed AUTH: property length runs past the end of the packet [v5 2.1.4]"},
	}
	for _, tc := range tests {
		_, err := decodeWireV(t, packets.Level5, tc.wire)
		require.Error(t, err)
		assert.Equal(t, tc.want, err.Error())
	}
	_, err := (&packets.Publish{Version: 5, QoS: 1, Topic: "t"}).Append(nil)
	require.Error(t, err)
	assert.Equal(t, "mqtt: cannot encode PUBLISH: packet identifier is zero [v5 MQTT-2.2.1-3]", err.Error())

	// A CONNECT whose level is unknown: the 3.1.1 rule, and the code an
	// MQTT 5 server answers with [v5 MQTT-3.1.2-2].
	_, err = decodeWire(t, frame(0x10, str("MQTT"), []byte{6, 2}, u16(0), str("c")))
	perr := wantRule(t, err, "MQTT-3.1.2-2", packets.ErrProtocolLevel)
	assert.Equal(t, packets.UnsupportedProtocolVersion, perr.Code)
	assert.NotErrorIs(t, err, packets.ErrProtocolError)
}
