package tern

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/ternmq/tern/packets"
)

// proto is what a connection's CONNECT negotiated: the protocol level and,
// for MQTT 5, what each side announced. It is set by the reader before the
// connection is bound to a session and read-only afterwards, except where
// a field says otherwise. The differences between protocol levels in what
// the broker writes live in its methods.
type proto struct {
	// The fields a delivery reads come first (conn puts them in the
	// cache line of its write buffer).
	version byte // packets.Level31, Level311 or Level5
	// noProblem: the client set Request Problem Information to 0, so no
	// Reason String or User Property goes on any packet but PUBLISH,
	// CONNACK and DISCONNECT [v5 MQTT-3.1.2-29].
	noProblem bool
	// aliasOut is how many topic aliases Tern may define towards the
	// client: Options.OutboundTopicAliases within the client's Topic
	// Alias Maximum; 0: none (alias.go).
	aliasOut uint16
	// aliasMax is the Topic Alias Maximum Tern announced.
	aliasMax uint16
	// plainMax is the largest PUBLISH kept without a closer look
	// (keepPublish): the client's Maximum Packet Size, or MaxInt without
	// one; -1 with outbound aliases, which need that look.
	plainMax int
	// maxOut is the largest packet the client accepts (its Maximum Packet
	// Size); 0: the protocol's limit. Nothing larger is sent
	// [v5 MQTT-3.1.2-24].
	maxOut int
	// authMethod is the CONNECT's Authentication Method, "" without one.
	authMethod string
	// connacked is set once a successful CONNACK is queued: from then on a
	// server DISCONNECT may be sent [v5 MQTT-3.14.0-1].
	connacked atomic.Bool
}

func (p *proto) v5() bool { return p.version == packets.Level5 }

// setPlainMax sets plainMax from what the CONNECT negotiated.
func (p *proto) setPlainMax() {
	switch {
	case p.aliasOut != 0:
		p.plainMax = -1
	case p.maxOut == 0:
		p.plainMax = math.MaxInt
	default:
		p.plainMax = p.maxOut
	}
}

// fits reports whether a packet of n bytes may be sent to the client.
func (p *proto) fits(n int) bool { return p.maxOut == 0 || n <= p.maxOut }

// ReasonError is a refusal with an MQTT 5 Reason Code and Reason String. A
// hook returns it (or an error wrapping it) to choose what an MQTT 5 client
// is told: the CONNACK of a refused CONNECT (for example 0x86 bad user name
// or password, 0x87 not authorized, 0x8C bad authentication method, 0x89
// server busy), the SUBACK code of a refused subscription (0x87, 0xA2
// wildcard subscriptions not supported...), the PUBACK or PUBREC of a
// refused publish (0x87, 0x97 quota exceeded...). The Reason String is sent
// when the client allows it. A 3.1.1 client gets the nearest 3.1.1 answer
// (CONNACK 0x04, 0x05, 0x03..., SUBACK 0x80; a refused publish is
// acknowledged as usual). A code that does not fit the packet is replaced
// by the packet's generic refusal (0x80, or 0x87 for CONNACK).
type ReasonError struct {
	Code   packets.ReasonCode
	Reason string // the Reason String; "" for none
	Err    error  // an underlying error, for errors.Is and logs; may be nil
}

func (e *ReasonError) Error() string {
	msg := fmt.Sprintf("tern: refused with reason code 0x%02X (%s)", byte(e.Code), e.Code)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *ReasonError) Unwrap() error { return e.Err }

// reasonFor turns a refusal into the Reason Code and Reason String of a
// packet of type t: a ReasonError's own code when t allows it, otherwise
// the code the broker's sentinel errors stand for, otherwise def.
func reasonFor(err error, t packets.Type, def packets.ReasonCode) (packets.ReasonCode, string) {
	var re *ReasonError
	if errors.As(err, &re) {
		if re.Code.ValidFor(t) && re.Code.IsError() {
			return re.Code, re.Reason
		}
		return def, re.Reason
	}
	var code packets.ReasonCode
	switch {
	case errors.Is(err, ErrBadCredentials):
		code = packets.BadUserNameOrPassword
	case errors.Is(err, ErrServerUnavailable):
		code = packets.ServerUnavailable
	case errors.Is(err, ErrNotAuthorized), errors.Is(err, ErrSessionOwned):
		code = packets.NotAuthorized
	case errors.Is(err, errQuotaExceeded):
		code = packets.QuotaExceeded
	case errors.Is(err, ErrClusterUnavailable):
		return packets.UnspecifiedError, "cluster unavailable"
	default:
		return def, ""
	}
	if !code.ValidFor(t) {
		return def, ""
	}
	return code, ""
}

