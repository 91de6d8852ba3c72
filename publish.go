package tern

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/topics"
)

var errQueueFull = errors.New("tern: session queue full")

// ErrRefused is wrapped by the error of Broker.Publish and PublishMessage
// when a hook refused or dropped the message; the hook's own error is
// wrapped too.
var ErrRefused = errors.New("tern: publish refused by a hook")

var matchPool = sync.Pool{New: func() any { s := make([]topics.Sub[subscriber], 0, 16); return &s }}

// publish is the one path every application message takes, from a client,
// a will, Broker.Publish or $SYS: hooks, the retained store, then routing to
// every matching subscription. via is the connection whose reader is
// publishing: its scratch space, match cache and list of writers to start
// at the end of its read batch are used; nil (wills, Broker.Publish, $SYS)
// starts the writers at once. m's Payload and Props are not retained: they
// are copied only if something keeps the message (the retained store, a
// queue, a handler). It returns the storage LSN the sender's
// acknowledgement must wait for, how many subscriptions the message
// matched, and the hook's error when a hook refused or dropped the message.
func (b *Broker) publish(from Client, via *conn, m *session.Message) (uint64, int, error) {
	if b.hooks.hasPublishChecks() {
		pm := publicMessage(m, 0)
		if err := b.hooks.checkPublish(b.ctx, b, from, &pm); err != nil {
			b.stats.drop(DropPublishRefused)
			return 0, 0, err
		}
		if b.hooks.hasInterceptors() {
			// An interceptor may have changed anything.
			nm, err := sessionMessage(&pm, time.Now())
			if err != nil {
				b.stats.drop(DropPublishRefused)
				b.log.Debug("publish dropped: an interceptor produced an invalid message", "client", from.ID, "error", err)
				return 0, 0, errors.Join(ErrRefused, err)
			}
			nm.Expires = m.Expires // the interval runs from the original receipt
			if pm.MessageExpiry == 0 {
				nm.Expires = 0
			}
			m = &nm
		}
	}
	if b.cluster == nil || strings.HasPrefix(m.Topic, "$SYS/") {
		// $SYS topics are this node's own: never forwarded.
		lsn, matched := b.store(via, from, m)
		return lsn, matched, nil
	}
	// The other nodes' subscribers, and the cluster's retained message.
	// Whether another node had subscribers is not known here: no "no
	// matching subscribers". The publication time is the one the stream
	// of the cluster is read from (ClusterSession.Since): local copies
	// carry the same.
	m.Published = nowNano()
	cm := clusterMessageOf(m, from)
	if m.QoS == 0 {
		lsn, matched := b.store(via, from, m)
		if err := b.cluster.Forward(b.ctx, cm); err != nil {
			b.log.Debug("cluster forward failed", "topic", m.Topic, "error", err)
		}
		return lsn, max(matched, 1), nil
	}
	// QoS 1 and 2: durable in the cluster before anything else, so that a
	// node cut off from it refuses the message (the sender is not
	// acknowledged) rather than delivering it only here.
	if err := b.cluster.Forward(b.ctx, cm); err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrClusterUnavailable, err)
	}
	lsn, _ := b.store(via, from, m)
	return lsn, 1, nil
}

// store keeps a retained message and routes the message; no hooks. from
// is the publishing client (for No Local, and in-process handlers). It
// returns the storage LSN of the last change the message caused, and how
// many subscriptions it matched.
func (b *Broker) store(via *conn, from Client, m *session.Message) (uint64, int) {
	var f *fanout
	if via != nil {
		f = &via.sc.fan
		f.reset(&via.sc.kick)
	} else {
		f = new(fanout)
	}
	f.msg = *m
	f.fromClient = from
	f.from = from.ID
	if from.Internal {
		f.from = ""
	}
	if m.Retain {
		if len(m.Payload) == 0 {
			// [MQTT-3.3.1-10, MQTT-3.3.1-11] [v5 MQTT-3.3.1-6, MQTT-3.3.1-7]
			// an empty retained message clears the topic and is not stored.
			b.retained.Delete(m.Topic)
			f.lsn = b.persistRetained(m.Topic, nil)
		} else {
			// [MQTT-3.3.1-5, MQTT-3.3.1-7] [v5 MQTT-3.3.1-5] the last
			// retained message per topic replaces the previous one.
			k := f.keep()
			b.retained.Set(m.Topic, k)
			f.lsn = b.persistRetained(m.Topic, k)
		}
	}
	if m.Retain && b.hooks.hasRetainObservers() && !strings.HasPrefix(m.Topic, "$SYS/") {
		// The kept copy, as the other observers get: one that keeps the
		// message keeps bytes that the next reads do not overwrite.
		b.hooks.onRetain(b, publicMessage(f.keep(), f.expiryClock()))
	}
	matched := b.route(via, f)
	return f.lsn, matched
}

