package tern

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ternmq/tern/session"
)

// ErrNotAHook is returned by AddHook for a value that implements none of the
// hook interfaces.
var ErrNotAHook = errors.New("tern: value implements no hook interface")

// hooks is an immutable snapshot of the hooks by interface, replaced as a
// whole by AddHook so the hot path reads it without a lock.
type hooks struct {
	auth        []Authenticator
	enhanced    []EnhancedAuthenticator
	session     []SessionAuthorizer
	pubAuth     []PublishAuthorizer
	subAuth     []SubscribeAuthorizer
	readAuth    []ReadAuthorizer
	intercept   []PublishInterceptor
	connect     []ConnectObserver
	disconnect  []DisconnectObserver
	subscribe   []SubscribeObserver
	unsubscribe []UnsubscribeObserver
	drop        []DropObserver
	connIcpt    []ConnectInterceptor
	sessionObs  []SessionObserver
	willIcpt    []WillInterceptor
	willObs     []WillObserver
	delivered   []DeliveryObserver
	retain      []RetainObserver
}

// hookSet holds the current snapshot; none is the snapshot of a broker
// without hooks, so that reading it allocates nothing.
type hookSet struct {
	p    atomic.Pointer[hooks]
	none hooks
}

func (hs *hookSet) get() *hooks {
	if h := hs.p.Load(); h != nil {
		return h
	}
	return &hs.none
}

// AddHook adds a hook: any value implementing one or more of the hook
// interfaces in hooks.go. It returns ErrNotAHook for a value that implements
// none. Hooks run in the order they were added. Add hooks before serving:
// a hook added later applies to what happens after it is added.
func (b *Broker) AddHook(h any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := *b.hooks.get()
	found := false
	found = appendHook(&n.auth, h) || found
	found = appendHook(&n.enhanced, h) || found
	found = appendHook(&n.session, h) || found
	found = appendHook(&n.pubAuth, h) || found
	found = appendHook(&n.subAuth, h) || found
	found = appendHook(&n.readAuth, h) || found
	found = appendHook(&n.intercept, h) || found
	found = appendHook(&n.connect, h) || found
	found = appendHook(&n.disconnect, h) || found
	found = appendHook(&n.subscribe, h) || found
	found = appendHook(&n.unsubscribe, h) || found
	found = appendHook(&n.drop, h) || found
	found = appendHook(&n.connIcpt, h) || found
	found = appendHook(&n.sessionObs, h) || found
	found = appendHook(&n.willIcpt, h) || found
	found = appendHook(&n.willObs, h) || found
	found = appendHook(&n.delivered, h) || found
	found = appendHook(&n.retain, h) || found
	if !found {
		return fmt.Errorf("%w: %T", ErrNotAHook, h)
	}
	b.hooks.p.Store(&n)
	return nil
}

// appendHook adds h to *list, in a new backing array (the old snapshot
// stays intact for readers), if h implements T.
func appendHook[T any](list *[]T, h any) bool {
	v, ok := h.(T)
	if ok {
		*list = append((*list)[:len(*list):len(*list)], v)
	}
	return ok
}

// call runs f, turning a panic into an error so that a faulty hook refuses
// instead of crashing the broker.
func call(b *Broker, what string, f func() error) (err error) {
	defer b.hookDone(what, b.clock())
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("hook panicked; treated as a refusal", "hook", what, "panic", fmt.Sprint(r))
			err = fmt.Errorf("tern: %s hook panicked: %v", what, r)
		}
	}()
	return f()
}

func (hs *hookSet) authenticate(ctx context.Context, b *Broker, c ConnectInfo) error {
	for _, h := range hs.get().auth {
		if err := call(b, "Authenticate", func() error { return h.Authenticate(ctx, c) }); err != nil {
			return err
		}
	}
	return nil
}

// authorizeSession applies the session ownership rule for a CONNECT from
// an identity other than the owner's: refused unless SessionAuthorizer
// hooks exist and all allow it.
func (hs *hookSet) authorizeSession(ctx context.Context, b *Broker, c ConnectInfo, owner Client) error {
	list := hs.get().session
	if len(list) == 0 {
		return ErrSessionOwned
	}
	for _, h := range list {
		if err := call(b, "AuthorizeSession", func() error { return h.AuthorizeSession(ctx, c, owner) }); err != nil {
			return err
		}
	}
	return nil
}

func (hs *hookSet) authorizePublish(ctx context.Context, b *Broker, c Client, m Message) error {
	for _, h := range hs.get().pubAuth {
		if err := call(b, "AuthorizePublish", func() error { return h.AuthorizePublish(ctx, c, m) }); err != nil {
			return err
		}
	}
	return nil
}

func (hs *hookSet) authorizeSubscribe(ctx context.Context, b *Broker, c Client, filter string, qos byte) error {
	for _, h := range hs.get().subAuth {
		if err := call(b, "AuthorizeSubscribe", func() error { return h.AuthorizeSubscribe(ctx, c, filter, qos) }); err != nil {
			return err
		}
	}
	return nil
}

func (hs *hookSet) hasReadChecks() bool { return len(hs.get().readAuth) > 0 }

