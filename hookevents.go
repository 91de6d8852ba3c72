package tern

import (
	"context"
	"errors"
)

// The hooks in this file observe or adjust what happens to connections,
// sessions, wills, deliveries and retained messages. Like every hook, each
// is a small interface found by AddHook; implement only what you need.

// ConnectInterceptor may change, for a CONNECT the Authenticators accepted,
// the session expiry and the keepalive the client asked for: set
// c.SessionExpiry and c.KeepAlive (changes to other fields are ignored).
// An MQTT 5 client is told the values used (CONNACK Session Expiry
// Interval, Server Keep Alive). An MQTT 3.1.1 client cannot be told: a
// changed KeepAlive is what the broker enforces, and a SessionExpiry of 0
// ends its session with its connection (any other value keeps it until
// Options.SessionExpiry). An error refuses the CONNECT, as an
// Authenticator's does.
type ConnectInterceptor interface {
	InterceptConnect(ctx context.Context, c *ConnectInfo) error
}

// SessionEventKind says what happened to a session.
type SessionEventKind uint8

// What happens to a session.
const (
	SessionCreated SessionEventKind = iota + 1 // a CONNECT started a new session
	SessionResumed                             // a CONNECT resumed a stored session (session present 1)
	SessionEnded                               // the session is gone; SessionEvent.Reason says why
)

// String returns the kind's name.
func (k SessionEventKind) String() string {
	switch k {
	case SessionCreated:
		return "created"
	case SessionResumed:
		return "resumed"
	case SessionEnded:
		return "ended"
	}
	return "unknown"
}

// Why a session ended, as SessionObserver hooks see it.
var (
	// ErrSessionExpired: its Session Expiry Interval (or
	// Options.SessionExpiry) passed while its client was offline.
	ErrSessionExpired = errors.New("tern: session expired")
	// ErrSessionDiscarded: a CONNECT with Clean Session (Clean Start) set
	// discarded it.
	ErrSessionDiscarded = errors.New("tern: session discarded by a clean start")
	// ErrSessionClosed: it had no expiry and ended with its connection.
	ErrSessionClosed = errors.New("tern: session ended with its connection")
)

// SessionEvent is a change in a session's life.
type SessionEvent struct {
	Kind   SessionEventKind
	Reason error // for SessionEnded: ErrSessionExpired, ErrSessionDiscarded or ErrSessionClosed
}

// SessionObserver is told when a session is created, resumed or ends. c is
// the session's client as the broker last knew it.
type SessionObserver interface {
	OnSession(c Client, e SessionEvent)
}

// WillInterceptor sees a will just before it is published (the connection
// ended without a DISCONNECT that deletes it, its delay passed or its
// session ended). It may rewrite *w (topic, payload, QoS, retain,
// properties), or return an error to suppress it. The publish hooks then
// run as for any message; a rewritten topic must be a valid topic name.
type WillInterceptor interface {
	InterceptWill(ctx context.Context, c Client, w *Message) error
}

// WillObserver is told of every will the broker published, after it was
// routed.
type WillObserver interface {
	OnWill(c Client, w Message)
}

// DeliveryObserver is told of each message delivered to a client: at QoS
// 0 when it is handed to the client's connection, at QoS 1 and 2 when the
// client acknowledges it (PUBACK, PUBCOMP). m.QoS is the delivered QoS.
// With the publishes it sees (PublishInterceptor or PublishAuthorizer),
// an application can track each message end to end. It is called on the
// delivery path: it must be fast.
type DeliveryObserver interface {
	OnDelivered(c Client, m Message)
}

// RetainObserver is told of every change of the retained messages: m set
// as the retained message of its topic, or, with an empty payload, the
// topic's retained message cleared. The broker's own $SYS topics are not
// reported.
type RetainObserver interface {
	OnRetain(m Message)
}
