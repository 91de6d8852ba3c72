package tern

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/topics"
)

// errDisconnect ends the reader loop after a DISCONNECT.
var errDisconnect = errors.New("tern: client sent DISCONNECT")

// handle processes one packet after CONNECT. A returned error closes the
// connection (section 4.8: a protocol violation closes the connection).
func (c *conn) handle(fh packets.FixedHeader, body []byte) error {
	switch fh.Type {
	case packets.TypePublish:
		return c.onPublish(fh, body)
	case packets.TypePuback, packets.TypePubrec, packets.TypePubrel, packets.TypePubcomp:
		return c.onAck(fh, body)
	case packets.TypeSubscribe:
		var p packets.Subscribe
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		return c.onSubscribe(&p)
	case packets.TypeUnsubscribe:
		var p packets.Unsubscribe
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		return c.onUnsubscribe(&p)
	case packets.TypePingreq:
		var p packets.Pingreq
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		// [MQTT-3.12.4-1] answer PINGREQ with PINGRESP.
		c.queue([]byte{0xD0, 0})
		return nil
	case packets.TypeDisconnect:
		var p packets.Disconnect
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		// [MQTT-3.14.4-3] the will is deleted without being published.
		c.willDone.Store(true)
		return errDisconnect
	case packets.TypeConnect:
		// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
		return fmt.Errorf("%w: second CONNECT [MQTT-3.1.0-2]", ErrProtocol)
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP: only a server sends them.
		return fmt.Errorf("%w: client sent %v", ErrProtocol, fh.Type)
	}
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
		c.kick = append(c.kick, c)
	}
}

func (c *conn) queueAck(t packets.Type, id uint16) {
	var a [4]byte
	c.queue(appendAck(a[:0], t, id))
}

func (c *conn) onPublish(fh packets.FixedHeader, body []byte) error {
	p := &c.pub
	if err := p.Decode(fh, body); err != nil {
		return err
	}
	b := c.b
	// Deep topics cost memory per level: over the limit, close (as Mosquitto).
	if err := b.opts.checkLevels("topic", p.Topic); err != nil {
		return fmt.Errorf("%w: PUBLISH %w", ErrProtocol, err)
	}
	b.stats.publishReceived.Add(1)
	if isSysTopic(p.Topic) {
		// $SYS/broker/ holds the broker's own statistics: a client's
		// publish there is acknowledged as its QoS requires but neither
		// stored nor forwarded, so nobody can forge them (section 4.7.2).
		// Other $-topics work as any topic.
		b.stats.dropped.Add(1)
		b.log.Debug("publish to $SYS/broker dropped", "client", c.client.ID, "topic", p.Topic)
		switch p.QoS {
		case 1:
			c.queueAck(packets.TypePuback, p.PacketID)
		case 2:
			c.queueAck(packets.TypePubrec, p.PacketID)
		}
		return nil
	}
	switch p.QoS {
	case 0:
		b.publish(c.client, c, p.Topic, p.Payload, 0, p.Retain)
	case 1:
		lsn, _ := b.publish(c.client, c, p.Topic, p.Payload, 1, p.Retain)
		// [MQTT-4.3.2-2] acknowledge with PUBACK after taking ownership:
		// with a Store, once the message is stored.
		c.waitFor(lsn)
		c.queueAck(packets.TypePuback, p.PacketID)
	case 2:
		s := c.s
		s.mu.Lock()
		seen := s.s.Inbound(p.PacketID)
		if !seen {
			s.s.AddInbound(p.PacketID)
			if b.persistent(s) {
				b.record(c, storage.Op{Kind: storage.PutInbound, Inbound: storage.Inbound{ClientID: s.s.ID, PacketID: p.PacketID}})
			}
		}
		s.mu.Unlock()
		if !seen {
			// Forwarded once, on first receipt; a repeat with the same
			// packet identifier before PUBREL is only acknowledged
			// [MQTT-4.3.3-2].
			lsn, _ := b.publish(c.client, c, p.Topic, p.Payload, 2, p.Retain)
			c.waitFor(lsn)
		}
		c.queueAck(packets.TypePubrec, p.PacketID)
	}
	return nil
}

func (c *conn) onAck(fh packets.FixedHeader, body []byte) error {
	var id uint16
	switch fh.Type {
	case packets.TypePuback:
		var p packets.Puback
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		id = p.PacketID
	case packets.TypePubrec:
		var p packets.Pubrec
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		id = p.PacketID
	case packets.TypePubrel:
		var p packets.Pubrel
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		id = p.PacketID
	case packets.TypePubcomp:
		var p packets.Pubcomp
		if err := p.Decode(fh, body); err != nil {
			return err
		}
		id = p.PacketID
	}
	s := c.s
	b := c.b
	switch fh.Type {
	case packets.TypePuback:
		s.mu.Lock()
		if d := s.s.Puback(id); d != nil && b.persistent(s) {
			b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq))
		}
		s.pumpLocked(c)
		s.mu.Unlock()
	case packets.TypePubrec:
		s.mu.Lock()
		if d := s.s.Pubrec(id); d != nil && b.persistent(s) {
			b.record(c, deliveryOp(s.s.ID, d))
		}
		s.mu.Unlock()
		// [MQTT-4.3.3-1] answer PUBREC with PUBREL; sent even for an
		// unknown identifier so that the client's state can complete.
		c.queueAck(packets.TypePubrel, id)
	case packets.TypePubrel:
		s.mu.Lock()
		if s.s.ReleaseInbound(id) && b.persistent(s) {
			b.record(c, storage.Op{Kind: storage.DeleteInbound, Inbound: storage.Inbound{ClientID: s.s.ID, PacketID: id}})
		}
		s.mu.Unlock()
		// [MQTT-4.3.3-2] answer PUBREL with PUBCOMP, known identifier or not.
		c.queueAck(packets.TypePubcomp, id)
	case packets.TypePubcomp:
		s.mu.Lock()
		if d := s.s.Pubcomp(id); d != nil && b.persistent(s) {
			b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq))
		}
		s.pumpLocked(c)
		s.mu.Unlock()
	}
	return nil
}

