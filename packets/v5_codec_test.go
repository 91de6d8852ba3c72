package packets_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// validPackets5 covers every MQTT 5 control packet, with and without
// properties, each field, flag and option. The wire bytes are built here
// from the specification: properties in the order Append writes them (by
// identifier; for PUBLISH the decoded kinds, then Raw).
func validPackets5() []validPacket {
	mqtt5 := cat(str("MQTT"), []byte{5})
	raw := cat(pStr(packets.PropContentType, "text/plain"), pStr(packets.PropResponseTopic, "resp/t"),
		pStr(packets.PropCorrelationData, "corr"), pUser("k", "v"))
	return []validPacket{
		{"CONNECT minimal", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanSession: true, KeepAlive: 60, ClientID: "c1"},
			frame(0x10, mqtt5, []byte{0x02}, u16(60), props(), str("c1"))},
		// Every CONNECT property, and every Will property; flags 0xEE:
		// user name, password, will retain, will QoS 1, will, clean start.
		{"CONNECT every property", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanSession: true, KeepAlive: 30, ClientID: "id",
			WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "w/t", WillMessage: []byte("bye"),
			UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw"),
			Properties: packets.Properties{SessionExpiry: new(uint32(3600)), AuthMethod: "SCRAM", AuthData: []byte{1, 2},
				RequestProblemInfo: new(byte(0)), RequestResponseInfo: new(byte(1)), ReceiveMaximum: new(uint16(20)),
				TopicAliasMaximum: new(uint16(10)), User: []packets.UserProperty{{"a", "1"}, {"a", "2"}}, MaximumPacketSize: new(uint32(65536))},
			WillProperties: packets.Properties{PayloadFormat: new(byte(1)), MessageExpiry: new(uint32(120)), ContentType: "text/plain",
				ResponseTopic: "re/ply", CorrelationData: []byte{0xff}, WillDelay: new(uint32(5)), User: []packets.UserProperty{{"w", "x"}}}},
			frame(0x10, mqtt5, []byte{0xEE}, u16(30),
				props(pU32(packets.PropSessionExpiry, 3600), pStr(packets.PropAuthMethod, "SCRAM"), pRaw(packets.PropAuthData, 0, 2, 1, 2),
					pByte(packets.PropRequestProblemInfo, 0), pByte(packets.PropRequestResponseInfo, 1), pU16(packets.PropReceiveMaximum, 20),
					pU16(packets.PropTopicAliasMaximum, 10), pUser("a", "1"), pUser("a", "2"), pU32(packets.PropMaximumPacketSize, 65536)),
				str("id"),
				props(pByte(packets.PropPayloadFormat, 1), pU32(packets.PropMessageExpiry, 120), pStr(packets.PropContentType, "text/plain"),
					pStr(packets.PropResponseTopic, "re/ply"), pRaw(packets.PropCorrelationData, 0, 1, 0xff), pU32(packets.PropWillDelay, 5), pUser("w", "x")),
				str("w/t"), str("bye"), str("u"), str("pw"))},
		// A password without a user name is allowed in MQTT 5 (section
		// 3.1.2.9), and an empty will payload with no will properties.
		{"CONNECT password without user name, empty will", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "",
			WillFlag: true, WillQoS: 2, WillTopic: "t", PasswordFlag: true, Password: []byte("token")},
			frame(0x10, mqtt5, []byte{0x54}, u16(0), props(), str(""), props(), str("t"), str(""), str("token"))},
		{"CONNACK", &packets.Connack{Version: 5}, []byte{0x20, 3, 0, 0, 0}},
		{"CONNACK every property", &packets.Connack{Version: 5, SessionPresent: true, Properties: packets.Properties{
			SessionExpiry: new(uint32(0)), AssignedClientID: "auto-1", ServerKeepAlive: new(uint16(45)), AuthMethod: "SCRAM",
			AuthData: []byte{}, ResponseInfo: "resp/", ServerReference: "other", ReasonString: "welcome", ReceiveMaximum: new(uint16(100)),
			TopicAliasMaximum: new(uint16(0)), MaximumQoS: new(byte(1)), RetainAvailable: new(byte(0)), User: []packets.UserProperty{{"", ""}},
			MaximumPacketSize: new(uint32(1 << 20)), WildcardSubAvailable: new(byte(0)), SubIDAvailable: new(byte(1)), SharedSubAvailable: new(byte(0))}},
			frame(0x20, []byte{1, 0}, props(pU32(packets.PropSessionExpiry, 0), pStr(packets.PropAssignedClientID, "auto-1"),
				pU16(packets.PropServerKeepAlive, 45), pStr(packets.PropAuthMethod, "SCRAM"), pRaw(packets.PropAuthData, 0, 0),
				pStr(packets.PropResponseInfo, "resp/"), pStr(packets.PropServerReference, "other"), pStr(packets.PropReasonString, "welcome"),
				pU16(packets.PropReceiveMaximum, 100), pU16(packets.PropTopicAliasMaximum, 0), pByte(packets.PropMaximumQoS, 1),
				pByte(packets.PropRetainAvailable, 0), pUser("", ""), pU32(packets.PropMaximumPacketSize, 1<<20),
				pByte(packets.PropWildcardSubAvailable, 0), pByte(packets.PropSubIDAvailable, 1), pByte(packets.PropSharedSubAvailable, 0)))},
		{"CONNACK refused", &packets.Connack{Version: 5, ReturnCode: byte(packets.NotAuthorized), Properties: packets.Properties{ReasonString: "no"}},
			frame(0x20, []byte{0, 0x87}, props(pStr(packets.PropReasonString, "no")))},
		{"PUBLISH QoS 0 without properties", &packets.Publish{Version: 5, Topic: "a/b", Payload: []byte("hi")},
			frame(0x30, str("a/b"), props(), []byte("hi"))},
		{"PUBLISH QoS 1 two user properties", &packets.Publish{Version: 5, QoS: 1, Topic: "t", PacketID: 7,
			Props: packets.PublishProps{Raw: cat(pUser("k1", "v1"), pUser("k2", "v2"))}, Payload: []byte{1}},
			frame(0x32, str("t"), u16(7), props(pUser("k1", "v1"), pUser("k2", "v2")), []byte{1})},
		{"PUBLISH QoS 2 every property", &packets.Publish{Version: 5, QoS: 2, Dup: true, Retain: true, Topic: "x/y", PacketID: 65535,
			Props: packets.PublishProps{PayloadFormat: 1, HasPayloadFormat: true, MessageExpiry: 60, HasMessageExpiry: true,
				TopicAlias: 3, HasTopicAlias: true, SubscriptionIDs: []uint32{1, 268435455}, Raw: raw}, Payload: []byte("{}")},
			frame(0x3D, str("x/y"), u16(65535), props(pByte(packets.PropPayloadFormat, 1), pU32(packets.PropMessageExpiry, 60),
				pU16(packets.PropTopicAlias, 3), pVBI(packets.PropSubscriptionID, 1), pVBI(packets.PropSubscriptionID, 268435455), raw),
				[]byte("{}"))},
		// An empty topic stands for the one its Topic Alias maps to
		// (section 3.3.2.3.4); the broker resolves the alias.
		{"PUBLISH empty topic with a Topic Alias", &packets.Publish{Version: 5, Props: packets.PublishProps{TopicAlias: 5, HasTopicAlias: true}},
			frame(0x30, str(""), props(pU16(packets.PropTopicAlias, 5)))},
		{"PUBACK Success", &packets.Puback{Version: 5, PacketID: 1}, []byte{0x40, 2, 0, 1}},
		{"PUBACK Reason Code", &packets.Puback{Version: 5, PacketID: 2, ReasonCode: packets.NoMatchingSubscribers}, []byte{0x40, 3, 0, 2, 0x10}},
		{"PUBACK properties", &packets.Puback{Version: 5, PacketID: 3, ReasonCode: packets.NotAuthorized,
			Properties: packets.Properties{ReasonString: "no", User: []packets.UserProperty{{"k", "v"}}}},
			frame(0x40, u16(3), []byte{0x87}, props(pStr(packets.PropReasonString, "no"), pUser("k", "v")))},
		{"PUBACK Success with properties", &packets.Puback{Version: 5, PacketID: 4, Properties: packets.Properties{ReasonString: "ok"}},
			frame(0x40, u16(4), []byte{0}, props(pStr(packets.PropReasonString, "ok")))},
		{"PUBREC Reason Code", &packets.Pubrec{Version: 5, PacketID: 1, ReasonCode: packets.UnspecifiedError}, []byte{0x50, 3, 0, 1, 0x80}},
		{"PUBREL Reason Code", &packets.Pubrel{Version: 5, PacketID: 1, ReasonCode: packets.PacketIdentifierNotFound}, []byte{0x62, 3, 0, 1, 0x92}},
		{"PUBCOMP properties", &packets.Pubcomp{Version: 5, PacketID: 9, Properties: packets.Properties{User: []packets.UserProperty{{"a", "b"}}}},
			frame(0x70, u16(9), []byte{0}, props(pUser("a", "b")))},
		{"SUBSCRIBE options and properties", &packets.Subscribe{Version: 5, PacketID: 1,
			Properties: packets.Properties{SubscriptionIDs: []uint32{42}, User: []packets.UserProperty{{"k", "v"}}},
			Subscriptions: []packets.Subscription{
				{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
				{Filter: "$share/g/x", QoS: 2},
				{Filter: "#", RetainHandling: 1}}},
			frame(0x82, u16(1), props(pVBI(packets.PropSubscriptionID, 42), pUser("k", "v")),
				str("a/+"), []byte{0x2D}, str("$share/g/x"), []byte{2}, str("#"), []byte{0x10})},
		{"SUBSCRIBE without properties", &packets.Subscribe{Version: 5, PacketID: 2, Subscriptions: []packets.Subscription{{Filter: "a"}}},
			frame(0x82, u16(2), props(), str("a"), []byte{0})},
		{"SUBACK every Reason Code", &packets.Suback{Version: 5, PacketID: 1, Properties: packets.Properties{ReasonString: "partly"},
			ReturnCodes: []byte{0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}},
			frame(0x90, u16(1), props(pStr(packets.PropReasonString, "partly")), []byte{0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2})},
		{"UNSUBSCRIBE", &packets.Unsubscribe{Version: 5, PacketID: 2, Properties: packets.Properties{User: []packets.UserProperty{{"k", "v"}}},
			Filters: []string{"a/#", "b"}},
			frame(0xA2, u16(2), props(pUser("k", "v")), str("a/#"), str("b"))},
		{"UNSUBACK every Reason Code", &packets.Unsuback{Version: 5, PacketID: 2, ReasonCodes: []byte{0, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}},
			frame(0xB0, u16(2), props(), []byte{0, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91})},
		{"PINGREQ", &packets.Pingreq{Version: 5}, []byte{0xC0, 0}},
		{"PINGRESP", &packets.Pingresp{Version: 5}, []byte{0xD0, 0}},
		{"DISCONNECT Normal", &packets.Disconnect{Version: 5}, []byte{0xE0, 0}},
		{"DISCONNECT with Will", &packets.Disconnect{Version: 5, ReasonCode: packets.DisconnectWithWill}, []byte{0xE0, 1, 4}},
		{"DISCONNECT properties", &packets.Disconnect{Version: 5, ReasonCode: packets.ServerMoved, Properties: packets.Properties{
			SessionExpiry: new(uint32(0)), ServerReference: "other:1883", ReasonString: "bye", User: []packets.UserProperty{{"k", "v"}}}},
			frame(0xE0, []byte{0x9D}, props(pU32(packets.PropSessionExpiry, 0), pStr(packets.PropServerReference, "other:1883"),
				pStr(packets.PropReasonString, "bye"), pUser("k", "v")))},
		{"AUTH Success", &packets.Auth{Version: 5}, []byte{0xF0, 0}},
		{"AUTH Continue", &packets.Auth{Version: 5, ReasonCode: packets.ContinueAuthentication,
			Properties: packets.Properties{AuthMethod: "SCRAM", AuthData: []byte("nonce")}},
			frame(0xF0, []byte{0x18}, props(pStr(packets.PropAuthMethod, "SCRAM"), pStr(packets.PropAuthData, "nonce")))},
		{"AUTH Re-authenticate", &packets.Auth{Version: 5, ReasonCode: packets.ReAuthenticate,
			Properties: packets.Properties{AuthMethod: "SCRAM", ReasonString: "again", User: []packets.UserProperty{{"k", "v"}}}},
			frame(0xF0, []byte{0x19}, props(pStr(packets.PropAuthMethod, "SCRAM"), pStr(packets.PropReasonString, "again"), pUser("k", "v")))},
	}
}

