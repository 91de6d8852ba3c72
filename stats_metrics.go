package tern

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packets"
)

// Metrics is a detailed snapshot of the broker's counters, for monitoring
// systems (package metrics exports it to Prometheus). It holds Stats, with
// the same values, and breaks its totals down by reason and QoS; it adds
// what Stats leaves out: the connections, the messages in flight and
// queued, and the latency histograms of the store and the hooks.
//
// Stats stays the small snapshot published on $SYS and as JSON; Metrics
// is for scrapes. Taking it visits every session under its lock: take it
// every few seconds, not for every message.
type Metrics struct {
	Stats

	// Started is when the broker was made (New).
	Started time.Time
	// Connections is the number of open network connections, whether
	// their client has connected (CONNACK) yet or not.
	Connections int64
	// ConnectionsOpened counts the network connections Serve accepted and
	// served (not those it closed at once for lack of file descriptors:
	// RefusedBy[RefusedFDLimit] counts those).
	ConnectionsOpened int64
	// Disconnects counts the ends of connections whose CONNECT was
	// accepted, for any reason.
	Disconnects int64
	// RefusedBy breaks Stats.Refused down, indexed by RefuseReason.
	RefusedBy [NumRefuseReasons]int64
	// PublishReceivedByQoS breaks Stats.PublishReceived down by the QoS of
	// the PUBLISH; PublishSentByQoS breaks Stats.PublishSent down by the
	// QoS delivered at.
	PublishReceivedByQoS [3]int64
	PublishSentByQoS     [3]int64
	// DroppedBy breaks Stats.PublishDropped down, indexed by DropReason.
	DroppedBy [NumDropReasons]int64
	// Inflight counts the QoS 1 and 2 deliveries sent and not yet
	// completed, and Queued the deliveries waiting to be sent (to offline
	// clients, or beyond a window), over every session.
	Inflight int
	Queued   int
	// StoreCommit is the duration, in seconds, of each write to
	// Options.Store (one group commit, retries included one by one), and
	// StoreBatch the number of operations it wrote. StoreErrors counts the
	// writes that failed (and were retried). They stay empty without a
	// store.
	StoreCommit Histogram
	StoreBatch  Histogram
	StoreErrors int64
	// Hooks is the duration, in seconds, of the hook calls, by hook method,
	// for the methods called at least once, in a fixed order.
	Hooks []HookLatency
}

// HookLatency is the latency histogram of one hook method.
type HookLatency struct {
	// Hook names the method: "Authenticate", "AuthorizePublish",
	// "OnConnect" and so on; "SubscribeHandler" for the handlers of
	// Broker.Subscribe; "other" for any method not named here.
	Hook    string
	Latency Histogram
}

// Histogram is a snapshot of one of the broker's fixed-bucket histograms,
// in the base unit of what it measures (seconds, operations).
type Histogram struct {
	// Bounds are the buckets' inclusive upper bounds, ascending.
	Bounds []float64
	// Counts has the number of observations in each bucket (not
	// cumulative), and one more element: those above the last bound.
	Counts []uint64
	// Count is the number of observations (the sum of Counts), Sum their
	// sum.
	Count uint64
	Sum   float64
}

// RefuseReason says why the broker refused a connection.
type RefuseReason uint8

