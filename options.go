package tern

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/topics"
)

// Defaults for the zero values of Options.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxPacketSize  = 1 << 20 // 1 MiB, as nats-server; Mosquitto allows 256 MiB
	DefaultMaxInflight    = 256
	DefaultMaxQueued      = 10000
	DefaultMaxPending     = 4 << 20
	DefaultWriteTimeout   = 30 * time.Second
	DefaultSysInterval    = 10 * time.Second // as Mosquitto's sys_interval
	DefaultHandlerQueue   = 1024
	DefaultMaxTopicLevels = 200 // as Mosquitto
)

// Options configure a Broker. The zero value is usable: every zero field
// takes the default named beside it. New validates the options and names the
// offending field in its error.
type Options struct {
	// Logger receives structured logs. nil: silent.
	Logger *slog.Logger

	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT before it is closed [MQTT-3.1.0-1]. Default 10 s.
	ConnectTimeout time.Duration

	// MaxPacketSize bounds the size of any packet a client sends (fixed
	// header included). A client that announces a larger one is
	// disconnected before the broker allocates it. Default 1 MiB; at most
	// 268435460 (the protocol's limit).
	MaxPacketSize int

	// MaxConnections bounds concurrent network connections; a CONNECT over
	// the limit gets CONNACK 0x03 (server unavailable). 0: unlimited.
	MaxConnections int

	// MaxInflight bounds the QoS 1 and 2 messages sent to one client and
	// not yet acknowledged (the outbound window). Default 256, at most 65535.
	MaxInflight int

	// MaxQueued bounds the messages queued for one client behind its
	// inflight window, online or offline. Over the limit, new messages for
	// that client are dropped and counted. Default 10000; -1 queues nothing.
	MaxQueued int

	// QueueQoS0 queues QoS 0 messages for offline persistent sessions too
	// (as Mosquitto's queue_qos0_messages). Default off: QoS 0 messages for
	// an offline client are dropped.
	QueueQoS0 bool

	// MaxPending bounds the bytes waiting to be written to one connection.
	// Past it, QoS 0 messages for that client are dropped and counted, and
	// QoS 1 and 2 messages wait in the session queue. Default 4 MiB.
	MaxPending int

	// WriteTimeout is how long a write to a client may block before the
	// client is considered stuck and disconnected. Default 30 s.
	WriteTimeout time.Duration

	// SysInterval is how often the $SYS/broker/... topics are refreshed.
	// Default 10 s; negative disables $SYS.
	SysInterval time.Duration

	// HandlerQueue bounds the messages waiting for each Broker.Subscribe
	// handler; past it, messages for that handler are dropped and counted.
	// Default 1024.
	HandlerQueue int

	// Store persists sessions, subscriptions, undelivered messages and
	// retained messages (see package storage); New restores them. nil keeps
	// all state in memory only, lost when the process ends. The broker does
	// not close the Store: close it after Broker.Close.
	Store storage.Store

	// SessionExpiry removes a persistent session whose client has stayed
	// offline this long (as Mosquitto's persistent_client_expiration).
	// 0: sessions never expire.
	SessionExpiry time.Duration

	// UseCertCNAsUsername takes the user name from the Common Name of the
	// client's verified TLS certificate (TLS and WebSocket over TLS
	// listeners that require client certificates), as Mosquitto's
	// use_identity_as_username; the CONNECT's user name is ignored. A client
	// without a verified certificate is refused with CONNACK 0x05.
	UseCertCNAsUsername bool

	// MaxClientIDLength bounds client identifiers, in bytes. 0: 65535 (any
	// identifier the protocol can carry). MQTT 3.1 clients (protocol level
	// 3) are always limited to 23 characters, as that version requires.
	MaxClientIDLength int

	// MaxTopicLevels bounds the levels of a topic name (PUBLISH, will) or
	// topic filter (SUBSCRIBE, UNSUBSCRIBE): one more than its '/'
	// separators. Every level costs the broker memory for as long as a
	// subscription or a retained message holds it, so without a bound a
	// client can make a few bytes on the wire cost kilobytes. A client that
	// sends more levels commits a protocol violation and is disconnected,
	// as Mosquitto does (with the same limit); Broker.Publish and
	// Broker.Subscribe return an error that matches ErrTooManyLevels.
	// Default 200. There is no separate "unlimited" value: a topic of
	// 65535 bytes has at most topics.MaxLevels (65536) levels, the largest
	// value allowed, which lifts the limit.
	MaxTopicLevels int

	// MaxSubscriptionsPerClient bounds the subscriptions of one client
	// session. A SUBSCRIBE that would take the session past it gets the
	// failure return code 0x80 for each filter over the limit (a filter
	// the session already has is replaced, and does not count), counted
	// in Stats.SubscriptionsRefused. 0: unlimited, as Mosquitto and EMQX.
	MaxSubscriptionsPerClient int
}

