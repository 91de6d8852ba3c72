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
	// the limit gets CONNACK 0x03 (server unavailable), or for MQTT 5 0x89
	// (server busy).
	//
	// 0 takes a default from the process's file-descriptor limit (the
	// RLIMIT_NOFILE soft limit when New runs; Go raises it to the hard limit
	// at start-up), so that clients are refused with CONNACK 0x03 before the
	// process runs out of descriptors: the limit minus a margin of a tenth
	// of it, at least 32 and at most 1024 (limit 1024: 922 connections;
	// 256: 224; 65536: 64512). The margin keeps descriptors for the
	// listeners, the store, log files, Serve's reserve descriptor, WebSocket
	// upgrades in progress, and the connections over the limit that are
	// answered CONNACK 0x03 before they are closed. A limit of 64 or less
	// gives half of it; no limit (or one above 2^31) gives no default limit.
	// Set a large value, such as math.MaxInt32, to lift the default.
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
	// offline this long (as Mosquitto's persistent_client_expiration), and
	// caps an MQTT 5 client's Session Expiry Interval. 0: MQTT 3.1.1
	// sessions never expire, and MQTT 5 ones when their client says.
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

	// The options below concern MQTT 5 clients only. (SessionExpiry above
	// also caps the Session Expiry Interval an MQTT 5 client asks for; the
	// client is told the value used in the CONNACK.)

	// MaxKeepAlive is the longest Keep Alive an MQTT 5 client may use: one
	// that asks for more, or for none (0), is told to use this one (CONNACK
	// Server Keep Alive), as Mosquitto's max_keepalive. 0: no cap. At most
	// 65535 s. MQTT 3.1.1 clients keep the Keep Alive they ask for.
	MaxKeepAlive time.Duration

	// ReceiveMaximum is the Receive Maximum announced to MQTT 5 clients:
	// how many QoS 1 and 2 PUBLISHes a client may send without having
	// received their acknowledgement; one more is a protocol error
	// (DISCONNECT 0x93). Default 1024, at most 65535.
	ReceiveMaximum int

	// TopicAliasMaximum is the Topic Alias Maximum announced to MQTT 5
	// clients: how many topic aliases each may define. -1: none. Default 64,
	// at most 65535.
	TopicAliasMaximum int

	// OutboundTopicAliases is how many topic aliases Tern defines towards
	// each MQTT 5 connection, within the Topic Alias Maximum the client
	// announced in its CONNECT (a client that announced none, or 0, gets
	// none): the first PUBLISH of a topic carries the topic name and an
	// alias, the next ones the alias alone, which saves the topic name's
	// bytes on every repeated topic. When all are in use, the least
	// recently used alias is given to the next new topic. Mappings last
	// for one network connection, which holds the topic names it has
	// aliases for. Default 0: none (as Mosquitto), at most 65535.
	OutboundTopicAliases int

	// ResponseInformation is sent to an MQTT 5 client that asks for it
	// (Request Response Information 1) as the CONNACK's Response
	// Information: by convention the start of the topics it may use for
	// responses. Empty: none is sent.
	ResponseInformation string

	// ValidatePayloadFormat checks that the payload of a PUBLISH whose
	// Payload Format Indicator is 1 is well-formed UTF-8, as MQTT 5 allows a
	// receiver to: one that is not gets PUBACK or PUBREC 0x99, or at QoS 0
	// DISCONNECT 0x99. Default off (payloads are forwarded unchecked).
	ValidatePayloadFormat bool

	// SharedSubscriptions chooses which member of a shared subscription
	// group ($share/NAME/FILTER) gets each message. Default ShareRoundRobin.
	SharedSubscriptions ShareStrategy

	// Cluster joins this broker to others as one (see Cluster and package
	// cluster/nats): messages, retained messages, client identifiers and
	// persistent sessions are shared. nil: a broker on its own. The
	// cluster keeps the state, so Store must be nil. The broker stops the
	// Cluster at Close.
	Cluster Cluster

	// MaxTopicLevels bounds the levels of a topic name (PUBLISH, will) or
	// topic filter (SUBSCRIBE, UNSUBSCRIBE): one more than its '/'
	// separators. Every level costs the broker memory for as long as a
	// subscription or a retained message holds it, so without a bound a
	// client can make a few bytes on the wire cost kilobytes. A client that
	// sends more levels commits a protocol violation and is disconnected,
	// as Mosquitto does (with the same limit); an MQTT 5 client is told
	// why (DISCONNECT 0x90 for a topic name, SUBACK or UNSUBACK 0x8F for
	// that filter alone, CONNACK refused for a will topic); Broker.Publish and
	// Broker.Subscribe return an error that matches ErrTooManyLevels.
	// Default 200. There is no separate "unlimited" value: a topic of
	// 65535 bytes has at most topics.MaxLevels (65536) levels, the largest
	// value allowed, which lifts the limit.
	MaxTopicLevels int

	// MaxSubscriptionsPerClient bounds the subscriptions of one client
	// session. A SUBSCRIBE that would take the session past it gets the
	// failure return code 0x80 (MQTT 5: 0x97 Quota exceeded) for each
	// filter over the limit (a filter
	// the session already has is replaced, and does not count), counted
	// in Stats.SubscriptionsRefused. 0: unlimited, as Mosquitto and EMQX.
	MaxSubscriptionsPerClient int

	// ReleaseMemoryAfter returns memory to the operating system after a
	// burst of connections coming or going: once at least 256 network
	// connections have been accepted or have ended since the last
	// release, and none has been accepted, answered with a CONNACK or
	// ended for this long, the broker calls runtime/debug.FreeOSMemory,
	// counted in Stats.MemoryReleases. Without it, the Go runtime keeps
	// what the burst freed (the garbage of its handshakes, the state of
	// the connections that ended) as resident memory, up to its next heap
	// goal (twice the live heap with GOGC=100): idle TLS connections then
	// cost half as much memory again as they need. FreeOSMemory forces a
	// garbage collection of the whole process: releases are at least 1 s
	// apart, and 50 times as long as the last one took, so that clients
	// coming and going in bursts cannot make the broker spend more than
	// about 2 % of a core on them. The default is 0, never; the standalone
	// broker (cmd/tern), which owns its process, sets 250 ms. Negative: an
	// error.
	ReleaseMemoryAfter time.Duration

	// StandardSockets, on Linux, serves the connections Serve accepts
	// from a *net.TCPListener as Go's *net.TCPConn, as on other systems,
	// instead of on Tern's own sockets. Tern's own cost about 880 bytes
	// less memory per connection (no netpoller descriptor, deadline
	// timers or finalizer; idle connections are parked on the broker's
	// epoll instance either way). They get TCP_NODELAY and the TCP
	// keep-alive of listeners.TCPKeepAlive, whatever keep-alive the
	// listener's net.ListenConfig asked for: set StandardSockets to keep
	// that. Client.RemoteAddr is a *net.TCPAddr either way. Listeners of
	// other types (TLS, WebSocket, unix sockets, a net.Listener of the
	// application's) are served as they are.
	StandardSockets bool
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

