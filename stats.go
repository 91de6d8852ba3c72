package tern

import (
	"strconv"
	"sync/atomic"
	"time"
)

// counters are the broker's running totals, updated atomically.
type counters struct {
	bytesReceived   atomic.Int64
	bytesSent       atomic.Int64
	packetsReceived atomic.Int64
	publishReceived atomic.Int64
	publishSent     atomic.Int64
	dropped         atomic.Int64
	connects        atomic.Int64
	disconnects     atomic.Int64
	refused         atomic.Int64

	subscriptionsRefused atomic.Int64
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
	// refused ones (bad credentials, limits, identifiers).
	Connects int64 `json:"connects"`
	Refused  int64 `json:"refused"`
	// MessagesReceived counts every control packet received.
	MessagesReceived int64 `json:"messages_received"`
	// PublishReceived counts PUBLISH packets received from clients;
	// PublishSent counts PUBLISH packets sent to clients; PublishDropped
	// counts deliveries dropped (full queues, offline QoS 0, refusals).
	PublishReceived int64 `json:"publish_received"`
	PublishSent     int64 `json:"publish_sent"`
	PublishDropped  int64 `json:"publish_dropped"`
	BytesReceived   int64 `json:"bytes_received"`
	BytesSent       int64 `json:"bytes_sent"`
	Subscriptions   int   `json:"subscriptions"`
	Retained        int   `json:"retained"`

	// SubscriptionsRefused counts the filters refused with SUBACK 0x80
	// because they would take a client past
	// Options.MaxSubscriptionsPerClient.
	SubscriptionsRefused int64 `json:"subscriptions_refused"`
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
	out := Stats{
		Version:             Version,
		Uptime:              time.Since(b.started),
		ClientsConnected:    connected,
		ClientsDisconnected: total - connected,
		ClientsTotal:        total,
		Connects:            st.connects.Load(),
		Refused:             st.refused.Load(),
		MessagesReceived:    st.packetsReceived.Load(),
		PublishReceived:     st.publishReceived.Load(),
		PublishSent:         st.publishSent.Load(),
		PublishDropped:      st.dropped.Load(),
		BytesReceived:       st.bytesReceived.Load(),
		BytesSent:           st.bytesSent.Load(),
		Subscriptions:       b.subs.Len(),
		Retained:            b.retained.Len(),
	}
	out.SubscriptionsRefused = st.subscriptionsRefused.Load()
	return out
}

// sysTopics renders a Stats snapshot as the $SYS/broker topics, named as
// Mosquitto names them where they overlap.
func sysTopics(s Stats) [][2]string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	return [][2]string{
		{"$SYS/broker/version", s.Version},
		{"$SYS/broker/uptime", i(int64(s.Uptime/time.Second)) + " seconds"},
		{"$SYS/broker/clients/connected", i(int64(s.ClientsConnected))},
		{"$SYS/broker/clients/disconnected", i(int64(s.ClientsDisconnected))},
		{"$SYS/broker/clients/total", i(int64(s.ClientsTotal))},
		{"$SYS/broker/messages/received", i(s.MessagesReceived)},
		{"$SYS/broker/publish/messages/received", i(s.PublishReceived)},
		{"$SYS/broker/publish/messages/sent", i(s.PublishSent)},
		{"$SYS/broker/publish/messages/dropped", i(s.PublishDropped)},
		{"$SYS/broker/bytes/received", i(s.BytesReceived)},
		{"$SYS/broker/bytes/sent", i(s.BytesSent)},
		{"$SYS/broker/subscriptions/count", i(int64(s.Subscriptions))},
		{"$SYS/broker/retained messages/count", i(int64(s.Retained))},
	}
}

// sysLoop refreshes the $SYS topics every interval until Close.
func (b *Broker) sysLoop(every time.Duration) {
	defer b.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, kv := range sysTopics(b.Stats()) {
			b.store(nil, kv[0], []byte(kv[1]), 0, true)
		}
		select {
		case <-t.C:
		case <-b.closing:
			return
		}
	}
}
