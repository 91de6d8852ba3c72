package packets_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// propCarrier is a place properties can sit: an MQTT 5 packet type, or the
// Will Properties of a CONNECT.
type propCarrier struct {
	name string
	t    packets.Type
	// wire builds a valid packet around a property block (with its
	// Property Length).
	wire func(block []byte) []byte
	// value builds the packet value holding p, get reads p back.
	value func(p packets.Properties) packets.Packet
	get   func(t *testing.T, p packets.Packet) packets.Properties
}

func propCarriers() []propCarrier {
	mqtt5 := cat(str("MQTT"), []byte{5})
	ack := func(b0 byte, t packets.Type) propCarrier {
		return propCarrier{t.String(), t,
			func(block []byte) []byte { return frame(b0, u16(1), []byte{0}, block) },
			func(p packets.Properties) packets.Packet {
				switch t {
				case packets.TypePuback:
					return &packets.Puback{Version: 5, PacketID: 1, Properties: p}
				case packets.TypePubrec:
					return &packets.Pubrec{Version: 5, PacketID: 1, Properties: p}
				case packets.TypePubrel:
					return &packets.Pubrel{Version: 5, PacketID: 1, Properties: p}
				}
				return &packets.Pubcomp{Version: 5, PacketID: 1, Properties: p}
			},
			func(_ *testing.T, p packets.Packet) packets.Properties {
				switch p := p.(type) {
				case *packets.Puback:
					return p.Properties
				case *packets.Pubrec:
					return p.Properties
				case *packets.Pubrel:
					return p.Properties
				}
				return p.(*packets.Pubcomp).Properties
			}}
	}
	return []propCarrier{
		{"CONNECT", packets.TypeConnect,
			func(block []byte) []byte { return frame(0x10, mqtt5, []byte{0x02}, u16(0), block, str("c")) },
			func(p packets.Properties) packets.Packet {
				return &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanSession: true, ClientID: "c", Properties: p}
			},
			func(_ *testing.T, p packets.Packet) packets.Properties { return p.(*packets.Connect).Properties }},
		{"Will", 0,
			func(block []byte) []byte {
				return frame(0x10, mqtt5, []byte{0x06}, u16(0), props(), str("c"), block, str("w"), str("m"))
			},
			func(p packets.Properties) packets.Packet {
				return &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanSession: true, ClientID: "c",
					WillFlag: true, WillTopic: "w", WillMessage: []byte("m"), WillProperties: p}
			},
			func(_ *testing.T, p packets.Packet) packets.Properties { return p.(*packets.Connect).WillProperties }},
		{"CONNACK", packets.TypeConnack,
			func(block []byte) []byte { return frame(0x20, []byte{0, 0}, block) },
			func(p packets.Properties) packets.Packet { return &packets.Connack{Version: 5, Properties: p} },
			func(_ *testing.T, p packets.Packet) packets.Properties { return p.(*packets.Connack).Properties }},
		{"PUBLISH", packets.TypePublish,
			func(block []byte) []byte { return frame(0x30, str("t"), block, []byte("x")) },
			nil, // PublishProps, tested through AppendPublishRaw
			func(t *testing.T, p packets.Packet) packets.Properties {
				all, err := p.(*packets.Publish).Props.Properties()
				require.NoError(t, err)
				return all
			}},
		ack(0x40, packets.TypePuback), ack(0x50, packets.TypePubrec), ack(0x62, packets.TypePubrel), ack(0x70, packets.TypePubcomp),
		{"SUBSCRIBE", packets.TypeSubscribe,
			func(block []byte) []byte { return frame(0x82, u16(1), block, str("a"), []byte{0}) },
			func(p packets.Properties) packets.Packet {
				return &packets.Subscribe{Version: 5, PacketID: 1, Properties: p, Subscriptions: []packets.Subscription{{Filter: "a"}}}
			},
			func(_ *testing.T, p packets.Packet) packets.Properties { return p.(*packets.Subscribe).Properties }},
		{"SUBACK", packets.TypeSuback,
			func(block []byte) []byte { return frame(0x90, u16(1), block, []byte{0}) },
			func(p packets.Properties) packets.Packet {
				return &packets.Suback{Version: 5, PacketID: 1, Properties: p, ReturnCodes: []byte{0}}
			},
			func(_ *testing.T, p packets.Packet) packets.Properties { return p.(*packets.Suback).Properties }},
		{"UNSUBSCRIBE", packets.TypeUnsubscribe,
			func(block []byte) []byte { return frame(0xA2, u16(1), block, str("a")) },
			func(p packets.Properties) packets.Packet {
				return &packets.Unsubscribe{Version: 5, PacketID: 1, Properties: p, Filters: []string{"a"}}
			},
			func(_ *testing.T, p packets.Packet) packets.Properties { return p.(*packets.Unsubscribe).Properties }},
		{"UNSUBACK", packets.TypeUnsuback,
			func(block []byte) []byte { return frame(0xB0, u16(1), block, []byte{0}) },
			func(p packets.Properties) packets.Packet {
				return &packets.Unsuback{Version: 5, PacketID: 1, Properties: p, ReasonCodes: []byte{0}}
			},
			func(_ *testing.T, p packets.Packet) packets.Properties { return p.(*packets.Unsuback).Properties }},
		{"DISCONNECT", packets.TypeDisconnect,
			func(block []byte) []byte { return frame(0xE0, []byte{0}, block) },
			func(p packets.Properties) packets.Packet { return &packets.Disconnect{Version: 5, Properties: p} },
			func(_ *testing.T, p packets.Packet) packets.Properties { return p.(*packets.Disconnect).Properties }},
		{"AUTH", packets.TypeAuth,
			func(block []byte) []byte { return frame(0xF0, []byte{0x18}, block) },
			func(p packets.Properties) packets.Packet {
				return &packets.Auth{Version: 5, ReasonCode: packets.ContinueAuthentication, Properties: p}
			},
			func(_ *testing.T, p packets.Packet) packets.Properties { return p.(*packets.Auth).Properties }},
	}
}

