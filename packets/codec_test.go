package packets_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// validPacket is a packet value and its exact encoding.
type validPacket struct {
	name string
	p    packets.Packet
	wire []byte
}

// validPackets covers every control packet type, each field and flag.
func validPackets() []validPacket {
	mqtt := cat(str("MQTT"), []byte{4})
	long := strings.Repeat("x", 200)
	return []validPacket{
		{"CONNECT minimal", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 60, ClientID: "c1"},
			frame(0x10, mqtt, []byte{0x02}, u16(60), str("c1"))},
		// The variable header of the example in section 3.1.2.10: flags
		// 0xCE (user name, password, will QoS 1, will, clean session),
		// keep alive 10.
		{"CONNECT spec example", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 10, ClientID: "id",
			WillFlag: true, WillQoS: 1, WillTopic: "w/t", WillMessage: []byte("bye"),
			UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte{0, 0xff}},
			frame(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0xCE, 0, 10}, str("id"), str("w/t"), str("bye"), str("u"), u16(2), []byte{0, 0xff})},
		{"CONNECT will QoS 2 retain, empty will message", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "id",
			WillFlag: true, WillQoS: 2, WillRetain: true, WillTopic: "t"},
			frame(0x10, mqtt, []byte{0x34}, u16(0), str("id"), str("t"), str(""))},
		{"CONNECT empty user name and password", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "id",
			UsernameFlag: true, PasswordFlag: true},
			frame(0x10, mqtt, []byte{0xC0}, u16(0), str("id"), str(""), str(""))},
		// A zero-byte client id and CleanSession 0 decode: the server
		// answers with CONNACK 0x02 [MQTT-3.1.3-8], the codec does not decide.
		{"CONNECT empty client id", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, KeepAlive: 65535},
			frame(0x10, mqtt, []byte{0}, u16(65535), str(""))},
		// MQTT 3.1: a client id over 23 bytes is the server's decision.
		{"CONNECT MQTT 3.1", &packets.Connect{ProtocolName: "MQIsdp", ProtocolLevel: 3, CleanSession: true, ClientID: strings.Repeat("i", 30),
			UsernameFlag: true, Username: "user"},
			frame(0x10, str("MQIsdp"), []byte{3, 0x82}, u16(0), str(strings.Repeat("i", 30)), str("user"))},
		// A BOM is a character like any other [MQTT-1.5.3-3].
		{"CONNECT client id with BOM", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "\uFEFFid"},
			frame(0x10, mqtt, []byte{0}, u16(0), []byte{0, 5, 0xEF, 0xBB, 0xBF, 'i', 'd'})},
		{"CONNACK session present", &packets.Connack{SessionPresent: true}, []byte{0x20, 2, 1, 0}},
		{"CONNACK refused", &packets.Connack{ReturnCode: packets.RefusedNotAuthorized}, []byte{0x20, 2, 0, 5}},
		{"PUBLISH QoS 0", &packets.Publish{Topic: "a/b", Payload: []byte("hi")},
			[]byte{0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'}},
		// The example of section 3.3.2.3: topic "a/b", packet identifier 10.
		{"PUBLISH QoS 1 DUP RETAIN", &packets.Publish{Dup: true, QoS: 1, Retain: true, Topic: "a/b", PacketID: 10, Payload: []byte{1}},
			[]byte{0x3B, 8, 0, 3, 'a', '/', 'b', 0, 10, 1}},
		{"PUBLISH QoS 2 empty payload", &packets.Publish{QoS: 2, Topic: "$SYS/x", PacketID: 65535},
			frame(0x34, str("$SYS/x"), u16(65535))},
		{"PUBLISH two byte Remaining Length", &packets.Publish{Topic: "t", Payload: []byte(long)},
			frame(0x30, str("t"), []byte(long))},
		{"PUBLISH topic with BOM", &packets.Publish{Topic: "\uFEFF/x", Payload: []byte{0}},
			frame(0x30, []byte{0, 5, 0xEF, 0xBB, 0xBF, '/', 'x'}, []byte{0})},
		{"PUBACK", &packets.Puback{PacketID: 0x1234}, []byte{0x40, 2, 0x12, 0x34}},
		{"PUBREC", &packets.Pubrec{PacketID: 1}, []byte{0x50, 2, 0, 1}},
		{"PUBREL", &packets.Pubrel{PacketID: 2}, []byte{0x62, 2, 0, 2}},
		{"PUBCOMP", &packets.Pubcomp{PacketID: 3}, []byte{0x70, 2, 0, 3}},
		{"SUBSCRIBE", &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{
			{Filter: "a/+", QoS: 0}, {Filter: "#", QoS: 1}, {Filter: "x/y", QoS: 2}}},
			frame(0x82, u16(1), str("a/+"), []byte{0}, str("#"), []byte{1}, str("x/y"), []byte{2})},
		{"SUBACK", &packets.Suback{PacketID: 1, ReturnCodes: []byte{0, 1, 2, 0x80}},
			[]byte{0x90, 6, 0, 1, 0, 1, 2, 0x80}},
		{"UNSUBSCRIBE", &packets.Unsubscribe{PacketID: 2, Filters: []string{"a/#", "b"}},
			frame(0xA2, u16(2), str("a/#"), str("b"))},
		{"UNSUBACK", &packets.Unsuback{PacketID: 2}, []byte{0xB0, 2, 0, 2}},
		{"PINGREQ", &packets.Pingreq{}, []byte{0xC0, 0}},
		{"PINGRESP", &packets.Pingresp{}, []byte{0xD0, 0}},
		{"DISCONNECT", &packets.Disconnect{}, []byte{0xE0, 0}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range validPackets() {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix")
			got, err := tc.p.Append(prefix)
			require.NoError(t, err, "Append")
			require.Equal(t, prefix, got[:len(prefix)], "Append changed dst")
			require.Equal(t, tc.wire, got[len(prefix):], "Append")
			p, err := decodeWire(t, tc.wire)
			require.NoError(t, err, "decode")
			assert.Equal(t, tc.p.Type(), p.Type())
			assert.Equal(t, tc.p, p)
		})
	}
}