func (hs *hookSet) authorizeRead(b *Broker, c Client, topic string) bool {
	for _, h := range hs.get().readAuth {
		err := call(b, "AuthorizeRead", func() error {
			if !h.AuthorizeRead(c, topic) {
				return ErrNotAuthorized
			}
			return nil
		})
		if err != nil {
			return false
		}
	}
	return true
}

func (hs *hookSet) hasPublishChecks() bool {
	h := hs.get()
	return len(h.pubAuth) > 0 || len(h.intercept) > 0
}

// checkPublish runs the publish authorizers then the interceptors; a
// non-nil error drops the message, and the drop observers are told.
func (hs *hookSet) checkPublish(ctx context.Context, b *Broker, from Client, m *Message) error {
	h := hs.get()
	var err error
	if !from.Internal {
		// Application code is trusted: authorizers judge clients only.
		err = hs.authorizePublish(ctx, b, from, *m)
	}
	for i := 0; err == nil && i < len(h.intercept); i++ {
		ic := h.intercept[i]
		err = call(b, "InterceptPublish", func() error { return ic.InterceptPublish(ctx, from, m) })
		if err == nil && !validTopicName(m.Topic) {
			err = fmt.Errorf("tern: interceptor produced an invalid topic %q", m.Topic)
		}
		if err == nil && m.QoS > 2 {
			err = fmt.Errorf("tern: interceptor produced QoS %d", m.QoS)
		}
	}
	if err != nil {
		b.log.Debug("publish dropped by a hook", "client", from.ID, "topic", m.Topic, "error", err)
		err = fmt.Errorf("%w: %w", ErrRefused, err)
		hs.onDropMessage(b, from, *m, err)
		return err
	}
	return nil
}

func (hs *hookSet) hasInterceptors() bool { return len(hs.get().intercept) > 0 }

func (hs *hookSet) hasDropObservers() bool { return len(hs.get().drop) > 0 }

func (hs *hookSet) onConnect(b *Broker, c Client) {
	for _, h := range hs.get().connect {
		call(b, "OnConnect", func() error { h.OnConnect(c); return nil })
	}
}

func (hs *hookSet) onDisconnect(b *Broker, c Client, reason error) {
	for _, h := range hs.get().disconnect {
		call(b, "OnDisconnect", func() error { h.OnDisconnect(c, reason); return nil })
	}
}

func (hs *hookSet) onSubscribe(b *Broker, c Client, filter string, qos byte) {
	for _, h := range hs.get().subscribe {
		call(b, "OnSubscribe", func() error { h.OnSubscribe(c, filter, qos); return nil })
	}
}

func (hs *hookSet) onUnsubscribe(b *Broker, c Client, filter string) {
	for _, h := range hs.get().unsubscribe {
		call(b, "OnUnsubscribe", func() error { h.OnUnsubscribe(c, filter); return nil })
	}
}

func (hs *hookSet) onDrop(b *Broker, c Client, m *session.Message, reason error) {
	if len(hs.get().drop) > 0 {
		hs.onDropMessage(b, c, publicMessage(m, 0), reason)
	}
}

func (hs *hookSet) onDropMessage(b *Broker, c Client, msg Message, reason error) {
	for _, h := range hs.get().drop {
		call(b, "OnDrop", func() error { h.OnDrop(c, msg, reason); return nil })
	}
}

func (hs *hookSet) interceptConnect(ctx context.Context, b *Broker, c *ConnectInfo) error {
	for _, h := range hs.get().connIcpt {
		if err := call(b, "InterceptConnect", func() error { return h.InterceptConnect(ctx, c) }); err != nil {
			return err
		}
	}
	return nil
}

func (hs *hookSet) onSession(b *Broker, c Client, e SessionEvent) {
	for _, h := range hs.get().sessionObs {
		call(b, "OnSession", func() error { h.OnSession(c, e); return nil })
	}
}

func (hs *hookSet) hasWillInterceptors() bool { return len(hs.get().willIcpt) > 0 }

func (hs *hookSet) interceptWill(ctx context.Context, b *Broker, c Client, w *Message) error {
	for _, h := range hs.get().willIcpt {
		if err := call(b, "InterceptWill", func() error { return h.InterceptWill(ctx, c, w) }); err != nil {
			return err
		}
	}
	return nil
}

func (hs *hookSet) onWill(b *Broker, c Client, w Message) {
	for _, h := range hs.get().willObs {
		call(b, "OnWill", func() error { h.OnWill(c, w); return nil })
	}
}

func (hs *hookSet) hasDeliveryObservers() bool { return len(hs.get().delivered) > 0 }

func (hs *hookSet) onDelivered(b *Broker, c Client, m Message) {
	for _, h := range hs.get().delivered {
		call(b, "OnDelivered", func() error { h.OnDelivered(c, m); return nil })
	}
}

func (hs *hookSet) hasRetainObservers() bool { return len(hs.get().retain) > 0 }

func (hs *hookSet) onRetain(b *Broker, m Message) {
	for _, h := range hs.get().retain {
		call(b, "OnRetain", func() error { h.OnRetain(m); return nil })
	}
}
