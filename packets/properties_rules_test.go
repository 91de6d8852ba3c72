package packets_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

func carrier(t *testing.T, name string) propCarrier {
	t.Helper()
	for _, c := range propCarriers() {
		if c.name == name {
			return c
		}
	}
	require.FailNow(t, "no carrier "+name)
	return propCarrier{}
}

// TestPropertyValueRules: the values the specification forbids parse, so
// they are Protocol Errors, each in the section (or statement) that forbids
// it; a Topic Alias of 0 is answered with 0x94 (section 3.3.4):
// [v5 MQTT-3.3.2-8] [v5 MQTT-3.3.2-14] [v5 MQTT-4.7.3-1], sections
// 3.1.2.11.3, 3.1.2.11.4, 3.1.2.11.6, 3.1.2.11.7, 3.1.2.11.10, 3.2.2.3.4,
// 3.2.2.3.5, 3.2.2.3.11, 3.2.2.3.12, 3.2.2.3.13, 3.3.2.3.2, 3.3.2.3.8,
// 3.8.2.1.2.
func TestPropertyValueRules(t *testing.T) {
	tests := []struct {
		carrier string
		block   []byte
		rule    string
		code    packets.ReasonCode
	}{
		{"PUBLISH", pByte(packets.PropPayloadFormat, 2), "3.3.2.3.2", packets.ProtocolError},
		{"Will", pByte(packets.PropPayloadFormat, 0xFF), "3.3.2.3.2", packets.ProtocolError},
		{"CONNECT", pByte(packets.PropRequestProblemInfo, 2), "3.1.2.11.7", packets.ProtocolError},
		{"CONNECT", pByte(packets.PropRequestResponseInfo, 2), "3.1.2.11.6", packets.ProtocolError},
		{"CONNACK", pByte(packets.PropMaximumQoS, 2), "3.2.2.3.4", packets.ProtocolError},
		{"CONNACK", pByte(packets.PropRetainAvailable, 2), "3.2.2.3.5", packets.ProtocolError},
		{"CONNACK", pByte(packets.PropWildcardSubAvailable, 2), "3.2.2.3.11", packets.ProtocolError},
		{"CONNACK", pByte(packets.PropSubIDAvailable, 2), "3.2.2.3.12", packets.ProtocolError},
		{"CONNACK", pByte(packets.PropSharedSubAvailable, 2), "3.2.2.3.13", packets.ProtocolError},
		{"CONNECT", pU16(packets.PropReceiveMaximum, 0), "3.1.2.11.3", packets.ProtocolError},
		{"CONNACK", pU16(packets.PropReceiveMaximum, 0), "3.1.2.11.3", packets.ProtocolError},
		{"CONNECT", pU32(packets.PropMaximumPacketSize, 0), "3.1.2.11.4", packets.ProtocolError},
		{"CONNACK", pU32(packets.PropMaximumPacketSize, 0), "3.1.2.11.4", packets.ProtocolError},
		{"PUBLISH", pU16(packets.PropTopicAlias, 0), "MQTT-3.3.2-8", packets.TopicAliasInvalid},
		{"PUBLISH", pVBI(packets.PropSubscriptionID, 0), "3.3.2.3.8", packets.ProtocolError},
		{"SUBSCRIBE", pVBI(packets.PropSubscriptionID, 0), "3.8.2.1.2", packets.ProtocolError},
		{"SUBSCRIBE", cat(pVBI(packets.PropSubscriptionID, 1), pVBI(packets.PropSubscriptionID, 2)), "3.8.2.1.2", packets.ProtocolError},
		{"PUBLISH", pStr(packets.PropResponseTopic, "a/+"), "MQTT-3.3.2-14", packets.ProtocolError},
		{"PUBLISH", pStr(packets.PropResponseTopic, "#"), "MQTT-3.3.2-14", packets.ProtocolError},
		{"Will", pStr(packets.PropResponseTopic, "a/#"), "MQTT-3.3.2-14", packets.ProtocolError},
		{"PUBLISH", pStr(packets.PropResponseTopic, ""), "MQTT-4.7.3-1", packets.ProtocolError},
		{"Will", pStr(packets.PropResponseTopic, ""), "MQTT-4.7.3-1", packets.ProtocolError},
		{"CONNECT", pStr(packets.PropAuthData, "d"), "3.1.2.11.10", packets.ProtocolError},
		// An empty method names no method.
		{"CONNECT", cat(pStr(packets.PropAuthMethod, ""), pStr(packets.PropAuthData, "d")), "3.1.2.11.10", packets.ProtocolError},
	}
	for _, tc := range tests {
		t.Run(tc.carrier+" "+strings.ReplaceAll(tc.rule, ".", "_"), func(t *testing.T) {
			_, err := decodeWireV(t, packets.Level5, carrier(t, tc.carrier).wire(props(tc.block)))
			wantV5(t, err, tc.rule, tc.code, nil)
		})
	}
}