// TestPublishQoS0HasNoPacketID: a QoS 0 PUBLISH carries no packet
// identifier [MQTT-2.3.1-5], whatever PacketID holds.
func TestPublishQoS0HasNoPacketID(t *testing.T) {
	got, err := (&packets.Publish{Topic: "t", PacketID: 9, Payload: []byte("x")}).Append(nil)
	require.NoError(t, err)
	assert.Equal(t, frame(0x30, str("t"), []byte("x")), got)
}

func TestConnectDefaultsToMQTT311(t *testing.T) {
	got, err := (&packets.Connect{ClientID: "c"}).Append(nil)
	require.NoError(t, err)
	assert.Equal(t, frame(0x10, str("MQTT"), []byte{4, 0}, u16(0), str("c")), got)
}

// TestDecodeDoesNotAlias checks that only a PUBLISH payload shares memory
// with the body: strings and other slices survive a reused buffer.
func TestDecodeDoesNotAlias(t *testing.T) {
	for _, tc := range validPackets() {
		t.Run(tc.name, func(t *testing.T) {
			fh, n, err := packets.ParseFixedHeader(tc.wire)
			require.NoError(t, err)
			require.NotZero(t, n, "ParseFixedHeader needs more bytes")
			body := bytes.Clone(tc.wire[n:])
			p, err := packets.Decode(fh, body)
			require.NoError(t, err)
			for i := range body {
				body[i] = 0xAA
			}
			want := tc.p
			if pub, ok := p.(*packets.Publish); ok && len(pub.Payload) > 0 {
				// The payload alone aliases the body (documented on Publish).
				assert.Equal(t, byte(0xAA), pub.Payload[0], "Payload does not alias the body")
				cp := *want.(*packets.Publish)
				cp.Payload = bytes.Repeat([]byte{0xAA}, len(cp.Payload))
				want = &cp
			}
			assert.Equal(t, want, p, "after overwriting the body")
		})
	}
}

