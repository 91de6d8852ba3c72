package packets_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// connect builds a CONNECT for protocol "MQTT" level 4 with the given
// flags and payload fields.
func connect(flags byte, payload ...[]byte) []byte {
	return frame(0x10, cat(str("MQTT"), []byte{4, flags}, u16(30)), cat(payload...))
}

// TestDecodeInvalid feeds malformed packets through a Reader and Decode
// and checks each fails naming the rule it breaks: [MQTT-1.5.3-1]
// [MQTT-1.5.3-2] [MQTT-2.2.2-1] [MQTT-2.2.2-2] [MQTT-2.3.1-1] [MQTT-3.1.2-1]
// [MQTT-3.1.2-2] [MQTT-3.1.2-3] [MQTT-3.1.2-9] [MQTT-3.1.2-11]
// [MQTT-3.1.2-13] [MQTT-3.1.2-14] [MQTT-3.1.2-15] [MQTT-3.1.2-18]
// [MQTT-3.1.2-19] [MQTT-3.1.2-20] [MQTT-3.1.2-21] [MQTT-3.1.2-22]
// [MQTT-3.1.3-3] [MQTT-3.2.2-4] [MQTT-3.3.1-2] [MQTT-3.3.1-4] [MQTT-3.3.2-2]
// [MQTT-3-8.3-4] [MQTT-3.8.3-3] [MQTT-3.8.4-5] [MQTT-3.9.3-2]
// [MQTT-3.10.3-2] [MQTT-4.7.1-1] [MQTT-4.7.3-1], and sections 2.2.1
// (reserved types), 2.2.3 (Remaining Length agrees with the fields) and
// 3.2.2 (CONNACK reserved bits and codes).
func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		rule string
		kind error // a sentinel the error must match besides ErrMalformed
	}{
		// Fixed header (section 2.2).
		{"reserved type 0", []byte{0x00, 0}, "2.2.1", nil},
		{"reserved type 15", []byte{0xF0, 0}, "2.2.1", nil},
		{"Remaining Length of five bytes", []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, "2.2.3", nil},
		{"PUBLISH QoS 3", frame(0x36, str("t"), u16(1)), "MQTT-3.3.1-4", nil},
		{"PUBLISH DUP at QoS 0", frame(0x38, str("t")), "MQTT-3.3.1-2", nil},

		// PUBLISH (section 3.3).
		// [MQTT-3.3.2-1] the topic name comes first.
		{"PUBLISH empty body", frame(0x30), "2.2.3", nil},
		{"PUBLISH topic runs past the end", frame(0x30, u16(5), []byte("ab")), "2.2.3", nil},
		{"PUBLISH QoS 1 without packet id", frame(0x32, str("t")), "2.2.3", nil},
		{"PUBLISH QoS 1 half a packet id", frame(0x32, str("t"), []byte{0}), "2.2.3", nil},
		{"PUBLISH QoS 1 zero packet id", frame(0x32, str("t"), u16(0)), "MQTT-2.3.1-1", nil},
		{"PUBLISH QoS 2 zero packet id", frame(0x34, str("t"), u16(0), []byte("x")), "MQTT-2.3.1-1", nil},
		{"PUBLISH empty topic", frame(0x30, str(""), []byte("x")), "MQTT-4.7.3-1", nil},
		{"PUBLISH topic with +", frame(0x30, str("a/+")), "MQTT-3.3.2-2", nil},
		{"PUBLISH topic with #", frame(0x30, str("a/#")), "MQTT-3.3.2-2", nil},
		{"PUBLISH topic ill-formed UTF-8", frame(0x30, str("a\xc3\x28")), "MQTT-1.5.3-1", nil},
		{"PUBLISH topic truncated UTF-8", frame(0x30, str("a\xe2\x82")), "MQTT-1.5.3-1", nil},
		{"PUBLISH topic encoded surrogate U+D800", frame(0x30, str("\xed\xa0\x80")), "MQTT-1.5.3-1", nil},
		{"PUBLISH topic encoded surrogate U+DFFF", frame(0x30, str("\xed\xbf\xbf")), "MQTT-1.5.3-1", nil},
		{"PUBLISH topic overlong U+0000", frame(0x30, str("\xc0\x80")), "MQTT-1.5.3-1", nil},
		{"PUBLISH topic with U+0000", frame(0x30, str("a\x00b")), "MQTT-1.5.3-2", nil},

		// CONNECT (section 3.1).
		{"CONNECT empty body", frame(0x10), "2.2.3", nil},
		{"CONNECT unknown protocol name", frame(0x10, str("MQTS"), []byte{4, 2}, u16(0), str("c")), "MQTT-3.1.2-1", packets.ErrProtocolName},
		{"CONNECT protocol name in lower case", frame(0x10, str("mqtt"), []byte{4, 2}, u16(0), str("c")), "MQTT-3.1.2-1", packets.ErrProtocolName},
		// Level 5 is MQTT 5 (see TestDecodeV5); the next level is unknown.
		{"CONNECT MQTT level 6", frame(0x10, str("MQTT"), []byte{6, 2}, u16(0), []byte{0}, str("c")), "MQTT-3.1.2-2", packets.ErrProtocolLevel},
		{"CONNECT MQTT level 6 truncated after the level", frame(0x10, str("MQTT"), []byte{6}), "MQTT-3.1.2-2", packets.ErrProtocolLevel},
		{"CONNECT MQIsdp level 5", frame(0x10, str("MQIsdp"), []byte{5, 2}, u16(0), []byte{0}, str("c")), "MQTT-3.1.2-2", packets.ErrProtocolLevel},
		{"CONNECT MQTT level 3", frame(0x10, str("MQTT"), []byte{3, 2}, u16(0), str("c")), "MQTT-3.1.2-2", packets.ErrProtocolLevel},
		{"CONNECT MQIsdp level 4", frame(0x10, str("MQIsdp"), []byte{4, 2}, u16(0), str("c")), "MQTT-3.1.2-2", packets.ErrProtocolLevel},
		{"CONNECT without level", frame(0x10, str("MQTT")), "2.2.3", nil},
		{"CONNECT without keep alive", frame(0x10, str("MQTT"), []byte{4, 2, 0}), "2.2.3", nil},
		{"CONNECT reserved flag", connect(0x03, str("c")), "MQTT-3.1.2-3", nil},
		{"CONNECT will QoS without will flag", connect(0x08, str("c")), "MQTT-3.1.2-13", nil},
		{"CONNECT will retain without will flag", connect(0x20, str("c")), "MQTT-3.1.2-15", nil},
		{"CONNECT will QoS 3", connect(0x1C, str("c"), str("t"), str("m")), "MQTT-3.1.2-14", nil},
		{"CONNECT password flag without user name flag", connect(0x40, str("c"), str("p")), "MQTT-3.1.2-22", nil},
		// [MQTT-3.1.3-1] fields are present iff their flags say so, in order.
		{"CONNECT without client id", connect(0x02), "MQTT-3.1.3-3", nil},
		{"CONNECT client id runs past the end", connect(0x02, u16(4), []byte("ab")), "2.2.3", nil},
		// [MQTT-3.1.3-4] the client id is a UTF-8 string [MQTT-1.5.3-1, MQTT-1.5.3-2].
		{"CONNECT client id ill-formed UTF-8", connect(0x02, str("\xff")), "MQTT-1.5.3-1", nil},
		{"CONNECT client id with U+0000", connect(0x02, str("a\x00")), "MQTT-1.5.3-2", nil},
		{"CONNECT will flag without will topic", connect(0x04, str("c")), "MQTT-3.1.2-9", nil},
		{"CONNECT will flag without will message", connect(0x04, str("c"), str("t")), "MQTT-3.1.2-9", nil},
		{"CONNECT will message runs past the end", connect(0x04, str("c"), str("t"), u16(3)), "2.2.3", nil},
		{"CONNECT empty will topic", connect(0x04, str("c"), str(""), str("m")), "MQTT-4.7.3-1", nil},
		{"CONNECT will topic with wildcard", connect(0x04, str("c"), str("a/#"), str("m")), "MQTT-4.7.1-1", nil},
		// [MQTT-3.1.3-10] the will topic is a UTF-8 string.
		{"CONNECT will topic ill-formed UTF-8", connect(0x04, str("c"), str("\xed\xa0\x80"), str("m")), "MQTT-1.5.3-1", nil},
		{"CONNECT user name flag without user name", connect(0x80, str("c")), "MQTT-3.1.2-19", nil},
		// [MQTT-3.1.3-11] the user name is a UTF-8 string.
		{"CONNECT user name ill-formed UTF-8", connect(0x80, str("c"), str("\xc0\xaf")), "MQTT-1.5.3-1", nil},
		{"CONNECT password flag without password", connect(0xC0, str("c"), str("u")), "MQTT-3.1.2-21", nil},
		{"CONNECT password runs past the end", connect(0xC0, str("c"), str("u"), u16(2)), "2.2.3", nil},
		{"CONNECT bytes after client id", connect(0x02, str("c"), str("t")), "MQTT-3.1.2-11", nil},
		{"CONNECT bytes after will", connect(0x04, str("c"), str("t"), str("m"), str("u")), "MQTT-3.1.2-18", nil},
		{"CONNECT bytes after user name", connect(0x80, str("c"), str("u"), str("p")), "MQTT-3.1.2-20", nil},
		{"CONNECT bytes after password", connect(0xC0, str("c"), str("u"), str("p"), []byte{0}), "2.2.3", nil},

		// CONNACK (section 3.2).
		{"CONNACK reserved acknowledge flag", []byte{0x20, 2, 0x02, 0}, "3.2.2.1", nil},
		{"CONNACK reserved return code", []byte{0x20, 2, 0, 6}, "3.2.2.3", nil},
		{"CONNACK session present with refusal", []byte{0x20, 2, 1, 4}, "MQTT-3.2.2-4", nil},
		{"CONNACK too short", []byte{0x20, 1, 0}, "2.2.3", nil},
		{"CONNACK too long", []byte{0x20, 3, 0, 0, 0}, "3.2.1", nil},

		// SUBSCRIBE (section 3.8).
		{"SUBSCRIBE zero packet id", frame(0x82, u16(0), str("a"), []byte{0}), "MQTT-2.3.1-1", nil},
		{"SUBSCRIBE without packet id", frame(0x82, []byte{0}), "2.2.3", nil},
		{"SUBSCRIBE no filter", frame(0x82, u16(1)), "MQTT-3.8.3-3", nil},
		{"SUBSCRIBE QoS 3", frame(0x82, u16(1), str("a"), []byte{3}), "MQTT-3-8.3-4", nil},
		{"SUBSCRIBE reserved QoS bit", frame(0x82, u16(1), str("a"), []byte{0x04}), "MQTT-3-8.3-4", nil},
		{"SUBSCRIBE reserved high bit", frame(0x82, u16(1), str("a"), []byte{0x81}), "MQTT-3-8.3-4", nil},
		{"SUBSCRIBE missing QoS byte", frame(0x82, u16(1), str("a"), []byte{0}, str("b")), "2.2.3", nil},
		{"SUBSCRIBE empty filter", frame(0x82, u16(1), str(""), []byte{0}), "MQTT-4.7.3-1", nil},
		// [MQTT-3.8.3-1] filters are UTF-8 strings.
		{"SUBSCRIBE filter ill-formed UTF-8", frame(0x82, u16(1), str("\xf8\x88\x80\x80\x80"), []byte{0}), "MQTT-1.5.3-1", nil},
		{"SUBSCRIBE filter with U+0000", frame(0x82, u16(1), str("\x00"), []byte{0}), "MQTT-1.5.3-2", nil},

		// SUBACK (section 3.9).
		{"SUBACK zero packet id", frame(0x90, u16(0), []byte{0}), "MQTT-2.3.1-1", nil},
		{"SUBACK no return code", frame(0x90, u16(1)), "MQTT-3.8.4-5", nil},
		{"SUBACK return code 3", frame(0x90, u16(1), []byte{0, 3}), "MQTT-3.9.3-2", nil},
		{"SUBACK return code 0x81", frame(0x90, u16(1), []byte{0x81}), "MQTT-3.9.3-2", nil},

		// UNSUBSCRIBE (section 3.10).
		{"UNSUBSCRIBE zero packet id", frame(0xA2, u16(0), str("a")), "MQTT-2.3.1-1", nil},
		{"UNSUBSCRIBE no filter", frame(0xA2, u16(1)), "MQTT-3.10.3-2", nil},
		{"UNSUBSCRIBE empty filter", frame(0xA2, u16(1), str("a"), str("")), "MQTT-4.7.3-1", nil},
		{"UNSUBSCRIBE filter runs past the end", frame(0xA2, u16(1), u16(9), []byte("a")), "2.2.3", nil},
		// [MQTT-3.10.3-1] filters are UTF-8 strings.
		{"UNSUBSCRIBE filter ill-formed UTF-8", frame(0xA2, u16(1), str("\x80")), "MQTT-1.5.3-1", nil},

		// Packets without a body.
		{"PINGREQ with a body", []byte{0xC0, 1, 0}, "3.12.1", nil},
		{"PINGRESP with a body", []byte{0xD0, 1, 0}, "3.13.1", nil},
		{"DISCONNECT with a body", []byte{0xE0, 1, 0}, "3.14.1", nil},
	}
	// Packets whose body is a packet identifier [MQTT-2.3.1-1].
	for _, id := range []struct {
		name    string
		b0      byte
		section string
	}{
		{"PUBACK", 0x40, "3.4.1"}, {"PUBREC", 0x50, "3.5.1"}, {"PUBREL", 0x62, "3.6.1"},
		{"PUBCOMP", 0x70, "3.7.1"}, {"UNSUBACK", 0xB0, "3.11.1"},
	} {
		tests = append(tests, []struct {
			name string
			wire []byte
			rule string
			kind error
		}{
			{id.name + " zero packet id", []byte{id.b0, 2, 0, 0}, "MQTT-2.3.1-1", nil},
			{id.name + " too short", []byte{id.b0, 1, 1}, "2.2.3", nil},
			{id.name + " empty", []byte{id.b0, 0}, "2.2.3", nil},
			{id.name + " too long", []byte{id.b0, 3, 0, 1, 0}, id.section, nil},
		}...)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodeWire(t, tc.wire)
			assert.Nil(t, p, "decoded a packet with an error")
			wantRule(t, err, tc.rule, tc.kind)
		})
	}
}