// ErrTooManyLevels matches the error for a topic name or filter with more
// levels than Options.MaxTopicLevels: returned by Broker.Publish and
// Broker.Subscribe, and the reason a client that sent one was disconnected.
var ErrTooManyLevels = errors.New("tern: more topic levels than Options.MaxTopicLevels")

// levelsError is a topic name or filter over Options.MaxTopicLevels.
type levelsError struct {
	what        string // "topic", "will topic" or "filter"
	levels, max int
}

func (e *levelsError) Error() string {
	return fmt.Sprintf("%s has %d levels, over Options.MaxTopicLevels (%d)", e.what, e.levels, e.max)
}

func (e *levelsError) Is(target error) bool { return target == ErrTooManyLevels }

// checkLevels returns a *levelsError when s, a topic name or filter, has
// more levels than Options.MaxTopicLevels. n levels take n-1 separators,
// so a string shorter than the limit cannot exceed it: the usual topic
// costs one comparison, a longer one a single vectorised count of '/'.
func (o *Options) checkLevels(what, s string) error {
	if len(s) < o.MaxTopicLevels {
		return nil // inlined: the PUBLISH path pays one comparison
	}
	return o.countLevels(what, s)
}

// countLevels is checkLevels for a string long enough to be over.
func (o *Options) countLevels(what, s string) error {
	if n := topics.Levels(s); n > o.MaxTopicLevels {
		return &levelsError{what: what, levels: n, max: o.MaxTopicLevels}
	}
	return nil
}

func (o Options) withDefaults() (Options, error) {
	if o.ConnectTimeout < 0 {
		return o, fmt.Errorf("tern: Options.ConnectTimeout must not be negative, got %v", o.ConnectTimeout)
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	const maxWire = 268435455 + 5
	switch {
	case o.MaxPacketSize < 0 || o.MaxPacketSize > maxWire:
		return o, fmt.Errorf("tern: Options.MaxPacketSize must be between 0 and %d, got %d", maxWire, o.MaxPacketSize)
	case o.MaxPacketSize == 0:
		o.MaxPacketSize = DefaultMaxPacketSize
	case o.MaxPacketSize < 64:
		return o, fmt.Errorf("tern: Options.MaxPacketSize must be at least 64 bytes, got %d", o.MaxPacketSize)
	}
	if o.MaxConnections < 0 {
		return o, fmt.Errorf("tern: Options.MaxConnections must not be negative, got %d", o.MaxConnections)
	}
	switch {
	case o.MaxInflight < 0 || o.MaxInflight > 65535:
		return o, fmt.Errorf("tern: Options.MaxInflight must be between 0 and 65535, got %d", o.MaxInflight)
	case o.MaxInflight == 0:
		o.MaxInflight = DefaultMaxInflight
	}
	switch {
	case o.MaxQueued < -1:
		return o, fmt.Errorf("tern: Options.MaxQueued must be -1 or more, got %d", o.MaxQueued)
	case o.MaxQueued == 0:
		o.MaxQueued = DefaultMaxQueued
	case o.MaxQueued == -1:
		o.MaxQueued = 0
	}
	switch {
	case o.MaxPending < 0:
		return o, fmt.Errorf("tern: Options.MaxPending must not be negative, got %d", o.MaxPending)
	case o.MaxPending == 0:
		o.MaxPending = DefaultMaxPending
	}
	switch {
	case o.WriteTimeout < 0:
		return o, fmt.Errorf("tern: Options.WriteTimeout must not be negative, got %v", o.WriteTimeout)
	case o.WriteTimeout == 0:
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.SysInterval == 0 {
		o.SysInterval = DefaultSysInterval
	}
	switch {
	case o.HandlerQueue < 0:
		return o, fmt.Errorf("tern: Options.HandlerQueue must not be negative, got %d", o.HandlerQueue)
	case o.HandlerQueue == 0:
		o.HandlerQueue = DefaultHandlerQueue
	}
	switch {
	case o.MaxClientIDLength < 0 || o.MaxClientIDLength > 65535:
		return o, fmt.Errorf("tern: Options.MaxClientIDLength must be between 0 and 65535, got %d", o.MaxClientIDLength)
	case o.MaxClientIDLength == 0:
		o.MaxClientIDLength = 65535
	}
	switch {
	case o.MaxTopicLevels < 0 || o.MaxTopicLevels > topics.MaxLevels:
		return o, fmt.Errorf("tern: Options.MaxTopicLevels must be between 0 and %d, got %d", topics.MaxLevels, o.MaxTopicLevels)
	case o.MaxTopicLevels == 0:
		o.MaxTopicLevels = DefaultMaxTopicLevels
	}
	if o.MaxSubscriptionsPerClient < 0 {
		return o, fmt.Errorf("tern: Options.MaxSubscriptionsPerClient must not be negative, got %d", o.MaxSubscriptionsPerClient)
	}
	if o.SessionExpiry < 0 {
		return o, fmt.Errorf("tern: Options.SessionExpiry must not be negative, got %v", o.SessionExpiry)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