// ShareStrategy chooses the member of a shared subscription group that
// receives a message.
type ShareStrategy uint8

// Strategies for shared subscriptions.
const (
	ShareRoundRobin ShareStrategy = iota // each member in turn (the default)
	ShareRandom                          // a member chosen at random
	ShareHashClient                      // by a hash of the publisher's client id: one publisher's messages go to one member
	ShareHashTopic                       // by a hash of the topic: one topic's messages go to one member
)

// String returns the strategy's name, as ParseShareStrategy accepts it.
func (s ShareStrategy) String() string {
	switch s {
	case ShareRoundRobin:
		return "round-robin"
	case ShareRandom:
		return "random"
	case ShareHashClient:
		return "hash-client"
	case ShareHashTopic:
		return "hash-topic"
	}
	return fmt.Sprintf("ShareStrategy(%d)", uint8(s))
}

// ParseShareStrategy returns the strategy named s: round-robin, random,
// hash-client or hash-topic.
func ParseShareStrategy(s string) (ShareStrategy, error) {
	for st := ShareRoundRobin; st <= ShareHashTopic; st++ {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("tern: unknown shared subscription strategy %q (round-robin, random, hash-client or hash-topic)", s)
}

// Defaults of the MQTT 5 options.
const (
	DefaultReceiveMaximum    = 1024
	DefaultTopicAliasMaximum = 64
)

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
	if o.MaxConnections == 0 {
		if soft, ok := fileLimit(); ok {
			o.MaxConnections = defaultMaxConnections(soft)
		}
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
	case o.MaxKeepAlive < 0 || o.MaxKeepAlive > 65535*time.Second:
		return o, fmt.Errorf("tern: Options.MaxKeepAlive must be between 0 and 65535s, got %v", o.MaxKeepAlive)
	case o.MaxKeepAlive%time.Second != 0:
		return o, fmt.Errorf("tern: Options.MaxKeepAlive must be a whole number of seconds, got %v", o.MaxKeepAlive)
	}
	switch {
	case o.ReceiveMaximum < 0 || o.ReceiveMaximum > 65535:
		return o, fmt.Errorf("tern: Options.ReceiveMaximum must be between 0 and 65535, got %d", o.ReceiveMaximum)
	case o.ReceiveMaximum == 0:
		o.ReceiveMaximum = DefaultReceiveMaximum
	}
	switch {
	case o.TopicAliasMaximum < -1 || o.TopicAliasMaximum > 65535:
		return o, fmt.Errorf("tern: Options.TopicAliasMaximum must be between -1 and 65535, got %d", o.TopicAliasMaximum)
	case o.TopicAliasMaximum == 0:
		o.TopicAliasMaximum = DefaultTopicAliasMaximum
	case o.TopicAliasMaximum == -1:
		o.TopicAliasMaximum = 0
	}
	if o.OutboundTopicAliases < 0 || o.OutboundTopicAliases > 65535 {
		return o, fmt.Errorf("tern: Options.OutboundTopicAliases must be between 0 and 65535, got %d", o.OutboundTopicAliases)
	}
	if o.Cluster != nil && o.Store != nil {
		return o, fmt.Errorf("tern: Options.Cluster and Options.Store cannot both be set: the cluster keeps the state")
	}
	if o.SharedSubscriptions > ShareHashTopic {
		return o, fmt.Errorf("tern: Options.SharedSubscriptions: unknown strategy %d", o.SharedSubscriptions)
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
	if o.ReleaseMemoryAfter < 0 {
		return o, fmt.Errorf("tern: Options.ReleaseMemoryAfter must not be negative, got %v", o.ReleaseMemoryAfter)
	}
	if o.SessionExpiry < 0 {
		return o, fmt.Errorf("tern: Options.SessionExpiry must not be negative, got %v", o.SessionExpiry)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// defaultMaxConnections derives Options.MaxConnections from the
// RLIMIT_NOFILE soft limit, as its doc comment says; 0 is no limit.
func defaultMaxConnections(fileLimit uint64) int {
	if fileLimit >= 1<<31 {
		return 0
	}
	limit := int(fileLimit)
	margin := min(max(limit/10, 32), 1024)
	if limit <= 2*margin {
		return max(limit/2, 1)
	}
	return limit - margin
}
