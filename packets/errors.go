package packets

import (
	"errors"
	"strconv"
)

// Error is a packet that breaks the MQTT specification: a decode failure,
// or a value that Append refuses to encode because the receiver would have
// to reject it. Rule names the normative statement that the packet broke,
// for example "MQTT-3.3.1-4", or a section number ("2.2.3") where the rule
// has no id; Version says which specification the Rule belongs to, since
// the ids of 3.1.1 and 5.0 overlap and name different rules.
//
// Every *Error matches ErrMalformed with errors.Is; errors that call for a
// particular reaction also match a more specific sentinel below (Append
// failures match ErrInvalidPacket, MQTT 5 Protocol Errors match
// ErrProtocolError).
type Error struct {
	Type Type // the packet type being decoded, TypeReserved if unknown
	// Version is Level5 when the packet was read or written in its MQTT 5
	// form and Rule is an MQTT 5.0 statement, 0 for MQTT 3.1.1.
	Version byte
	Rule    string // the statement id or section the input broke
	Reason  string // what was wrong, for logs
	// Code is the Reason Code an MQTT 5 receiver answers with (in a
	// CONNACK or DISCONNECT, section 4.13): MalformedPacket for a packet
	// that cannot be parsed, ProtocolError for one that parses but holds
	// what the protocol forbids, or a more specific code where the
	// specification names one (TopicAliasInvalid for a Topic Alias of 0,
	// UnsupportedProtocolVersion for an unknown protocol level). 3.1.1 has
	// no Protocol Errors: its failures all carry MalformedPacket but the
	// protocol level ones.
	Code ReasonCode
	kind error // the sentinel this error also matches, if any
}

// Error formats the failure with its rule, for logs. The rule of an MQTT 5
// failure reads "[v5 MQTT-x.x.x-y]".
func (e *Error) Error() string {
	name, rule := e.Type.String(), e.Rule
	if e.Version == Level5 {
		rule = "v5 " + rule
	} else if e.Type == TypeAuth {
		name = "reserved type 15" // type 15 is not AUTH in MQTT 3.1.1
	}
	switch {
	case e.kind == ErrInvalidPacket:
		return "mqtt: cannot encode " + name + ": " + e.Reason + " [" + rule + "]"
	case e.Version == Level5 && e.Code != MalformedPacket:
		what := "protocol error"
		if e.Code != ProtocolError {
			what += " (" + e.Code.String() + ")"
		}
		return "mqtt: " + what + " in " + name + ": " + e.Reason + " [" + rule + "]"
	}
	return "mqtt: malformed " + name + ": " + e.Reason + " [" + rule + "]"
}

// Is reports whether target is ErrMalformed, the error's specific sentinel,
// or ErrProtocolError for an MQTT 5 decode failure that is not a Malformed
// Packet.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrMalformed:
		return true
	case ErrProtocolError:
		return e.Version == Level5 && e.kind == nil && e.Code != MalformedPacket
	}
	return e.kind != nil && target == e.kind
}

// Sentinel errors, for errors.Is.
var (
	// ErrMalformed matches every *Error: every decode failure (a Malformed
	// Packet, or in MQTT 5 a Protocol Error too), and every value Append
	// refuses.
	ErrMalformed = errors.New("mqtt: malformed packet")
	// ErrProtocolError matches an MQTT 5 decode failure that is a Protocol
	// Error rather than a Malformed Packet (section 1.2): the packet
	// parses, but holds what the protocol forbids. Its Code is
	// ProtocolError or a more specific Reason Code.
	ErrProtocolError = errors.New("mqtt: protocol error")
	// ErrPacketTooLarge: a packet's total size (fixed header plus Remaining
	// Length) exceeds the Reader's maximum. The body was not read or
	// allocated. The packet may be well formed, so this error is not an
	// *Error and does not match ErrMalformed.
	ErrPacketTooLarge = errors.New("mqtt: packet exceeds the maximum size")
	// ErrProtocolLevel: a CONNECT with a protocol level (or name and level
	// pair) that this codec does not speak. A server answers it with CONNACK
	// 0x01 and closes the connection [MQTT-3.1.2-2].
	ErrProtocolLevel = errors.New("mqtt: unsupported protocol level")
	// ErrProtocolName: a CONNECT whose protocol name is neither "MQTT" nor
	// "MQIsdp" [MQTT-3.1.2-1].
	ErrProtocolName = errors.New("mqtt: unknown protocol name")
	// ErrInvalidPacket: Append refused a packet value because its encoding
	// would break the specification (a QoS above 2, a zero packet
	// identifier, a string over 65535 bytes, a wildcard in a topic name, a
	// property the packet may not carry...). Nothing was appended.
	ErrInvalidPacket = errors.New("mqtt: packet value cannot be encoded")
)

