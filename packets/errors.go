package packets

import "errors"

// Error is a packet that breaks the MQTT 3.1.1 specification: a decode
// failure, or a value that Append refuses to encode because the receiver
// would have to treat it as malformed. Rule names the normative statement
// that the packet broke, for example "MQTT-3.3.1-4", or a section number
// ("2.2.3") where the rule has no id. Every *Error matches ErrMalformed with
// errors.Is; errors that call for a particular reaction also match a more
// specific sentinel below (Append failures match ErrInvalidPacket).
type Error struct {
	Type   Type   // the packet type being decoded, TypeReserved if unknown
	Rule   string // the statement id or section the input broke
	Reason string // what was wrong, for logs
	kind   error  // the sentinel this error also matches, if any
}

// Error formats the failure with its rule, for logs.
func (e *Error) Error() string {
	if e.kind == ErrInvalidPacket {
		return "mqtt: cannot encode " + e.Type.String() + ": " + e.Reason + " [" + e.Rule + "]"
	}
	return "mqtt: malformed " + e.Type.String() + ": " + e.Reason + " [" + e.Rule + "]"
}

// Is reports whether target is ErrMalformed or the error's specific sentinel.
func (e *Error) Is(target error) bool {
	return target == ErrMalformed || (e.kind != nil && target == e.kind)
}

// Sentinel errors, for errors.Is.
var (
	// ErrMalformed matches every *Error: every decode failure, and every
	// value Append refuses.
	ErrMalformed = errors.New("mqtt: malformed packet")
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
	// identifier, a string over 65535 bytes, a wildcard in a topic name...).
	// Nothing was appended.
	ErrInvalidPacket = errors.New("mqtt: packet value cannot be encoded")
)

// newError is the one place decode and encode failures are built.
func newError(t Type, rule, reason string, kind error) *Error {
	return &Error{Type: t, Rule: rule, Reason: reason, kind: kind}
}

// malformed is a decode failure that matches only ErrMalformed.
func malformed(t Type, rule, reason string) *Error {
	return newError(t, rule, reason, nil)
}

// invalid is an Append failure; it matches ErrInvalidPacket.
func invalid(t Type, rule, reason string) *Error {
	return newError(t, rule, reason, ErrInvalidPacket)
}

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
	case TypeReserved15:
		return "reserved type 15"
	}
	return "reserved type 0"
}
