package packets

import "strconv"

// PropID is the identifier of an MQTT 5 property (section 2.2.2.2, Table
// 2-4).
type PropID byte

// The property identifiers of Table 2-4.
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUserProperty         PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
)

// MaxSubscriptionID is the largest Subscription Identifier: the largest
// Variable Byte Integer (section 3.3.2.3.8).
const MaxSubscriptionID = MaxRemainingLength

// UserProperty is one User Property: a UTF-8 string pair (section 1.5.7).
type UserProperty struct{ Key, Value string }

// Properties holds the MQTT 5 properties of any packet but PUBLISH (whose
// Props keep most of them encoded), and of a CONNECT's Will. A nil pointer,
// an empty string and a nil slice mean the property is absent.
//
// Decode fills only the properties its packet may carry and refuses the
// others (a Malformed Packet, section 2.2.2.2), as it refuses a property
// given twice where only one is allowed, and the values the specification
// forbids (Protocol Errors). Append refuses the same.
type Properties struct {
	PayloadFormat        *byte
	MessageExpiry        *uint32
	ContentType          string
	ResponseTopic        string
	CorrelationData      []byte   // nil: absent; decoded present-but-empty is non-nil and empty
	SubscriptionIDs      []uint32 // SUBSCRIBE: at most one; PUBLISH from a server: any number
	SessionExpiry        *uint32
	AssignedClientID     string
	ServerKeepAlive      *uint16
	AuthMethod           string
	AuthData             []byte // nil: absent, as CorrelationData
	RequestProblemInfo   *byte
	WillDelay            *uint32
	RequestResponseInfo  *byte
	ResponseInfo         string
	ServerReference      string
	ReasonString         string
	ReceiveMaximum       *uint16
	TopicAliasMaximum    *uint16
	TopicAlias           *uint16
	MaximumQoS           *byte
	RetainAvailable      *byte
	User                 []UserProperty // in wire order
	MaximumPacketSize    *uint32
	WildcardSubAvailable *byte
	SubIDAvailable       *byte
	SharedSubAvailable   *byte
}

// propCtx is where a property block sits: a packet type, or ctxWill for
// the Will Properties of a CONNECT.
type propCtx uint8

const ctxWill propCtx = 16

// propType is the data type of a property value (section 1.5).
type propType uint8

const (
	ptByte   propType = iota + 1 // Byte
	ptUint16                     // Two Byte Integer
	ptUint32                     // Four Byte Integer
	ptVarInt                     // Variable Byte Integer
	ptString                     // UTF-8 Encoded String
	ptBinary                     // Binary Data
	ptPair                       // UTF-8 String Pair
)

// Bits of the allowed sets of Table 2-4.
const (
	pConnect     = 1 << TypeConnect
	pConnack     = 1 << TypeConnack
	pPublish     = 1 << TypePublish
	pSubscribe   = 1 << TypeSubscribe
	pDisconnect  = 1 << TypeDisconnect
	pAuth        = 1 << TypeAuth
	pWill        = 1 << ctxWill
	pAcks        = 1<<TypePuback | 1<<TypePubrec | 1<<TypePubrel | 1<<TypePubcomp
	pMessage     = pPublish | pWill // the properties of an Application Message
	pUserAllowed = pConnect | pConnack | pPublish | pWill | pAcks | pSubscribe | 1<<TypeSuback |
		1<<TypeUnsubscribe | 1<<TypeUnsuback | pDisconnect | pAuth
)

// propInfo is the Table 2-4 row of a property, and the section that states
// that including it twice is a Protocol Error.
type propInfo struct {
	name    string
	typ     propType
	allowed uint32 // a bit per propCtx
	section string
}

