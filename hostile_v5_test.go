package tern_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Hostile MQTT 5 input on the wire: the MQTT 5 companion of
// TestHostileInputGetsTheSpecifiedReaction. Each case is a byte stream that
// breaks a rule of MQTT 5.0, and the reaction the specification gives for
// it: a CONNACK with a Reason Code and a close (section 4.13.1: an error
// found before CONNACK), a DISCONNECT with a Reason Code and a close
// [v5 MQTT-4.13.1-1] [v5 MQTT-4.13.2-1], or a plain close where no packet
// may be sent. After each case a fresh MQTT 5 client is served and a
// subscriber to "#" has received exactly what the broker accepted.

// h5Reaction is what the broker must do with a hostile MQTT 5 input.
type h5Reaction int

const (
	// h5Disconnect: DISCONNECT with the case's Reason Code (never with a
	// Session Expiry Interval [v5 MQTT-3.14.2-2]), then close
	// [v5 MQTT-4.13.1-1] [v5 MQTT-4.13.2-1].
	h5Disconnect h5Reaction = iota
	// h5Connack: CONNACK with the case's Reason Code and Session Present 0
	// [v5 MQTT-3.2.2-6], then close [v5 MQTT-3.2.2-7].
	h5Connack
	// h5Connack311: the CONNACK of MQTT 3.1.1 with its return code 0x01,
	// for a protocol level the broker does not speak (a client of that
	// level may not read the MQTT 5 form), then close [v5 MQTT-3.1.2-2].
	h5Connack311
	// h5Closed: the connection closes with no packet sent.
	h5Closed
	// h5Served: the connection stays; the broker sends the replies and
	// then answers a PINGREQ.
	h5Served
)

// h5Reply is a packet the broker sends, with its Reason Code (the first of
// a SUBACK's or UNSUBACK's list).
type h5Reply struct {
	t    packets.Type
	code packets.ReasonCode
}

// h5Pre is what happens on the connection before a case's input.
type h5Pre int

const (
	h5Fresh   h5Pre = iota // nothing: the input starts the connection
	h5V5                   // an MQTT 5 CONNECT accepted with CONNACK 0x00
	h5V5Auth               // the same with enhanced authentication, method "h5-one"
	h5V311                 // an MQTT 3.1.1 CONNECT accepted
	h5ViaConn              // like h5Fresh, but the input's CONNECT is accepted first (CONNACK 0x00 in replies)
)

// h5Case is one hostile MQTT 5 input.
type h5Case struct {
	name      string
	pre       h5Pre
	raw       []byte
	want      h5Reaction
	code      packets.ReasonCode // h5Connack, h5Disconnect: the Reason Code
	replies   []h5Reply          // the packets that come first
	forwarded []string           // topics the subscriber to "#" receives
}

// The limits of the broker the table runs against.
const (
	h5MaxPacket  = 32 << 10
	h5ReceiveMax = 4
	h5AliasMax   = 8
)

// Wire building blocks for MQTT 5 (section 2.2.2): properties are written
// by hand so that they can be wrong.

// h5U32 is a Four Byte Integer.
func h5U32(n uint32) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }

// h5P is one property: its identifier and its value's bytes.
func h5P(id packets.PropID, value ...[]byte) []byte {
	return slices.Concat(append([][]byte{{byte(id)}}, value...)...)
}

// h5Props is a property block: the Property Length, then the properties.
func h5Props(ps ...[]byte) []byte {
	body := slices.Concat(ps...)
	return append(remainingLength(len(body)), body...)
}

// h5User is a User Property.
func h5User(k, v string) []byte { return h5P(packets.PropUserProperty, mqttString(k), mqttString(v)) }

// h5Connect is an MQTT 5 CONNECT with the given flags and properties,
// keepalive 60, then the payload fields as given.
func h5Connect(flags byte, props []byte, fields ...[]byte) []byte {
	vh := slices.Concat(mqttString("MQTT"), []byte{packets.Level5, flags}, hoID(60), props)
	return packetBytes(0x10, append([][]byte{vh}, fields...)...)
}

// h5Pub is an MQTT 5 PUBLISH: topic, packet identifier (nil at QoS 0),
// property block, payload.
func h5Pub(first byte, topic string, id []byte, props []byte, payload string) []byte {
	return packetBytes(first, mqttString(topic), id, props, []byte(payload))
}

// h5Sub is an MQTT 5 SUBSCRIBE of one filter with the options byte.
func h5Sub(props []byte, filter string, opts byte) []byte {
	return packetBytes(0x82, hoID(1), props, mqttString(filter), []byte{opts})
}

// h5Ack is a PUBACK, PUBREC, PUBREL or PUBCOMP (first byte) with a Reason
// Code and properties.
func h5Ack(first byte, id uint16, code byte, props []byte) []byte {
	return packetBytes(first, hoID(id), []byte{code}, props)
}

// h5Auth is an AUTH with a Reason Code and properties.
func h5Auth(code byte, props []byte) []byte { return packetBytes(0xF0, []byte{code}, props) }

// h5Disc is a DISCONNECT with a Reason Code and properties.
func h5Disc(code byte, props []byte) []byte { return packetBytes(0xE0, []byte{code}, props) }