// TestAppendInvalid: Append refuses what a receiver would reject, naming
// the same statements as decoding does.
func TestAppendInvalid(t *testing.T) {
	big := strings.Repeat("a", 65536)
	mqtt := func(c packets.Connect) *packets.Connect {
		c.ProtocolName, c.ProtocolLevel, c.ClientID = "MQTT", 4, "id"
		return &c
	}
	tests := []struct {
		name string
		p    packets.Packet
		rule string
	}{
		{"CONNECT unknown protocol name", &packets.Connect{ProtocolName: "MQTTv5", ProtocolLevel: 5}, "MQTT-3.1.2-1"},
		{"CONNECT MQTT level 3", &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 3}, "MQTT-3.1.2-2"},
		{"CONNECT MQIsdp level 4", &packets.Connect{ProtocolName: "MQIsdp", ProtocolLevel: 4}, "MQTT-3.1.2-2"},
		{"CONNECT level without name", &packets.Connect{ProtocolLevel: 4}, "MQTT-3.1.2-1"},
		{"CONNECT will QoS without will", mqtt(packets.Connect{WillQoS: 1}), "MQTT-3.1.2-13"},
		{"CONNECT will retain without will", mqtt(packets.Connect{WillRetain: true}), "MQTT-3.1.2-15"},
		{"CONNECT will topic without will", mqtt(packets.Connect{WillTopic: "t"}), "MQTT-3.1.2-11"},
		{"CONNECT will message without will", mqtt(packets.Connect{WillMessage: []byte{1}}), "MQTT-3.1.2-11"},
		{"CONNECT will QoS 3", mqtt(packets.Connect{WillFlag: true, WillQoS: 3, WillTopic: "t"}), "MQTT-3.1.2-14"},
		{"CONNECT empty will topic", mqtt(packets.Connect{WillFlag: true}), "MQTT-4.7.3-1"},
		{"CONNECT will topic wildcard", mqtt(packets.Connect{WillFlag: true, WillTopic: "a/+"}), "MQTT-4.7.1-1"},
		{"CONNECT user name without flag", mqtt(packets.Connect{Username: "u"}), "MQTT-3.1.2-18"},
		{"CONNECT password without flag", mqtt(packets.Connect{UsernameFlag: true, Password: []byte("p")}), "MQTT-3.1.2-20"},
		{"CONNECT password flag without user name flag", mqtt(packets.Connect{PasswordFlag: true}), "MQTT-3.1.2-22"},
		{"CONNECT client id with U+0000", &packets.Connect{ClientID: "a\x00"}, "MQTT-1.5.3-2"},
		{"CONNECT client id not UTF-8", &packets.Connect{ClientID: "\xff"}, "MQTT-1.5.3-1"},
		{"CONNECT user name too long", mqtt(packets.Connect{UsernameFlag: true, Username: big}), "1.5.3"},
		{"CONNECT password too long", mqtt(packets.Connect{UsernameFlag: true, PasswordFlag: true, Password: []byte(big)}), "1.5.3"},
		{"CONNECT will message too long", mqtt(packets.Connect{WillFlag: true, WillTopic: "t", WillMessage: []byte(big)}), "1.5.3"},
		{"CONNACK reserved return code", &packets.Connack{ReturnCode: 6}, "3.2.2.3"},
		{"CONNACK session present when refused", &packets.Connack{SessionPresent: true, ReturnCode: 1}, "MQTT-3.2.2-4"},
		{"PUBLISH QoS 3", &packets.Publish{QoS: 3, Topic: "t", PacketID: 1}, "MQTT-3.3.1-4"},
		{"PUBLISH DUP at QoS 0", &packets.Publish{Dup: true, Topic: "t"}, "MQTT-3.3.1-2"},
		{"PUBLISH QoS 1 without packet id", &packets.Publish{QoS: 1, Topic: "t"}, "MQTT-2.3.1-1"},
		{"PUBLISH empty topic", &packets.Publish{}, "MQTT-4.7.3-1"},
		{"PUBLISH topic wildcard +", &packets.Publish{Topic: "a/+/b"}, "MQTT-3.3.2-2"},
		{"PUBLISH topic wildcard #", &packets.Publish{Topic: "#"}, "MQTT-3.3.2-2"},
		{"PUBLISH topic surrogate", &packets.Publish{Topic: "\xed\xa0\x80"}, "MQTT-1.5.3-1"},
		{"PUBLISH topic too long", &packets.Publish{Topic: big}, "1.5.3"},
		{"PUBACK zero id", &packets.Puback{}, "MQTT-2.3.1-1"},
		{"PUBREC zero id", &packets.Pubrec{}, "MQTT-2.3.1-1"},
		{"PUBREL zero id", &packets.Pubrel{}, "MQTT-2.3.1-1"},
		{"PUBCOMP zero id", &packets.Pubcomp{}, "MQTT-2.3.1-1"},
		{"UNSUBACK zero id", &packets.Unsuback{}, "MQTT-2.3.1-1"},
		{"SUBSCRIBE zero id", &packets.Subscribe{Subscriptions: []packets.Subscription{{Filter: "a"}}}, "MQTT-2.3.1-1"},
		{"SUBSCRIBE no filter", &packets.Subscribe{PacketID: 1}, "MQTT-3.8.3-3"},
		{"SUBSCRIBE QoS 3", &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "a", QoS: 3}}}, "MQTT-3-8.3-4"},
		{"SUBSCRIBE empty filter", &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: ""}}}, "MQTT-4.7.3-1"},
		{"SUBACK zero id", &packets.Suback{ReturnCodes: []byte{0}}, "MQTT-2.3.1-1"},
		{"SUBACK no return code", &packets.Suback{PacketID: 1}, "MQTT-3.8.4-5"},
		{"SUBACK reserved return code", &packets.Suback{PacketID: 1, ReturnCodes: []byte{0, 3}}, "MQTT-3.9.3-2"},
		{"UNSUBSCRIBE zero id", &packets.Unsubscribe{Filters: []string{"a"}}, "MQTT-2.3.1-1"},
		{"UNSUBSCRIBE no filter", &packets.Unsubscribe{PacketID: 1}, "MQTT-3.10.3-2"},
		{"UNSUBSCRIBE empty filter", &packets.Unsubscribe{PacketID: 1, Filters: []string{"a", ""}}, "MQTT-4.7.3-1"},
		{"UNSUBSCRIBE filter with U+0000", &packets.Unsubscribe{PacketID: 1, Filters: []string{"\x00"}}, "MQTT-1.5.3-2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte{1, 2, 3}
			got, err := tc.p.Append(dst)
			wantRule(t, err, tc.rule, packets.ErrInvalidPacket)
			assert.Equal(t, dst, got, "Append appended on failure")
		})
	}
}