// propCase is one property with a valid value: its encoding and the
// Properties that hold it.
type propCase struct {
	id   packets.PropID
	wire []byte
	want packets.Properties
}

func propCases() []propCase {
	return []propCase{
		{packets.PropPayloadFormat, pByte(packets.PropPayloadFormat, 1), packets.Properties{PayloadFormat: new(byte(1))}},
		{packets.PropMessageExpiry, pU32(packets.PropMessageExpiry, 60), packets.Properties{MessageExpiry: new(uint32(60))}},
		{packets.PropContentType, pStr(packets.PropContentType, "text/plain"), packets.Properties{ContentType: "text/plain"}},
		{packets.PropResponseTopic, pStr(packets.PropResponseTopic, "r/t"), packets.Properties{ResponseTopic: "r/t"}},
		{packets.PropCorrelationData, pStr(packets.PropCorrelationData, "\x00\x01"), packets.Properties{CorrelationData: []byte{0, 1}}},
		{packets.PropSubscriptionID, pVBI(packets.PropSubscriptionID, 300), packets.Properties{SubscriptionIDs: []uint32{300}}},
		{packets.PropSessionExpiry, pU32(packets.PropSessionExpiry, 0xFFFFFFFF), packets.Properties{SessionExpiry: new(uint32(0xFFFFFFFF))}},
		{packets.PropAssignedClientID, pStr(packets.PropAssignedClientID, "x"), packets.Properties{AssignedClientID: "x"}},
		{packets.PropServerKeepAlive, pU16(packets.PropServerKeepAlive, 30), packets.Properties{ServerKeepAlive: new(uint16(30))}},
		{packets.PropAuthMethod, pStr(packets.PropAuthMethod, "m"), packets.Properties{AuthMethod: "m"}},
		{packets.PropAuthData, pStr(packets.PropAuthData, "d"), packets.Properties{AuthData: []byte("d")}},
		{packets.PropRequestProblemInfo, pByte(packets.PropRequestProblemInfo, 1), packets.Properties{RequestProblemInfo: new(byte(1))}},
		{packets.PropWillDelay, pU32(packets.PropWillDelay, 5), packets.Properties{WillDelay: new(uint32(5))}},
		{packets.PropRequestResponseInfo, pByte(packets.PropRequestResponseInfo, 1), packets.Properties{RequestResponseInfo: new(byte(1))}},
		{packets.PropResponseInfo, pStr(packets.PropResponseInfo, "ri"), packets.Properties{ResponseInfo: "ri"}},
		{packets.PropServerReference, pStr(packets.PropServerReference, "s"), packets.Properties{ServerReference: "s"}},
		{packets.PropReasonString, pStr(packets.PropReasonString, "why"), packets.Properties{ReasonString: "why"}},
		{packets.PropReceiveMaximum, pU16(packets.PropReceiveMaximum, 10), packets.Properties{ReceiveMaximum: new(uint16(10))}},
		{packets.PropTopicAliasMaximum, pU16(packets.PropTopicAliasMaximum, 5), packets.Properties{TopicAliasMaximum: new(uint16(5))}},
		{packets.PropTopicAlias, pU16(packets.PropTopicAlias, 3), packets.Properties{TopicAlias: new(uint16(3))}},
		{packets.PropMaximumQoS, pByte(packets.PropMaximumQoS, 1), packets.Properties{MaximumQoS: new(byte(1))}},
		{packets.PropRetainAvailable, pByte(packets.PropRetainAvailable, 0), packets.Properties{RetainAvailable: new(byte(0))}},
		{packets.PropUserProperty, pUser("k", "v"), packets.Properties{User: []packets.UserProperty{{"k", "v"}}}},
		{packets.PropMaximumPacketSize, pU32(packets.PropMaximumPacketSize, 1000), packets.Properties{MaximumPacketSize: new(uint32(1000))}},
		{packets.PropWildcardSubAvailable, pByte(packets.PropWildcardSubAvailable, 1), packets.Properties{WildcardSubAvailable: new(byte(1))}},
		{packets.PropSubIDAvailable, pByte(packets.PropSubIDAvailable, 1), packets.Properties{SubIDAvailable: new(byte(1))}},
		{packets.PropSharedSubAvailable, pByte(packets.PropSharedSubAvailable, 1), packets.Properties{SharedSubAvailable: new(byte(1))}},
	}
}

