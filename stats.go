package tern

import (
	"sync/atomic"
	"time"
)

// counters are the broker's running totals, updated atomically: on the
// publish path a message costs one add per QoS delivered at and per drop
// reason met, batched per fan-out (fanout.finish); no lock, no map, no
// allocation. Broker.Stats and Broker.Metrics read them.
type counters struct {
	bytesReceived   atomic.Int64
	bytesSent       atomic.Int64
	packetsReceived atomic.Int64
	publishReceived [3]atomic.Int64 // by QoS
	publishSent     [3]atomic.Int64 // by QoS
	dropped         [NumDropReasons]atomic.Int64
	opened          atomic.Int64 // network connections accepted
	connects        atomic.Int64
	disconnects     atomic.Int64
	refused         [NumRefuseReasons]atomic.Int64
	acceptErrors    atomic.Int64
	storeCommit     histogram // nanoseconds per Store.Write
	storeBatch      histogram // operations per Store.Write
	storeErrors     atomic.Int64
	hooks           [numHookKinds]histogram // nanoseconds per hook call

	subscriptionsRefused atomic.Int64
	sessionsExpired      atomic.Int64
}

// received counts a PUBLISH received from a client.
func (c *counters) received(qos byte) { c.publishReceived[min(qos, 2)].Add(1) }

// sent counts a PUBLISH sent to a client.
func (c *counters) sent(qos byte) { c.publishSent[min(qos, 2)].Add(1) }

// addSent adds a fan-out's PUBLISHes sent, by QoS.
func (c *counters) addSent(n *[3]int64) {
	for q, k := range n {
		if k > 0 {
			c.publishSent[q].Add(k)
		}
	}
}

// drop counts a message or delivery dropped.
func (c *counters) drop(r DropReason) { c.dropped[r].Add(1) }

// dropCounts are a fan-out's drops by reason, added at its end.
type dropCounts [NumDropReasons]int64

// addDrops adds a fan-out's drops.
func (c *counters) addDrops(n *dropCounts) {
	for r, k := range n {
		if k > 0 {
			c.dropped[r].Add(k)
		}
	}
}

// refuse counts n refused connections.
func (c *counters) refuse(r RefuseReason, n int) {
	if n > 0 {
		c.refused[r].Add(int64(n))
	}
}

// commit records one Store.Write of ops operations that took d.
func (c *counters) commit(ops int, d time.Duration, err error) {
	c.storeCommit.observe(durationBucket(d), int64(d))
	c.storeBatch.observe(sizeBucket(ops), int64(ops))
	if err != nil {
		c.storeErrors.Add(1)
	}
}

// clock is a monotonic reading for measuring durations: the time since
// the broker was made. It reads the clock once, where time.Now reads it
// twice (wall and monotonic), which matters on a hook called for every
// delivery.
func (b *Broker) clock() time.Duration { return time.Since(b.started) }

// hookDone records a hook call named what (as hookset.go's call names it)
// that started at start (a clock reading). Deferred by call.
func (b *Broker) hookDone(what string, start time.Duration) {
	d := b.clock() - start
	b.stats.hooks[hookKindOf(what)].observe(durationBucket(d), int64(d))
}

// Stats is a snapshot of the broker's counters, as published on $SYS.
type Stats struct {
	Version string        `json:"version"`
	Uptime  time.Duration `json:"uptime_ns"`
	// ClientsConnected counts clients with a live connection.
	ClientsConnected int `json:"clients_connected"`
	// ClientsDisconnected counts persistent sessions whose client is offline.
	ClientsDisconnected int `json:"clients_disconnected"`
	// ClientsTotal is ClientsConnected + ClientsDisconnected.
	ClientsTotal int `json:"clients_total"`
	// Connects counts accepted CONNECTs since start; Refused counts
	// refused ones (bad credentials, limits, identifiers, protocol
	// versions) and the connections Serve closed unread because the
	// process was out of file descriptors. Metrics.RefusedBy says why.
	Connects int64 `json:"connects"`
	Refused  int64 `json:"refused"`
	// AcceptErrors counts the failed accepts that Serve retried (out of
	// file descriptors, buffers or memory, connections aborted before they
	// were accepted, timeouts).
	AcceptErrors int64 `json:"accept_errors"`
	// MessagesReceived counts every control packet received.
	MessagesReceived int64 `json:"messages_received"`
	// PublishReceived counts PUBLISH packets received from clients;
	// PublishSent counts PUBLISH packets sent to clients; PublishDropped
	// counts deliveries dropped (full queues, offline QoS 0, refusals).
	// Metrics has them by QoS and by reason.
	PublishReceived int64 `json:"publish_received"`
	PublishSent     int64 `json:"publish_sent"`
	PublishDropped  int64 `json:"publish_dropped"`
	BytesReceived   int64 `json:"bytes_received"`
	BytesSent       int64 `json:"bytes_sent"`
	// Subscriptions counts the clients' subscriptions (shared ones
	// included); InternalSubscriptions the application's Broker.Subscribe
	// ones.
	Subscriptions         int `json:"subscriptions"`
	InternalSubscriptions int `json:"internal_subscriptions"`
	// Retained counts the retained messages, the broker's own $SYS topics
	// included (as Mosquitto counts them); SysRetained counts those.
	Retained    int `json:"retained"`
	SysRetained int `json:"sys_retained"`

	// SubscriptionsRefused counts the filters refused (SUBACK 0x80, MQTT
	// 5 0x97) because they would take a client past
	// Options.MaxSubscriptionsPerClient.
	SubscriptionsRefused int64 `json:"subscriptions_refused"`

	// SessionsExpired counts the sessions discarded because their client
	// stayed offline past their expiry (MQTT 5 Session Expiry Interval,
	// Options.SessionExpiry).
	SessionsExpired int64 `json:"sessions_expired"`

	// MemoryReleases counts the times memory was returned to the
	// operating system after a burst of connections
	// (Options.ReleaseMemoryAfter).
	MemoryReleases int64 `json:"memory_releases"`
}

// Stats returns a snapshot of the broker's counters.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	total := len(b.sessions)
	connected := 0
	for _, s := range b.sessions {
		if s.conn.Load() != nil {
			connected++
		}
	}
	b.mu.Unlock()
	st := &b.stats
	return Stats{
		Version:               Version,
		Uptime:                time.Since(b.started),
		ClientsConnected:      connected,
		ClientsDisconnected:   total - connected,
		ClientsTotal:          total,
		Connects:              st.connects.Load(),
		Refused:               sum(st.refused[:]),
		AcceptErrors:          st.acceptErrors.Load(),
		MessagesReceived:      st.packetsReceived.Load(),
		PublishReceived:       sum(st.publishReceived[:]),
		PublishSent:           sum(st.publishSent[:]),
		PublishDropped:        sum(st.dropped[:]),
		BytesReceived:         st.bytesReceived.Load(),
		BytesSent:             st.bytesSent.Load(),
		Subscriptions:         int(b.clientSubs.Load()),
		InternalSubscriptions: int(b.internalSubs.Load()),
		Retained:              b.retained.Len(),
		SysRetained:           int(b.sysRetained.Load()),
		SubscriptionsRefused:  st.subscriptionsRefused.Load(),
		SessionsExpired:       st.sessionsExpired.Load(),
		MemoryReleases:        b.mem.count(),
	}
}

func sum(cs []atomic.Int64) int64 {
	var n int64
	for i := range cs {
		n += cs[i].Load()
	}
	return n
}