// TestRoundTripV5 encodes every MQTT 5 packet to its exact bytes and
// decodes them back, through a Reader set to MQTT 5.
func TestRoundTripV5(t *testing.T) {
	for _, tc := range validPackets5() {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix")
			got, err := tc.p.Append(prefix)
			require.NoError(t, err, "Append")
			require.Equal(t, prefix, got[:len(prefix)], "Append changed dst")
			require.Equal(t, tc.wire, got[len(prefix):], "Append")
			p, err := decodeWireV(t, packets.Level5, tc.wire)
			require.NoError(t, err, "decode")
			assert.Equal(t, tc.p, p)
		})
	}
}

// TestDecodeV5Forms: the forms a sender may choose that Append does not
// produce decode to the same values: a Reason Code or Property Length
// given though it holds the default (sections 3.4.2.1, 3.14.2.1), and
// PUBLISH properties in another order (section 2.2.2.2: "There is no
// significance in the order of Properties with different Identifiers").
func TestDecodeV5Forms(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want packets.Packet
	}{
		{"PUBACK Success given", []byte{0x40, 3, 0, 1, 0}, &packets.Puback{Version: 5, PacketID: 1}},
		{"PUBACK empty properties given", []byte{0x40, 4, 0, 1, 0, 0}, &packets.Puback{Version: 5, PacketID: 1}},
		{"PUBREL Reason Code and empty properties", []byte{0x62, 4, 0, 1, 0x92, 0}, &packets.Pubrel{Version: 5, PacketID: 1, ReasonCode: packets.PacketIdentifierNotFound}},
		{"DISCONNECT Normal given", []byte{0xE0, 1, 0}, &packets.Disconnect{Version: 5}},
		{"DISCONNECT empty properties given", []byte{0xE0, 2, 0x8E, 0}, &packets.Disconnect{Version: 5, ReasonCode: packets.SessionTakenOver}},
		{"PUBLISH Raw properties around a Topic Alias", frame(0x30, str("t"),
			props(pUser("a", "1"), pU16(packets.PropTopicAlias, 3), pStr(packets.PropContentType, "ct"), pVBI(packets.PropSubscriptionID, 9))),
			&packets.Publish{Version: 5, Topic: "t", Props: packets.PublishProps{TopicAlias: 3, HasTopicAlias: true,
				SubscriptionIDs: []uint32{9}, Raw: cat(pUser("a", "1"), pStr(packets.PropContentType, "ct"))}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodeWireV(t, packets.Level5, tc.wire)
			require.NoError(t, err)
			assert.Equal(t, tc.want, p)
			// Encoded again, in the shortest form, it decodes to the same.
			wire, err := p.Append(nil)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(wire), len(tc.wire))
			again, err := decodeWireV(t, packets.Level5, wire)
			require.NoError(t, err)
			assert.Equal(t, tc.want, again)
		})
	}
}