// connack311 is the MQTT 3.1.1 CONNACK return code nearest to an MQTT 5
// Connect Reason Code.
func connack311(code packets.ReasonCode) byte {
	switch code {
	case packets.Success:
		return packets.Accepted
	case packets.UnsupportedProtocolVersion:
		return packets.RefusedProtocolVersion
	case packets.ClientIdentifierNotValid:
		return packets.RefusedIdentifierRejected
	case packets.ServerUnavailable, packets.ServerBusy, packets.QuotaExceeded, packets.ConnectionRateExceeded,
		packets.UseAnotherServer, packets.ServerMoved:
		return packets.RefusedServerUnavailable
	case packets.BadUserNameOrPassword:
		return packets.RefusedBadUsernamePassword
	}
	return packets.RefusedNotAuthorized
}

// connack encodes a CONNACK. props are MQTT 5 properties (ignored for
// 3.1.1); those that would make the packet larger than the client accepts
// are left out [v5 MQTT-3.2.2-19, MQTT-3.2.2-20].
func (p *proto) connack(present bool, code packets.ReasonCode, props *packets.Properties) []byte {
	if !p.v5() {
		sp := byte(0)
		if present {
			sp = 1
		}
		return []byte{0x20, 2, sp, connack311(code)}
	}
	ack := packets.Connack{Version: packets.Level5, SessionPresent: present, ReturnCode: byte(code)}
	if props != nil {
		ack.Properties = *props
	}
	out := p.appendFitting(nil, &ack, &ack.Properties)
	return out
}

// appendFitting encodes pkt, whose properties are props, dropping its
// Reason String and then its User Properties when the packet would be
// larger than the client accepts.
func (p *proto) appendFitting(dst []byte, pkt packets.Packet, props *packets.Properties) []byte {
	for {
		out, err := pkt.Append(dst)
		if err != nil {
			// A value the codec refuses (an over-long reason string):
			// send the packet without the optional properties.
			if props.ReasonString == "" && props.User == nil {
				return dst
			}
			props.ReasonString, props.User = "", nil
			continue
		}
		if p.fits(len(out)-len(dst)) || (props.ReasonString == "" && props.User == nil) {
			return out
		}
		if props.ReasonString != "" {
			props.ReasonString = ""
		} else {
			props.User = nil
		}
	}
}

// ack appends a PUBACK, PUBREC, PUBREL or PUBCOMP. In MQTT 5 it carries
// code and, when the client allows it, reason as the Reason String.
func (p *proto) ack(dst []byte, t packets.Type, id uint16, code packets.ReasonCode, reason string) []byte {
	if !p.v5() || (code == packets.Success && reason == "") {
		// The two-byte form; in MQTT 5 it means Success without
		// properties.
		return appendAck(dst, t, id)
	}
	var props packets.Properties
	if !p.noProblem {
		props.ReasonString = reason
	}
	var pkt packets.Packet
	switch t {
	case packets.TypePuback:
		pkt = &packets.Puback{Version: packets.Level5, PacketID: id, ReasonCode: code, Properties: props}
	case packets.TypePubrec:
		pkt = &packets.Pubrec{Version: packets.Level5, PacketID: id, ReasonCode: code, Properties: props}
	case packets.TypePubrel:
		pkt = &packets.Pubrel{Version: packets.Level5, PacketID: id, ReasonCode: code, Properties: props}
	case packets.TypePubcomp:
		pkt = &packets.Pubcomp{Version: packets.Level5, PacketID: id, ReasonCode: code, Properties: props}
	default:
		return appendAck(dst, t, id)
	}
	return p.appendFitting(dst, pkt, pktProps(pkt))
}

// pktProps returns the Properties of an acknowledgement packet.
func pktProps(pkt packets.Packet) *packets.Properties {
	switch a := pkt.(type) {
	case *packets.Puback:
		return &a.Properties
	case *packets.Pubrec:
		return &a.Properties
	case *packets.Pubrel:
		return &a.Properties
	case *packets.Pubcomp:
		return &a.Properties
	case *packets.Suback:
		return &a.Properties
	case *packets.Unsuback:
		return &a.Properties
	case *packets.Disconnect:
		return &a.Properties
	case *packets.Auth:
		return &a.Properties
	}
	return &packets.Properties{}
}

