package nats

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ternmq/tern"
)

// Replay.
//
// Every QoS 1 and 2 message is stored once, in the stream PREFIX-messages
// (subject PREFIX.m1.TOPIC). A session records the publication time from
// which it still needs messages (Since: the oldest it holds unacknowledged,
// or when it was saved). When a node resumes a session it did not hold, it
// reads the stream from Since (less the clock skew), filtered on the
// session's subscriptions, with one short-lived consumer: a cursor per
// resumed session, not a durable consumer per subscription. What it reads
// may repeat what the client already received (QoS 1 and 2 deliveries
// resumed on another node are duplicates then): the broker queues it.

// replay returns the QoS 1 and 2 messages of the stream that cs's
// subscriptions match, published since cs.Since, and where in the stream
// a catch-up read starts (see catchUp).
func (c *Cluster) replay(ctx context.Context, cs *tern.ClusterSession) ([]tern.ClusterMessage, *catchUp, error) {
	patterns := c.replayPatterns(cs)
	if len(patterns) == 0 {
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 4*c.cfg.RequestTimeout)
	defer cancel()
	st, err := c.js.Stream(ctx, c.streamName)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the stream: %w", err)
	}
	last := st.CachedInfo().State.LastSeq
	start := c.sinceFloor(cs.Since)
	msgs, seq, err := c.read(ctx, cs.ClientID, patterns, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start})
	return msgs, &catchUp{patterns: patterns, from: max(last, seq) + 1}, err
}

// catchUp is where a resumed session's replay ended: once the session's
// subscriptions take effect on the node (the broker saves the session
// after the CONNECT), the node reads what was stored from there on, and
// gives it to the session (tern.ClusterNode.DeliverTo). Nothing published
// between the replay and the subscriptions is missed.
type catchUp struct {
	patterns []string
	from     uint64 // stream sequence
}

// catchUp gives the session id what the stream received since its
// replay; it reports whether it read all of it.
func (c *Cluster) catchUp(ctx context.Context, id string, cu *catchUp) bool {
	ctx, cancel := context.WithTimeout(ctx, 4*c.cfg.RequestTimeout)
	defer cancel()
	msgs, _, err := c.read(ctx, id, cu.patterns, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: cu.from})
	if err != nil {
		c.log.Warn("cluster: catching a resumed session up", "client", id, "error", err)
	}
	if len(msgs) > 0 {
		c.node.DeliverTo(id, msgs)
	}
	return err == nil
}

// replayPatterns are the stream subjects cs's subscriptions match, as
// filter subjects of one consumer (not overlapping).
func (c *Cluster) replayPatterns(cs *tern.ClusterSession) []string {
	var patterns []string
	for _, s := range cs.Subscriptions {
		if strings.HasPrefix(s.Filter, "$share/") || strings.HasPrefix(s.Filter, "$SYS/") || s.QoS == 0 {
			// Shared subscriptions get messages while a member is
			// online; $SYS and QoS 0 subscriptions are never replayed.
			continue
		}
		for _, t := range filterTokens(s.Filter) {
			patterns = append(patterns, c.pre1+t)
		}
	}
	if len(patterns) == 0 {
		return nil
	}
	patterns = disjoint(patterns, c.pre1+">")
	if len(patterns) > 256 {
		// Many subscriptions: read everything, the broker filters.
		patterns = []string{c.pre1 + ">"}
	}
	return patterns
}

// read reads the stream's messages on patterns from where cfg's deliver
// policy says, up to what the stream held when it started, at most
// MaxReplay of them, with one short-lived consumer. It returns them and
// the stream sequence of the last.
func (c *Cluster) read(ctx context.Context, id string, patterns []string, cfg jetstream.ConsumerConfig) ([]tern.ClusterMessage, uint64, error) {
	cfg.FilterSubjects = patterns
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.InactiveThreshold = time.Minute
	cfg.MemoryStorage = true
	cfg.Replicas = 1
	cons, err := c.js.CreateConsumer(ctx, c.streamName, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the stream: %w", err)
	}
	defer func() {
		dctx, cancel := c.requestCtx()
		defer cancel()
		if err := c.js.DeleteConsumer(dctx, c.streamName, cons.CachedInfo().Name); err != nil {
			c.log.Debug("cluster: deleting a replay consumer", "error", err)
		}
	}()
	pending := cons.CachedInfo().NumPending
	want := int(min(pending, uint64(c.cfg.MaxReplay)))
	if uint64(want) < pending {
		c.log.Warn("cluster: a resumed session gets only part of what it missed", "client", id, "missed", pending, "replayed", want)
	}
	out := make([]tern.ClusterMessage, 0, want)
	var last uint64
	for len(out) < want {
		batch, err := cons.Fetch(min(want-len(out), 1024), jetstream.FetchMaxWait(c.cfg.RequestTimeout))
		if err != nil {
			return out, last, fmt.Errorf("reading the stream: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if md, err := msg.Metadata(); err == nil {
				last = max(last, md.Sequence.Stream)
			}
			var m tern.ClusterMessage
			topic, err := tokenTopic(strings.TrimPrefix(msg.Subject(), c.pre1))
			if err != nil {
				continue
			}
			if _, err := decodeEnvelope(msg.Data(), &m); err != nil {
				continue
			}
			m.Topic = topic
			out = append(out, m)
		}
		if err := batch.Error(); err != nil {
			return out, last, fmt.Errorf("reading the stream: %w", err)
		}
		if n == 0 {
			return out, last, fmt.Errorf("reading the stream: %d of %d messages came in time", len(out), want)
		}
	}
	return out, last, nil
}