// TestDecodeV5DoesNotAlias: only a PUBLISH payload and its raw properties
// share memory with the body.
func TestDecodeV5DoesNotAlias(t *testing.T) {
	for _, tc := range validPackets5() {
		t.Run(tc.name, func(t *testing.T) {
			r := packets.NewReader(bytes.NewReader(tc.wire), 0)
			r.SetVersion(packets.Level5)
			fh, body, err := r.ReadRaw()
			require.NoError(t, err)
			body = bytes.Clone(body)
			p, err := packets.DecodeVersion(packets.Level5, fh, body)
			require.NoError(t, err)
			want := tc.p
			if _, ok := p.(*packets.Publish); ok {
				// The payload and Raw alias the body (documented on Publish).
				cp := *want.(*packets.Publish)
				cp.Payload = bytes.Repeat([]byte{0xAA}, len(cp.Payload))
				cp.Props.Raw = bytes.Repeat([]byte{0xAA}, len(cp.Props.Raw))
				if len(cp.Payload) == 0 {
					cp.Payload = nil
				}
				if len(cp.Props.Raw) == 0 {
					cp.Props.Raw = nil
				}
				want = &cp
			}
			for i := range body {
				body[i] = 0xAA
			}
			assert.Equal(t, want, p, "after overwriting the body")
		})
	}
}

