package packets

import "strconv"

// ReasonCode is an MQTT 5 Reason Code (section 2.4): the result of an
// operation, carried by CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,
// UNSUBACK, DISCONNECT and AUTH. Values of 0x80 and above are failures.
type ReasonCode byte

// The Reason Codes of Table 2-6. Some values have one name per packet they
// appear in (0x00 is Success, Normal disconnection and Granted QoS 0).
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWill                  ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// IsError reports whether c is a failure: 0x80 or above (section 2.4).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// Bits of the packet sets of Table 2-6, one per packet type.
const (
	inConnack    = 1 << TypeConnack
	inPuback     = 1 << TypePuback
	inPubrec     = 1 << TypePubrec
	inPubrel     = 1 << TypePubrel
	inPubcomp    = 1 << TypePubcomp
	inSuback     = 1 << TypeSuback
	inUnsuback   = 1 << TypeUnsuback
	inDisconnect = 1 << TypeDisconnect
	inAuth       = 1 << TypeAuth
)

// info is the Table 2-6 row of c: its name and the packets it may appear
// in, as a bit per packet type (0 for a value the table does not define).
func (c ReasonCode) info() (string, uint16) {
	const pubAcks = inPuback | inPubrec
	switch c {
	case 0x00:
		return "Success", inConnack | inPuback | inPubrec | inPubrel | inPubcomp | inUnsuback | inAuth | inDisconnect | inSuback
	case GrantedQoS1:
		return "Granted QoS 1", inSuback
	case GrantedQoS2:
		return "Granted QoS 2", inSuback
	case DisconnectWithWill:
		return "Disconnect with Will Message", inDisconnect
	case NoMatchingSubscribers:
		return "No matching subscribers", pubAcks
	case NoSubscriptionExisted:
		return "No subscription existed", inUnsuback
	case ContinueAuthentication:
		return "Continue authentication", inAuth
	case ReAuthenticate:
		return "Re-authenticate", inAuth
	case UnspecifiedError:
		return "Unspecified error", inConnack | pubAcks | inSuback | inUnsuback | inDisconnect
	case MalformedPacket:
		return "Malformed Packet", inConnack | inDisconnect
	case ProtocolError:
		return "Protocol Error", inConnack | inDisconnect
	case ImplementationSpecificError:
		return "Implementation specific error", inConnack | pubAcks | inSuback | inUnsuback | inDisconnect
	case UnsupportedProtocolVersion:
		return "Unsupported Protocol Version", inConnack
	case ClientIdentifierNotValid:
		return "Client Identifier not valid", inConnack
	case BadUserNameOrPassword:
		return "Bad User Name or Password", inConnack
	case NotAuthorized:
		return "Not authorized", inConnack | pubAcks | inSuback | inUnsuback | inDisconnect
	case ServerUnavailable:
		return "Server unavailable", inConnack
	case ServerBusy:
		return "Server busy", inConnack | inDisconnect
	case Banned:
		return "Banned", inConnack
	case ServerShuttingDown:
		return "Server shutting down", inDisconnect
	case BadAuthenticationMethod:
		return "Bad authentication method", inConnack | inDisconnect
	case KeepAliveTimeout:
		return "Keep Alive timeout", inDisconnect
	case SessionTakenOver:
		return "Session taken over", inDisconnect
	case TopicFilterInvalid:
		return "Topic Filter invalid", inSuback | inUnsuback | inDisconnect
	case TopicNameInvalid:
		return "Topic Name invalid", inConnack | pubAcks | inDisconnect
	case PacketIdentifierInUse:
		return "Packet Identifier in use", pubAcks | inSuback | inUnsuback
	case PacketIdentifierNotFound:
		return "Packet Identifier not found", inPubrel | inPubcomp
	case ReceiveMaximumExceeded:
		return "Receive Maximum exceeded", inDisconnect
	case TopicAliasInvalid:
		return "Topic Alias invalid", inDisconnect
	case PacketTooLarge:
		return "Packet too large", inConnack | inDisconnect
	case MessageRateTooHigh:
		return "Message rate too high", inDisconnect
	case QuotaExceeded:
		return "Quota exceeded", inConnack | pubAcks | inSuback | inDisconnect
	case AdministrativeAction:
		return "Administrative action", inDisconnect
	case PayloadFormatInvalid:
		return "Payload format invalid", inConnack | pubAcks | inDisconnect
	case RetainNotSupported:
		return "Retain not supported", inConnack | inDisconnect
	case QoSNotSupported:
		return "QoS not supported", inConnack | inDisconnect
	case UseAnotherServer:
		return "Use another server", inConnack | inDisconnect
	case ServerMoved:
		return "Server moved", inConnack | inDisconnect
	case SharedSubscriptionsNotSupported:
		return "Shared Subscriptions not supported", inSuback | inDisconnect
	case ConnectionRateExceeded:
		return "Connection rate exceeded", inConnack | inDisconnect
	case MaximumConnectTime:
		return "Maximum connect time", inDisconnect
	case SubscriptionIdentifiersNotSupported:
		return "Subscription Identifiers not supported", inSuback | inDisconnect
	case WildcardSubscriptionsNotSupported:
		return "Wildcard Subscriptions not supported", inSuback | inDisconnect
	}
	return "", 0
}

// String returns the name Table 2-6 gives c ("Success" for 0x00), or its
// value in hexadecimal when the table does not define it.
func (c ReasonCode) String() string {
	if name, _ := c.info(); name != "" {
		return name
	}
	return "reason code 0x" + strconv.FormatUint(uint64(c), 16)
}

// ValidFor reports whether Table 2-6 allows c in a packet of type t: in the
// Reason Code of CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and
// AUTH, and in the list of SUBACK and UNSUBACK. A sender must use one of
// these [v5 MQTT-3.2.2-8, MQTT-3.4.2-1, MQTT-3.5.2-1, MQTT-3.6.2-1,
// MQTT-3.7.2-1, MQTT-3.9.3-2, MQTT-3.11.3-2, MQTT-3.14.2-1, MQTT-3.15.2-1].
func (c ReasonCode) ValidFor(t Type) bool {
	if t > TypeAuth {
		return false
	}
	_, in := c.info()
	return in&(1<<t) != 0
}

// reasonRule names the statement that limits the Reason Codes of a packet
// of type t to its table.
func reasonRule(t Type) string {
	switch t {
	case TypeConnack:
		return "MQTT-3.2.2-8"
	case TypePuback:
		return "MQTT-3.4.2-1"
	case TypePubrec:
		return "MQTT-3.5.2-1"
	case TypePubrel:
		return "MQTT-3.6.2-1"
	case TypePubcomp:
		return "MQTT-3.7.2-1"
	case TypeSuback:
		return "MQTT-3.9.3-2"
	case TypeUnsuback:
		return "MQTT-3.11.3-2"
	case TypeDisconnect:
		return "MQTT-3.14.2-1"
	}
	return "MQTT-3.15.2-1"
}

// checkReason refuses a Reason Code that a packet of type t may not carry.
// The byte parses, but its value is not allowed: a Protocol Error (section
// 1.2, "Protocol Error"), not a Malformed Packet.
func checkReason(e errs, t Type, c ReasonCode) error {
	if c.ValidFor(t) {
		return nil
	}
	return e.protocol(t, reasonRule(t), c.String()+" is not a "+t.String()+" Reason Code")
}