// TestPropertyMalformed: a property block that cannot be parsed is a
// Malformed Packet, in PUBLISH (decoded without allocating) and elsewhere
// alike: an unknown identifier or a value not of its type (section
// 2.2.2.2), a Property Length past the packet (2.2.2.1), a Variable Byte
// Integer over four bytes (1.5.5) or longer than it needs
// [v5 MQTT-1.5.5-1], ill-formed UTF-8 [v5 MQTT-1.5.4-1, MQTT-1.5.4-2,
// MQTT-1.5.7-1].
func TestPropertyMalformed(t *testing.T) {
	places := []struct {
		name       string
		text, four packets.PropID // a string and a Four Byte Integer allowed there
	}{
		{"PUBLISH", packets.PropContentType, packets.PropMessageExpiry},
		{"Will", packets.PropResponseTopic, packets.PropWillDelay},
		{"CONNACK", packets.PropAssignedClientID, packets.PropSessionExpiry},
		{"DISCONNECT", packets.PropReasonString, packets.PropSessionExpiry},
	}
	for _, place := range places {
		tests := []struct {
			name  string
			block []byte // with its Property Length
			rule  string
		}{
			{"unknown identifier 0", props([]byte{0, 0}), "2.2.2.2"},
			{"unknown identifier 4", props(pByte(4, 0)), "2.2.2.2"},
			{"unknown identifier 0x2B", props(pByte(0x2B, 0)), "2.2.2.2"},
			{"unknown two-byte identifier", props([]byte{0x80, 0x01, 0}), "2.2.2.2"},
			{"identifier longer than it needs", props([]byte{0x81, 0x00, 0}), "MQTT-1.5.5-1"},
			{"identifier cut off", props([]byte{0x80}), "2.2.2.2"},
			{"Property Length past the packet", []byte{10, byte(packets.PropUserProperty)}, "2.2.2.1"},
			{"Property Length over four bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x01}, "1.5.5"},
			{"Property Length longer than it needs", []byte{0x80, 0x00}, "MQTT-1.5.5-1"},
			{"Four Byte Integer cut off", props([]byte{byte(place.four), 0, 0}), "2.2.2.2"},
			{"string cut off", props([]byte{byte(place.text), 0, 5, 'a'}), "2.2.2.2"},
			{"string length cut off", props([]byte{byte(place.text), 0}), "2.2.2.2"},
			{"user property value missing", props(pStr(packets.PropUserProperty, "k")), "2.2.2.2"},
			{"ill-formed UTF-8", props(pStr(place.text, "\xc3\x28")), "MQTT-1.5.4-1"},
			{"encoded surrogate", props(pStr(place.text, "\xed\xa0\x80")), "MQTT-1.5.4-1"},
			{"U+0000", props(pStr(place.text, "a\x00")), "MQTT-1.5.4-2"},
			{"user property name ill-formed", props(pUser("\xff", "v")), "MQTT-1.5.7-1"},
			{"user property value with U+0000", props(pUser("k", "\x00")), "MQTT-1.5.7-1"},
		}
		for _, tc := range tests {
			t.Run(place.name+"/"+tc.name, func(t *testing.T) {
				_, err := decodeWireV(t, packets.Level5, carrier(t, place.name).wire(tc.block))
				wantV5(t, err, tc.rule, packets.MalformedPacket, nil)
			})
		}
	}
	// Subscription Identifiers are Variable Byte Integers.
	for _, place := range []string{"PUBLISH", "SUBSCRIBE"} {
		_, err := decodeWireV(t, packets.Level5, carrier(t, place).wire(props([]byte{byte(packets.PropSubscriptionID), 0x81, 0x80, 0x80, 0x80, 0x01})))
		wantV5(t, err, "1.5.5", packets.MalformedPacket, nil)
		_, err = decodeWireV(t, packets.Level5, carrier(t, place).wire(props([]byte{byte(packets.PropSubscriptionID), 0x81, 0x00})))
		wantV5(t, err, "MQTT-1.5.5-1", packets.MalformedPacket, nil)
	}
}

// TestPropertiesAppendInvalid: Append refuses what decoding refuses.
func TestPropertiesAppendInvalid(t *testing.T) {
	long := strings.Repeat("x", 65536)
	tests := []struct {
		name string
		p    packets.Packet
		rule string
		code packets.ReasonCode
	}{
		{"Payload Format 2", carrier(t, "Will").value(packets.Properties{PayloadFormat: new(byte(2))}), "3.3.2.3.2", packets.ProtocolError},
		{"Request Problem Information 2", carrier(t, "CONNECT").value(packets.Properties{RequestProblemInfo: new(byte(2))}), "3.1.2.11.7", packets.ProtocolError},
		{"Maximum QoS 2", carrier(t, "CONNACK").value(packets.Properties{MaximumQoS: new(byte(2))}), "3.2.2.3.4", packets.ProtocolError},
		{"Receive Maximum 0", carrier(t, "CONNACK").value(packets.Properties{ReceiveMaximum: new(uint16(0))}), "3.1.2.11.3", packets.ProtocolError},
		{"Maximum Packet Size 0", carrier(t, "CONNECT").value(packets.Properties{MaximumPacketSize: new(uint32(0))}), "3.1.2.11.4", packets.ProtocolError},
		{"Subscription Identifier 0", carrier(t, "SUBSCRIBE").value(packets.Properties{SubscriptionIDs: []uint32{0}}), "3.8.2.1.2", packets.ProtocolError},
		{"two Subscription Identifiers", carrier(t, "SUBSCRIBE").value(packets.Properties{SubscriptionIDs: []uint32{1, 2}}), "3.8.2.1.2", packets.ProtocolError},
		{"Subscription Identifier over the maximum", carrier(t, "SUBSCRIBE").value(packets.Properties{SubscriptionIDs: []uint32{packets.MaxSubscriptionID + 1}}), "1.5.5", packets.MalformedPacket},
		{"Response Topic wildcard", carrier(t, "Will").value(packets.Properties{ResponseTopic: "a/+"}), "MQTT-3.3.2-14", packets.ProtocolError},
		{"Authentication Data without a method", carrier(t, "CONNECT").value(packets.Properties{AuthData: []byte{}}), "3.1.2.11.10", packets.ProtocolError},
		{"Reason String too long", carrier(t, "PUBACK").value(packets.Properties{ReasonString: long}), "1.5.4", packets.MalformedPacket},
		{"Correlation Data too long", carrier(t, "Will").value(packets.Properties{CorrelationData: []byte(long)}), "1.5.4", packets.MalformedPacket},
		{"User Property too long", carrier(t, "DISCONNECT").value(packets.Properties{User: []packets.UserProperty{{"k", long}}}), "1.5.4", packets.MalformedPacket},
		{"User Property not UTF-8", carrier(t, "SUBACK").value(packets.Properties{User: []packets.UserProperty{{"\xff", ""}}}), "MQTT-1.5.7-1", packets.MalformedPacket},
		{"Content Type with U+0000", carrier(t, "Will").value(packets.Properties{ContentType: "\x00"}), "MQTT-1.5.4-2", packets.MalformedPacket},
		{"Reason String not UTF-8", carrier(t, "UNSUBACK").value(packets.Properties{ReasonString: "\xc0\x80"}), "MQTT-1.5.4-1", packets.MalformedPacket},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Append([]byte{1})
			wantV5(t, err, tc.rule, tc.code, packets.ErrInvalidPacket)
			assert.Equal(t, []byte{1}, got, "appended on failure")
		})
	}
}

