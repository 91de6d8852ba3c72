// Package packets is Tern's MQTT 3.1.1 codec: one Go type per control
// packet, strict decoding that enforces every rule the specification puts on
// a receiver, and allocation-conscious encoding.
//
// Every decode failure is an *Error whose Rule names the normative statement
// (for example "MQTT-3.3.1-4") that the input broke, so a broker can log
// precisely why it closed a connection. Append refuses, with an *Error that
// also matches ErrInvalidPacket, any value a receiver would reject.
//
// A connection reads with a Reader: ReadRaw frames one packet at a time
// from the stream (holding no buffer while idle after Release), and Decode
// on a reused value keeps the hot path to at most one allocation per
// PUBLISH. To send one message to many subscribers, encode it once per
// (QoS, retain) shape and patch each copy's packet identifier with
// SetPublishID, or write Publish.AppendHeader's bytes followed by the shared
// payload.
//
// The types are plain structs used with keyed fields. Later protocol
// versions (MQTT 5 properties and reason codes) are added as new fields and
// new Decode options, never by changing the meaning of existing fields.
package packets

// Type is an MQTT control packet type: the high nibble of the first byte.
type Type byte

// The control packet types of MQTT 3.1.1 (section 2.2.1). Types 0 and 15 are
// reserved and never valid on the wire [MQTT-2.2.2-1] (decoded as errors).
const (
	TypeReserved    Type = 0
	TypeConnect     Type = 1
	TypeConnack     Type = 2
	TypePublish     Type = 3
	TypePuback      Type = 4
	TypePubrec      Type = 5
	TypePubrel      Type = 6
	TypePubcomp     Type = 7
	TypeSubscribe   Type = 8
	TypeSuback      Type = 9
	TypeUnsubscribe Type = 10
	TypeUnsuback    Type = 11
	TypePingreq     Type = 12
	TypePingresp    Type = 13
	TypeDisconnect  Type = 14
	TypeReserved15  Type = 15
)

// Protocol levels a CONNECT may carry.
const (
	Level31  byte = 3 // MQTT 3.1, protocol name "MQIsdp"
	Level311 byte = 4 // MQTT 3.1.1, protocol name "MQTT"
)

// CONNACK return codes (section 3.2.2.3), and the SUBACK failure code.
const (
	Accepted                   byte = 0x00
	RefusedProtocolVersion     byte = 0x01
	RefusedIdentifierRejected  byte = 0x02
	RefusedServerUnavailable   byte = 0x03
	RefusedBadUsernamePassword byte = 0x04
	RefusedNotAuthorized       byte = 0x05
	SubackFailure              byte = 0x80 // SUBACK return code for a refused filter
)

// Protocol limits.
const (
	MaxRemainingLength = 268435455 // the largest Remaining Length (section 2.2.3)
	MaxPacketID        = 65535     // the largest Packet Identifier
)

// FixedHeader is the first part of every control packet.
type FixedHeader struct {
	Type      Type
	Flags     byte // the low nibble of the first byte
	Remaining int  // the decoded Remaining Length
}

// Packet is implemented by a pointer to each control packet type.
type Packet interface {
	// Type reports the control packet type.
	Type() Type
	// Append appends the packet's wire encoding to dst and returns the
	// extended slice. It fails only when a field cannot be represented on
	// the wire (a string over 65535 bytes, a packet over the maximum
	// Remaining Length, a QoS above 2, and the like).
	Append(dst []byte) ([]byte, error)
	// Decode parses a packet body. fh is the fixed header that preceded
	// body; body is exactly fh.Remaining bytes. Decode never retains body
	// except where a field's documentation says so.
	Decode(fh FixedHeader, body []byte) error
}

// Connect is the CONNECT packet (section 3.1). The Will and user fields are
// present on the wire exactly when their flags are set; Append refuses a
// field whose flag is clear.
type Connect struct {
	ProtocolName  string // "MQTT" (level 4) or "MQIsdp" (level 3)
	ProtocolLevel byte
	CleanSession  bool
	KeepAlive     uint16 // seconds; 0 disables keepalive
	ClientID      string

	WillFlag    bool
	WillQoS     byte
	WillRetain  bool
	WillTopic   string
	WillMessage []byte

	UsernameFlag bool
	Username     string
	PasswordFlag bool
	Password     []byte
}

// Connack is the CONNACK packet (section 3.2).
type Connack struct {
	SessionPresent bool
	ReturnCode     byte
}

// Publish is the PUBLISH packet (section 3.3).
//
// After Decode, Payload aliases the body passed to Decode (it is not
// copied; nil when empty): a caller that keeps the payload beyond the life
// of the body must copy it. Topic is a new string. Reader.ReadPacket copies
// the payload.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string
	PacketID uint16 // present only when QoS > 0
	Payload  []byte
}

// Puback is the PUBACK packet (section 3.4).
type Puback struct{ PacketID uint16 }

// Pubrec is the PUBREC packet (section 3.5).
type Pubrec struct{ PacketID uint16 }

// Pubrel is the PUBREL packet (section 3.6).
type Pubrel struct{ PacketID uint16 }

// Pubcomp is the PUBCOMP packet (section 3.7).
type Pubcomp struct{ PacketID uint16 }

// Subscription is one topic filter of a SUBSCRIBE packet with its requested
// QoS.
type Subscription struct {
	Filter string
	QoS    byte
}

// Subscribe is the SUBSCRIBE packet (section 3.8).
type Subscribe struct {
	PacketID      uint16
	Subscriptions []Subscription
}

// Suback is the SUBACK packet (section 3.9). ReturnCodes holds one entry
// per filter of the SUBSCRIBE, in order: the granted QoS or SubackFailure.
type Suback struct {
	PacketID    uint16
	ReturnCodes []byte
}

// Unsubscribe is the UNSUBSCRIBE packet (section 3.10).
type Unsubscribe struct {
	PacketID uint16
	Filters  []string
}

// Unsuback is the UNSUBACK packet (section 3.11).
type Unsuback struct{ PacketID uint16 }

// Pingreq is the PINGREQ packet (section 3.12).
type Pingreq struct{}

// Pingresp is the PINGRESP packet (section 3.13).
type Pingresp struct{}

// Disconnect is the DISCONNECT packet (section 3.14).
type Disconnect struct{}