// The reasons a connection is refused: the CONNACK's reason code, and the
// refusals before any CONNACK. Metrics.RefusedBy counts them.
const (
	RefusedBadCredentials    RefuseReason = iota // bad user name or password (0x86; 3.1.1: 4)
	RefusedNotAuthorized                         // not authorized (0x87; 3.1.1: 5): a hook, session ownership, the will's topic
	RefusedIdentifier                            // client identifier not valid (0x85; 3.1.1: 2)
	RefusedProtocolVersion                       // unsupported protocol version (0x84; 3.1.1: 1)
	RefusedServerUnavailable                     // server unavailable or busy, use another server (0x88, 0x89, 0x9C, 0x9D; 3.1.1: 3)
	RefusedQuotaExceeded                         // quota or connection rate exceeded (0x97, 0x9F)
	RefusedBanned                                // banned (0x8A)
	RefusedBadAuthMethod                         // bad authentication method (0x8C)
	RefusedStoreFailing                          // a persistent session while the store's writes fail (0x88)
	RefusedConnectionLimit                       // over Options.MaxConnections (3.1.1 CONNACK 3)
	RefusedFDLimit                               // closed at accept: the process was out of file descriptors
	RefusedOther                                 // any other reason code a hook asked for
	NumRefuseReasons                             // the number of reasons
)

// String returns the reason as a Prometheus label value: "bad_credentials",
// "not_authorized" and so on.
func (r RefuseReason) String() string {
	switch r {
	case RefusedBadCredentials:
		return "bad_credentials"
	case RefusedNotAuthorized:
		return "not_authorized"
	case RefusedIdentifier:
		return "identifier_rejected"
	case RefusedProtocolVersion:
		return "protocol_version"
	case RefusedServerUnavailable:
		return "server_unavailable"
	case RefusedQuotaExceeded:
		return "quota_exceeded"
	case RefusedBanned:
		return "banned"
	case RefusedBadAuthMethod:
		return "bad_auth_method"
	case RefusedStoreFailing:
		return "store_failing"
	case RefusedConnectionLimit:
		return "connection_limit"
	case RefusedFDLimit:
		return "fd_limit"
	}
	return "other"
}

// connackRefusal is the reason counted for a CONNACK refusal with code,
// refused because of why.
func connackRefusal(code packets.ReasonCode, why error) RefuseReason {
	if why == errStoreFailing {
		return RefusedStoreFailing
	}
	switch code {
	case packets.BadUserNameOrPassword:
		return RefusedBadCredentials
	case packets.NotAuthorized:
		return RefusedNotAuthorized
	case packets.ClientIdentifierNotValid:
		return RefusedIdentifier
	case packets.UnsupportedProtocolVersion:
		return RefusedProtocolVersion
	case packets.ServerUnavailable, packets.ServerBusy, packets.UseAnotherServer, packets.ServerMoved:
		return RefusedServerUnavailable
	case packets.QuotaExceeded, packets.ConnectionRateExceeded:
		return RefusedQuotaExceeded
	case packets.Banned:
		return RefusedBanned
	case packets.BadAuthenticationMethod:
		return RefusedBadAuthMethod
	}
	return RefusedOther
}

// DropReason says why a message or one of its deliveries was dropped.
type DropReason uint8

// The reasons a message is dropped. Metrics.DroppedBy counts them.
const (
	DropQueueFull        DropReason = iota // the session's queue (Options.MaxQueued) or a Broker.Subscribe handler's buffer was full
	DropOfflineQoS0                        // QoS 0 for an offline client (without Options.QueueQoS0)
	DropWriteBufferFull                    // QoS 0 for a client whose write buffer (Options.MaxPending) was full: it is not reading
	DropConnectionClosed                   // the client's connection was closing
	DropTooLarge                           // larger than the client's Maximum Packet Size (MQTT 5)
	DropReadDenied                         // the client's identity may no longer read the topic (ReadAuthorizer)
	DropExpired                            // its Message Expiry Interval passed while it waited (MQTT 5)
	DropPublishRefused                     // a PublishAuthorizer or PublishInterceptor refused or dropped the publish
	DropSysTopic                           // a client published to $SYS/broker/
	DropPayloadFormat                      // a UTF-8 payload that is not (Options.ValidatePayloadFormat)
	DropOther                              // any other reason
	NumDropReasons                         // the number of reasons
)