// TestPropertiesLen: Len is what the properties add to the Remaining
// Length, counting only what the packet may carry.
func TestPropertiesLen(t *testing.T) {
	p := packets.Properties{ReasonString: "why", User: []packets.UserProperty{{"k", "v"}}, SessionExpiry: new(uint32(1))}
	assert.Equal(t, 1+(3+3)+(1+6), p.Len(packets.TypePuback))
	assert.Equal(t, 1+(3+3)+(1+6)+5, p.Len(packets.TypeDisconnect))
	assert.Equal(t, 1, (&packets.Properties{}).Len(packets.TypeConnack))
	wire, err := (&packets.Disconnect{Version: 5, ReasonCode: packets.ServerBusy, Properties: p}).Append(nil)
	require.NoError(t, err)
	assert.Len(t, wire, 2+1+p.Len(packets.TypeDisconnect))
}

func TestPropIDString(t *testing.T) {
	assert.Equal(t, "Payload Format Indicator", packets.PropPayloadFormat.String())
	assert.Equal(t, "Shared Subscription Available", packets.PropSharedSubAvailable.String())
	assert.Equal(t, "property 0x4", packets.PropID(4).String())
	assert.False(t, packets.PropID(4).AllowedIn(packets.TypePublish))
	assert.False(t, packets.PropUserProperty.AllowedIn(packets.TypePingreq))
}
