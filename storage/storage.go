// Package storage defines how a Tern broker persists its state, and holds
// the in-memory backend. The durable backend on an embedded bbolt file is in
// storage/bolt; every backend passes the shared suite in
// storage/storagetest.
//
// The broker describes every change of persistent state as an Op and hands
// the ops to Store.Write in batches: it collects the ops of all connections
// while the previous batch is being written, so one transaction and one
// fsync serve many messages (group commit). A QoS 1 or 2 PUBLISH is
// acknowledged to its sender only after the batch holding its ops returned
// from Write, and nothing is written to a client before the state that
// produced it was written.
//
// What is stored: persistent sessions (clean session 0) with their
// subscriptions, their outbound messages (queued, or in flight with their
// packet identifier and state), and the inbound QoS 2 packet identifiers
// awaiting PUBREL; and the retained messages. Clean sessions live only as
// long as their connection and are never stored.
package storage

import (
	"context"
	"time"
)

// Session is a persistent client session.
type Session struct {
	ClientID string
	Clean    bool      // always false for stored sessions; kept for completeness
	LastSeen time.Time // when the client was last connected (zero while connected)
	Username string
	// Expiry is the Session Expiry Interval in seconds: how long the
	// session outlives its connection. NeverExpires: never (every MQTT
	// 3.1.1 persistent session, and sessions stored before the field
	// existed).
	Expiry uint32
	// Will is the will of the session's client, kept until it is published
	// or deleted; nil: none.
	Will *Will
}

// NeverExpires is the Session.Expiry of a session that never expires.
const NeverExpires = 0xFFFFFFFF

// Will is a client's will message.
type Will struct {
	// Msg is the will message. Its Expires, if not 0, is minus its
	// Message Expiry Interval in seconds: the interval starts when the
	// will is published.
	Msg Message
	// Delay is the MQTT 5 Will Delay Interval, in seconds.
	Delay uint32
	// PublishAt is when a will whose client went offline is due; zero
	// while the client is connected (after a crash, the will is then due
	// Delay after the broker starts).
	PublishAt time.Time
}

// Subscription is one topic filter of a session, with its options.
type Subscription struct {
	ClientID string
	// Filter is the filter as subscribed: "$share/NAME/FILTER" for a
	// shared subscription.
	Filter string
	QoS    byte
	// MQTT 5 subscription options and Subscription Identifier (0: none).
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	ID                uint32
}

// Message is an application message.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// MQTT 5 properties. HasFormat and Format are the Payload Format
	// Indicator; Props holds the properties forwarded as they are
	// (Content Type, Response Topic, Correlation Data, User Properties)
	// encoded as on the wire; Expires is when the message expires, in Unix
	// nanoseconds (0: never).
	HasFormat bool
	Format    byte
	Props     []byte
	Expires   int64
}

// Delivery is an outbound message of a session: queued (PacketID 0) or in
// flight (PacketID set; Released once PUBREC was received for QoS 2).
type Delivery struct {
	ClientID string
	Seq      uint64 // orders a session's deliveries; unique per session
	PacketID uint16
	QoS      byte // the delivered QoS
	Retain   bool // the RETAIN flag on the wire
	Released bool
	Msg      Message
	// SubIDs are the MQTT 5 Subscription Identifiers sent with it.
	SubIDs []uint32
	// Share is the shared subscription ("$share/NAME/FILTER") it came
	// through, "" for any other.
	Share string
}

// Inbound is a QoS 2 packet identifier received from a client and not yet
// released by PUBREL.
type Inbound struct {
	ClientID string
	PacketID uint16
}

// Kind says what an Op does.
type Kind uint8

// The kinds of Op. Puts are upserts keyed as the comment says.
const (
	PutSession         Kind = iota + 1 // Session, by ClientID
	DeleteSession                      // ClientID: the session and everything it owns
	PutSubscription                    // Subscription, by (ClientID, Filter)
	DeleteSubscription                 // Subscription.ClientID, Subscription.Filter
	PutDelivery                        // Delivery, by (ClientID, Seq)
	DeleteDelivery                     // Delivery.ClientID, Delivery.Seq
	PutInbound                         // Inbound, by (ClientID, PacketID)
	DeleteInbound                      // Inbound
	PutRetained                        // Retained, by Topic
	DeleteRetained                     // Retained.Topic
)

// Op is one change of persistent state. Only the fields its Kind names are
// used.
type Op struct {
	Kind         Kind
	ClientID     string // DeleteSession
	Session      Session
	Subscription Subscription
	Delivery     Delivery
	Inbound      Inbound
	Retained     Message
}

// Snapshot is everything a Store holds, as Load returns it.
type Snapshot struct {
	Sessions      []Session
	Subscriptions []Subscription
	Deliveries    []Delivery // in (ClientID, Seq) order
	Inbound       []Inbound
	Retained      []Message
}

// Store is a storage backend.
type Store interface {
	// Load returns everything stored. The broker calls it once, in New,
	// before it accepts a connection. A backend that cannot read its data
	// returns an error naming the file or resource; New then fails.
	Load(ctx context.Context) (*Snapshot, error)
	// Write applies ops in order, atomically: after a crash either all of
	// them or none are visible to Load. It returns when the batch is as
	// durable as the backend promises (on disk, for a synchronous backend).
	// It must be safe for concurrent use.
	Write(ctx context.Context, ops []Op) error
	// Close flushes anything pending and releases the backend.
	Close() error
}