// route delivers f's message to every matching subscription, each at the
// minimum of the published and granted QoS, one copy per client
// [MQTT-3.3.5-1], with RETAIN 0 [MQTT-3.3.1-9]. It returns how many
// subscriptions matched.
func (b *Broker) route(via *conn, f *fanout) int {
	topic := f.msg.Topic
	var matches []topics.Sub[subscriber]
	var mp *[]topics.Sub[subscriber]
	if via != nil {
		// A client usually publishes to the same few topics: reuse the
		// last match while no subscription changed.
		sc := via.sc
		gen := b.subs.Generation()
		if sc.matchGen != gen || sc.matchTopic != topic {
			clear(sc.match)
			sc.match = b.subs.Match(topic, sc.match[:0])
			sc.matchTopic, sc.matchGen = topic, gen
		}
		matches = sc.match
	} else {
		mp = matchPool.Get().(*[]topics.Sub[subscriber])
		matches = b.subs.Match(topic, (*mp)[:0])
	}
	readCheck := b.hooks.hasReadChecks()
	n := 0
	for _, m := range matches {
		if _, group := m.Key.(*shareGroup); group && b.cluster != nil {
			continue // a shared subscription gets its messages through the cluster
		}
		if readCheck && !b.mayRead(m.Key, f) {
			continue
		}
		n++
		m.Key.deliver(m, f)
	}
	if mp != nil {
		clear(matches)
		*mp = matches[:0]
		matchPool.Put(mp)
	}
	f.finish(b)
	return n
}

// sendRetained queues, with RETAIN set, every retained message that filter
// matches for s [MQTT-3.8.4-3]. s.mu is held. They may take the session
// queue past Options.MaxQueued by as many as they are (a new subscriber
// gets every retained message), not further: a client that repeats a
// SUBSCRIBE without reading what it is sent cannot grow its queue without
// bound; what is over is dropped and counted. They are sent as the window
// and the write buffer drain.
func (b *Broker) sendRetained(s *sess, filter string, granted byte, id uint32) {
	msgs := b.retained.Match(filter, nil)
	readCheck := b.hooks.hasReadChecks()
	now := nowNano()
	limit := b.opts.MaxQueued + len(msgs)
	for _, m := range msgs {
		if m.Expired(now) {
			continue // [v5 MQTT-3.3.2-5] never sent once expired
		}
		if readCheck && !b.hooks.authorizeRead(b, s.client(), m.Topic) {
			continue
		}
		if s.s.QueueLen() >= limit {
			b.stats.drop(DropQueueFull)
			b.hooks.onDrop(b, s.client(), m, errQueueFull)
			continue
		}
		// [MQTT-3.3.1-8] RETAIN set on messages sent for a new subscription
		// [v5 MQTT-3.3.1-9], with the subscription's identifier.
		d := session.Delivery{Msg: m, QoS: min(m.QoS, granted), Retain: true}
		if id != 0 {
			d.Route = &session.Route{SubIDs: []uint32{id}}
		}
		if b.persistent(s) {
			s.seq++
			d.Seq = s.seq
			b.recordDelivery(s.s.ID, &d, true) // queued: nothing is sent yet
		}
		s.s.Enqueue(d)
	}
}

func validTopicName(t string) bool { return topics.ValidName(t) == nil }

// mayRead reports whether the ReadAuthorizer hooks let k, a subscriber or
// a member of a shared subscription, read f's topic. Application code is
// trusted (in-process subscriptions are not asked about), and a shared
// subscription asks for each member it picks.
func (b *Broker) mayRead(k interface{ identity() Client }, f *fanout) bool {
	switch k := k.(type) {
	case *shareGroup, *handlerSub:
		return true
	case *sess:
		return k.mayReadAs(f)
	}
	return b.hooks.authorizeRead(b, k.identity(), f.msg.Topic)
}
