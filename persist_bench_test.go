package tern_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/storage/bolt"
)

// Fan-in benchmark parameters: messages published and not yet delivered to
// the subscriber (a closed loop, so that no queue overflows and every
// message is delivered), and their payload size.
const (
	fanInOutstanding = 1024
	fanInPayload     = 64
)

// BenchmarkPersistFanIn measures QoS 1 fan-in over TCP loopback: one or
// eight publishers (clean sessions) send to one persistent subscriber, which
// acknowledges every message. Each message is then a stored delivery:
// written before the PUBACK to its publisher and the PUBLISH to the
// subscriber leave, deleted when the subscriber's PUBACK comes. It runs
// without a store, with storage.NewMemory, and with bbolt in Sync and Async
// durability, and reports messages per second, and the broker's Writes to
// the store: per second, ops per Write, and milliseconds per Write.
//
//	go test -run XXX -bench PersistFanIn -benchtime 50000x .
func BenchmarkPersistFanIn(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) storage.Store
	}{
		{"none", func(*testing.B) storage.Store { return nil }},
		{"memory", func(*testing.B) storage.Store { return storage.NewMemory() }},
		{"bolt-sync", func(b *testing.B) storage.Store { return benchBolt(b, bolt.Sync) }},
		{"bolt-async", func(b *testing.B) storage.Store { return benchBolt(b, bolt.Async) }},
	}
	for _, st := range stores {
		for _, pubs := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/publishers=%d", st.name, pubs), func(b *testing.B) {
				var opts tern.Options
				var counted *benchStore
				if store := st.open(b); store != nil {
					b.Cleanup(func() { store.Close() }) // after the broker's cleanup
					counted = &benchStore{Store: store}
					opts.Store = counted
				}
				_, addr := startBroker(b, opts)
				elapsed := benchFanIn(b, addr, pubs)
				if counted != nil {
					w := counted.writes.Load()
					b.ReportMetric(float64(w)/elapsed.Seconds(), "writes/s")
					b.ReportMetric(float64(counted.ops.Load())/float64(max(w, 1)), "ops/write")
					b.ReportMetric(float64(counted.nanos.Load())/float64(max(w, 1))/1e6, "ms/write")
				}
			})
		}
	}
}

func benchBolt(b *testing.B, d bolt.Durability) storage.Store {
	st, err := bolt.Open(filepath.Join(b.TempDir(), "tern.db"), bolt.Options{Durability: d})
	require.NoError(b, err)
	return st
}

// benchStore counts the broker's Writes: how many, how many ops, how long.
type benchStore struct {
	storage.Store
	writes, ops, nanos atomic.Int64
}

func (s *benchStore) Write(ctx context.Context, ops []storage.Op) error {
	start := time.Now()
	err := s.Store.Write(ctx, ops)
	s.nanos.Add(int64(time.Since(start)))
	s.writes.Add(1)
	s.ops.Add(int64(len(ops)))
	return err
}

// benchFanIn runs b.N messages through the broker at addr and returns how
// long they took.
func benchFanIn(b *testing.B, addr string, publishers int) time.Duration {
	budget := make(chan struct{}, fanInOutstanding) // a slot per message not yet delivered
	received := make(chan struct{})
	sub := benchDial(b, addr, "fan-in-sub", false)
	sub.send(b, &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "bench/#", QoS: 1}}})
	p, err := sub.r.ReadPacket()
	require.NoError(b, err, "SUBACK")
	require.Equal(b, packets.TypeSuback, p.Type(), "SUBACK: %+v", p)
	errs := make(chan error, publishers+1)
	go func() {
		// The subscriber: PUBACK every message, one write per read batch.
		var out []byte
		for n := 0; n < b.N; {
			p, err := sub.r.ReadPacket()
			if err != nil {
				errs <- fmt.Errorf("subscriber: %w", err)
				return
			}
			m, ok := p.(*packets.Publish)
			if !ok {
				errs <- fmt.Errorf("subscriber got %v", p.Type())
				return
			}
			out, _ = (&packets.Puback{PacketID: m.PacketID}).Append(out)
			n++
			<-budget
			if sub.r.Buffered() == 0 || n == b.N {
				if _, err := sub.nc.Write(out); err != nil {
					errs <- fmt.Errorf("subscriber: %w", err)
					return
				}
				out = out[:0]
			}
		}
		close(received)
	}()

	pubs := make([]*benchConn, publishers)
	for i := range pubs {
		pubs[i] = benchDial(b, addr, fmt.Sprintf("fan-in-pub-%d", i), true)
	}
	payload := make([]byte, fanInPayload)
	var acked atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, pc := range pubs {
		n := b.N / publishers
		if i < b.N%publishers {
			n++
		}
		wg.Add(2)
		go func() { // PUBACKs
			defer wg.Done()
			for range n {
				if _, err := pc.r.ReadPacket(); err != nil {
					errs <- fmt.Errorf("publisher %d: %w", i, err)
					return
				}
				acked.Add(1)
			}
		}()
		go func() { // PUBLISHes, flushed whenever the budget runs out
			defer wg.Done()
			w := bufio.NewWriterSize(pc.nc, 64<<10)
			topic := fmt.Sprintf("bench/%d", i)
			for k := range n {
				select {
				case budget <- struct{}{}:
				default:
					if w.Flush() != nil {
						return
					}
					budget <- struct{}{}
				}
				m := packets.Publish{Topic: topic, Payload: payload, QoS: 1, PacketID: uint16(k%65535 + 1)}
				buf, _ := m.Append(w.AvailableBuffer())
				w.Write(buf)
			}
			if err := w.Flush(); err != nil {
				errs <- fmt.Errorf("publisher %d: %w", i, err)
			}
		}()
	}
	select {
	case <-received:
	case err := <-errs:
		require.NoError(b, err)
	case <-time.After(5 * time.Minute):
		require.FailNow(b, "timed out")
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	require.Equal(b, int64(b.N), acked.Load(), "PUBACKs for %d messages", b.N)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	return elapsed
}

// benchConn is a raw client for benchmarks: no per-packet test bookkeeping.
type benchConn struct {
	nc net.Conn
	r  *packets.Reader
}

func benchDial(b *testing.B, addr, id string, clean bool) *benchConn {
	b.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(b, err)
	b.Cleanup(func() { nc.Close() })
	c := &benchConn{nc: nc, r: packets.NewReader(nc, 0)}
	c.send(b, &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: clean})
	p, err := c.r.ReadPacket()
	require.NoError(b, err, "CONNACK")
	require.Equal(b, packets.TypeConnack, p.Type(), "CONNACK: %+v", p)
	return c
}

func (c *benchConn) send(b *testing.B, p packets.Packet) {
	buf, err := p.Append(nil)
	require.NoError(b, err)
	_, err = c.nc.Write(buf)
	require.NoError(b, err)
}
