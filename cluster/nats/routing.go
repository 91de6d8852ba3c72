package nats

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ternmq/tern"
)

// Routing.
//
// A message published on a node goes to NATS on the subject
// PREFIX.m0.TOPIC (QoS 0: core NATS, fire and forget) or PREFIX.m1.TOPIC
// (QoS 1 and 2: the message stream captures these subjects, and the
// publish returns once the stream holds the message on a quorum of its
// replicas). Either way core NATS delivers it to every node that
// subscribed to a matching subject: one message crosses the network once
// per interested node, and the stream is not read for live delivery.
//
// Each node holds one NATS subscription per distinct filter its clients
// use (the broker counts them: Interest), on PREFIX.*.FILTER, so both
// QoS subjects match. Ordinary subscriptions use a connection with
// NoEcho: the node does not get back what it published (the broker
// delivered it locally already). Shared subscriptions are queue
// subscriptions, the queue named after the share group, on a second
// connection that does receive the node's own messages: NATS gives each
// message to one subscriber of the queue, on whichever node, the
// publisher's included.

// interestKey is a filter (and share group) with a NATS subscription.
type interestKey struct{ filter, group string }

// Forward implements tern.Cluster.
func (c *Cluster) Forward(ctx context.Context, m *tern.ClusterMessage) error {
	if strings.HasPrefix(m.Topic, "$SYS/") {
		return nil // each node's own
	}
	id := msgID{c.origin, c.seq.Add(1)}
	buf := c.buffers.Get().(*[]byte)
	defer c.buffers.Put(buf)
	data := appendEnvelope((*buf)[:0], m, id)
	*buf = data
	if m.QoS == 0 {
		subj := c.subject(c.pre0, m.Topic)
		if err := c.nc.Publish(subj, data); err != nil {
			return fmt.Errorf("publishing to %s: %w", subj, err)
		}
		if m.Retain {
			c.retainAsync(m.Topic, data, len(m.Payload) == 0)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	subj := c.subject(c.pre1, m.Topic)
	if _, err := c.js.Publish(ctx, subj, data); err != nil {
		return fmt.Errorf("storing the message in the stream: %w", err)
	}
	if m.Retain {
		if err := c.retain(ctx, m.Topic, data, len(m.Payload) == 0); err != nil {
			return err
		}
	}
	return nil
}

// subject is the subject of topic with prefix pre ("tern.m0.").
func (c *Cluster) subject(pre, topic string) string {
	b := make([]byte, 0, len(pre)+len(topic)+8)
	return string(appendTopic(append(b, pre...), topic))
}

// Interest implements tern.Cluster.
func (c *Cluster) Interest(filter, group string, on bool) {
	if strings.HasPrefix(filter, "$SYS/") {
		return // $SYS is each node's own
	}
	k := interestKey{filter, group}
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	if !on {
		for _, s := range c.subs[k] {
			if err := s.Unsubscribe(); err != nil {
				c.log.Debug("cluster: unsubscribing", "filter", filter, "error", err)
			}
		}
		delete(c.subs, k)
		return
	}
	if _, ok := c.subs[k]; ok || c.stopped {
		return
	}
	var subs []*nats.Subscription
	for _, t := range filterTokens(filter) {
		subj := c.cfg.Prefix + ".*." + t
		var s *nats.Subscription
		var err error
		if group == "" {
			s, err = c.nc.Subscribe(subj, c.onMessage)
		} else {
			s, err = c.ncShared.QueueSubscribe(subj, c.cfg.Prefix+"-"+levelToken(group), func(msg *nats.Msg) { c.onShared(group, filter, msg) })
		}
		if err != nil {
			c.log.Error("cluster: subscribing", "filter", filter, "group", group, "error", err)
			continue
		}
		// The broker's own queues bound what each client holds; this
		// only absorbs bursts while the broker routes.
		if err := s.SetPendingLimits(1<<20, 256<<20); err != nil {
			c.log.Debug("cluster: pending limits", "error", err)
		}
		subs = append(subs, s)
	}
	c.subs[k] = subs
}

// message decodes a NATS message into a cluster message.
func (c *Cluster) message(msg *nats.Msg, m *tern.ClusterMessage) (msgID, bool) {
	// PREFIX.mQ.TOPIC
	rest := msg.Subject[len(c.pre0):]
	topic, err := tokenTopic(rest)
	if err == nil {
		m.Topic = topic
		var id msgID
		if id, err = decodeEnvelope(msg.Data, m); err == nil {
			return id, true
		}
	}
	c.log.Warn("cluster: dropping a message", "subject", msg.Subject, "error", err)
	return msgID{}, false
}

// onMessage delivers a message another node published to this node's
// ordinary subscribers, once even when several of the node's
// subscriptions match it.
func (c *Cluster) onMessage(msg *nats.Msg) {
	var m tern.ClusterMessage
	id, ok := c.message(msg, &m)
	if !ok || !c.seen.first(id) {
		return
	}
	c.node.Deliver(&m)
}

// onShared gives a message of shared subscription group (filter) to one
// of this node's members.
func (c *Cluster) onShared(group, filter string, msg *nats.Msg) {
	var m tern.ClusterMessage
	if _, ok := c.message(msg, &m); !ok || shareDollar(filter, m.Topic) {
		return
	}
	c.node.DeliverShared(group, &m)
}

// dedupe remembers the identities of the messages delivered lately: two
// generations, the older dropped when the newer is full.
type dedupe struct {
	mu       sync.Mutex
	cur, old map[msgID]struct{}
}

const dedupeGeneration = 1 << 15

// first reports whether id was not seen lately, and remembers it.
func (d *dedupe) first(id msgID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.cur[id]; ok {
		return false
	}
	if _, ok := d.old[id]; ok {
		return false
	}
	if d.cur == nil || len(d.cur) >= dedupeGeneration {
		d.old, d.cur = d.cur, make(map[msgID]struct{}, 1024)
	}
	d.cur[id] = struct{}{}
	return true
}

// streamConfig is the message stream's configuration.
func (c *Cluster) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.cfg.Prefix + "-messages",
		Description: "Tern: QoS 1 and 2 messages, replayed to sessions resumed on another node",
		Subjects:    []string{c.cfg.Prefix + ".m1.>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.cfg.MessageRetention,
		MaxBytes:    maxBytes(c.cfg.MaxStreamBytes),
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
	}
}

func maxBytes(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}