func h5Cases() []h5Case {
	// Properties with valid values.
	var (
		sessionExpiry = h5P(packets.PropSessionExpiry, h5U32(60))
		receiveMax    = h5P(packets.PropReceiveMaximum, hoID(10))
		maxPacket     = h5P(packets.PropMaximumPacketSize, h5U32(1<<16))
		aliasMax      = h5P(packets.PropTopicAliasMaximum, hoID(5))
		respInfo      = h5P(packets.PropRequestResponseInfo, []byte{1})
		problemInfo   = h5P(packets.PropRequestProblemInfo, []byte{1})
		method        = h5P(packets.PropAuthMethod, mqttString("h5-one"))
		authData      = h5P(packets.PropAuthData, mqttString("data"))
		willDelay     = h5P(packets.PropWillDelay, h5U32(5))
		format        = h5P(packets.PropPayloadFormat, []byte{1})
		expiry        = h5P(packets.PropMessageExpiry, h5U32(60))
		contentType   = h5P(packets.PropContentType, mqttString("text/plain"))
		respTopic     = h5P(packets.PropResponseTopic, mqttString("hostile5/reply"))
		correlation   = h5P(packets.PropCorrelationData, mqttString("c"))
		alias1        = h5P(packets.PropTopicAlias, hoID(1))
		subID         = h5P(packets.PropSubscriptionID, []byte{7})
		reasonString  = h5P(packets.PropReasonString, mqttString("why"))
		none          = h5Props()
	)
	// conn is a CONNECT of client id with properties; will is one with a
	// will (QoS 0) whose properties are wprops.
	conn := func(id string, ps ...[]byte) []byte {
		return h5Connect(hoClean, h5Props(ps...), mqttString(id))
	}
	will := func(id, topic string, wprops []byte) []byte {
		return h5Connect(hoClean|hoWill, none, mqttString(id), wprops, mqttString(topic), mqttString("w"))
	}
	pub0 := func(topic string, ps ...[]byte) []byte { return h5Pub(0x30, topic, nil, h5Props(ps...), "p") }
	connack := h5Reply{packets.TypeConnack, packets.Success}
	authContinue := h5Reply{packets.TypeAuth, packets.ContinueAuthentication}
	big := strings.Repeat("b", h5MaxPacket)
	const (
		dup       = "included twice [v5 section 2.2.2.2: a Protocol Error]"
		wrongKind = "(Table 2-4; v5 section 2.2.2.2: a Malformed Packet)"
	)

	return []h5Case{
		// --- CONNECT: CONNACK with the Reason Code, then close ---------
		// Single-valued properties given twice: Protocol Error (each
		// property's section), CONNACK 0x82.
		{name: "CONNECT Session Expiry Interval " + dup + " (3.1.2.11.2)", raw: conn("h5-c1", sessionExpiry, sessionExpiry), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Receive Maximum " + dup + " (3.1.2.11.3)", raw: conn("h5-c2", receiveMax, receiveMax), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Maximum Packet Size " + dup + " (3.1.2.11.4)", raw: conn("h5-c3", maxPacket, maxPacket), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Topic Alias Maximum " + dup + " (3.1.2.11.5)", raw: conn("h5-c4", aliasMax, aliasMax), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Request Response Information " + dup + " (3.1.2.11.6)", raw: conn("h5-c5", respInfo, respInfo), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Request Problem Information " + dup + " (3.1.2.11.7)", raw: conn("h5-c6", problemInfo, problemInfo), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Authentication Method " + dup + " (3.1.2.11.9)", raw: conn("h5-c7", method, method), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Authentication Data " + dup + " (3.1.2.11.10)", raw: conn("h5-c8", method, authData, authData), want: h5Connack, code: packets.ProtocolError},
		// Forbidden values: Protocol Error, CONNACK 0x82.
		{name: "CONNECT Receive Maximum 0 (3.1.2.11.3: a Protocol Error)", raw: conn("h5-c9", h5P(packets.PropReceiveMaximum, hoID(0))), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Maximum Packet Size 0 (3.1.2.11.4: a Protocol Error)", raw: conn("h5-c10", h5P(packets.PropMaximumPacketSize, h5U32(0))), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Request Problem Information 2 (3.1.2.11.7: a Protocol Error)", raw: conn("h5-c11", h5P(packets.PropRequestProblemInfo, []byte{2})), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Request Response Information 2 (3.1.2.11.6: a Protocol Error)", raw: conn("h5-c12", h5P(packets.PropRequestResponseInfo, []byte{2})), want: h5Connack, code: packets.ProtocolError},
		{name: "CONNECT Authentication Data without a method (3.1.2.11.10: a Protocol Error)", raw: conn("h5-c13", authData), want: h5Connack, code: packets.ProtocolError},
		// Properties a CONNECT may not carry: Malformed Packet, CONNACK 0x81.
		{name: "CONNECT with a Topic Alias " + wrongKind, raw: conn("h5-c14", alias1), want: h5Connack, code: packets.MalformedPacket},
		{name: "CONNECT with a Subscription Identifier " + wrongKind, raw: conn("h5-c15", subID), want: h5Connack, code: packets.MalformedPacket},
		{name: "CONNECT with a Server Keep Alive " + wrongKind, raw: conn("h5-c16", h5P(packets.PropServerKeepAlive, hoID(10))), want: h5Connack, code: packets.MalformedPacket},
		{name: "CONNECT with a Reason String " + wrongKind, raw: conn("h5-c17", reasonString), want: h5Connack, code: packets.MalformedPacket},
		{name: "CONNECT with an unknown property identifier 0x7F (2.2.2.2)", raw: conn("h5-c18", []byte{0x7F, 0}), want: h5Connack, code: packets.MalformedPacket},
		// Broken property encodings: Malformed Packet, CONNACK 0x81.
		{name: "CONNECT Property Length of five bytes (1.5.5)", want: h5Connack, code: packets.MalformedPacket,
			raw: h5Connect(hoClean, []byte{0x80, 0x80, 0x80, 0x80, 0x01}, mqttString("h5-c19"))},
		{name: "CONNECT Property Length not in its shortest form [v5 MQTT-1.5.5-1]", want: h5Connack, code: packets.MalformedPacket,
			raw: h5Connect(hoClean, []byte{0x85, 0x00}, h5P(packets.PropSessionExpiry, h5U32(5)), mqttString("h5-c20"))},
		{name: "CONNECT property identifier not in its shortest form [v5 MQTT-1.5.5-1]", want: h5Connack, code: packets.MalformedPacket,
			raw: h5Connect(hoClean, h5Props([]byte{0x91, 0x00}, h5U32(5)), mqttString("h5-c21"))},
		{name: "CONNECT Property Length running past the packet (2.2.2.1)", want: h5Connack, code: packets.MalformedPacket,
			raw: h5Connect(hoClean, []byte{0x7F}, mqttString("h5-c22"))},
		{name: "CONNECT property value truncated by the Property Length (2.2.2.2)", want: h5Connack, code: packets.MalformedPacket,
			raw: h5Connect(hoClean, slices.Concat([]byte{3}, h5P(packets.PropSessionExpiry, h5U32(60))[:3]), mqttString("h5-c23"))},
		{name: "CONNECT User Property name not UTF-8 [v5 MQTT-1.5.7-1] [v5 MQTT-1.5.4-1]", raw: conn("h5-c24", h5User("k\xed\xa0\x80", "v")), want: h5Connack, code: packets.MalformedPacket},
		{name: "CONNECT User Property value with U+0000 [v5 MQTT-1.5.7-1] [v5 MQTT-1.5.4-2]", raw: conn("h5-c25", h5User("k", "v\x00")), want: h5Connack, code: packets.MalformedPacket},
		// The CONNECT itself.
		{name: "CONNECT reserved flag set [v5 MQTT-3.1.2-3]", want: h5Connack, code: packets.MalformedPacket,
			raw: h5Connect(hoClean|0x01, none, mqttString("h5-c26"))},
		{name: "CONNECT Will QoS 3 [v5 MQTT-3.1.2-12]", want: h5Connack, code: packets.MalformedPacket,
			raw: h5Connect(hoClean|hoWill|0x18, none, mqttString("h5-c27"), none, mqttString("hostile5/w"), mqttString("w"))},
		{name: "CONNECT Will Retain without the Will Flag [v5 MQTT-3.1.2-13]", want: h5Connack, code: packets.ProtocolError,
			raw: h5Connect(hoClean|0x20, none, mqttString("h5-c28"))},
		{name: "CONNECT client identifier with U+0000 [v5 MQTT-1.5.4-2] [v5 MQTT-3.1.3-4]", raw: conn("h5-\x00"), want: h5Connack, code: packets.MalformedPacket},
		{name: "CONNECT user name not UTF-8 [v5 MQTT-3.1.3-12] [v5 MQTT-1.5.4-1]", want: h5Connack, code: packets.MalformedPacket,
			raw: h5Connect(hoClean|hoUser, none, mqttString("h5-c29"), mqttString("us\xffer"))},
		{name: "CONNECT with bytes after its last field [v5 MQTT-3.1.4-1]", want: h5Connack, code: packets.MalformedPacket,
			raw: h5Connect(hoClean, none, mqttString("h5-c30"), []byte("junk"))},
		{name: "CONNECT with an empty client identifier and Clean Start 0 is given one [v5 MQTT-3.1.3-6] [v5 MQTT-3.1.3-7]",
			pre: h5ViaConn, want: h5Served, replies: []h5Reply{connack}, raw: h5Connect(0, none, mqttString(""))},
		// Will Properties: the same rules (section 3.1.3.2).
		{name: "Will Delay Interval " + dup + " (3.1.3.2.2)", raw: will("h5-w1", "hostile5/will", h5Props(willDelay, willDelay)), want: h5Connack, code: packets.ProtocolError},
		{name: "Will Payload Format Indicator 2 (3.1.3.2.3: a Protocol Error)", raw: will("h5-w2", "hostile5/will", h5Props(h5P(packets.PropPayloadFormat, []byte{2}))), want: h5Connack, code: packets.ProtocolError},
		{name: "Will Content Type not UTF-8 [v5 MQTT-1.5.4-1] (3.1.3.2.5)", raw: will("h5-w3", "hostile5/will", h5Props(h5P(packets.PropContentType, mqttString("text/\xff")))), want: h5Connack, code: packets.MalformedPacket},
		{name: "Will User Property with U+0000 [v5 MQTT-1.5.7-1]", raw: will("h5-w4", "hostile5/will", h5Props(h5User("\x00", "v"))), want: h5Connack, code: packets.MalformedPacket},
		{name: "Will Properties with a Topic Alias " + wrongKind, raw: will("h5-w5", "hostile5/will", h5Props(alias1)), want: h5Connack, code: packets.MalformedPacket},
		{name: "Will Properties with a Session Expiry Interval " + wrongKind, raw: will("h5-w6", "hostile5/will", h5Props(sessionExpiry)), want: h5Connack, code: packets.MalformedPacket},
		// A Will Topic is a topic name: no wildcards [v5 MQTT-4.7.0-1].
		{name: "Will Topic with '#' [v5 MQTT-3.1.4-1] [v5 MQTT-4.7.0-1]", raw: will("h5-w7", "hostile5/#", none), want: h5Connack, code: packets.ProtocolError},
		// Enhanced authentication (section 4.12); the table's broker knows
		// the methods "h5-one" (done at once) and "h5-two" (one challenge).
		{name: "CONNECT with an Authentication Method no hook supports gets 0x8C [v5 MQTT-4.12.0-1]",
			raw: conn("h5-a1", h5P(packets.PropAuthMethod, mqttString("h5-unknown"))), want: h5Connack, code: packets.BadAuthenticationMethod},
		{name: "PUBLISH instead of AUTH during authentication [v5 MQTT-3.1.2-30]", want: h5Connack, code: packets.ProtocolError,
			replies: []h5Reply{authContinue},
			raw:     slices.Concat(conn("h5-a2", h5P(packets.PropAuthMethod, mqttString("h5-two"))), pub0("hostile5/early"))},
		{name: "AUTH with another method during authentication [v5 MQTT-4.12.0-5]", want: h5Connack, code: packets.ProtocolError,
			replies: []h5Reply{authContinue},
			raw: slices.Concat(conn("h5-a3", h5P(packets.PropAuthMethod, mqttString("h5-two"))),
				h5Auth(0x18, h5Props(h5P(packets.PropAuthMethod, mqttString("h5-one")))))},
		{name: "AUTH answering a challenge with Re-authenticate, not Continue [v5 MQTT-4.12.0-3]", want: h5Connack, code: packets.ProtocolError,
			replies: []h5Reply{authContinue},
			raw: slices.Concat(conn("h5-a4", h5P(packets.PropAuthMethod, mqttString("h5-two"))),
				h5Auth(0x19, h5Props(h5P(packets.PropAuthMethod, mqttString("h5-two")))))},
		{name: "AUTH before CONNECT [v5 MQTT-3.1.0-1]", want: h5Closed,
			raw: h5Auth(0x19, h5Props(h5P(packets.PropAuthMethod, mqttString("h5-one"))))},
		// Protocol levels.
		{name: "CONNECT of protocol level 6 gets the 3.1.1 CONNACK 0x01 [v5 MQTT-3.1.2-2]", want: h5Connack311,
			raw: hoConnectAs("MQTT", 6, hoClean, 60, none, mqttString("h5-six"))},
		{name: "AUTH from an MQTT 3.1.1 client: type 15 is reserved (3.1.1 section 2.2.1) [MQTT-4.8.0-1]", pre: h5V311, want: h5Closed,
			raw: h5Auth(0x19, h5Props(h5P(packets.PropAuthMethod, mqttString("h5-one"))))},

		// --- PUBLISH: DISCONNECT with the Reason Code, then close -------
		{name: "PUBLISH Payload Format Indicator " + dup + " (3.3.2.3.2)", pre: h5V5, raw: pub0("hostile5/t", format, format), code: packets.ProtocolError},
		{name: "PUBLISH Message Expiry Interval " + dup + " (3.3.2.3.3)", pre: h5V5, raw: pub0("hostile5/t", expiry, expiry), code: packets.ProtocolError},
		{name: "PUBLISH Topic Alias " + dup + " (3.3.2.3.4)", pre: h5V5, raw: pub0("hostile5/t", alias1, alias1), code: packets.ProtocolError},
		{name: "PUBLISH Response Topic " + dup + " (3.3.2.3.5)", pre: h5V5, raw: pub0("hostile5/t", respTopic, respTopic), code: packets.ProtocolError},
		{name: "PUBLISH Correlation Data " + dup + " (3.3.2.3.6)", pre: h5V5, raw: pub0("hostile5/t", correlation, correlation), code: packets.ProtocolError},
		{name: "PUBLISH Content Type " + dup + " (3.3.2.3.9)", pre: h5V5, raw: pub0("hostile5/t", contentType, contentType), code: packets.ProtocolError},
		{name: "PUBLISH with a Session Expiry Interval " + wrongKind, pre: h5V5, raw: pub0("hostile5/t", sessionExpiry), code: packets.MalformedPacket},
		{name: "PUBLISH with a Will Delay Interval " + wrongKind, pre: h5V5, raw: pub0("hostile5/t", willDelay), code: packets.MalformedPacket},
		{name: "PUBLISH with a Receive Maximum " + wrongKind, pre: h5V5, raw: pub0("hostile5/t", receiveMax), code: packets.MalformedPacket},
		{name: "PUBLISH from a client with a Subscription Identifier [v5 MQTT-3.3.4-6]", pre: h5V5, raw: pub0("hostile5/t", subID), code: packets.ProtocolError},
		{name: "PUBLISH Topic Alias 0 gets 0x94 [v5 MQTT-3.3.2-8] (3.3.4)", pre: h5V5,
			raw: pub0("hostile5/t", h5P(packets.PropTopicAlias, hoID(0))), code: packets.TopicAliasInvalid},
		{name: "PUBLISH Topic Alias over the Topic Alias Maximum gets 0x94 [v5 MQTT-3.2.2-17] [v5 MQTT-3.3.2-9]", pre: h5V5,
			raw: pub0("hostile5/t", h5P(packets.PropTopicAlias, hoID(h5AliasMax+1))), code: packets.TopicAliasInvalid},
		{name: "PUBLISH empty topic with a Topic Alias never set (3.3.4 step 3a: a Protocol Error)", pre: h5V5,
			raw: pub0("", h5P(packets.PropTopicAlias, hoID(2))), code: packets.ProtocolError},
		{name: "PUBLISH empty topic without a Topic Alias (3.3.2.1: a Protocol Error)", pre: h5V5, raw: pub0(""), code: packets.ProtocolError},
		{name: "PUBLISH Payload Format Indicator 2 (3.3.2.3.2: a Protocol Error)", pre: h5V5,
			raw: pub0("hostile5/t", h5P(packets.PropPayloadFormat, []byte{2})), code: packets.ProtocolError},
		{name: "PUBLISH QoS 0 marked UTF-8 whose payload is not gets 0x99 (3.3.2.3.2, Options.ValidatePayloadFormat)", pre: h5V5,
			raw: h5Pub(0x30, "hostile5/t", nil, h5Props(format), "\xff\xfe"), code: packets.PayloadFormatInvalid},
		{name: "PUBLISH User Property name not UTF-8 [v5 MQTT-1.5.7-1]", pre: h5V5, raw: pub0("hostile5/t", h5User("\xc0\xaf", "v")), code: packets.MalformedPacket},
		{name: "PUBLISH User Property value with U+0000 [v5 MQTT-1.5.7-1] [v5 MQTT-1.5.4-2]", pre: h5V5, raw: pub0("hostile5/t", h5User("k", "\x00")), code: packets.MalformedPacket},
		{name: "PUBLISH Response Topic with a wildcard [v5 MQTT-3.3.2-14]", pre: h5V5,
			raw: pub0("hostile5/t", h5P(packets.PropResponseTopic, mqttString("hostile5/+"))), code: packets.ProtocolError},
		{name: "PUBLISH Property Length running past the packet (2.2.2.1)", pre: h5V5,
			raw: h5Pub(0x30, "hostile5/t", nil, []byte{0x40}, "p"), code: packets.MalformedPacket},
		{name: "PUBLISH Property Length of five bytes (1.5.5)", pre: h5V5,
			raw: h5Pub(0x30, "hostile5/t", nil, []byte{0xff, 0xff, 0xff, 0xff, 0x01}, "p"), code: packets.MalformedPacket},
		{name: "PUBLISH Message Expiry Interval truncated by the Property Length (2.2.2.2)", pre: h5V5,
			raw: h5Pub(0x30, "hostile5/t", nil, slices.Concat([]byte{3}, expiry[:3]), ""), code: packets.MalformedPacket},
		{name: "PUBLISH Remaining Length not in its shortest form [v5 MQTT-1.5.5-1]", pre: h5V5,
			raw: slices.Concat([]byte{0x30, 0x80 | 13, 0x00}, mqttString("hostile5/t"), none), code: packets.MalformedPacket},
		{name: "PUBLISH QoS 3 [v5 MQTT-3.3.1-4]", pre: h5V5, raw: h5Pub(0x36, "hostile5/t", hoID(1), none, "p"), code: packets.MalformedPacket},
		{name: "PUBLISH QoS 1 with packet identifier 0 [v5 MQTT-2.2.1-3]", pre: h5V5, raw: h5Pub(0x32, "hostile5/t", hoID(0), none, "p"), code: packets.ProtocolError},
		{name: "PUBLISH QoS 0 with DUP set [v5 MQTT-3.3.1-2]", pre: h5V5, raw: h5Pub(0x38, "hostile5/t", nil, none, "p"), code: packets.MalformedPacket},
		{name: "PUBLISH topic with '+' [v5 MQTT-3.3.2-2] [v5 MQTT-4.7.0-1]", pre: h5V5, raw: pub0("hostile5/+"), code: packets.ProtocolError},
		{name: "PUBLISH larger than the Maximum Packet Size in CONNACK gets 0x95 (3.2.2.3.6, Options.MaxPacketSize)", pre: h5V5,
			raw: h5Pub(0x30, "hostile5/big", nil, none, big), code: packets.PacketTooLarge},
		{name: "QoS 2 PUBLISHes past the Receive Maximum in CONNACK get 0x93 [v5 MQTT-3.3.4-7] (3.3.4)", pre: h5V5,
			raw: slices.Concat(
				h5Pub(0x34, "hostile5/q2/1", hoID(1), none, "1"), h5Pub(0x34, "hostile5/q2/2", hoID(2), none, "2"),
				h5Pub(0x34, "hostile5/q2/3", hoID(3), none, "3"), h5Pub(0x34, "hostile5/q2/4", hoID(4), none, "4"),
				h5Pub(0x34, "hostile5/q2/5", hoID(5), none, "5")),
			replies: []h5Reply{{packets.TypePubrec, packets.Success}, {packets.TypePubrec, packets.Success},
				{packets.TypePubrec, packets.Success}, {packets.TypePubrec, packets.Success}},
			forwarded: []string{"hostile5/q2/1", "hostile5/q2/2", "hostile5/q2/3", "hostile5/q2/4"},
			code:      packets.ReceiveMaximumExceeded},

		// --- SUBSCRIBE and UNSUBSCRIBE ----------------------------------
		{name: "SUBSCRIBE Subscription Identifier " + dup + " (3.8.2.1.2)", pre: h5V5, raw: h5Sub(h5Props(subID, subID), "hostile5/s", 0), code: packets.ProtocolError},
		{name: "SUBSCRIBE Subscription Identifier 0 (3.8.2.1.2: a Protocol Error)", pre: h5V5,
			raw: h5Sub(h5Props(h5P(packets.PropSubscriptionID, []byte{0})), "hostile5/s", 0), code: packets.ProtocolError},
		{name: "SUBSCRIBE Subscription Identifier not in its shortest form [v5 MQTT-1.5.5-1]", pre: h5V5,
			raw: h5Sub(h5Props(h5P(packets.PropSubscriptionID, []byte{0x87, 0x00})), "hostile5/s", 0), code: packets.MalformedPacket},
		{name: "SUBSCRIBE Subscription Identifier of five bytes (1.5.5)", pre: h5V5,
			raw: h5Sub(h5Props(h5P(packets.PropSubscriptionID, []byte{0xff, 0xff, 0xff, 0xff, 0x01})), "hostile5/s", 0), code: packets.MalformedPacket},
		{name: "SUBSCRIBE with a Session Expiry Interval " + wrongKind, pre: h5V5, raw: h5Sub(h5Props(sessionExpiry), "hostile5/s", 0), code: packets.MalformedPacket},
		{name: "SUBSCRIBE Retain Handling 3 (3.8.3.1: a Protocol Error)", pre: h5V5, raw: h5Sub(none, "hostile5/s", 0x30), code: packets.ProtocolError},
		{name: "SUBSCRIBE No Local on a shared subscription [v5 MQTT-3.8.3-4]", pre: h5V5, raw: h5Sub(none, "$share/g/hostile5/s", 0x04), code: packets.ProtocolError},
		{name: "SUBSCRIBE reserved option bits [v5 MQTT-3.8.3-5]", pre: h5V5, raw: h5Sub(none, "hostile5/s", 0x40), code: packets.MalformedPacket},
		{name: "SUBSCRIBE without a filter [v5 MQTT-3.8.3-2]", pre: h5V5, raw: packetBytes(0x82, hoID(1), none), code: packets.ProtocolError},
		{name: "SUBSCRIBE $share/NAME without a filter gets SUBACK 0x8F [v5 MQTT-4.8.2-2]", pre: h5V5, want: h5Served,
			raw: h5Sub(none, "$share/g", 0), replies: []h5Reply{{packets.TypeSuback, packets.TopicFilterInvalid}}},
		{name: "SUBSCRIBE $share with an empty share name gets SUBACK 0x8F [v5 MQTT-4.8.2-1]", pre: h5V5, want: h5Served,
			raw: h5Sub(none, "$share//hostile5/s", 0), replies: []h5Reply{{packets.TypeSuback, packets.TopicFilterInvalid}}},
		{name: "SUBSCRIBE filter 'a/#/b' gets SUBACK 0x8F [v5 MQTT-4.7.1-1]", pre: h5V5, want: h5Served,
			raw: h5Sub(none, "hostile5/#/b", 0), replies: []h5Reply{{packets.TypeSuback, packets.TopicFilterInvalid}}},
		{name: "UNSUBSCRIBE with a Subscription Identifier " + wrongKind, pre: h5V5,
			raw: packetBytes(0xA2, hoID(1), h5Props(subID), mqttString("hostile5/s")), code: packets.MalformedPacket},
		{name: "UNSUBSCRIBE without a filter [v5 MQTT-3.10.3-2]", pre: h5V5, raw: packetBytes(0xA2, hoID(1), none), code: packets.ProtocolError},

		// --- Acknowledgements -------------------------------------------
		{name: "PUBACK Reason Code 0x04 [v5 MQTT-3.4.2-1]", pre: h5V5, raw: h5Ack(0x40, 1, 0x04, none), code: packets.ProtocolError},
		{name: "PUBREC Reason Code 0x11 [v5 MQTT-3.5.2-1]", pre: h5V5, raw: h5Ack(0x50, 1, 0x11, none), code: packets.ProtocolError},
		{name: "PUBREL Reason Code 0x10 [v5 MQTT-3.6.2-1]", pre: h5V5, raw: h5Ack(0x62, 1, 0x10, none), code: packets.ProtocolError},
		{name: "PUBCOMP Reason Code 0x80 [v5 MQTT-3.7.2-1]", pre: h5V5, raw: h5Ack(0x70, 1, 0x80, none), code: packets.ProtocolError},
		{name: "PUBACK Reason String " + dup + " (3.4.2.2.2)", pre: h5V5, raw: h5Ack(0x40, 1, 0, h5Props(reasonString, reasonString)), code: packets.ProtocolError},
		{name: "PUBREL with a Session Expiry Interval " + wrongKind, pre: h5V5, raw: h5Ack(0x62, 1, 0, h5Props(sessionExpiry)), code: packets.MalformedPacket},
		{name: "PUBREL with flags 0000 [v5 MQTT-3.6.1-1]", pre: h5V5, raw: []byte{0x60, 2, 0, 1}, code: packets.MalformedPacket},
		{name: "PUBREL for an unknown packet identifier gets PUBCOMP 0x92 (3.7.2.1) [v5 MQTT-4.3.3-11]", pre: h5V5, want: h5Served,
			raw: h5Ack(0x62, 0x1234, 0, none), replies: []h5Reply{{packets.TypePubcomp, packets.PacketIdentifierNotFound}}},

		// --- DISCONNECT -------------------------------------------------
		{name: "DISCONNECT Reason Code 0x05 [v5 MQTT-3.14.2-1]", pre: h5V5, raw: h5Disc(0x05, none), code: packets.ProtocolError},
		{name: "DISCONNECT Session Expiry Interval " + dup + " (3.14.2.2.2)", pre: h5V5, raw: h5Disc(0, h5Props(sessionExpiry, sessionExpiry)), code: packets.ProtocolError},
		{name: "DISCONNECT Reason String " + dup + " (3.14.2.2.3)", pre: h5V5, raw: h5Disc(0, h5Props(reasonString, reasonString)), code: packets.ProtocolError},
		{name: "DISCONNECT with a Topic Alias " + wrongKind, pre: h5V5, raw: h5Disc(0, h5Props(alias1)), code: packets.MalformedPacket},
		{name: "DISCONNECT setting a Session Expiry Interval after CONNECT set 0 is no DISCONNECT: 0x82 and the will is published (3.14.2.2.2) [v5 MQTT-3.1.2-8]",
			pre: h5ViaConn, replies: []h5Reply{connack}, code: packets.ProtocolError, forwarded: []string{"hostile5/will/d5"},
			raw: slices.Concat(will("h5-d5", "hostile5/will/d5", none), h5Disc(0, h5Props(sessionExpiry)))},
		{name: "DISCONNECT 0x04 closes and publishes the will (3.14.2.1) [v5 MQTT-3.1.2-8]", pre: h5ViaConn, want: h5Closed,
			replies: []h5Reply{connack}, forwarded: []string{"hostile5/will/d6"},
			raw: slices.Concat(will("h5-d6", "hostile5/will/d6", none), h5Disc(0x04, none))},

		// --- AUTH after CONNACK -----------------------------------------
		{name: "AUTH from a client that connected without a method [v5 MQTT-4.12.0-7]", pre: h5V5,
			raw: h5Auth(0x19, h5Props(method)), code: packets.ProtocolError},
		{name: "empty AUTH (Remaining Length 0) from a client that connected without a method [v5 MQTT-4.12.0-7]", pre: h5V5,
			raw: []byte{0xF0, 0}, code: packets.ProtocolError},
		{name: "AUTH without an Authentication Method (3.15.2.2.2: a Protocol Error)", pre: h5V5Auth, raw: h5Auth(0x19, none), code: packets.ProtocolError},
		{name: "AUTH Authentication Method " + dup + " (3.15.2.2.2)", pre: h5V5Auth, raw: h5Auth(0x19, h5Props(method, method)), code: packets.ProtocolError},
		{name: "AUTH re-authentication with another method [v5 MQTT-4.12.1-1]", pre: h5V5Auth,
			raw: h5Auth(0x19, h5Props(h5P(packets.PropAuthMethod, mqttString("h5-two")))), code: packets.ProtocolError},
		{name: "AUTH Continue with no re-authentication in progress (4.12.1)", pre: h5V5Auth, raw: h5Auth(0x18, h5Props(method)), code: packets.ProtocolError},
		{name: "AUTH Reason Code 0x01 [v5 MQTT-3.15.2-1]", pre: h5V5Auth, raw: h5Auth(0x01, h5Props(method)), code: packets.ProtocolError},
		{name: "AUTH with flags 0001 [v5 MQTT-3.15.1-1]", pre: h5V5Auth,
			raw: packetBytes(0xF1, []byte{0x19}, h5Props(method)), code: packets.MalformedPacket},
		{name: "AUTH re-authentication with the connection's method gets AUTH 0x00 (4.12.1)", pre: h5V5Auth, want: h5Served,
			raw: h5Auth(0x19, h5Props(method)), replies: []h5Reply{{packets.TypeAuth, packets.Success}}},

		// --- Anything else after CONNACK --------------------------------
		{name: "second CONNECT [v5 MQTT-3.1.0-2]", pre: h5V5, raw: conn("h5-again"), code: packets.ProtocolError},
		{name: "CONNACK from a client (2.1.2: sent by the server only)", pre: h5V5, raw: []byte{0x20, 3, 0, 0, 0}, code: packets.ProtocolError},
		{name: "reserved packet type 0 (2.1.2: forbidden)", pre: h5V5, raw: []byte{0x00, 0x00}, code: packets.MalformedPacket},
		{name: "PINGREQ with a Remaining Length not in its shortest form [v5 MQTT-1.5.5-1]", pre: h5V5, raw: []byte{0xC0, 0x80, 0x00}, code: packets.MalformedPacket},

		// --- Valid MQTT 5 in unusual shapes: served ---------------------
		{name: "Topic Alias set, then used with an empty topic, is forwarded under its topic (3.3.2.3.4) [v5 MQTT-3.3.2-12]", pre: h5V5, want: h5Served,
			raw:       slices.Concat(pub0("hostile5/alias", h5P(packets.PropTopicAlias, hoID(h5AliasMax))), pub0("", h5P(packets.PropTopicAlias, hoID(h5AliasMax)))),
			forwarded: []string{"hostile5/alias", "hostile5/alias"}},
		{name: "PUBLISH QoS 1 marked UTF-8 whose payload is not gets PUBACK 0x99 and is dropped (3.3.2.3.2)", pre: h5V5, want: h5Served,
			raw: h5Pub(0x32, "hostile5/t", hoID(1), h5Props(format), "\xc3\x28"), replies: []h5Reply{{packets.TypePuback, packets.PayloadFormatInvalid}}},
		{name: "PUBLISH with every property a client may send, User Properties repeated, is forwarded (3.3.2.3)", pre: h5V5, want: h5Served,
			raw: slices.Concat(h5Pub(0x32, "hostile5/all", hoID(2),
				h5Props(format, expiry, contentType, respTopic, correlation, h5User("k", "1"), h5User("k", "2")), "all")),
			replies: []h5Reply{{packets.TypePuback, packets.Success}}, forwarded: []string{"hostile5/all"}},
	}
}

// h5Enhanced is the table broker's EnhancedAuthenticator: "h5-one" is
// done at its first step, "h5-two" after one challenge.
type h5Enhanced struct{}

func (h5Enhanced) AuthStep(_ context.Context, x *tern.AuthExchange) ([]byte, bool, error) {
	switch x.Method {
	case "h5-one":
		return nil, true, nil
	case "h5-two":
		return []byte("challenge"), x.Step >= 2, nil
	}
	return nil, false, tern.ErrAuthMethodNotSupported
}

// h5Dial connects a raw client that reads MQTT 5 packets.
func h5Dial(t testing.TB, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.r.SetVersion(packets.Level5)
	return c
}

// h5Connected dials and connects an MQTT 5 client with props, requiring
// CONNACK 0x00.
func h5Connected(t testing.TB, addr, id string, props packets.Properties) *rawClient {
	t.Helper()
	c := h5Dial(t, addr)
	ack := c.connectWith(&packets.Connect{ProtocolLevel: packets.Level5, ClientID: id, CleanSession: true, KeepAlive: 60, Properties: props})
	require.Equal(t, byte(packets.Success), ack.ReturnCode, "CONNACK of %s", id)
	return c
}

// h5Code returns the Reason Code a reply carries, the first of a list.
func h5Code(t testing.TB, p packets.Packet) packets.ReasonCode {
	switch p := p.(type) {
	case *packets.Connack:
		return packets.ReasonCode(p.ReturnCode)
	case *packets.Puback:
		return p.ReasonCode
	case *packets.Pubrec:
		return p.ReasonCode
	case *packets.Pubrel:
		return p.ReasonCode
	case *packets.Pubcomp:
		return p.ReasonCode
	case *packets.Suback:
		require.Len(t, p.ReturnCodes, 1, "SUBACK codes")
		return packets.ReasonCode(p.ReturnCodes[0])
	case *packets.Unsuback:
		require.Len(t, p.ReasonCodes, 1, "UNSUBACK codes")
		return packets.ReasonCode(p.ReasonCodes[0])
	case *packets.Auth:
		return p.ReasonCode
	case *packets.Disconnect:
		return p.ReasonCode
	}
	return 0
}

// TestHostileV5InputGetsTheSpecifiedReaction runs the table of hostile
// MQTT 5 inputs against one broker, with a subscriber to "#" that must
// receive exactly what the broker accepted. Beside the statements each case
// names: [v5 MQTT-4.13.1-1] [v5 MQTT-4.13.2-1] [v5 MQTT-3.2.2-6]
// [v5 MQTT-3.2.2-7] [v5 MQTT-3.14.2-2].
func TestHostileV5InputGetsTheSpecifiedReaction(t *testing.T) {
	cases := h5Cases()
	require.GreaterOrEqual(t, len(cases), 40, "the MQTT 5 table has at least 40 cases")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := serveBroker(t, runtime.NumGoroutine(), tern.Options{
		MaxPacketSize:         h5MaxPacket,
		ReceiveMaximum:        h5ReceiveMax,
		TopicAliasMaximum:     h5AliasMax,
		ValidatePayloadFormat: true,
	}, l, h5Enhanced{})
	addr := l.Addr().String()
	watcher := h5Connected(t, addr, "hostile5-watcher", packets.Properties{})
	watcher.send(&packets.Subscribe{Version: packets.Level5, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "#"}}})
	ack, ok := watcher.recv().(*packets.Suback)
	require.True(t, ok, "SUBACK of the watcher")
	require.Equal(t, []byte{0}, ack.ReturnCodes)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h5Run(t, addr, i, tc)
			// What the broker accepted was forwarded (a will may be
			// published just after the close, so it is awaited first),
			// nothing it refused was, and a fresh client is served.
			w := *watcher
			w.t = t
			for _, topic := range tc.forwarded {
				require.Equal(t, topic, w.recvPublish().Topic, "what the subscriber to # got")
			}
			fresh := h5Connected(t, addr, fmt.Sprintf("hostile5-fresh-%02d", i), packets.Properties{})
			marker := fmt.Sprintf("hostile5/marker/%02d", i)
			fresh.send(&packets.Publish{Version: packets.Level5, Topic: marker, Payload: []byte("m"), QoS: 1, PacketID: 1})
			puback, ok := fresh.recv().(*packets.Puback)
			require.True(t, ok, "PUBACK for the marker")
			assert.Equal(t, packets.Success, puback.ReasonCode, "the marker has a subscriber")
			require.Equal(t, marker, w.recvPublish().Topic, "what the subscriber to # got after the case")
			fresh.send(&packets.Disconnect{Version: packets.Level5})
			fresh.expectClosed()
		})
	}
	// The broker counts a connection out just after closing it.
	assert.Eventually(t, func() bool { return b.Stats().ClientsConnected == 1 }, waitTimeout, 5*time.Millisecond,
		"clients connected after the table: only the watcher")
}