// info returns the row of id; ok is false for an identifier Table 2-4 does
// not define.
func (id PropID) info() (pi propInfo, ok bool) {
	switch id {
	case PropPayloadFormat:
		return propInfo{"Payload Format Indicator", ptByte, pMessage, "3.3.2.3.2"}, true
	case PropMessageExpiry:
		return propInfo{"Message Expiry Interval", ptUint32, pMessage, "3.3.2.3.3"}, true
	case PropContentType:
		return propInfo{"Content Type", ptString, pMessage, "3.3.2.3.9"}, true
	case PropResponseTopic:
		return propInfo{"Response Topic", ptString, pMessage, "3.3.2.3.5"}, true
	case PropCorrelationData:
		return propInfo{"Correlation Data", ptBinary, pMessage, "3.3.2.3.6"}, true
	case PropSubscriptionID:
		return propInfo{"Subscription Identifier", ptVarInt, pPublish | pSubscribe, "3.8.2.1.2"}, true
	case PropSessionExpiry:
		return propInfo{"Session Expiry Interval", ptUint32, pConnect | pConnack | pDisconnect, "3.1.2.11.2"}, true
	case PropAssignedClientID:
		return propInfo{"Assigned Client Identifier", ptString, pConnack, "3.2.2.3.7"}, true
	case PropServerKeepAlive:
		return propInfo{"Server Keep Alive", ptUint16, pConnack, "3.2.2.3.14"}, true
	case PropAuthMethod:
		return propInfo{"Authentication Method", ptString, pConnect | pConnack | pAuth, "3.1.2.11.9"}, true
	case PropAuthData:
		return propInfo{"Authentication Data", ptBinary, pConnect | pConnack | pAuth, "3.1.2.11.10"}, true
	case PropRequestProblemInfo:
		return propInfo{"Request Problem Information", ptByte, pConnect, "3.1.2.11.7"}, true
	case PropWillDelay:
		return propInfo{"Will Delay Interval", ptUint32, pWill, "3.1.3.2.2"}, true
	case PropRequestResponseInfo:
		return propInfo{"Request Response Information", ptByte, pConnect, "3.1.2.11.6"}, true
	case PropResponseInfo:
		return propInfo{"Response Information", ptString, pConnack, "3.2.2.3.15"}, true
	case PropServerReference:
		return propInfo{"Server Reference", ptString, pConnack | pDisconnect, "3.2.2.3.16"}, true
	case PropReasonString:
		return propInfo{"Reason String", ptString, pConnack | pAcks | 1<<TypeSuback | 1<<TypeUnsuback | pDisconnect | pAuth, "3.2.2.3.9"}, true
	case PropReceiveMaximum:
		return propInfo{"Receive Maximum", ptUint16, pConnect | pConnack, "3.1.2.11.3"}, true
	case PropTopicAliasMaximum:
		return propInfo{"Topic Alias Maximum", ptUint16, pConnect | pConnack, "3.1.2.11.5"}, true
	case PropTopicAlias:
		return propInfo{"Topic Alias", ptUint16, pPublish, "3.3.2.3.4"}, true
	case PropMaximumQoS:
		return propInfo{"Maximum QoS", ptByte, pConnack, "3.2.2.3.4"}, true
	case PropRetainAvailable:
		return propInfo{"Retain Available", ptByte, pConnack, "3.2.2.3.5"}, true
	case PropUserProperty:
		return propInfo{"User Property", ptPair, pUserAllowed, "3.1.2.11.8"}, true
	case PropMaximumPacketSize:
		return propInfo{"Maximum Packet Size", ptUint32, pConnect | pConnack, "3.1.2.11.4"}, true
	case PropWildcardSubAvailable:
		return propInfo{"Wildcard Subscription Available", ptByte, pConnack, "3.2.2.3.11"}, true
	case PropSubIDAvailable:
		return propInfo{"Subscription Identifier Available", ptByte, pConnack, "3.2.2.3.12"}, true
	case PropSharedSubAvailable:
		return propInfo{"Shared Subscription Available", ptByte, pConnack, "3.2.2.3.13"}, true
	}
	return propInfo{}, false
}

// String returns the name Table 2-4 gives id.
func (id PropID) String() string {
	if pi, ok := id.info(); ok {
		return pi.name
	}
	return "property 0x" + strconv.FormatUint(uint64(id), 16)
}

// AllowedIn reports whether Table 2-4 allows the property in a packet of
// type t (the Will Properties of a CONNECT are not a packet type: they
// allow the Application Message properties and the Will Delay Interval).
func (id PropID) AllowedIn(t Type) bool {
	pi, ok := id.info()
	return ok && t <= TypeAuth && pi.allowed&(1<<t) != 0
}

// name is the context's name in errors.
func (c propCtx) name() string {
	if c == ctxWill {
		return "the Will Properties"
	}
	return "a " + Type(c).String()
}
