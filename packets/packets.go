// Package packets is Tern's MQTT codec, for MQTT 3.1, 3.1.1 and 5.0: one Go
// type per control packet, strict decoding that enforces every rule the
// specifications put on a receiver, and allocation-conscious encoding.
//
// Every packet type but Connect has a Version field that selects its form:
// 0, Level31 or Level311 for MQTT 3.1.1 (3.1 shares it), Level5 for MQTT 5,
// which adds properties and reason codes. Decode reads Version (the caller
// sets it, usually through Reader.SetVersion or DecodeVersion) and keeps it;
// Append writes the form Version selects. A CONNECT carries its own
// version, ProtocolLevel.
//
// Every decode failure is an *Error whose Rule names the normative statement
// (for example "MQTT-3.3.1-4") that the input broke, and whose Version says
// which specification that statement is from, so a broker can log precisely
// why it closed a connection. In MQTT 5 its Code is the Reason Code to
// answer with: MalformedPacket for a packet that cannot be parsed,
// ProtocolError (or a more specific code) for one that holds what the
// protocol forbids. Append refuses, with an *Error that also matches
// ErrInvalidPacket, any value a receiver would reject.
//
// A connection reads with a Reader: ReadRaw frames one packet at a time
// from the stream (holding no buffer while idle after Release), and Decode
// on a reused value keeps the hot path to at most one allocation per
// PUBLISH, the topic when it changes, in either version (an MQTT 5 PUBLISH
// whose raw properties are split on the wire adds a copy of them). An MQTT
// 5 PUBLISH decodes only the properties a broker acts on and keeps the
// others encoded (PublishProps.Raw), so forwarding them costs a copy of
// bytes. To send one message to many subscribers, encode it once per (QoS,
// retain) shape and patch each copy's packet identifier with SetPublishID,
// or write Publish.AppendHeader's bytes followed by the shared payload.
//
// The types are plain structs used with keyed fields. MQTT 5 fields are
// ignored when a packet is encoded in its 3.1.1 form, which has no place for
// them.
package packets

// Type is an MQTT control packet type: the high nibble of the first byte.
type Type byte

// The control packet types (section 2.2.1 of MQTT 3.1.1, 2.1.2 of MQTT 5).
// Type 0 is reserved and never valid on the wire [MQTT-2.2.2-1]; type 15 is
// reserved in MQTT 3.1.1 and AUTH in MQTT 5.
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
	TypeAuth        Type = 15 // MQTT 5 only
	// TypeReserved15 is type 15 under its MQTT 3.1.1 name: reserved,
	// forbidden on the wire.
	TypeReserved15 = TypeAuth
)

// Protocol levels a CONNECT may carry, which are also the values of the
// Version field of the other packets.
const (
	Level31  byte = 3 // MQTT 3.1, protocol name "MQIsdp"
	Level311 byte = 4 // MQTT 3.1.1, protocol name "MQTT"
	Level5   byte = 5 // MQTT 5.0, protocol name "MQTT"
)

// CONNACK return codes (section 3.2.2.3), and the SUBACK failure code, of
// MQTT 3.1.1. MQTT 5 uses ReasonCode values instead.
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
// field whose flag is clear. ProtocolLevel selects the form: Level5 decodes
// and encodes the MQTT 5 CONNECT, with its properties.
type Connect struct {
	ProtocolName  string // "MQTT" (level 4 or 5) or "MQIsdp" (level 3)
	ProtocolLevel byte
	CleanSession  bool   // Clean Session; Clean Start in MQTT 5
	KeepAlive     uint16 // seconds; 0 disables keepalive
	ClientID      string

	WillFlag    bool
	WillQoS     byte
	WillRetain  bool
	WillTopic   string
	WillMessage []byte

	UsernameFlag bool
	Username     string
	PasswordFlag bool // in MQTT 5, a password may come without a user name
	Password     []byte

	Properties     Properties // MQTT 5 only
	WillProperties Properties // MQTT 5 only, with the Will
}

// Connack is the CONNACK packet (section 3.2).
type Connack struct {
	Version        byte
	SessionPresent bool
	// ReturnCode is the 3.1.1 return code (Accepted, Refused...), or in
	// MQTT 5 the Connect Reason Code (a ReasonCode value).
	ReturnCode byte
	Properties Properties // MQTT 5 only
}

// Publish is the PUBLISH packet (section 3.3).
//
// After Decode, Payload aliases the body passed to Decode (it is not
// copied; nil when empty), and so may Props.Raw: a caller that keeps them
// beyond the life of the body must copy them. Topic is a new string.
// Reader.ReadPacket copies both.
type Publish struct {
	Version  byte
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string       // in MQTT 5, empty when a Topic Alias stands for it
	PacketID uint16       // present only when QoS > 0
	Props    PublishProps // MQTT 5 only
	Payload  []byte
}

// Puback is the PUBACK packet (section 3.4).
type Puback struct {
	Version    byte
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only
}

// Pubrec is the PUBREC packet (section 3.5).
type Pubrec struct {
	Version    byte
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only
}

// Pubrel is the PUBREL packet (section 3.6).
type Pubrel struct {
	Version    byte
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only
}

// Pubcomp is the PUBCOMP packet (section 3.7).
type Pubcomp struct {
	Version    byte
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only
}

// Subscription is one topic filter of a SUBSCRIBE packet with its requested
// QoS and, in MQTT 5, its other Subscription Options (section 3.8.3.1).
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool // MQTT 5 only
	RetainAsPublished bool // MQTT 5 only
	RetainHandling    byte // MQTT 5 only: 0, 1 or 2
}

// Subscribe is the SUBSCRIBE packet (section 3.8).
type Subscribe struct {
	Version       byte
	PacketID      uint16
	Properties    Properties // MQTT 5 only
	Subscriptions []Subscription
}

// Suback is the SUBACK packet (section 3.9). ReturnCodes holds one entry
// per filter of the SUBSCRIBE, in order: the granted QoS or SubackFailure,
// or in MQTT 5 a ReasonCode value.
type Suback struct {
	Version     byte
	PacketID    uint16
	Properties  Properties // MQTT 5 only
	ReturnCodes []byte
}

// Unsubscribe is the UNSUBSCRIBE packet (section 3.10).
type Unsubscribe struct {
	Version    byte
	PacketID   uint16
	Properties Properties // MQTT 5 only
	Filters    []string
}

// Unsuback is the UNSUBACK packet (section 3.11).
type Unsuback struct {
	Version    byte
	PacketID   uint16
	Properties Properties // MQTT 5 only
	// ReasonCodes holds, in MQTT 5, one ReasonCode value per filter of the
	// UNSUBSCRIBE, in order. The 3.1.1 UNSUBACK has none.
	ReasonCodes []byte
}

// Pingreq is the PINGREQ packet (section 3.12). Its two forms are the same
// bytes; Version selects the statements its decode failures name.
type Pingreq struct{ Version byte }

// Pingresp is the PINGRESP packet (section 3.13), the same in both forms.
type Pingresp struct{ Version byte }

// Disconnect is the DISCONNECT packet (section 3.14).
type Disconnect struct {
	Version    byte
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only
}

// Auth is the AUTH packet of MQTT 5 (section 3.15), for extended
// authentication. Its Version must be Level5: type 15 is forbidden in
// MQTT 3.1.1.
type Auth struct {
	Version    byte
	ReasonCode ReasonCode
	Properties Properties
}
