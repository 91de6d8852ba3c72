package tern

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/storage"
)

// errDisconnect ends the reader loop after a DISCONNECT.
var errDisconnect = errors.New("tern: client sent DISCONNECT")

// handle processes one packet after CONNECT. A returned error closes the
// connection (section 4.8: a protocol violation closes the connection;
// MQTT 5, section 4.13: with a DISCONNECT that says why).
func (c *conn) handle(fh packets.FixedHeader, body []byte) error {
	v := c.proto.version
	switch fh.Type {
	case packets.TypePublish:
		return c.onPublish(fh, body)
	case packets.TypePuback, packets.TypePubrec, packets.TypePubrel, packets.TypePubcomp:
		return c.onAck(fh, body)
	case packets.TypeSubscribe:
		p := packets.Subscribe{Version: v}
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		return c.onSubscribe(&p)
	case packets.TypeUnsubscribe:
		p := packets.Unsubscribe{Version: v}
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		return c.onUnsubscribe(&p)
	case packets.TypePingreq:
		p := packets.Pingreq{Version: v}
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		// [MQTT-3.12.4-1] [v5 MQTT-3.12.4-1] answer PINGREQ with PINGRESP.
		c.queue([]byte{0xD0, 0})
		return nil
	case packets.TypeDisconnect:
		return c.onDisconnect(fh, body)
	case packets.TypeAuth:
		return c.onAuth(fh, body)
	case packets.TypeConnect:
		// [MQTT-3.1.0-2] [v5 MQTT-3.1.0-2] a second CONNECT is a protocol
		// violation.
		return fmt.Errorf("%w: second CONNECT [MQTT-3.1.0-2]", ErrProtocol)
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP: only a server sends them.
		return fmt.Errorf("%w: client sent %v", ErrProtocol, fh.Type)
	}
}

// errDisconnectWithWill ends the reader loop after an MQTT 5 DISCONNECT
// whose reason code asks for the will to be published.
var errDisconnectWithWill = errors.New("tern: client sent DISCONNECT with a reason code that publishes the will")

// onDisconnect handles the client's DISCONNECT: the will is deleted
// [MQTT-3.14.4-3]; in MQTT 5 only with reason code 0x00, and the Session
// Expiry Interval may change [v5 MQTT-3.14.4-3].
func (c *conn) onDisconnect(fh packets.FixedHeader, body []byte) error {
	p := packets.Disconnect{Version: c.proto.version}
	if err := p.Decode(fh, body); err != nil {
		return err
	}
	if c.proto.v5() {
		if se := p.Properties.SessionExpiry; se != nil {
			if err := c.b.setSessionExpiry(c.s, *se); err != nil {
				return err
			}
		}
		if p.ReasonCode != packets.NormalDisconnection {
			return errDisconnectWithWill
		}
	}
	c.willDone.Store(true)
	return errDisconnect
}

func isSysTopic(t string) bool { return strings.HasPrefix(t, "$SYS/broker/") }

// queue appends bytes for this connection's own writer (acknowledgements),
// started at the end of the read batch.
func (c *conn) queue(p []byte) {
	c.mu.Lock()
	c.out = append(c.buffer(), p...)
	kick := c.touchLocked()
	c.mu.Unlock()
	if kick {
		c.sc.kick = append(c.sc.kick, c)
	}
}

func (c *conn) queueAck(t packets.Type, id uint16) {
	var a [4]byte
	c.queue(appendAck(a[:0], t, id))
}

// queueAckCode queues an acknowledgement with an MQTT 5 reason code.
func (c *conn) queueAckCode(t packets.Type, id uint16, code packets.ReasonCode, reason string) {
	if code == packets.Success && reason == "" {
		c.queueAck(t, id)
		return
	}
	c.queue(c.proto.ack(nil, t, id, code, reason))
}