func (c *conn) onSubscribe(p *packets.Subscribe) error {
	b := c.b
	for _, sub := range p.Subscriptions {
		if err := topics.ValidFilter(sub.Filter); err != nil {
			// An invalid filter is a protocol violation: close, as Mosquitto.
			return fmt.Errorf("%w: SUBSCRIBE filter: %w", ErrProtocol, err)
		}
		if err := b.opts.checkLevels("filter", sub.Filter); err != nil {
			return fmt.Errorf("%w: SUBSCRIBE %w", ErrProtocol, err)
		}
	}
	ctx := context.Background()
	codes := make([]byte, len(p.Subscriptions))
	granted := make([]bool, len(p.Subscriptions))
	for i, sub := range p.Subscriptions {
		if err := b.hooks.authorizeSubscribe(ctx, b, c.client, sub.Filter, sub.QoS); err != nil {
			codes[i] = packets.SubackFailure
			continue
		}
		// [MQTT-3.9.3-?] the granted QoS is the requested one: Tern
		// supports every QoS.
		codes[i] = sub.QoS
		granted[i] = true
	}
	s := c.s
	s.mu.Lock()
	for i, sub := range p.Subscriptions {
		if !granted[i] {
			continue
		}
		if c.overSubscriptionLimit(sub.Filter) {
			codes[i], granted[i] = packets.SubackFailure, false
			continue
		}
		// [MQTT-3.8.4-3] a repeated filter replaces the subscription.
		s.s.Subscribe(sub.Filter, sub.QoS)
		b.subs.Subscribe(s, sub.Filter, uint32(sub.QoS))
		if b.persistent(s) {
			b.record(c, storage.Op{Kind: storage.PutSubscription, Subscription: storage.Subscription{ClientID: s.s.ID, Filter: sub.Filter, QoS: sub.QoS}})
		}
	}
	// [MQTT-3.8.4-1, MQTT-3.8.4-2, MQTT-3.8.4-5, MQTT-3.9.3-1] SUBACK with
	// the same packet identifier and one return code per filter, in order.
	ack := packets.Suback{PacketID: p.PacketID, ReturnCodes: codes}
	c.mu.Lock()
	c.out, _ = ack.Append(c.out)
	kick := c.touchLocked()
	c.mu.Unlock()
	if kick {
		c.kick = append(c.kick, c)
	}
	// [MQTT-3.3.1-6, MQTT-3.8.4-3] the retained messages matching each
	// granted filter, with RETAIN set.
	for i, sub := range p.Subscriptions {
		if granted[i] {
			b.sendRetained(s, sub.Filter, sub.QoS)
		}
	}
	s.pumpLocked(c)
	s.mu.Unlock()
	for i, sub := range p.Subscriptions {
		if granted[i] {
			b.hooks.onSubscribe(b, c.client, sub.Filter, sub.QoS)
		}
	}
	return nil
}

// overSubscriptionLimit reports whether subscribing to filter would take
// the session past Options.MaxSubscriptionsPerClient, and counts and logs
// the refusal; replacing a subscription the session has is never over.
// s.mu is held.
func (c *conn) overSubscriptionLimit(filter string) bool {
	b, s := c.b, c.s.s
	limit := b.opts.MaxSubscriptionsPerClient
	if limit == 0 || len(s.Subs) < limit {
		return false
	}
	if _, had := s.Subs[filter]; had {
		return false
	}
	b.stats.subscriptionsRefused.Add(1)
	b.log.Debug("subscription refused: over Options.MaxSubscriptionsPerClient", "client", s.ID, "filter", filter, "limit", limit)
	return true
}

func (c *conn) onUnsubscribe(p *packets.Unsubscribe) error {
	b := c.b
	for _, f := range p.Filters {
		if err := topics.ValidFilter(f); err != nil {
			return fmt.Errorf("%w: UNSUBSCRIBE filter: %w", ErrProtocol, err)
		}
		if err := b.opts.checkLevels("filter", f); err != nil {
			return fmt.Errorf("%w: UNSUBSCRIBE %w", ErrProtocol, err)
		}
	}
	s := c.s
	var removed []string
	s.mu.Lock()
	for _, f := range p.Filters {
		// [MQTT-3.10.4-1, MQTT-3.10.4-2] delete the subscription, stop
		// adding messages for it.
		if s.s.Unsubscribe(f) {
			b.subs.Unsubscribe(s, f)
			removed = append(removed, f)
			if b.persistent(s) {
				b.record(c, storage.Op{Kind: storage.DeleteSubscription, Subscription: storage.Subscription{ClientID: s.s.ID, Filter: f}})
			}
		}
	}
	s.mu.Unlock()
	// [MQTT-3.10.4-4, MQTT-3.10.4-5] UNSUBACK, even when nothing matched.
	c.queueAck(packets.TypeUnsuback, p.PacketID)
	for _, f := range removed {
		b.hooks.onUnsubscribe(b, c.client, f)
	}
	return nil
}
