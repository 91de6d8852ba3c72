package tern

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/topics"
)

// Publish injects a message from the application; see PublishMessage.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	_, err := b.PublishMessage(ctx, Message{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
	return err
}

// PublishResult says what became of a message given to PublishMessage.
type PublishResult struct {
	// Matched is how many subscriptions the message was delivered or
	// queued to, network clients' and in-process ones; 0 means no
	// matching subscribers.
	Matched int
}

// PublishMessage injects a message from the application, with its MQTT 5
// properties, through the same path as a client's PUBLISH: the
// interceptors (PublishInterceptor, which see a Client with Internal set),
// the retained store, and delivery to every matching subscription.
// Application code is trusted: no authorizer hook is asked about it.
//
// It fails for an invalid topic name, QoS or property, after Close, or
// when a hook dropped the message (an error wrapping ErrRefused and the
// hook's error). With Options.Store, a QoS 1 or 2 message that must be
// stored (retained, or queued for a persistent session) is stored before
// PublishMessage returns, as before a client's PUBACK; if ctx is done
// first, or the broker closes while the store fails, it returns that
// error (ctx's, or one matching ErrClosed).
func (b *Broker) PublishMessage(ctx context.Context, m Message) (PublishResult, error) {
	if err := topics.ValidName(m.Topic); err != nil {
		return PublishResult{}, fmt.Errorf("tern: publish: %w", err)
	}
	if err := b.opts.checkLevels("topic", m.Topic); err != nil {
		return PublishResult{}, fmt.Errorf("tern: publish: %w", err)
	}
	if m.QoS > 2 {
		return PublishResult{}, fmt.Errorf("tern: publish: QoS must be 0, 1 or 2, got %d", m.QoS)
	}
	sm, err := sessionMessage(&m, time.Now())
	if err != nil {
		return PublishResult{}, fmt.Errorf("tern: publish: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return PublishResult{}, fmt.Errorf("tern: publish: %w", err)
	}
	if b.isClosed() {
		return PublishResult{}, ErrClosed
	}
	lsn, matched, err := b.publish(Client{Internal: true}, nil, &sm)
	if err != nil {
		return PublishResult{}, fmt.Errorf("tern: publish: %w", err)
	}
	if lsn > 0 && m.QoS > 0 {
		// Stored before PublishMessage returns, as for a client's PUBACK;
		// an error when it was not (ctx done, broker closed on a failing
		// store).
		if err := b.persist.waitCtx(ctx, lsn); err != nil {
			return PublishResult{Matched: matched}, fmt.Errorf("tern: publish: %w", err)
		}
	}
	return PublishResult{Matched: matched}, nil
}

// Handler receives the messages of a Broker.Subscribe subscription, and the
// client that published each (Client.Internal for the application's own
// messages and the broker's $SYS topics).
type Handler func(m Message, from Client)

// SubscribeOptions are the options of a Broker.Subscribe subscription, as
// an MQTT 5 client gives them in its SUBSCRIBE. The zero value asks for
// QoS 0 and the retained messages.
type SubscribeOptions struct {
	// QoS is the highest QoS delivered: each message comes at the lower of
	// it and the QoS it was published with.
	QoS byte
	// NoLocal leaves out the messages the application itself publishes
	// (Broker.Publish, PublishMessage), as MQTT 5's No Local does for a
	// client's own.
	NoLocal bool
	// RetainAsPublished keeps Retain set on a live message published with
	// RETAIN; otherwise only the retained messages sent on subscribe have
	// it.
	RetainAsPublished bool
	// RetainHandling 2 sends no retained messages on subscribe; 0 and 1
	// send them (a Subscribe is always a new subscription).
	RetainHandling byte
}

// Subscribe calls handler for every message published to a topic matching
// filter (from network clients, the application, wills and $SYS), in
// order, from one goroutine per subscription. Retained messages matching
// filter are delivered first, with Retain set, as to a network client. A
// filter "$share/NAME/FILTER" joins a shared subscription: each message
// goes to one member of the group, network clients and in-process
// handlers alike, and no retained messages are sent.
//
// Application code is trusted: the authorizer hooks (SubscribeAuthorizer,
// ReadAuthorizer) are not asked about in-process subscriptions; observers
// see their messages with Client.Internal set.
//
// A slow handler does not slow the broker: up to Options.HandlerQueue
// messages wait for it, and messages beyond that are dropped and counted.
// The returned function cancels the subscription; it is safe to call more
// than once and from the handler itself. The handler's Message.Payload must
// not be modified.
func (b *Broker) Subscribe(filter string, o SubscribeOptions, handler Handler) (cancel func(), err error) {
	inner, err := checkFilter(filter)
	if err != nil {
		return nil, fmt.Errorf("tern: subscribe: %w", err)
	}
	if err := b.opts.checkLevels("filter", inner); err != nil {
		return nil, fmt.Errorf("tern: subscribe: %w", err)
	}
	if o.QoS > 2 {
		return nil, fmt.Errorf("tern: subscribe: QoS must be 0, 1 or 2, got %d", o.QoS)
	}
	if o.RetainHandling > 2 {
		return nil, fmt.Errorf("tern: subscribe: RetainHandling must be 0, 1 or 2, got %d", o.RetainHandling)
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
		ch:   make(chan delivery, b.opts.HandlerQueue),
		done: make(chan struct{}),
		who:  Client{ID: fmt.Sprintf("$internal/%d", b.idSeq), Internal: true},
	}
	b.wg.Add(1)
	b.mu.Unlock()
	opts := packOpts(&packets.Subscription{QoS: o.QoS, NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished}, 0)
	_, _, shared, _ := parseShare(filter)
	if shared {
		b.joinShare(h, filter, inner, opts)
	} else {
		b.subs.Subscribe(h, filter, opts)
		b.addInterest(filter, "")
	}
	b.internalSubs.Add(1)
	// Snapshot the retained messages after subscribing: a message published
	// in between may come twice (retained, then live), never not at all.
	var backlog []delivery
	if !shared && o.RetainHandling != 2 {
		for _, m := range b.retained.Match(filter, nil) {
			if m.Expired(nowNano()) {
				continue
			}
			pm := publicMessage(m, 0)
			pm.QoS, pm.Retain = min(m.QoS, o.QoS), true
			backlog = append(backlog, delivery{pm, Client{Internal: true}})
		}
	}
	go h.run(backlog)
	var once sync.Once
	return func() {
		once.Do(func() {
			if shared {
				b.leaveShare(h, filter)
			} else {
				b.subs.Unsubscribe(h, filter)
				b.dropInterest(filter, "")
			}
			b.internalSubs.Add(-1)
			close(h.done)
		})
	}, nil
}

// delivery is a message for a handler, with its publisher.
type delivery struct {
	m    Message
	from Client
}

// handlerSub is a Broker.Subscribe subscription.
type handlerSub struct {
	b    *Broker
	fn   Handler
	ch   chan delivery
	done chan struct{}
	who  Client
}

func (h *handlerSub) identity() Client { return h.who }

// ready reports that a handler takes messages: its queue bounds them.
func (h *handlerSub) ready() bool { return true }

func (h *handlerSub) deliver(sub topics.Sub[subscriber], f *fanout) {
	if optNoLocalSet(sub.Opts) && f.from == "" && f.fromClient.Internal {
		return
	}
	h.deliverOpts(sub.Opts, nil, f, "")
}

func (h *handlerSub) deliverOpts(opts uint32, _ []uint32, f *fanout, _ string) {
	m := publicMessage(f.keep(), f.now)
	m.QoS = min(f.msg.QoS, optQoS(opts))
	m.Retain = f.msg.Retain && optRAPSet(opts)
	select {
	case h.ch <- delivery{m, f.fromClient}:
		f.sent[m.QoS]++
	default:
		f.drop(h.b, h.who, errQueueFull)
	}
}

func (h *handlerSub) run(backlog []delivery) {
	defer h.b.wg.Done()
	for _, d := range backlog {
		if !h.call(d) {
			return
		}
	}
	for {
		select {
		case d := <-h.ch:
			if !h.call(d) {
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
func (h *handlerSub) call(d delivery) bool {
	select {
	case <-h.done:
		return false
	case <-h.b.closing:
		return false
	default:
	}
	call(h.b, "Subscribe handler", func() error { h.fn(d.m, d.from); return nil })
	return true
}