func (c *conn) onPublish(fh packets.FixedHeader, body []byte) error {
	p := &c.sc.pub
	p.Version = c.proto.version
	if err := p.Decode(fh, body); err != nil {
		return err
	}
	b := c.b
	b.stats.received(p.QoS)
	// Field by field: see appendPublish.
	var m session.Message
	m.Topic, m.Payload, m.QoS, m.Retain = p.Topic, p.Payload, p.QoS, p.Retain
	if c.proto.v5() {
		if err := c.publishProps(p, &m); err != nil {
			return err
		}
		if p.QoS == 0 && b.opts.ValidatePayloadFormat && m.HasFormat && m.Format == 1 && !utf8.Valid(m.Payload) {
			return errPayloadFormat // [v5 section 3.3.2.3.2] DISCONNECT 0x99
		}
	}
	// Deep topics cost memory per level: over Options.MaxTopicLevels the
	// connection closes, as Mosquitto (MQTT 5: DISCONNECT 0x90).
	if err := b.opts.checkLevels("topic", m.Topic); err != nil {
		return fmt.Errorf("%w: PUBLISH %w", ErrProtocol, err)
	}
	if isSysTopic(m.Topic) {
		// $SYS/broker/ holds the broker's own statistics: a client's
		// publish there is acknowledged as its QoS requires but neither
		// stored nor forwarded, so nobody can forge them (section 4.7.2).
		// Other $-topics work as any topic.
		b.stats.drop(DropSysTopic)
		b.log.Debug("publish to $SYS/broker dropped", "client", c.client.ID, "topic", m.Topic)
		c.pubAck(p.QoS, p.PacketID, packets.NotAuthorized, "")
		return nil
	}
	if p.QoS > 0 && c.proto.v5() && b.opts.ValidatePayloadFormat && m.HasFormat && m.Format == 1 && !utf8.Valid(m.Payload) {
		// [v5 section 3.3.2.3.2] a receiver that checks the payload
		// answers 0x99 and does not take the message.
		b.stats.drop(DropPayloadFormat)
		c.pubAck(p.QoS, p.PacketID, packets.PayloadFormatInvalid, "")
		return nil
	}
	switch p.QoS {
	case 0:
		b.publish(c.client, c, &m)
	case 1:
		lsn, matched, err := b.publish(c.client, c, &m)
		if err := c.undurable(err); err != nil {
			return err
		}
		// [MQTT-4.3.2-2] [v5 MQTT-4.3.2-4] acknowledge with PUBACK after
		// taking ownership: with a Store, once the message is stored.
		c.waitFor(lsn)
		code, reason := pubackCode(err, matched)
		c.pubAck(1, p.PacketID, code, reason)
	case 2:
		s := c.s
		s.mu.Lock()
		seen := s.s.Inbound(p.PacketID)
		if !seen && c.proto.v5() && int(c.qos2In) >= b.opts.ReceiveMaximum {
			s.mu.Unlock()
			// [v5 MQTT-3.3.4-7] more unacknowledged QoS 2 PUBLISHes than
			// Tern's Receive Maximum: DISCONNECT 0x93 (section 3.3.4).
			return errReceiveMaximum
		}
		if !seen {
			s.s.AddInbound(p.PacketID)
			c.qos2In++
			if b.persistent(s) {
				b.record(c, storage.Op{Kind: storage.PutInbound, Inbound: storage.Inbound{ClientID: s.s.ID, PacketID: p.PacketID}})
			}
		}
		s.mu.Unlock()
		code, reason := packets.Success, ""
		if !seen {
			// Forwarded once, on first receipt; a repeat with the same
			// packet identifier before PUBREL is only acknowledged
			// [MQTT-4.3.3-2] [v5 MQTT-4.3.3-10].
			lsn, matched, err := b.publish(c.client, c, &m)
			c.waitFor(lsn)
			code, reason = pubackCode(err, matched)
			closing := c.undurable(err)
			if code.IsError() && (c.proto.v5() || closing != nil) {
				// [v5 MQTT-4.3.3-9] after PUBREC 0x80 or more no PUBREL
				// comes: the identifier starts a new message, and the
				// refused PUBLISH no longer counts against the Receive
				// Maximum (section 4.9). A 3.1.1 client, told nothing,
				// still sends PUBREL.
				s.mu.Lock()
				if s.s.ReleaseInbound(p.PacketID) && b.persistent(s) {
					b.record(c, storage.Op{Kind: storage.DeleteInbound, Inbound: storage.Inbound{ClientID: s.s.ID, PacketID: p.PacketID}})
				}
				s.mu.Unlock()
				c.qos2In -= min(c.qos2In, 1)
			}
			if closing != nil {
				// Not taken: the retransmission is a new message.
				return closing
			}
		}
		c.pubAck(2, p.PacketID, code, reason)
	}
	return nil
}

// publishProps takes an MQTT 5 PUBLISH's properties into m: the topic
// alias resolved [v5 MQTT-3.3.2-12], the others as they come.
func (c *conn) publishProps(p *packets.Publish, m *session.Message) error {
	pp := &p.Props
	if len(pp.SubscriptionIDs) > 0 {
		// [v5 MQTT-3.3.4-6] only a server sends Subscription Identifiers.
		return fmt.Errorf("%w: PUBLISH from a client with a Subscription Identifier [v5 MQTT-3.3.4-6]", ErrProtocol)
	}
	if pp.HasTopicAlias {
		a := pp.TopicAlias
		if a == 0 || a > c.proto.aliasMax {
			// [v5 MQTT-3.2.2-17, MQTT-3.3.2-8] section 3.3.2.3.4: DISCONNECT 0x94.
			return fmt.Errorf("%w: %d, the maximum is %d", errTopicAlias, a, c.proto.aliasMax)
		}
		if p.Topic != "" {
			x := c.extra()
			if x.aliases == nil {
				x.aliases = make([]string, c.proto.aliasMax)
			}
			x.aliases[a-1] = p.Topic
		} else {
			if c.x == nil || c.x.aliases == nil || c.x.aliases[a-1] == "" {
				// Section 3.3.2.3.4: an alias not set on this connection.
				return fmt.Errorf("%w: topic alias %d is not set", ErrProtocol, a)
			}
			m.Topic = c.x.aliases[a-1]
		}
	}
	m.HasFormat, m.Format = pp.HasPayloadFormat, pp.PayloadFormat
	if pp.HasMessageExpiry {
		m.Expires = time.Now().Add(time.Duration(pp.MessageExpiry) * time.Second).UnixNano()
	}
	m.Props = pp.Raw
	return nil
}