// tableAllowed is Table 2-4's "allowed in" column, written out here.
var tableAllowed = map[packets.PropID]string{
	packets.PropPayloadFormat:        "PUBLISH Will",
	packets.PropMessageExpiry:        "PUBLISH Will",
	packets.PropContentType:          "PUBLISH Will",
	packets.PropResponseTopic:        "PUBLISH Will",
	packets.PropCorrelationData:      "PUBLISH Will",
	packets.PropSubscriptionID:       "PUBLISH SUBSCRIBE",
	packets.PropSessionExpiry:        "CONNECT CONNACK DISCONNECT",
	packets.PropAssignedClientID:     "CONNACK",
	packets.PropServerKeepAlive:      "CONNACK",
	packets.PropAuthMethod:           "CONNECT CONNACK AUTH",
	packets.PropAuthData:             "CONNECT CONNACK AUTH",
	packets.PropRequestProblemInfo:   "CONNECT",
	packets.PropWillDelay:            "Will",
	packets.PropRequestResponseInfo:  "CONNECT",
	packets.PropResponseInfo:         "CONNACK",
	packets.PropServerReference:      "CONNACK DISCONNECT",
	packets.PropReasonString:         "CONNACK PUBACK PUBREC PUBREL PUBCOMP SUBACK UNSUBACK DISCONNECT AUTH",
	packets.PropReceiveMaximum:       "CONNECT CONNACK",
	packets.PropTopicAliasMaximum:    "CONNECT CONNACK",
	packets.PropTopicAlias:           "PUBLISH",
	packets.PropMaximumQoS:           "CONNACK",
	packets.PropRetainAvailable:      "CONNACK",
	packets.PropUserProperty:         "CONNECT CONNACK PUBLISH Will PUBACK PUBREC PUBREL PUBCOMP SUBSCRIBE SUBACK UNSUBSCRIBE UNSUBACK DISCONNECT AUTH",
	packets.PropMaximumPacketSize:    "CONNECT CONNACK",
	packets.PropWildcardSubAvailable: "CONNACK",
	packets.PropSubIDAvailable:       "CONNACK",
	packets.PropSharedSubAvailable:   "CONNACK",
}

