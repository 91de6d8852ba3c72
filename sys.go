package tern

import (
	"math"
	"runtime/metrics"
	"strconv"
	"time"

	"github.com/ternmq/tern/session"
)

// The $SYS/broker topics, named and formatted as Mosquitto's where they
// overlap, so that dashboards written for Mosquitto read them: totals, the
// 1, 5 and 15 minute load averages of the counters, the heap, and the
// most clients connected at once.

// sysLoads are the counters with load averages, published as
// $SYS/broker/load/NAME/1min, /5min and /15min (Mosquitto's names; it also
// has messages/sent, every packet sent, which Tern does not count).
var sysLoads = [...]string{
	"messages/received",
	"publish/received",
	"publish/sent",
	"publish/dropped",
	"bytes/received",
	"bytes/sent",
	"connections", // CONNECTs accepted
	"sockets",     // network connections opened
}

// sysLoadPeriods are the averaging periods of the loads, in seconds.
var sysLoadPeriods = [...]float64{60, 300, 900}

// sysState is what the $SYS refreshes keep from one to the next.
type sysState struct {
	last       time.Time
	prev       [len(sysLoads)]int64
	load       [len(sysLoads)][len(sysLoadPeriods)]float64
	maxClients int
	maxHeap    uint64
	heap       []metrics.Sample
}

// sysCounts returns the counters of sysLoads, in order.
func sysCounts(m *Metrics) [len(sysLoads)]int64 {
	return [...]int64{
		m.MessagesReceived, m.PublishReceived, m.PublishSent, m.PublishDropped,
		m.BytesReceived, m.BytesSent, m.Connects, m.ConnectionsOpened,
	}
}

// update folds a snapshot taken at now into the loads and maxima. A load
// is, as Mosquitto's, an exponentially weighted average of the counter's
// rate per minute over the refreshes.
func (st *sysState) update(m *Metrics, now time.Time) {
	counts := sysCounts(m)
	if !st.last.IsZero() {
		if dt := now.Sub(st.last).Seconds(); dt > 0 {
			for i, c := range counts {
				rate := float64(c-st.prev[i]) * 60 / dt
				for j, period := range sysLoadPeriods {
					e := math.Exp(-dt / period)
					st.load[i][j] = rate + e*(st.load[i][j]-rate)
				}
			}
		}
	}
	st.last, st.prev = now, counts
	st.maxClients = max(st.maxClients, m.ClientsConnected)
	if st.heap == nil {
		st.heap = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	}
	metrics.Read(st.heap)
	if v := st.heap[0].Value; v.Kind() == metrics.KindUint64 {
		st.maxHeap = max(st.maxHeap, v.Uint64())
	}
}

// sysTopics renders a snapshot as the $SYS/broker topics.
func (st *sysState) topics(m *Metrics) [][2]string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	var heap uint64
	if v := st.heap[0].Value; v.Kind() == metrics.KindUint64 {
		heap = v.Uint64()
	}
	stored := int64(m.Retained + m.Queued + m.Inflight)
	out := [][2]string{
		{"$SYS/broker/version", m.Version},
		{"$SYS/broker/uptime", i(int64(m.Uptime/time.Second)) + " seconds"},
		{"$SYS/broker/clients/connected", i(int64(m.ClientsConnected))},
		{"$SYS/broker/clients/disconnected", i(int64(m.ClientsDisconnected))},
		{"$SYS/broker/clients/total", i(int64(m.ClientsTotal))},
		// The most seen at a refresh.
		{"$SYS/broker/clients/maximum", i(int64(st.maxClients))},
		{"$SYS/broker/clients/expired", i(m.SessionsExpired)},
		{"$SYS/broker/messages/received", i(m.MessagesReceived)},
		{"$SYS/broker/messages/inflight", i(int64(m.Inflight))},
		// Messages held: retained, queued for sessions, in flight.
		{"$SYS/broker/messages/stored", i(stored)},
		{"$SYS/broker/store/messages/count", i(stored)},
		{"$SYS/broker/publish/messages/received", i(m.PublishReceived)},
		{"$SYS/broker/publish/messages/sent", i(m.PublishSent)},
		{"$SYS/broker/publish/messages/dropped", i(m.PublishDropped)},
		{"$SYS/broker/bytes/received", i(m.BytesReceived)},
		{"$SYS/broker/bytes/sent", i(m.BytesSent)},
		{"$SYS/broker/subscriptions/count", i(int64(m.Subscriptions))},
		{"$SYS/broker/retained messages/count", i(int64(m.Retained))},
		// The Go heap's objects, live and not yet swept; the maximum is the
		// most seen at a refresh.
		{"$SYS/broker/heap/current", strconv.FormatUint(heap, 10)},
		{"$SYS/broker/heap/maximum", strconv.FormatUint(st.maxHeap, 10)},
	}
	for i, name := range sysLoads {
		for j, suffix := range [...]string{"1min", "5min", "15min"} {
			out = append(out, [2]string{"$SYS/broker/load/" + name + "/" + suffix, strconv.FormatFloat(st.load[i][j], 'f', 2, 64)})
		}
	}
	return out
}

// sysLoop refreshes the $SYS topics every interval until Close.
func (b *Broker) sysLoop(every time.Duration) {
	defer b.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	var st sysState
	for {
		m := b.Metrics()
		st.update(&m, time.Now())
		topics := st.topics(&m)
		for _, kv := range topics {
			b.store(nil, Client{Internal: true}, &session.Message{Topic: kv[0], Payload: []byte(kv[1]), Retain: true})
		}
		b.sysRetained.Store(int64(len(topics)))
		select {
		case <-t.C:
		case <-b.closing:
			return
		}
	}
}