// TestFixedHeaderFlags tries every flag value on every type but PUBLISH:
// PUBREL, SUBSCRIBE and UNSUBSCRIBE need 0b0010, the others 0
// [MQTT-2.2.2-1, MQTT-2.2.2-2, MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1,
// MQTT-3.14.1-1].
func TestFixedHeaderFlags(t *testing.T) {
	valid := map[packets.Type][]byte{}
	for _, tc := range validPackets() {
		valid[tc.p.Type()] = tc.wire
	}
	rules := map[packets.Type]string{
		packets.TypePubrel:      "MQTT-3.6.1-1",
		packets.TypeSubscribe:   "MQTT-3.8.1-1",
		packets.TypeUnsubscribe: "MQTT-3.10.1-1",
		packets.TypeDisconnect:  "MQTT-3.14.1-1",
	}
	for typ, wire := range valid {
		if typ == packets.TypePublish {
			continue
		}
		for flags := byte(0); flags < 16; flags++ {
			b := append([]byte{byte(typ)<<4 | flags}, wire[1:]...)
			_, err := decodeWire(t, b)
			if flags == wire[0]&0x0f {
				assert.NoError(t, err, "%v flags %04b", typ, flags)
				continue
			}
			rule := rules[typ]
			if rule == "" {
				rule = "MQTT-2.2.2-1"
			}
			wantRule(t, err, rule, nil)

			// Decode refuses the same header when called directly.
			fh := packets.FixedHeader{Type: typ, Flags: flags, Remaining: len(wire) - 2}
			_, err = packets.Decode(fh, wire[2:])
			wantRule(t, err, rule, nil)
		}
	}
}