// h5Run sends one case's input and checks the broker's reaction.
func h5Run(t *testing.T, addr string, i int, tc h5Case) {
	var c *rawClient
	switch tc.pre {
	case h5Fresh, h5ViaConn:
		c = h5Dial(t, addr)
	case h5V5:
		c = h5Connected(t, addr, fmt.Sprintf("hostile5-%02d", i), packets.Properties{})
	case h5V5Auth:
		c = h5Connected(t, addr, fmt.Sprintf("hostile5-%02d", i), packets.Properties{AuthMethod: "h5-one"})
	case h5V311:
		c = mustConnect(t, addr, fmt.Sprintf("hostile5-%02d", i), true)
	}
	c.sendRaw(tc.raw)
	start := time.Now()
	for _, want := range tc.replies {
		p := c.recv()
		require.Equal(t, want.t, p.Type(), "reply before the reaction")
		assert.Equal(t, want.code, h5Code(t, p), "Reason Code of the %v", p.Type())
	}
	switch tc.want {
	case h5Disconnect, h5Connack:
		p := c.recv()
		if tc.want == h5Connack {
			ack, ok := p.(*packets.Connack)
			require.True(t, ok, "got %v %+v, want CONNACK", p.Type(), p)
			assert.False(t, ack.SessionPresent, "Session Present of a refusal [v5 MQTT-3.2.2-6]")
		} else {
			d, ok := p.(*packets.Disconnect)
			require.True(t, ok, "got %v %+v, want DISCONNECT", p.Type(), p)
			assert.Nil(t, d.Properties.SessionExpiry, "a server DISCONNECT has no Session Expiry Interval [v5 MQTT-3.14.2-2]")
		}
		assert.Equal(t, tc.code, h5Code(t, p), "Reason Code of the %v: got %v", p.Type(), h5Code(t, p))
		c.expectClosed()
	case h5Connack311:
		c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
		fh, body, err := c.r.ReadRaw()
		require.NoError(t, err)
		require.Equal(t, packets.TypeConnack, fh.Type)
		assert.Equal(t, []byte{0, packets.RefusedProtocolVersion}, body, "the 3.1.1 CONNACK 0x01")
		c.expectClosed()
	case h5Closed:
		c.expectClosed()
	case h5Served:
		pingOKHostile(c)
		c.send(&packets.Disconnect{Version: packets.Level5})
		c.expectClosed()
		return
	}
	// Every refusal is immediate: the broker waits neither for more bytes
	// nor for a timeout.
	assert.Less(t, time.Since(start), 2*time.Second, "closed at once")
}