func TestErrorMessages(t *testing.T) {
	_, err := (&packets.Publish{QoS: 3, Topic: "t"}).Append(nil)
	require.Error(t, err)
	assert.Equal(t, "mqtt: cannot encode PUBLISH: QoS above 2 [MQTT-3.3.1-4]", err.Error())
	_, err = packets.Decode(packets.FixedHeader{Type: packets.TypePublish, Flags: 6}, nil)
	require.Error(t, err)
	assert.Equal(t, "mqtt: malformed PUBLISH: QoS 3 (both QoS bits set) [MQTT-3.3.1-4]", err.Error())
	assert.NotErrorIs(t, err, packets.ErrInvalidPacket, "a decode error matches an unrelated sentinel")
	assert.NotErrorIs(t, err, packets.ErrProtocolLevel, "a decode error matches an unrelated sentinel")
	// 3.1.1 has no Protocol Errors: every failure is a Malformed Packet.
	assert.NotErrorIs(t, err, packets.ErrProtocolError)
	var perr *packets.Error
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, packets.MalformedPacket, perr.Code)
	assert.Zero(t, perr.Version)
}

// TestAppendDoesNotAllocate: encoding into a buffer with room is free.
func TestAppendDoesNotAllocate(t *testing.T) {
	dst := make([]byte, 0, 4096)
	for _, tc := range validPackets() {
		allocs := testing.AllocsPerRun(100, func() {
			_, err := tc.p.Append(dst[:0])
			require.NoError(t, err)
		})
		assert.Zero(t, allocs, "%s: Append allocates", tc.name)
	}
}

