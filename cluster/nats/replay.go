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
// subscriptions match, published since cs.Since.
func (c *Cluster) replay(ctx context.Context, cs *tern.ClusterSession) ([]tern.ClusterMessage, error) {
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
		return nil, nil
	}
	patterns = disjoint(patterns, c.pre1+">")
	if len(patterns) > 256 {
		// Many subscriptions: read everything, the broker filters.
		patterns = []string{c.pre1 + ">"}
	}
	start := c.sinceFloor(cs.Since)
	ctx, cancel := context.WithTimeout(ctx, 4*c.cfg.RequestTimeout)
	defer cancel()
	cons, err := c.js.CreateConsumer(ctx, c.streamName, jetstream.ConsumerConfig{
		FilterSubjects:    patterns,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return nil, fmt.Errorf("reading the stream: %w", err)
	}
	defer func() {
		dctx, cancel := c.requestCtx()
		defer cancel()
		if err := c.js.DeleteConsumer(dctx, c.streamName, cons.CachedInfo().Name); err != nil {
			c.log.Debug("cluster: deleting a replay consumer", "error", err)
		}
	}()
	want := int(min(cons.CachedInfo().NumPending, uint64(c.cfg.MaxReplay)))
	if uint64(want) < cons.CachedInfo().NumPending {
		c.log.Warn("cluster: a resumed session gets only part of what it missed", "client", cs.ClientID, "missed", cons.CachedInfo().NumPending, "replayed", want)
	}
	out := make([]tern.ClusterMessage, 0, want)
	for len(out) < want {
		batch, err := cons.Fetch(min(want-len(out), 1024), jetstream.FetchMaxWait(c.cfg.RequestTimeout))
		if err != nil {
			return out, fmt.Errorf("reading the stream: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
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
			return out, fmt.Errorf("reading the stream: %w", err)
		}
		if n == 0 {
			break // nothing more came in time
		}
	}
	return out, nil
}
