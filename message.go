package tern

import (
	"errors"
	"fmt"
	"time"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/topics"
)

// A message travels through the broker as a session.Message: MQTT 5
// properties that are forwarded unchanged stay encoded (Props), as they
// arrived, so that forwarding costs no decoding. Hooks, handlers and the
// storage see other forms, converted here.

// publicMessage is m as hooks and handlers see it, its properties decoded.
// now (Unix nanoseconds, 0 for the current time) gives the remaining
// Message Expiry Interval.
func publicMessage(m *session.Message, now int64) Message {
	out := Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain}
	if m.HasFormat {
		out.PayloadFormat = PayloadBytes + PayloadFormat(m.Format)
	}
	switch {
	case m.Expires < 0: // a will: the interval starts when it is published
		out.MessageExpiry = time.Duration(-m.Expires) * time.Second
	case m.Expires > 0:
		if now == 0 {
			now = time.Now().UnixNano()
		}
		out.MessageExpiry = time.Duration(remainingSeconds(m.Expires, now)) * time.Second
	}
	if len(m.Props) > 0 {
		pp := packets.PublishProps{Raw: m.Props}
		if p, err := pp.Properties(); err == nil {
			out.ContentType, out.ResponseTopic = p.ContentType, p.ResponseTopic
			out.CorrelationData, out.UserProperties = p.CorrelationData, p.User
		}
	}
	return out
}

// remainingSeconds is what is left of a Message Expiry Interval that ends
// at expires, in whole seconds rounded up, at now (both Unix nanoseconds)
// [v5 MQTT-3.3.2-6].
func remainingSeconds(expires, now int64) uint32 {
	left := expires - now
	if left <= 0 {
		return 0
	}
	return uint32(min((left+int64(time.Second)-1)/int64(time.Second), 0xFFFFFFFF))
}

// errBadProperty refuses a Message whose MQTT 5 properties cannot be sent.
var errBadProperty = errors.New("tern: invalid message property")

// sessionMessage is the broker's form of m (which it validates), its
// expiry counted from now.
func sessionMessage(m *Message, now time.Time) (session.Message, error) {
	out := session.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain}
	switch m.PayloadFormat {
	case PayloadUnspecified:
	case PayloadBytes, PayloadUTF8:
		out.HasFormat, out.Format = true, byte(m.PayloadFormat-PayloadBytes)
	default:
		return out, fmt.Errorf("%w: PayloadFormat %d", errBadProperty, m.PayloadFormat)
	}
	if m.MessageExpiry < 0 || m.MessageExpiry > NoExpiry {
		return out, fmt.Errorf("%w: MessageExpiry %v", errBadProperty, m.MessageExpiry)
	}
	if m.MessageExpiry > 0 {
		secs := (m.MessageExpiry + time.Second - 1) / time.Second
		out.Expires = now.Add(secs * time.Second).UnixNano()
	}
	if m.ResponseTopic != "" {
		if err := topics.ValidName(m.ResponseTopic); err != nil {
			return out, fmt.Errorf("%w: ResponseTopic: %w", errBadProperty, err)
		}
	}
	if m.ContentType != "" || m.ResponseTopic != "" || m.CorrelationData != nil || len(m.UserProperties) > 0 {
		raw, err := packets.AppendPublishRaw(nil, &packets.Properties{
			ContentType: m.ContentType, ResponseTopic: m.ResponseTopic,
			CorrelationData: m.CorrelationData, User: m.UserProperties,
		})
		if err != nil {
			return out, fmt.Errorf("%w: %w", errBadProperty, err)
		}
		out.Props = raw
	}
	return out, nil
}

// storedMessage is m as the store keeps it.
func storedMessage(m *session.Message) storage.Message {
	return storage.Message{
		Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		HasFormat: m.HasFormat, Format: m.Format, Props: m.Props, Expires: m.Expires,
	}
}

// restoredMessage is a stored message as the broker holds it.
func restoredMessage(r *storage.Message) *session.Message {
	return &session.Message{
		Topic: r.Topic, Payload: r.Payload, QoS: r.QoS, Retain: r.Retain,
		HasFormat: r.HasFormat, Format: r.Format, Props: r.Props, Expires: r.Expires,
	}
}

// appendPublish encodes a PUBLISH of m for a client speaking MQTT 5 (v5)
// or 3.1.1: the delivered QoS, the RETAIN flag on the wire, DUP, the packet
// identifier (patched later for a shared encoding), and, for MQTT 5, the
// message's properties, the remaining expiry at now and subIDs.
func appendPublish(dst []byte, m *session.Message, v5 bool, qos byte, retain, dup bool, id uint16, subIDs []uint32, now int64) []byte {
	// Field by field, not as a composite literal: the literal is built
	// apart and copied, and the copy's wide loads stall on the narrow
	// stores that built it, a cost paid for every message.
	var p packets.Publish
	p.Topic, p.Payload = m.Topic, m.Payload
	p.QoS, p.Retain, p.Dup, p.PacketID = qos, retain, dup && qos > 0, id
	if qos > 0 && id == 0 {
		p.PacketID = 1
	}
	if v5 {
		p.Version = packets.Level5
		p.Props.HasPayloadFormat, p.Props.PayloadFormat = m.HasFormat, m.Format
		p.Props.SubscriptionIDs, p.Props.Raw = subIDs, m.Props
		if m.Expires > 0 {
			// [v5 MQTT-3.3.2-6] the received interval minus the time it
			// waited in the broker.
			p.Props.HasMessageExpiry, p.Props.MessageExpiry = true, remainingSeconds(m.Expires, now)
		}
	}
	out, err := p.Append(dst)
	if err != nil {
		return dst // not representable; it was validated on the way in
	}
	return out
}
