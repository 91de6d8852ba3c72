package tern

import (
	"context"
	"errors"
	"sync"

	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/topics"
)

var (
	errQueueFull = errors.New("tern: session queue full")
	errRefused   = errors.New("tern: publish refused by a hook")
)

var matchPool = sync.Pool{New: func() any { s := make([]topics.Sub[subscriber], 0, 16); return &s }}

// publish is the one path every application message takes, from a client,
// a will, Broker.Publish or $SYS: hooks, the retained store, then routing to
// every matching subscription. payload is copied. kick is the caller's list
// of connections whose writers start at the end of its read batch; nil
// starts them at once.
// It returns the hook's error when a hook refused or dropped the message.
// It returns the storage LSN the sender's acknowledgement must wait for, and
// the hook's error when a hook refused or dropped the message.
func (b *Broker) publish(from Client, topic string, payload []byte, qos byte, retain bool, kick *[]*conn) (uint64, error) {
	if b.hooks.hasPublishChecks() {
		m := Message{Topic: topic, Payload: payload, QoS: qos, Retain: retain}
		if err := b.hooks.checkPublish(context.Background(), b, from, &m); err != nil {
			b.stats.dropped.Add(1)
			return 0, err
		}
		topic, payload, qos, retain = m.Topic, m.Payload, m.QoS, m.Retain
	}
	return b.store(topic, payload, qos, retain, kick), nil
}

// store keeps a retained message and routes the message; no hooks. It
// returns the storage LSN of the last change the message caused.
func (b *Broker) store(topic string, payload []byte, qos byte, retain bool, kick *[]*conn) uint64 {
	var lsn uint64
	msg := &session.Message{Topic: topic, Payload: append([]byte(nil), payload...), QoS: qos, Retain: retain}
	if retain {
		if len(payload) == 0 {
			// [MQTT-3.3.1-10, MQTT-3.3.1-11] an empty retained message
			// clears the topic and is not stored.
			b.retained.Delete(topic)
			lsn = b.persistRetained(topic, nil)
		} else {
			// [MQTT-3.3.1-5, MQTT-3.3.1-7] the last retained message per
			// topic replaces the previous one.
			b.retained.Set(topic, msg)
			lsn = b.persistRetained(topic, msg)
		}
	}
	return max(lsn, b.route(msg, kick))
}

// route delivers msg to every matching subscription, each at the minimum of
// the published and granted QoS, one copy per client [MQTT-3.3.5-1], with
// RETAIN 0 [MQTT-3.3.1-9].
func (b *Broker) route(msg *session.Message, kick *[]*conn) uint64 {
	mp := matchPool.Get().(*[]topics.Sub[subscriber])
	matches := b.subs.Match(msg.Topic, (*mp)[:0])
	f := fanout{m: msg, kick: kick}
	readCheck := b.hooks.hasReadChecks()
	for _, m := range matches {
		if readCheck && !b.hooks.authorizeRead(b, m.Key.identity(), msg.Topic) {
			continue
		}
		m.Key.deliver(msg, min(msg.QoS, m.QoS), &f)
	}
	clear(matches)
	*mp = matches[:0]
	matchPool.Put(mp)
	f.finish(b)
	return f.lsn
}

// sendRetained queues, with RETAIN set, every retained message that filter
// matches for s [MQTT-3.8.4-3]. s.mu is held. They enter the session queue
// regardless of its bound (a new subscriber gets every retained message),
// and are sent as the window and the write buffer drain.
func (b *Broker) sendRetained(s *sess, filter string, granted byte) {
	msgs := b.retained.Match(filter, nil)
	readCheck := b.hooks.hasReadChecks()
	for _, m := range msgs {
		if readCheck && !b.hooks.authorizeRead(b, s.client, m.Topic) {
			continue
		}
		// [MQTT-3.3.1-8] RETAIN set on messages sent for a new subscription.
		d := session.Delivery{Msg: m, QoS: min(m.QoS, granted), Retain: true}
		if b.persistent(s) {
			s.seq++
			d.Seq = s.seq
			b.persist.add(deliveryOp(s.s.ID, &d))
		}
		s.s.Enqueue(d)
	}
}

func validTopicName(t string) bool { return topics.ValidName(t) == nil }