// TestDecodeHeaderMismatch covers fixed headers that disagree with the body
// or the packet type they are given to.
func TestDecodeHeaderMismatch(t *testing.T) {
	tests := []struct {
		name string
		p    packets.Packet // nil: the package-level Decode
		fh   packets.FixedHeader
		body []byte
		rule string
	}{
		{"reserved type 0", nil, packets.FixedHeader{}, nil, "2.2.1"},
		{"reserved type 15", nil, packets.FixedHeader{Type: packets.TypeReserved15}, nil, "2.2.1"},
		{"Remaining Length longer than body", nil, packets.FixedHeader{Type: packets.TypePuback, Remaining: 3}, []byte{0, 1}, "2.2.3"},
		{"Remaining Length shorter than body", nil, packets.FixedHeader{Type: packets.TypePingreq}, []byte{0}, "2.2.3"},
		{"flags over four bits", nil, packets.FixedHeader{Type: packets.TypePingreq, Flags: 0x10}, nil, "MQTT-2.2.2-1"},
		{"PUBACK header given to PUBLISH", &packets.Publish{}, packets.FixedHeader{Type: packets.TypePuback, Remaining: 2}, []byte{0, 1}, "2.2.1"},
		{"PUBLISH header given to CONNECT", &packets.Connect{}, packets.FixedHeader{Type: packets.TypePublish, Remaining: 3}, str("t"), "2.2.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.p == nil {
				_, err = packets.Decode(tc.fh, tc.body)
			} else {
				err = tc.p.Decode(tc.fh, tc.body)
			}
			wantRule(t, err, tc.rule, nil)
		})
	}
}

// TestDecodeFailureLeavesValue: a failed Decode does not half-fill a reused
// value.
func TestDecodeFailureLeavesValue(t *testing.T) {
	p := packets.Publish{Topic: "keep", Payload: []byte("me")}
	body := cat(str("a/+"), []byte("x"))
	require.Error(t, p.Decode(packets.FixedHeader{Type: packets.TypePublish, Remaining: len(body)}, body), "wildcard topic decoded")
	assert.Equal(t, packets.Publish{Topic: "keep", Payload: []byte("me")}, p, "after a failed Decode")
}