// suback appends a SUBACK with one code per filter: granted QoS or
// refusal, as 3.1.1 return codes (any refusal is 0x80) or MQTT 5 reason
// codes.
func (p *proto) suback(dst []byte, id uint16, codes []packets.ReasonCode, reason string) []byte {
	rc := make([]byte, len(codes))
	for i, code := range codes {
		rc[i] = byte(code)
		if !p.v5() && code.IsError() {
			rc[i] = packets.SubackFailure
		}
	}
	ack := packets.Suback{Version: p.version, PacketID: id, ReturnCodes: rc}
	if p.v5() && !p.noProblem {
		ack.Properties.ReasonString = reason
	}
	return p.appendFitting(dst, &ack, &ack.Properties)
}

// unsuback appends an UNSUBACK; MQTT 5 carries one code per filter.
func (p *proto) unsuback(dst []byte, id uint16, codes []packets.ReasonCode) []byte {
	if !p.v5() {
		return appendAck(dst, packets.TypeUnsuback, id)
	}
	rc := make([]byte, len(codes))
	for i, code := range codes {
		rc[i] = byte(code)
	}
	ack := packets.Unsuback{Version: packets.Level5, PacketID: id, ReasonCodes: rc}
	return p.appendFitting(dst, &ack, &ack.Properties)
}

// disconnect encodes the DISCONNECT a server sends an MQTT 5 client before
// it closes the connection; nil for 3.1.1, which has no such packet, and
// before a successful CONNACK [v5 MQTT-3.14.0-1].
func (p *proto) disconnect(code packets.ReasonCode, reason string) []byte {
	if !p.connacked.Load() || !p.v5() {
		return nil
	}
	d := packets.Disconnect{Version: packets.Level5, ReasonCode: code}
	d.Properties.ReasonString = reason // allowed even without problem information
	return p.appendFitting(nil, &d, &d.Properties)
}

// Errors that end an MQTT 5 connection with a particular reason code.
var (
	errReceiveMaximum = errors.New("tern: more unacknowledged QoS 1 and 2 PUBLISHes than the Receive Maximum")
	errTopicAlias     = errors.New("tern: invalid topic alias")
	errPayloadFormat  = errors.New("tern: payload is not UTF-8 although its Payload Format Indicator says so")
	errQuotaExceeded  = errors.New("tern: quota exceeded")
)

// disconnectReason is the Reason Code of the DISCONNECT that tells an MQTT
// 5 client why the broker ends its connection, and whether there is one
// (none for network errors, or when the client ended it).
func disconnectReason(err error) (packets.ReasonCode, string, bool) {
	var re *ReasonError
	var pe *packets.Error
	switch {
	case err == nil:
		return 0, "", false
	case errors.As(err, &re):
		if re.Code.ValidFor(packets.TypeDisconnect) && re.Code.IsError() {
			return re.Code, re.Reason, true
		}
		return packets.UnspecifiedError, re.Reason, true
	case errors.Is(err, ErrTakenOver):
		return packets.SessionTakenOver, "", true
	case errors.Is(err, ErrServerShutdown):
		return packets.ServerShuttingDown, "", true
	case errors.Is(err, ErrKeepAliveTimeout):
		return packets.KeepAliveTimeout, "", true
	case errors.Is(err, ErrKicked):
		return packets.AdministrativeAction, "", true
	case errors.Is(err, packets.ErrPacketTooLarge):
		return packets.PacketTooLarge, "", true
	case errors.Is(err, errReceiveMaximum):
		return packets.ReceiveMaximumExceeded, "", true
	case errors.Is(err, errTopicAlias):
		return packets.TopicAliasInvalid, "", true
	case errors.Is(err, errPayloadFormat):
		return packets.PayloadFormatInvalid, "", true
	case errors.Is(err, errQuotaExceeded):
		return packets.QuotaExceeded, "", true
	case errors.Is(err, ErrTooManyLevels):
		return packets.TopicNameInvalid, "", true
	case errors.As(err, &pe):
		if pe.Code.ValidFor(packets.TypeDisconnect) && pe.Code.IsError() {
			return pe.Code, "", true
		}
		return packets.MalformedPacket, "", true
	case errors.Is(err, ErrProtocol):
		return packets.ProtocolError, "", true
	}
	return 0, "", false
}
