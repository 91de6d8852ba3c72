package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

// AuthStats is a hook that counts its password checks: the auth package's
// *auth.File and *auth.Mosquitto.
type AuthStats interface {
	Stats() auth.Stats
}

// Option configures a Collector.
type Option func(*Collector)

// WithAuth adds the counters of the authentication hook a to the
// collector's metrics (the tern_auth_* metrics).
func WithAuth(a AuthStats) Option {
	return func(c *Collector) { c.auth = a }
}

// Collector is a prometheus.Collector over one broker's counters. Each
// scrape takes one tern.Metrics snapshot: the broker pays nothing between
// scrapes beyond its own atomic counters.
type Collector struct {
	b    *tern.Broker
	auth AuthStats
	d    descs
}

// NewCollector returns a collector of b's metrics, to register on a
// prometheus.Registry.
func NewCollector(b *tern.Broker, opts ...Option) *Collector {
	c := &Collector{b: b, d: newDescs()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Handler returns an http.Handler that serves b's metrics in the
// Prometheus exposition formats, from a registry of its own holding b's
// Collector and the Go runtime and process collectors. An application
// with a registry of its own registers NewCollector on it instead.
func Handler(b *tern.Broker, opts ...Option) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(b, opts...),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// descs are the descriptions of the collector's metrics.
type descs struct {
	startTime, connections, opened, refused, connects, disconnects, acceptErrors *prometheus.Desc
	packetsIn, msgsIn, msgsOut, dropped, bytesIn, bytesOut                       *prometheus.Desc
	retained, subscriptions, subsRefused, sessions, inflight, queued, expired    *prometheus.Desc
	storeCommit, storeBatch, storeErrors, hooks, memReleases                     *prometheus.Desc
	authChecks, authFailed, authHits, authLimited, authBusy                      *prometheus.Desc
}

func newDescs() descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tern_"+name, help, labels, nil)
	}
	return descs{
		startTime:     d("start_time_seconds", "When the broker started, in seconds since the Unix epoch."),
		connections:   d("connections", "Open network connections, whether their client has connected (CONNACK) yet or not."),
		opened:        d("connections_opened_total", "Network connections accepted and served by the listeners."),
		refused:       d("connections_refused_total", "Connections refused, by reason: the CONNACK's reason code, or a refusal before any CONNACK (connection_limit, fd_limit).", "reason"),
		connects:      d("connects_accepted_total", "CONNECTs accepted (CONNACK with success)."),
		disconnects:   d("disconnects_total", "Ends of connections whose CONNECT was accepted, for any reason."),
		acceptErrors:  d("accept_errors_total", "Failed accepts that the listeners retried (out of file descriptors, buffers or memory, aborted connections, timeouts)."),
		packetsIn:     d("packets_received_total", "MQTT control packets received, of every type."),
		msgsIn:        d("messages_received_total", "PUBLISH packets received from clients, by QoS.", "qos"),
		msgsOut:       d("messages_sent_total", "PUBLISH packets sent to clients, and messages handed to in-process subscribers, by the QoS delivered at.", "qos"),
		dropped:       d("messages_dropped_total", "Messages or deliveries dropped instead of sent, by reason.", "reason"),
		bytesIn:       d("received_bytes_total", "Bytes received from clients."),
		bytesOut:      d("sent_bytes_total", "Bytes sent to clients."),
		retained:      d("retained_messages", "Retained messages held."),
		subscriptions: d("subscriptions", "Subscriptions held, of every session."),
		subsRefused:   d("subscriptions_refused_total", "Topic filters refused because they would take a client past Options.MaxSubscriptionsPerClient."),
		sessions:      d("sessions", "Sessions, by state: online (a client is connected) or offline (a persistent session waiting for its client).", "state"),
		inflight:      d("inflight_messages", "QoS 1 and 2 deliveries sent and not yet completed, over every session."),
		queued:        d("queued_messages", "Deliveries waiting to be sent (offline clients, full windows), over every session."),
		expired:       d("sessions_expired_total", "Sessions discarded because their client stayed offline past their expiry."),
		storeCommit:   d("store_commit_duration_seconds", "Duration of each write (group commit) to the store."),
		storeBatch:    d("store_commit_operations", "Operations written by each write (group commit) to the store."),
		storeErrors:   d("store_commit_errors_total", "Writes to the store that failed (and were retried)."),
		hooks:         d("hook_duration_seconds", "Duration of the hook calls, by hook method (SubscribeHandler: Broker.Subscribe handlers).", "hook"),
		memReleases:   d("memory_releases_total", "Times memory was returned to the operating system after a burst of connections (Options.ReleaseMemoryAfter)."),
		authChecks:    d("auth_password_checks_total", "Passwords compared with their hash by the authentication hook."),
		authFailed:    d("auth_password_failures_total", "Password checks that failed: wrong passwords and unknown users."),
		authHits:      d("auth_cache_hits_total", "Logins accepted from the authentication hook's success cache, without a hash."),
		authLimited:   d("auth_rate_limited_total", "Logins refused without a check: too many failures from the address."),
		authBusy:      d("auth_busy_total", "Logins refused without a check: no check slot was free."),
	}
}