// TestAppendV5DoesNotAllocate: encoding into a buffer with room is free,
// properties included.
func TestAppendV5DoesNotAllocate(t *testing.T) {
	dst := make([]byte, 0, 4096)
	for _, tc := range validPackets5() {
		allocs := testing.AllocsPerRun(100, func() {
			_, err := tc.p.Append(dst[:0])
			require.NoError(t, err)
		})
		assert.Zero(t, allocs, "%s: Append allocates", tc.name)
	}
}

// TestVersionSelectsForm: the same value encodes in the form its Version
// selects; the 3.1.1 form ignores what MQTT 5 adds. DecodeVersion sets
// Version, and the 3.1.1 Decode leaves it 0.
func TestVersionSelectsForm(t *testing.T) {
	ack := &packets.Puback{PacketID: 1, ReasonCode: packets.NotAuthorized, Properties: packets.Properties{ReasonString: "no"}}
	wire, err := ack.Append(nil)
	require.NoError(t, err)
	assert.Equal(t, []byte{0x40, 2, 0, 1}, wire)
	ack.Version = packets.Level5
	wire, err = ack.Append(nil)
	require.NoError(t, err)
	assert.Equal(t, frame(0x40, u16(1), []byte{0x87}, props(pStr(packets.PropReasonString, "no"))), wire)

	pub := &packets.Publish{Topic: "t", Props: packets.PublishProps{Raw: pUser("k", "v")}, Payload: []byte("x")}
	wire, err = pub.Append(nil)
	require.NoError(t, err)
	assert.Equal(t, frame(0x30, str("t"), []byte("x")), wire, "3.1.1 form with properties")

	p, err := packets.DecodeVersion(packets.Level5, packets.FixedHeader{Type: packets.TypePuback, Remaining: 2}, []byte{0, 1})
	require.NoError(t, err)
	assert.Equal(t, &packets.Puback{Version: 5, PacketID: 1}, p)
	p, err = packets.Decode(packets.FixedHeader{Type: packets.TypePuback, Remaining: 2}, []byte{0, 1})
	require.NoError(t, err)
	assert.Equal(t, &packets.Puback{PacketID: 1}, p)
	p, err = packets.DecodeVersion(packets.Level311, packets.FixedHeader{Type: packets.TypeUnsuback, Remaining: 2}, []byte{0, 1})
	require.NoError(t, err)
	assert.Equal(t, &packets.Unsuback{Version: 4, PacketID: 1}, p)

	// A 3.1.1 UNSUBACK has no Reason Codes; an MQTT 5 one must have one.
	wire, err = (&packets.Unsuback{PacketID: 1, ReasonCodes: []byte{0x11}}).Append(nil)
	require.NoError(t, err)
	assert.Equal(t, []byte{0xB0, 2, 0, 1}, wire)

	// A CONNECT carries its own version: the 3.1.1 Decode reads MQTT 5.
	v5 := validPackets5()[1]
	p, err = decodeWire(t, v5.wire)
	require.NoError(t, err)
	assert.Equal(t, v5.p, p)
	// An empty protocol name with level 5 encodes as "MQTT".
	wire, err = (&packets.Connect{ProtocolLevel: 5, ClientID: "c"}).Append(nil)
	require.NoError(t, err)
	assert.Equal(t, frame(0x10, str("MQTT"), []byte{5, 0}, u16(0), props(), str("c")), wire)
}