// newError is the one place decode and encode failures of the 3.1.1 form
// are built.
func newError(t Type, rule, reason string, kind error) *Error {
	return &Error{Type: t, Rule: rule, Reason: reason, Code: MalformedPacket, kind: kind}
}

// malformed is a 3.1.1 decode failure that matches only ErrMalformed.
func malformed(t Type, rule, reason string) *Error {
	return newError(t, rule, reason, nil)
}

// invalid is a 3.1.1 Append failure; it matches ErrInvalidPacket.
func invalid(t Type, rule, reason string) *Error {
	return newError(t, rule, reason, ErrInvalidPacket)
}

// errs builds the failures of one packet form: decoding or encoding
// (encode), MQTT 3.1.1 or MQTT 5 (v5). Code shared by decoding and
// encoding takes one, so both name the same statements.
type errs struct {
	v5     bool
	encode bool
}

// errsFor returns the decode failures of the form version selects.
func errsFor(version byte) errs { return errs{v5: version == Level5} }

// encodeErrs returns the Append failures of the form version selects.
func encodeErrs(version byte) errs { return errs{v5: version == Level5, encode: true} }

func (e errs) build(t Type, rule, reason string, code ReasonCode) *Error {
	err := &Error{Type: t, Rule: rule, Reason: reason, Code: code}
	if e.v5 {
		err.Version = Level5
	}
	if e.encode {
		err.kind = ErrInvalidPacket
	}
	return err
}

// malformed is a packet that cannot be parsed: a Malformed Packet.
func (e errs) malformed(t Type, rule, reason string) *Error {
	return e.build(t, rule, reason, MalformedPacket)
}

// protocol is a packet that parses but holds what the protocol forbids: a
// Protocol Error in MQTT 5, a malformed packet in 3.1.1.
func (e errs) protocol(t Type, rule, reason string) *Error {
	if !e.v5 {
		return e.malformed(t, rule, reason)
	}
	return e.build(t, rule, reason, ProtocolError)
}

// code is a Protocol Error for which the specification names a more
// specific Reason Code.
func (e errs) code(t Type, rule, reason string, code ReasonCode) *Error {
	if !e.v5 {
		return e.malformed(t, rule, reason)
	}
	return e.build(t, rule, reason, code)
}

// String returns the name of the packet type: "CONNECT", "PUBLISH"...
func (t Type) String() string {
	switch t {
	case TypeConnect:
		return "CONNECT"
	case TypeConnack:
		return "CONNACK"
	case TypePublish:
		return "PUBLISH"
	case TypePuback:
		return "PUBACK"
	case TypePubrec:
		return "PUBREC"
	case TypePubrel:
		return "PUBREL"
	case TypePubcomp:
		return "PUBCOMP"
	case TypeSubscribe:
		return "SUBSCRIBE"
	case TypeSuback:
		return "SUBACK"
	case TypeUnsubscribe:
		return "UNSUBSCRIBE"
	case TypeUnsuback:
		return "UNSUBACK"
	case TypePingreq:
		return "PINGREQ"
	case TypePingresp:
		return "PINGRESP"
	case TypeDisconnect:
		return "DISCONNECT"
	case TypeAuth:
		return "AUTH"
	}
	return "reserved type " + strconv.Itoa(int(t))
}
