package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ternmq/tern"
)

// Retained messages live in the KV bucket PREFIX-retained, one key per
// topic (the topic's tokens, see subject.go), the value in the message
// envelope; an empty retained message purges the key. Every node watches
// the bucket and keeps a copy in its broker's retained index, so that a
// SUBSCRIBE reads retained messages locally. The publishing node sets its
// own copy at once; the watch brings every node, the publisher's too, to
// the bucket's order when two nodes set one topic at the same time.

// retainedConfig is the retained bucket's configuration.
func (c *Cluster) retainedConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      c.cfg.Prefix + "-retained",
		Description: "Tern: retained messages, one per topic",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
	}
}

// retain stores (or with clear, removes) the retained message of topic
// and returns once the bucket holds the change.
func (c *Cluster) retain(ctx context.Context, topic string, data []byte, clear bool) error {
	key := topicToken(topic)
	var err error
	if clear {
		err = c.retained.Purge(ctx, key)
	} else {
		_, err = c.retained.Put(ctx, key, data)
	}
	if err != nil {
		return fmt.Errorf("storing the retained message: %w", err)
	}
	return nil
}

// retainAsync stores the retained message of a QoS 0 publish without
// waiting for the bucket (QoS 0 does not wait for the cluster).
func (c *Cluster) retainAsync(topic string, data []byte, clear bool) {
	msg := &nats.Msg{Subject: "$KV." + c.retained.Bucket() + "." + topicToken(topic), Header: nats.Header{}}
	if clear {
		msg.Header.Set("KV-Operation", "PURGE")
		msg.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	} else {
		msg.Data = append([]byte(nil), data...) // kept until acknowledged
	}
	if _, err := c.js.PublishMsgAsync(msg); err != nil {
		c.log.Warn("cluster: storing a retained message", "topic", topic, "error", err)
	}
}

// loadRetained gives the broker every retained message of the cluster,
// then keeps its copy current until ctx ends.
func (c *Cluster) loadRetained(ctx context.Context) error {
	w, err := c.retained.WatchAll(c.ctx)
	if err != nil {
		return fmt.Errorf("watching the retained messages: %w", err)
	}
	// The initial values come at the pace of the stream; a stream
	// without a leader yet sends nothing: past a quiet while, Start tries
	// again.
	quiet := time.NewTimer(2 * c.cfg.RequestTimeout)
	defer quiet.Stop()
	n := 0
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
			quiet.Reset(2 * c.cfg.RequestTimeout)
		case <-quiet.C:
			w.Stop()
			return errors.New("loading the retained messages: nothing came in time")
		case <-ctx.Done():
			w.Stop()
			return fmt.Errorf("loading the retained messages: %w", ctx.Err())
		}
		if e == nil {
			break // the initial values are in
		}
		c.applyRetained(e)
		n++
	}
	c.log.Debug("cluster: retained messages loaded", "count", n)
	c.wg.Go(func() {
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					c.applyRetained(e)
				}
			case <-c.ctx.Done():
				return
			}
		}
	})
	return nil
}

// applyRetained sets or clears the broker's copy of one retained message.
func (c *Cluster) applyRetained(e jetstream.KeyValueEntry) {
	topic, err := tokenTopic(e.Key())
	if err != nil {
		c.log.Warn("cluster: retained message with a bad key", "key", e.Key(), "error", err)
		return
	}
	m := tern.ClusterMessage{Topic: topic}
	if e.Operation() == jetstream.KeyValuePut {
		if _, err := decodeEnvelope(e.Value(), &m); err != nil {
			c.log.Warn("cluster: retained message", "topic", topic, "error", err)
			return
		}
		m.Topic = topic
		m.Retain = true
		if len(m.Payload) == 0 {
			return // never stored: an empty one purges
		}
	}
	c.node.Retained(&m)
}
