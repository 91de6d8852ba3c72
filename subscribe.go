package tern

import (
	"fmt"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/topics"
)

// onSubscribe handles a SUBSCRIBE as a sequence of one subscription per
// filter, answered by one SUBACK [MQTT-3.8.4-5] [v5 MQTT-3.8.4-5].
func (c *conn) onSubscribe(p *packets.Subscribe) error {
	b := c.b
	v5 := c.proto.v5()
	var id uint32
	if ids := p.Properties.SubscriptionIDs; len(ids) > 0 {
		id = ids[0] // at most one, the codec checked [v5 section 3.8.2.1.2]
	}
	codes := make([]packets.ReasonCode, len(p.Subscriptions))
	granted := make([]bool, len(p.Subscriptions))
	reason := ""
	for i, sub := range p.Subscriptions {
		filter, err := checkFilter(sub.Filter)
		if err != nil {
			if !v5 {
				// An invalid filter is a protocol violation: close, as
				// Mosquitto.
				return fmt.Errorf("%w: SUBSCRIBE filter: %w", ErrProtocol, err)
			}
			// MQTT 5 can say it of the one filter: SUBACK 0x8F.
			codes[i] = packets.TopicFilterInvalid
			continue
		}
		// Deep filters cost memory per level: over Options.MaxTopicLevels
		// the connection closes, as Mosquitto; MQTT 5 says it of the one
		// filter.
		if err := b.opts.checkLevels("filter", filter); err != nil {
			if !v5 {
				return fmt.Errorf("%w: SUBSCRIBE %w", ErrProtocol, err)
			}
			codes[i], reason = packets.TopicFilterInvalid, err.Error()
			continue
		}
		// A shared subscription is authorized as its filter, as Mosquitto
		// does: the group name is not a topic.
		if err := b.hooks.authorizeSubscribe(b.ctx, b, c.client, filter, sub.QoS); err != nil {
			codes[i], reason = reasonFor(err, packets.TypeSuback, packets.NotAuthorized)
			continue
		}
		// [MQTT-3.8.4-7] [v5 MQTT-3.8.4-7] the granted QoS is the
		// requested one: Tern supports every QoS.
		codes[i] = packets.ReasonCode(sub.QoS)
		granted[i] = true
	}
	s := c.s
	s.mu.Lock()
	isNew := make([]bool, len(p.Subscriptions))
	for i := range p.Subscriptions {
		sub := &p.Subscriptions[i]
		if !granted[i] {
			continue
		}
		if c.overSubscriptionLimit(sub.Filter) {
			// MQTT 5 has a code for it: 0x97 Quota exceeded.
			codes[i], granted[i] = packets.UnspecifiedError, false
			if v5 {
				codes[i] = packets.QuotaExceeded
			}
			continue
		}
		// [MQTT-3.8.4-3] [v5 MQTT-3.8.4-3] a repeated filter replaces the
		// subscription.
		isNew[i] = b.subscribe(s, sub, id)
		if b.persistent(s) {
			b.record(c, storage.Op{Kind: storage.PutSubscription, Subscription: storage.Subscription{
				ClientID: s.s.ID, Filter: sub.Filter, QoS: sub.QoS, ID: id,
				NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling,
			}})
		}
	}
	// [MQTT-3.8.4-1, MQTT-3.8.4-2, MQTT-3.9.3-1] [v5 MQTT-3.8.4-1,
	// MQTT-3.8.4-2, MQTT-3.8.4-6, MQTT-3.9.3-1] SUBACK with the same packet
	// identifier and one code per filter, in order.
	c.mu.Lock()
	c.out = c.proto.suback(c.buffer(), p.PacketID, codes, reason)
	kick := c.touchLocked()
	c.mu.Unlock()
	if kick {
		c.sc.kick = append(c.sc.kick, c)
	}
	// [MQTT-3.3.1-6, MQTT-3.8.4-3] the retained messages matching each
	// granted filter, with RETAIN set; in MQTT 5 as Retain Handling says
	// [v5 MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11, MQTT-3.8.4-4]; none
	// for a shared subscription (section 4.8.2).
	for i, sub := range p.Subscriptions {
		_, _, shared, _ := parseShare(sub.Filter)
		if granted[i] && !shared && (sub.RetainHandling == 0 || sub.RetainHandling == 1 && isNew[i]) {
			b.sendRetained(s, sub.Filter, sub.QoS, id)
		}
	}
	s.pumpLocked(c)
	s.mu.Unlock()
	s.fireEvents()
	b.saveSession(s)
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

// checkFilter validates a SUBSCRIBE or UNSUBSCRIBE filter, shared ones
// included, and returns the filter that matches topics.
func checkFilter(f string) (string, error) {
	if _, filter, shared, err := parseShare(f); shared {
		return filter, err
	}
	return f, topics.ValidFilter(f)
}

// subscribe adds or replaces s's subscription, to the index or to its
// shared subscription, and reports whether it is new; s.mu is held.
func (b *Broker) subscribe(s *sess, sub *packets.Subscription, id uint32) bool {
	opts := packOpts(sub, id)
	isNew := s.s.Subscribe(sub.Filter, opts)
	if isNew {
		b.clientSubs.Add(1)
	}
	if _, filter, shared, _ := parseShare(sub.Filter); shared {
		b.joinShare(s, sub.Filter, filter, opts)
	} else {
		b.subs.Subscribe(s, sub.Filter, opts)
		if isNew {
			b.addInterest(sub.Filter, "")
		}
	}
	return isNew
}

// unsubscribe removes s's subscription to filter from the index or from
// its shared subscription; s.mu is held.
func (b *Broker) unsubscribe(s *sess, filter string) {
	b.clientSubs.Add(-1)
	if _, _, shared, _ := parseShare(filter); shared {
		b.leaveShare(s, filter)
		return
	}
	b.subs.Unsubscribe(s, filter)
	b.dropInterest(filter, "")
}

// onUnsubscribe handles an UNSUBSCRIBE as a sequence of one per filter,
// answered by one UNSUBACK [MQTT-3.10.4-6] [v5 MQTT-3.10.4-6].
func (c *conn) onUnsubscribe(p *packets.Unsubscribe) error {
	b := c.b
	codes := make([]packets.ReasonCode, len(p.Filters))
	for i, f := range p.Filters {
		inner, err := checkFilter(f)
		if err == nil {
			err = b.opts.checkLevels("filter", inner)
		}
		if err != nil {
			if !c.proto.v5() {
				return fmt.Errorf("%w: UNSUBSCRIBE filter: %w", ErrProtocol, err)
			}
			codes[i] = packets.TopicFilterInvalid
		}
	}
	s := c.s
	var removed []string
	s.mu.Lock()
	for i, f := range p.Filters {
		if codes[i] != packets.Success {
			continue
		}
		// [MQTT-3.10.4-1, MQTT-3.10.4-2] [v5 MQTT-3.10.4-1, MQTT-3.10.4-2]
		// delete the subscription, stop adding messages for it.
		if !s.s.Unsubscribe(f) {
			codes[i] = packets.NoSubscriptionExisted
			continue
		}
		b.unsubscribe(s, f)
		removed = append(removed, f)
		if b.persistent(s) {
			b.record(c, storage.Op{Kind: storage.DeleteSubscription, Subscription: storage.Subscription{ClientID: s.s.ID, Filter: f}})
		}
	}
	s.mu.Unlock()
	if len(removed) > 0 {
		b.saveSession(s)
	}
	// [MQTT-3.10.4-4, MQTT-3.10.4-5] [v5 MQTT-3.10.4-4, MQTT-3.10.4-5,
	// MQTT-3.11.3-1] UNSUBACK, even when nothing matched.
	c.queue(c.proto.unsuback(nil, p.PacketID, codes))
	for _, f := range removed {
		b.hooks.onUnsubscribe(b, c.client, f)
	}
	return nil
}
