package main

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ternmq/tern/cluster/nats/internal/mqtttest"
	"github.com/ternmq/tern/packets"
)

// BenchmarkCluster measures throughput across nodes (acceptance test 8)
// with 1, 3 and 5 node processes on loopback: fan-in (4 publishers on
// the other nodes, 1 subscriber) and fan-out (1 publisher, 16 subscribers
// spread over every node), QoS 0 and 1. b.N is the number of messages
// published; msgs/s counts deliveries. BENCHMARKS.md has the command and
// the numbers.
func BenchmarkCluster(b *testing.B) {
	for _, n := range []int{1, 3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			bc := &benchCluster{nodes: newNodes(b, n)}
			startAll(b, bc.nodes...)
			for _, qos := range []byte{0, 1} {
				b.Run(fmt.Sprintf("fanin/qos=%d", qos), func(b *testing.B) { bc.fanIn(b, qos) })
				b.Run(fmt.Sprintf("fanout/qos=%d", qos), func(b *testing.B) { bc.fanOut(b, qos) })
			}
		})
	}
}

// window bounds the deliveries published and not yet received (QoS 0
// would otherwise measure how fast the queues overflow) and, per
// publisher, the QoS 1 PUBLISHes not yet acknowledged.
const (
	window   = 1000
	inflight = 100
)

// benchCluster is the cluster of one BenchmarkCluster size. The testing
// package calls a benchmark function again with a larger b.N; each call
// is a run, with its own topics and client identifiers.
type benchCluster struct {
	nodes []*node
	runs  int // runs started; the runs of a benchmark are sequential
}

// next starts a run and returns its number.
func (bc *benchCluster) next() int {
	bc.runs++
	return bc.runs
}

func (bc *benchCluster) fanIn(b *testing.B, qos byte) {
	run := bc.next()
	nodes := bc.nodes
	topic := fmt.Sprintf("bench/%d", run)
	sub, _ := dial(b, nodes[0], mqtttest.Options{ClientID: fmt.Sprintf("bench-sub-%d", run), Clean: true})
	_, err := sub.Subscribe(topic+"/#", qos, patience)
	require.NoError(b, err)
	const pubs = 4
	var clients []*mqtttest.Client
	for i := range pubs {
		// With more than one node, the publishers are on the others.
		nd := nodes[(i%max(1, len(nodes)-1)+1)%len(nodes)]
		c, _ := dial(b, nd, mqtttest.Options{ClientID: fmt.Sprintf("bench-pub-%d-%d", run, i), Clean: true})
		probe(b, c, sub, topic+"/probe")
		clients = append(clients, c)
	}
	f := newFlow(b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		share := b.N / pubs
		if i < b.N%pubs {
			share++
		}
		wg.Go(func() { publish(b, c, fmt.Sprintf("%s/%d", topic, i), qos, share, f, 1) })
	}
	got := f.receive([]*mqtttest.Client{sub})
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(got)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N-got), "lost")
	if qos > 0 {
		require.Equal(b, b.N, got, "QoS 1 messages lost")
	}
}

func (bc *benchCluster) fanOut(b *testing.B, qos byte) {
	run := bc.next()
	nodes := bc.nodes
	topic := fmt.Sprintf("bench/%d/out", run)
	pub, _ := dial(b, nodes[0], mqtttest.Options{ClientID: fmt.Sprintf("bench-pub-%d", run), Clean: true})
	const subs = 16
	var clients []*mqtttest.Client
	for i := range subs {
		c, _ := dial(b, nodes[i%len(nodes)], mqtttest.Options{ClientID: fmt.Sprintf("bench-sub-%d-%d", run, i), Clean: true})
		_, err := c.Subscribe(topic, qos, patience)
		require.NoError(b, err)
		probe(b, pub, c, topic)
		clients = append(clients, c)
	}
	for _, c := range clients {
		c.Drain(100 * time.Millisecond)
	}
	f := newFlow(b.N * subs)
	b.ResetTimer()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		publish(b, pub, topic, qos, b.N, f, subs)
	}()
	got := f.receive(clients)
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(got)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*subs-got), "lost")
	if qos > 0 {
		require.Equal(b, b.N*subs, got, "QoS 1 deliveries lost")
	}
}

// flow counts the deliveries of a run and holds the publishers back to
// at most window deliveries ahead of them.
type flow struct {
	want     int64
	sent     atomic.Int64  // deliveries published (one per subscriber)
	received atomic.Int64  // deliveries received
	progress chan struct{} // a delivery arrived since the last wait
	over     chan struct{} // closed when the receivers stopped
}

func newFlow(want int) *flow {
	return &flow{want: int64(want), progress: make(chan struct{}, 1), over: make(chan struct{})}
}

// admit waits until n more deliveries fit in the window; false if the
// receivers stopped (what is missing was lost).
func (f *flow) admit(n int64) bool {
	s := f.sent.Add(n)
	for s-f.received.Load() > window {
		select {
		case <-f.progress:
		case <-f.over:
			return false
		}
	}
	return true
}

// receive counts what clients receive until every delivery arrived, or
// each client had nothing for a while (what is missing was lost), and
// returns the count.
func (f *flow) receive(clients []*mqtttest.Client) int {
	complete := make(chan struct{}) // closed with the last delivery
	var once sync.Once
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			const quiet = 2 * time.Second
			idle := time.NewTimer(quiet)
			defer idle.Stop()
			for {
				select {
				case m := <-c.Messages():
					if string(m.Payload) == "probe" {
						continue // late, from before the run
					}
					if f.received.Add(1) == f.want {
						once.Do(func() { close(complete) })
					}
					select {
					case f.progress <- struct{}{}:
					default:
					}
					idle.Reset(quiet)
				case <-complete:
					return
				case <-idle.C:
					return
				}
			}
		})
	}
	wg.Wait()
	close(f.over)
	return int(f.received.Load())
}

// publish sends n messages on topic, pipelined: within f's window (each
// message counts fanout deliveries), and for QoS 1 at most inflight
// unacknowledged.
func publish(b *testing.B, c *mqtttest.Client, topic string, qos byte, n int, f *flow, fanout int) {
	acks := make(chan struct{}, inflight) // one per PUBLISH not acknowledged
	stop := make(chan struct{})
	gone := make(chan struct{}) // closed when PUBACKs no longer come
	defer close(stop)
	if qos > 0 {
		go func() {
			defer close(gone)
			for {
				p, err := c.Packet(patience)
				if err != nil {
					return
				}
				if _, ok := p.(*packets.Puback); ok {
					select {
					case <-acks:
					case <-stop:
						return
					}
				}
			}
		}()
	}
	// await takes a place in the window of QoS 1 PUBLISHes not
	// acknowledged.
	await := func() bool {
		select {
		case acks <- struct{}{}:
			return true
		case <-gone:
			b.Error("no PUBACK: the connection ended")
			return false
		}
	}
	payload := make([]byte, 64)
	for i := range n {
		if !f.admit(int64(fanout)) {
			return
		}
		binary.BigEndian.PutUint64(payload, uint64(i))
		p := &packets.Publish{Version: packets.Level311, Topic: topic, QoS: qos, Payload: payload}
		if qos > 0 {
			if !await() {
				return
			}
			p.PacketID = uint16(i%65535) + 1
		}
		if err := c.Send(p); err != nil {
			b.Error(err)
			return
		}
	}
	if qos > 0 {
		for range inflight {
			if !await() { // every PUBACK in
				return
			}
		}
	}
}