// String returns the reason as a Prometheus label value: "queue_full",
// "offline_qos0" and so on.
func (r DropReason) String() string {
	switch r {
	case DropQueueFull:
		return "queue_full"
	case DropOfflineQoS0:
		return "offline_qos0"
	case DropWriteBufferFull:
		return "write_buffer_full"
	case DropConnectionClosed:
		return "connection_closed"
	case DropTooLarge:
		return "too_large"
	case DropReadDenied:
		return "read_denied"
	case DropExpired:
		return "expired"
	case DropPublishRefused:
		return "publish_refused"
	case DropSysTopic:
		return "sys_topic"
	case DropPayloadFormat:
		return "payload_format_invalid"
	}
	return "other"
}

// dropReasonOf is the reason counted for a delivery dropped with why.
func dropReasonOf(why error) DropReason {
	switch why {
	case errQueueFull:
		return DropQueueFull
	case errOfflineQoS0:
		return DropOfflineQoS0
	case errPendingFull:
		return DropWriteBufferFull
	case errConnClosed:
		return DropConnectionClosed
	case errTooLarge:
		return DropTooLarge
	case errNotReadable:
		return DropReadDenied
	case errExpired:
		return DropExpired
	}
	return DropOther
}

// The hook calls measured, by the name hookset.go's call gives them. A
// hook method added there gets a kind here, or counts as "other".
const (
	hookAuthenticate = iota
	hookAuthStep
	hookAuthorizeSession
	hookAuthorizePublish
	hookAuthorizeSubscribe
	hookAuthorizeRead
	hookInterceptPublish
	hookInterceptConnect
	hookInterceptWill
	hookOnConnect
	hookOnDisconnect
	hookOnSubscribe
	hookOnUnsubscribe
	hookOnDrop
	hookOnSession
	hookOnWill
	hookOnDelivered
	hookOnRetain
	hookHandler
	hookOther
	numHookKinds
)

// hookNames are the label values of the hook kinds.
func hookNames() [numHookKinds]string {
	return [numHookKinds]string{
		"Authenticate", "AuthStep", "AuthorizeSession", "AuthorizePublish", "AuthorizeSubscribe",
		"AuthorizeRead", "InterceptPublish", "InterceptConnect", "InterceptWill", "OnConnect",
		"OnDisconnect", "OnSubscribe", "OnUnsubscribe", "OnDrop", "OnSession", "OnWill",
		"OnDelivered", "OnRetain", "SubscribeHandler", "other",
	}
}

// hookKindOf is the kind of the hook call named what: a switch, which
// compiles to a few comparisons, not a map.
func hookKindOf(what string) int {
	switch what {
	case "Authenticate":
		return hookAuthenticate
	case "AuthStep":
		return hookAuthStep
	case "AuthorizeSession":
		return hookAuthorizeSession
	case "AuthorizePublish":
		return hookAuthorizePublish
	case "AuthorizeSubscribe":
		return hookAuthorizeSubscribe
	case "AuthorizeRead":
		return hookAuthorizeRead
	case "InterceptPublish":
		return hookInterceptPublish
	case "InterceptConnect":
		return hookInterceptConnect
	case "InterceptWill":
		return hookInterceptWill
	case "OnConnect":
		return hookOnConnect
	case "OnDisconnect":
		return hookOnDisconnect
	case "OnSubscribe":
		return hookOnSubscribe
	case "OnUnsubscribe":
		return hookOnUnsubscribe
	case "OnDrop":
		return hookOnDrop
	case "OnSession":
		return hookOnSession
	case "OnWill":
		return hookOnWill
	case "OnDelivered":
		return hookOnDelivered
	case "OnRetain":
		return hookOnRetain
	case "Subscribe handler":
		return hookHandler
	}
	return hookOther
}

// The histograms' fixed buckets: durations from 1µs to 10s in steps of
// 1, 2.5 and 5 times a power of ten; sizes from 1 to 4096 in powers of 2.
const (
	durationBounds = 22
	sizeBounds     = 13
	histBuckets    = max(durationBounds, sizeBounds) + 1
)