// TestPropertyAllowedPerPacket tries each of the 27 properties in every
// place properties sit: where Table 2-4 allows it, it decodes into its
// field and encodes back to the same bytes; elsewhere it is a Malformed
// Packet (section 2.2.2.2: "A Control Packet which contains an Identifier
// which is not valid for its packet type ... is a Malformed Packet"), and
// Append refuses it.
func TestPropertyAllowedPerPacket(t *testing.T) {
	require.Len(t, propCases(), 27)
	require.Len(t, tableAllowed, 27)
	for _, c := range propCarriers() {
		for _, pc := range propCases() {
			allowed := strings.Contains(" "+tableAllowed[pc.id]+" ", " "+c.name+" ")
			if c.t != 0 {
				assert.Equal(t, allowed, pc.id.AllowedIn(c.t), "%v.AllowedIn(%v)", pc.id, c.t)
			}
			t.Run(c.name+"/"+pc.id.String(), func(t *testing.T) {
				block, want := pc.wire, pc.want
				// Authentication Data needs a method in a CONNECT, and
				// an AUTH with properties always does.
				if c.name == "AUTH" && pc.id != packets.PropAuthMethod || c.name == "CONNECT" && pc.id == packets.PropAuthData {
					block = cat(pStr(packets.PropAuthMethod, "m"), block)
					want.AuthMethod = "m"
				}
				wire := c.wire(props(block))
				p, err := decodeWireV(t, packets.Level5, wire)
				if !allowed {
					wantV5(t, err, "2.2.2.2", packets.MalformedPacket, nil)
					if c.value != nil {
						_, err := c.value(want).Append(nil)
						wantV5(t, err, "2.2.2.2", packets.MalformedPacket, packets.ErrInvalidPacket)
					}
					return
				}
				require.NoError(t, err)
				assert.Equal(t, want, c.get(t, p))
				again, err := p.Append(nil)
				require.NoError(t, err)
				assert.Equal(t, wire, again)
				if c.value != nil {
					built, err := c.value(want).Append(nil)
					require.NoError(t, err)
					assert.Equal(t, wire, built)
				}
			})
		}
	}
}

// twiceSection is the section that says "It is a Protocol Error to include
// ... more than once" of each property (its first packet's).
var twiceSection = map[packets.PropID]string{
	packets.PropPayloadFormat: "3.3.2.3.2", packets.PropMessageExpiry: "3.3.2.3.3", packets.PropContentType: "3.3.2.3.9",
	packets.PropResponseTopic: "3.3.2.3.5", packets.PropCorrelationData: "3.3.2.3.6", packets.PropSubscriptionID: "3.8.2.1.2",
	packets.PropSessionExpiry: "3.1.2.11.2", packets.PropAssignedClientID: "3.2.2.3.7", packets.PropServerKeepAlive: "3.2.2.3.14",
	packets.PropAuthMethod: "3.1.2.11.9", packets.PropAuthData: "3.1.2.11.10", packets.PropRequestProblemInfo: "3.1.2.11.7",
	packets.PropWillDelay: "3.1.3.2.2", packets.PropRequestResponseInfo: "3.1.2.11.6", packets.PropResponseInfo: "3.2.2.3.15",
	packets.PropServerReference: "3.2.2.3.16", packets.PropReasonString: "3.2.2.3.9", packets.PropReceiveMaximum: "3.1.2.11.3",
	packets.PropTopicAliasMaximum: "3.1.2.11.5", packets.PropTopicAlias: "3.3.2.3.4", packets.PropMaximumQoS: "3.2.2.3.4",
	packets.PropRetainAvailable: "3.2.2.3.5", packets.PropMaximumPacketSize: "3.1.2.11.4", packets.PropWildcardSubAvailable: "3.2.2.3.11",
	packets.PropSubIDAvailable: "3.2.2.3.12", packets.PropSharedSubAvailable: "3.2.2.3.13",
}

// TestPropertyTwice: including a property more than once is a Protocol
// Error (stated in each property's section), except User Property, which
// keeps its order [v5 MQTT-3.1.3-10, MQTT-3.3.2-18], and Subscription
// Identifier in a PUBLISH (section 3.3.4).
func TestPropertyTwice(t *testing.T) {
	carriers := map[string]propCarrier{}
	for _, c := range propCarriers() {
		carriers[c.name] = c
	}
	for _, pc := range propCases() {
		for _, name := range strings.Fields(tableAllowed[pc.id]) {
			t.Run(name+"/"+pc.id.String(), func(t *testing.T) {
				block := cat(pc.wire, pc.wire)
				if name == "AUTH" && pc.id != packets.PropAuthMethod || name == "CONNECT" && pc.id == packets.PropAuthData {
					block = cat(pStr(packets.PropAuthMethod, "m"), block)
				}
				p, err := decodeWireV(t, packets.Level5, carriers[name].wire(props(block)))
				if pc.id == packets.PropUserProperty || pc.id == packets.PropSubscriptionID && name == "PUBLISH" {
					require.NoError(t, err)
					all := carriers[name].get(t, p)
					assert.Equal(t, len(pc.want.User)*2, len(all.User))
					assert.Equal(t, len(pc.want.SubscriptionIDs)*2, len(all.SubscriptionIDs))
					return
				}
				perr := wantV5(t, err, twiceSection[pc.id], packets.ProtocolError, nil)
				assert.Contains(t, perr.Reason, "more than once")
			})
		}
	}
}
