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
// every matching subscription. via is the connection whose reader is
// publishing: its scratch space, match cache and list of writers to start
// at the end of its read batch are used; nil (wills, Broker.Publish, $SYS)
// starts the writers at once. payload is not retained: the message is copied
// only if something keeps it (the retained store, a queue, a handler).
// It returns the storage LSN the sender's acknowledgement must wait for, and
// the hook's error when a hook refused or dropped the message.
func (b *Broker) publish(from Client, via *conn, topic string, payload []byte, qos byte, retain bool) (uint64, error) {
	if b.hooks.hasPublishChecks() {
		m := Message{Topic: topic, Payload: payload, QoS: qos, Retain: retain}
		if err := b.hooks.checkPublish(context.Background(), b, from, &m); err != nil {
			b.stats.dropped.Add(1)
			return 0, err
		}
		topic, payload, qos, retain = m.Topic, m.Payload, m.QoS, m.Retain
	}
	return b.store(via, topic, payload, qos, retain), nil
}

// store keeps a retained message and routes the message; no hooks. It
// returns the storage LSN of the last change the message caused.
func (b *Broker) store(via *conn, topic string, payload []byte, qos byte, retain bool) uint64 {
	var f *fanout
	if via != nil {
		f = &via.fan
		f.reset(&via.kick)
	} else {
		f = new(fanout)
	}
	f.msg = session.Message{Topic: topic, Payload: payload, QoS: qos, Retain: retain}
	if retain {
		if len(payload) == 0 {
			// [MQTT-3.3.1-10, MQTT-3.3.1-11] an empty retained message
			// clears the topic and is not stored.
			b.retained.Delete(topic)
			f.lsn = b.persistRetained(topic, nil)
		} else {
			// [MQTT-3.3.1-5, MQTT-3.3.1-7] the last retained message per
			// topic replaces the previous one.
			m := f.keep()
			b.retained.Set(topic, m)
			f.lsn = b.persistRetained(topic, m)
		}
	}
	b.route(via, f)
	return f.lsn
}

// route delivers f's message to every matching subscription, each at the
// minimum of the published and granted QoS, one copy per client
// [MQTT-3.3.5-1], with RETAIN 0 [MQTT-3.3.1-9].
func (b *Broker) route(via *conn, f *fanout) {
	topic := f.msg.Topic
	var matches []topics.Sub[subscriber]
	var mp *[]topics.Sub[subscriber]
	if via != nil {
		// A client usually publishes to the same few topics: reuse the
		// last match while no subscription changed.
		gen := b.subs.Generation()
		if via.matchGen != gen || via.matchTopic != topic {
			clear(via.match)
			via.match = b.subs.Match(topic, via.match[:0])
			via.matchTopic, via.matchGen = topic, gen
		}
		matches = via.match
	} else {
		mp = matchPool.Get().(*[]topics.Sub[subscriber])
		matches = b.subs.Match(topic, (*mp)[:0])
	}
	readCheck := b.hooks.hasReadChecks()
	for _, m := range matches {
		if readCheck && !b.hooks.authorizeRead(b, m.Key.identity(), topic) {
			continue
		}
		m.Key.deliver(min(f.msg.QoS, m.QoS()), f)
	}
	if mp != nil {
		clear(matches)
		*mp = matches[:0]
		matchPool.Put(mp)
	}
	f.finish(b)
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
			b.recordDelivery(s.s.ID, &d, true) // queued: nothing is sent yet
		}
		s.s.Enqueue(d)
	}
}

func validTopicName(t string) bool { return topics.ValidName(t) == nil }