// histogram counts observations in fixed buckets without a lock: an
// observation is two atomic adds, its bucket's count and the sum.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Int64
}

func (h *histogram) observe(bucket int, v int64) {
	h.counts[bucket].Add(1)
	h.sum.Add(v)
}

// durationBucket is the bucket of a duration: the first bound at or above
// it, durationBounds above the last.
func durationBucket(d time.Duration) int {
	i := 0
	for scale := time.Microsecond; ; scale *= 10 {
		for _, le := range [3]time.Duration{scale, scale * 5 / 2, scale * 5} {
			if i == durationBounds || d <= le {
				return i
			}
			i++
		}
	}
}

// durationBoundsSeconds are the bounds of durationBucket, in seconds.
func durationBoundsSeconds() []float64 {
	out := make([]float64, 0, durationBounds)
	for scale := time.Microsecond; len(out) < durationBounds; scale *= 10 {
		for _, le := range [3]time.Duration{scale, scale * 5 / 2, scale * 5} {
			if len(out) < durationBounds {
				out = append(out, float64(le)/1e9)
			}
		}
	}
	return out
}

// sizeBucket is the bucket of a size: the first power of 2 at or above it,
// sizeBounds above 4096.
func sizeBucket(n int) int {
	if n <= 1 {
		return 0
	}
	return min(bits.Len(uint(n-1)), sizeBounds)
}

// sizeBoundsList are the bounds of sizeBucket.
func sizeBoundsList() []float64 {
	out := make([]float64, sizeBounds)
	for i := range out {
		out[i] = float64(uint(1) << i)
	}
	return out
}

// snapshot reads h, whose buckets are bounds, its sum scaled by scale.
func (h *histogram) snapshot(bounds []float64, scale float64) Histogram {
	out := Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
	for i := range out.Counts {
		out.Counts[i] = h.counts[i].Load()
		out.Count += out.Counts[i]
	}
	out.Sum = float64(h.sum.Load()) * scale
	return out
}

// Metrics returns a detailed snapshot of the broker's counters (see
// Metrics).
func (b *Broker) Metrics() Metrics {
	m := Metrics{Stats: b.Stats()}
	st := &b.stats
	m.Started = b.started
	m.Connections = b.nconns.Load()
	m.ConnectionsOpened = st.opened.Load()
	m.Disconnects = st.disconnects.Load()
	// The totals are summed from the same loads as their breakdowns, so
	// that they agree.
	m.Refused = load(m.RefusedBy[:], st.refused[:])
	m.PublishReceived = load(m.PublishReceivedByQoS[:], st.publishReceived[:])
	m.PublishSent = load(m.PublishSentByQoS[:], st.publishSent[:])
	m.PublishDropped = load(m.DroppedBy[:], st.dropped[:])

	b.mu.Lock()
	ss := make([]*sess, 0, len(b.sessions))
	for _, s := range b.sessions {
		ss = append(ss, s)
	}
	b.mu.Unlock()
	for _, s := range ss { // one session lock at a time
		s.mu.Lock()
		m.Inflight += s.s.InflightLen()
		m.Queued += s.s.QueueLen()
		s.mu.Unlock()
	}

	m.StoreCommit = st.storeCommit.snapshot(durationBoundsSeconds(), 1e-9)
	m.StoreBatch = st.storeBatch.snapshot(sizeBoundsList(), 1)
	m.StoreErrors = st.storeErrors.Load()
	names := hookNames()
	for k := range st.hooks {
		if h := st.hooks[k].snapshot(durationBoundsSeconds(), 1e-9); h.Count > 0 {
			m.Hooks = append(m.Hooks, HookLatency{Hook: names[k], Latency: h})
		}
	}
	return m
}

// load copies the counters cs into dst and returns their sum.
func load(dst []int64, cs []atomic.Int64) int64 {
	var n int64
	for i := range cs {
		dst[i] = cs[i].Load()
		n += dst[i]
	}
	return n
}
