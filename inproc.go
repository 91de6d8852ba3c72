package tern

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"

	"github.com/ternmq/tern/topics"
)

// Publish injects a message from the application, through the same path as
// a client's PUBLISH: publish hooks (which see a Client with Internal set),
// the retained store, and delivery to every matching subscription. It fails
// for an invalid topic name or QoS, after Close, or when a hook refused the
// message.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if err := topics.ValidName(topic); err != nil {
		return fmt.Errorf("tern: publish: %w", err)
	}
	if err := b.opts.checkLevels("topic", topic); err != nil {
		return fmt.Errorf("tern: publish: %w", err)
	}
	if qos > 2 {
		return fmt.Errorf("tern: publish: QoS must be 0, 1 or 2, got %d", qos)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tern: publish: %w", err)
	}
	if b.isClosed() {
		return ErrClosed
	}
	lsn, err := b.publish(Client{Internal: true}, nil, topic, payload, qos, retain)
	if err == nil && lsn > 0 && qos > 0 {
		b.persist.wait(lsn) // stored before Publish returns, as for a client's PUBACK
	}
	return err
}

// Handler receives messages for a Broker.Subscribe subscription.
type Handler func(Message)

// Subscribe calls handler for every message published to a topic matching
// filter, at the minimum of the published QoS and qos, in order, from one
// goroutine per subscription. Retained messages matching filter are
// delivered first, with Retain set, as to a network client. A slow handler
// does not slow the broker: up to Options.HandlerQueue messages wait for it,
// and messages beyond that are dropped and counted. The returned function
// cancels the subscription; it is safe to call more than once and from the
// handler itself. The handler's Message.Payload must not be modified.
func (b *Broker) Subscribe(filter string, qos byte, handler Handler) (cancel func(), err error) {
	if err := topics.ValidFilter(filter); err != nil {
		return nil, fmt.Errorf("tern: subscribe: %w", err)
	}
	if err := b.opts.checkLevels("filter", filter); err != nil {
		return nil, fmt.Errorf("tern: subscribe: %w", err)
	}
	if qos > 2 {
		return nil, fmt.Errorf("tern: subscribe: QoS must be 0, 1 or 2, got %d", qos)
	}
	if handler == nil {
		return nil, errors.New("tern: subscribe: nil handler")
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.idSeq++
	h := &handlerSub{
		b:    b,
		fn:   handler,
		ch:   make(chan Message, b.opts.HandlerQueue),
		done: make(chan struct{}),
		who:  Client{ID: fmt.Sprintf("$internal/%d", b.idSeq), Internal: true},
	}
	b.wg.Add(1)
	b.mu.Unlock()
	b.subs.Subscribe(h, filter, uint32(qos))
	// Snapshot the retained messages after subscribing: a message published
	// in between may come twice (retained, then live), never not at all.
	var backlog []Message
	for _, m := range b.retained.Match(filter, nil) {
		if b.hooks.hasReadChecks() && !b.hooks.authorizeRead(b, h.who, m.Topic) {
			continue
		}
		backlog = append(backlog, Message{Topic: m.Topic, Payload: m.Payload, QoS: min(m.QoS, qos), Retain: true})
	}
	go h.run(backlog)
	var once sync.Once
	return func() {
		once.Do(func() {
			b.subs.Unsubscribe(h, filter)
			close(h.done)
		})
	}, nil
}

// handlerSub is a Broker.Subscribe subscription.
type handlerSub struct {
	b    *Broker
	fn   Handler
	ch   chan Message
	done chan struct{}
	who  Client
}

func (h *handlerSub) identity() Client { return h.who }

func (h *handlerSub) deliver(qos byte, f *fanout) {
	m := f.keep()
	select {
	case h.ch <- Message{Topic: m.Topic, Payload: m.Payload, QoS: qos}:
		f.sent++
	default:
		f.drop(h.b, h.who, errQueueFull)
	}
}

func (h *handlerSub) run(backlog []Message) {
	defer h.b.wg.Done()
	for _, m := range backlog {
		if !h.call(m) {
			return
		}
	}
	for {
		select {
		case m := <-h.ch:
			if !h.call(m) {
				return
			}
		case <-h.done:
			return
		case <-h.b.closing:
			return
		}
	}
}

// call runs the handler unless the subscription ended; a panic is logged
// and the subscription goes on.
func (h *handlerSub) call(m Message) bool {
	select {
	case <-h.done:
		return false
	case <-h.b.closing:
		return false
	default:
	}
	call(h.b, "Subscribe handler", func() error { h.fn(m); return nil })
	return true
}

// ClientInfo describes a client session for Broker.Clients.
type ClientInfo struct {
	ID            string
	Username      string
	RemoteAddr    net.Addr // nil while offline
	Connected     bool
	CleanSession  bool
	Subscriptions int
	Inflight      int
	Queued        int
}

// Clients lists the client sessions, connected and offline persistent ones,
// sorted by client id.
func (b *Broker) Clients() []ClientInfo {
	b.mu.Lock()
	all := make([]*sess, 0, len(b.sessions))
	for _, s := range b.sessions {
		all = append(all, s)
	}
	b.mu.Unlock()
	out := make([]ClientInfo, 0, len(all))
	for _, s := range all {
		s.mu.Lock()
		ci := ClientInfo{
			ID:            s.s.ID,
			Username:      s.client.Username,
			Connected:     s.conn.Load() != nil,
			CleanSession:  s.s.Clean,
			Subscriptions: len(s.s.Subs),
			Inflight:      s.s.InflightLen(),
			Queued:        s.s.QueueLen(),
		}
		if ci.Connected {
			ci.RemoteAddr = s.client.RemoteAddr
		}
		s.mu.Unlock()
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ErrNoClient is returned by Disconnect for a client id that is not connected.
var ErrNoClient = errors.New("tern: no such connected client")

// Disconnect closes the connection of the client with id. As after any end
// without DISCONNECT, its will is published; a persistent session stays.
func (b *Broker) Disconnect(id string) error {
	b.mu.Lock()
	s := b.sessions[id]
	b.mu.Unlock()
	if s == nil {
		return ErrNoClient
	}
	c := s.conn.Load()
	if c == nil {
		return ErrNoClient
	}
	c.setReason(ErrKicked)
	c.kill()
	return nil
}