// pubackCode is the MQTT 5 reason code of the PUBACK or PUBREC for a
// publish: 0x10 when no subscription matched, the hook's refusal (0x87 by
// default) when one refused it.
func pubackCode(err error, matched int) (packets.ReasonCode, string) {
	switch {
	case err != nil:
		return reasonFor(err, packets.TypePuback, packets.NotAuthorized)
	case matched == 0:
		return packets.NoMatchingSubscribers, ""
	}
	return packets.Success, ""
}

// undurable is the error that ends an MQTT 3.1.1 connection whose QoS 1
// or 2 PUBLISH the cluster could not make durable: 3.1.1 has no negative
// acknowledgement, and a client that is not acknowledged sends the
// message again when it reconnects [MQTT-4.4.0-1]. An MQTT 5 client gets
// PUBACK or PUBREC 0x80 instead.
func (c *conn) undurable(err error) error {
	if err != nil && !c.proto.v5() && errors.Is(err, ErrClusterUnavailable) {
		return err
	}
	return nil
}

// pubAck acknowledges a PUBLISH as its QoS requires: PUBACK at QoS 1,
// PUBREC at QoS 2 [MQTT-3.3.4-1] [v5 MQTT-3.3.4-1]. The reason code
// reaches MQTT 5 clients only.
func (c *conn) pubAck(qos byte, id uint16, code packets.ReasonCode, reason string) {
	switch qos {
	case 1:
		c.queueAckCode(packets.TypePuback, id, code, reason)
	case 2:
		c.queueAckCode(packets.TypePubrec, id, code, reason)
	}
}

func (c *conn) onAck(fh packets.FixedHeader, body []byte) error {
	// The acknowledgement's properties are checked and dropped: the
	// broker acts on its identifier and code alone.
	id, code, err := packets.DecodeAckID(c.proto.version, fh, body)
	if err != nil {
		return err
	}
	s := c.s
	b := c.b
	switch fh.Type {
	case packets.TypePuback:
		// Any reason code completes the delivery; one of 0x80 or more is
		// not sent again [v5 MQTT-4.4.0-2, MQTT-4.8.2-6].
		s.mu.Lock()
		if d := s.s.Puback(id); d != nil {
			if b.persistent(s) {
				b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq))
			}
			if !code.IsError() {
				s.noteDelivered(d)
			}
		}
		s.pumpLocked(c)
		s.mu.Unlock()
		s.fireEvents()
	case packets.TypePubrec:
		s.mu.Lock()
		d := s.s.Pubrec(id)
		if d != nil && code.IsError() {
			// [v5 MQTT-4.4.0-2] refused by the client: done, no PUBREL.
			s.s.Drop(d)
			if b.persistent(s) {
				b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq))
			}
			s.pumpLocked(c)
			s.mu.Unlock()
			s.fireEvents()
			return nil
		}
		if d != nil && b.persistent(s) {
			b.record(c, deliveryOp(s.s.ID, d))
		}
		s.mu.Unlock()
		// [MQTT-4.3.3-1] [v5 MQTT-4.3.3-4] answer PUBREC with PUBREL; sent
		// even for an unknown identifier so that the client's state can
		// complete (MQTT 5 says 0x92, packet identifier not found).
		rc := packets.Success
		if d == nil {
			rc = packets.PacketIdentifierNotFound
		}
		c.queueAckCode(packets.TypePubrel, id, rc, "")
	case packets.TypePubrel:
		s.mu.Lock()
		known := s.s.ReleaseInbound(id)
		if known && b.persistent(s) {
			b.record(c, storage.Op{Kind: storage.DeleteInbound, Inbound: storage.Inbound{ClientID: s.s.ID, PacketID: id}})
		}
		s.mu.Unlock()
		rc := packets.Success
		if known {
			c.qos2In -= min(c.qos2In, 1)
		} else {
			rc = packets.PacketIdentifierNotFound
		}
		// [MQTT-4.3.3-2] [v5 MQTT-4.3.3-11] answer PUBREL with PUBCOMP,
		// known identifier or not.
		c.queueAckCode(packets.TypePubcomp, id, rc, "")
	case packets.TypePubcomp:
		s.mu.Lock()
		if d := s.s.Pubcomp(id); d != nil {
			if b.persistent(s) {
				b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq))
			}
			s.noteDelivered(d)
		}
		s.pumpLocked(c)
		s.mu.Unlock()
		s.fireEvents()
	}
	return nil
}