// Describe sends the descriptions of every metric the collector collects.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.d
	for _, x := range []*prometheus.Desc{
		d.startTime, d.connections, d.opened, d.refused, d.connects, d.disconnects, d.acceptErrors,
		d.packetsIn, d.msgsIn, d.msgsOut, d.dropped, d.bytesIn, d.bytesOut,
		d.retained, d.subscriptions, d.subsRefused, d.sessions, d.inflight, d.queued, d.expired,
		d.storeCommit, d.storeBatch, d.storeErrors, d.hooks, d.memReleases,
	} {
		ch <- x
	}
	if c.auth != nil {
		ch <- d.authChecks
		ch <- d.authFailed
		ch <- d.authHits
		ch <- d.authLimited
		ch <- d.authBusy
	}
}

// Collect takes a snapshot of the broker's metrics and sends them.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := c.b.Metrics()
	d := &c.d
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		send(ch, desc, prometheus.CounterValue, v, labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		send(ch, desc, prometheus.GaugeValue, v, labels...)
	}

	gauge(d.startTime, float64(m.Started.UnixNano())/1e9)
	gauge(d.connections, float64(m.Connections))
	counter(d.opened, float64(m.ConnectionsOpened))
	for r := range tern.NumRefuseReasons {
		counter(d.refused, float64(m.RefusedBy[r]), r.String())
	}
	counter(d.connects, float64(m.Connects))
	counter(d.disconnects, float64(m.Disconnects))
	counter(d.acceptErrors, float64(m.AcceptErrors))

	counter(d.packetsIn, float64(m.MessagesReceived))
	for q := range m.PublishReceivedByQoS {
		counter(d.msgsIn, float64(m.PublishReceivedByQoS[q]), strconv.Itoa(q))
		counter(d.msgsOut, float64(m.PublishSentByQoS[q]), strconv.Itoa(q))
	}
	for r := range tern.NumDropReasons {
		counter(d.dropped, float64(m.DroppedBy[r]), r.String())
	}
	counter(d.bytesIn, float64(m.BytesReceived))
	counter(d.bytesOut, float64(m.BytesSent))

	gauge(d.retained, float64(m.Retained))
	gauge(d.subscriptions, float64(m.Subscriptions))
	counter(d.subsRefused, float64(m.SubscriptionsRefused))
	gauge(d.sessions, float64(m.ClientsConnected), "online")
	gauge(d.sessions, float64(m.ClientsDisconnected), "offline")
	gauge(d.inflight, float64(m.Inflight))
	gauge(d.queued, float64(m.Queued))
	counter(d.expired, float64(m.SessionsExpired))

	histogram(ch, d.storeCommit, m.StoreCommit)
	histogram(ch, d.storeBatch, m.StoreBatch)
	counter(d.storeErrors, float64(m.StoreErrors))
	for _, h := range m.Hooks {
		histogram(ch, d.hooks, h.Latency, h.Hook)
	}
	counter(d.memReleases, float64(m.MemoryReleases))

	if c.auth != nil {
		a := c.auth.Stats()
		counter(d.authChecks, float64(a.Checks))
		counter(d.authFailed, float64(a.Failed))
		counter(d.authHits, float64(a.CacheHits))
		counter(d.authLimited, float64(a.RateLimited))
		counter(d.authBusy, float64(a.Busy))
	}
}

// send sends one value; a metric that cannot be made (a label count that
// does not match its description) is sent as an invalid metric, which the
// registry reports, rather than a panic.
func send(ch chan<- prometheus.Metric, desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	ch <- m
}

// histogram sends a tern.Histogram, whose counts are per bucket, as a
// Prometheus histogram, whose counts are cumulative.
func histogram(ch chan<- prometheus.Metric, desc *prometheus.Desc, h tern.Histogram, labels ...string) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, le := range h.Bounds {
		cum += h.Counts[i]
		buckets[le] = cum
	}
	m, err := prometheus.NewConstHistogram(desc, h.Count, h.Sum, buckets, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	ch <- m
}