// TestDecodeAckID decodes acknowledgements of both forms with DecodeAckID,
// which keeps only the Packet Identifier and Reason Code, and checks it
// makes the checks Decode makes: [MQTT-2.3.1-1] [v5 MQTT-2.2.1-3]
// [v5 MQTT-3.4.2-1].
func TestDecodeAckID(t *testing.T) {
	tests := []struct {
		name    string
		version byte
		wire    []byte
		id      uint16
		code    packets.ReasonCode
		wantErr string
	}{
		{"3.1.1 PUBACK", packets.Level311, []byte{0x40, 2, 0, 7}, 7, packets.Success, ""},
		{"3.1.1 PUBREL", packets.Level311, []byte{0x62, 2, 1, 0}, 256, packets.Success, ""},
		{"3.1.1 PUBACK with a reason code", packets.Level311, []byte{0x40, 3, 0, 7, 0x10}, 0, 0, "3.4.1"},
		{"3.1.1 PUBCOMP id 0", packets.Level311, []byte{0x70, 2, 0, 0}, 0, 0, "MQTT-2.3.1-1"},
		{"v5 PUBACK short form", packets.Level5, []byte{0x40, 2, 0, 9}, 9, packets.Success, ""},
		{"v5 PUBREC with a code", packets.Level5, []byte{0x50, 3, 0, 9, 0x10}, 9, packets.NoMatchingSubscribers, ""},
		{"v5 PUBACK with properties", packets.Level5, frame(0x40, u16(3), []byte{0x87}, props(pStr(packets.PropReasonString, "no"))), 3, packets.NotAuthorized, ""},
		{"v5 PUBACK bad code", packets.Level5, []byte{0x40, 3, 0, 9, 0x01}, 0, 0, "MQTT-3.4.2-1"},
		{"v5 PUBACK bad property", packets.Level5, frame(0x40, u16(3), []byte{0}, props(pByte(packets.PropPayloadFormat, 1))), 0, 0, "2.2.2.2"},
		{"not an acknowledgement", packets.Level311, []byte{0xC0, 0}, 0, 0, "is not an acknowledgement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fh, n, err := packets.ParseFixedHeaderVersion(tt.version, tt.wire)
			require.NoError(t, err)
			id, code, err := packets.DecodeAckID(tt.version, fh, tt.wire[n:])
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.id, id)
			assert.Equal(t, tt.code, code)
		})
	}
}