// TestDecodePublishAllocations: decoding into a reused *Publish allocates
// the topic string and nothing else, and not even that when the topic is
// the one the value already holds.
func TestDecodePublishAllocations(t *testing.T) {
	type raw struct {
		fh   packets.FixedHeader
		body []byte
	}
	encode := func(p *packets.Publish) raw {
		wire, err := p.Append(nil)
		require.NoError(t, err)
		fh, n, err := packets.ParseFixedHeader(wire)
		require.NoError(t, err)
		return raw{fh, wire[n:]}
	}
	for _, tc := range []struct {
		name   string
		pkts   []raw
		allocs float64
	}{
		{"QoS 0, topics alternate", []raw{
			encode(&packets.Publish{Topic: "sensors/1/temp", Payload: make([]byte, 64)}),
			encode(&packets.Publish{Topic: "sensors/2/temp", Payload: make([]byte, 64)})}, 1},
		{"QoS 1 4 KiB, topics alternate", []raw{
			encode(&packets.Publish{QoS: 1, PacketID: 7, Topic: "a/x", Payload: make([]byte, 4096)}),
			encode(&packets.Publish{QoS: 1, PacketID: 8, Topic: "b/x", Payload: make([]byte, 4096)})}, 1},
		{"QoS 2, same topic", []raw{
			encode(&packets.Publish{QoS: 2, PacketID: 7, Topic: "same/topic"}),
			encode(&packets.Publish{QoS: 2, PacketID: 8, Topic: "same/topic", Payload: []byte("x")})}, 0},
	} {
		var into packets.Publish
		i := 0
		allocs := testing.AllocsPerRun(100, func() {
			pkt := tc.pkts[i%len(tc.pkts)]
			i++
			require.NoError(t, into.Decode(pkt.fh, pkt.body))
		})
		assert.Equal(t, tc.allocs, allocs, "%s: Decode allocations", tc.name)
	}
}

// TestAppendTooLarge: a packet whose body would exceed the maximum
// Remaining Length (section 2.2.3) is refused. One 65535-byte filter,
// repeated, reaches it without allocating the whole packet.
func TestAppendTooLarge(t *testing.T) {
	f := strings.Repeat("f", 65535)
	count := packets.MaxRemainingLength/(2+len(f)) + 1
	subs := make([]packets.Subscription, count)
	filters := make([]string, count)
	for i := range subs {
		subs[i], filters[i] = packets.Subscription{Filter: f}, f
	}
	for _, p := range []packets.Packet{
		&packets.Subscribe{PacketID: 1, Subscriptions: subs},
		&packets.Unsubscribe{PacketID: 1, Filters: filters},
	} {
		got, err := p.Append(nil)
		wantRule(t, err, "2.2.3", packets.ErrInvalidPacket)
		assert.Nil(t, got, "%v: appended on failure", p.Type())
	}
}
