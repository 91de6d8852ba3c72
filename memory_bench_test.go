package tern_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/packets"
)

// What a subscription and a retained message cost in the broker's live
// heap, measured through a real connection:
//
//	go test -run '^$' -bench 'Memory' -benchtime 1x .
//
// Each sub-benchmark starts a broker on an in-memory listener, connects one
// client, reads the live heap after a collection, makes the client
// subscribe (or publish retained messages) memN times, reads the live heap
// again and reports the difference per item. The filters and topics are
// all distinct; the shapes are:
//
//	flat: "bench/<i>"                    one level per item under one node
//	tree: "bench/<i/1000>/<i%1000>/set"  1000 x 1000 devices, two new levels each
var memShapes = []struct {
	name  string
	topic func(i int) string
}{
	{"flat", func(i int) string { return fmt.Sprintf("bench/%d", i) }},
	{"tree", func(i int) string { return fmt.Sprintf("bench/%d/%d/set", i/1000, i%1000) }},
}

const (
	memN     = 1_000_000
	memBatch = 1000 // filters per SUBSCRIBE
)

// BenchmarkSubscriptionMemory reports the live heap bytes per subscription
// (B/sub) for memN distinct filters from one client.
func BenchmarkSubscriptionMemory(b *testing.B) {
	for _, shape := range memShapes {
		b.Run(shape.name, func(b *testing.B) {
			var per float64
			for b.Loop() {
				per = memMeasure(b, func(c *rawClient) {
					subs := make([]packets.Subscription, 0, memBatch)
					for i := 0; i < memN; i += memBatch {
						subs = subs[:0]
						for j := i; j < i+memBatch; j++ {
							subs = append(subs, packets.Subscription{Filter: shape.topic(j), QoS: 1})
						}
						ack := c.subscribe(uint16(i/memBatch%65535+1), subs...)
						if len(ack.ReturnCodes) != memBatch || ack.ReturnCodes[0] != 1 {
							b.Fatalf("SUBACK %v", ack.ReturnCodes[:min(4, len(ack.ReturnCodes))])
						}
					}
				}, func(st tern.Stats) int { return st.Subscriptions })
			}
			b.ReportMetric(per, "B/sub")
		})
	}
}

// BenchmarkRetainedMemory reports the live heap bytes per retained message
// (B/msg) for memN distinct topics with a 16-byte payload each.
func BenchmarkRetainedMemory(b *testing.B) {
	payload := []byte("0123456789abcdef")
	for _, shape := range memShapes {
		b.Run(shape.name, func(b *testing.B) {
			var per float64
			for b.Loop() {
				per = memMeasure(b, func(c *rawClient) {
					publishRetained(b, c, packets.Level311, memN, shape.topic, payload)
				}, func(st tern.Stats) int { return st.Retained })
			}
			b.ReportMetric(per, "B/msg")
		})
	}
}

// publishRetained publishes n retained messages from c, on topic(i) each,
// in batches of memBatch, and returns once the broker has stored them all.
func publishRetained(b *testing.B, c *rawClient, version byte, n int, topic func(int) string, payload []byte) {
	b.Helper()
	var buf []byte
	for i := 0; i < n; i += memBatch {
		buf = buf[:0]
		for j := i; j < min(i+memBatch, n); j++ {
			var err error
			buf, err = (&packets.Publish{Version: version, Topic: topic(j), Payload: payload, Retain: true}).Append(buf)
			if err != nil {
				b.Fatal(err)
			}
		}
		c.sendRaw(buf)
	}
	// A connection's packets are handled in order: the PINGRESP comes
	// after every PUBLISH was stored.
	c.send(&packets.Pingreq{Version: version})
	if p := c.recv(); p.Type() != packets.TypePingresp {
		b.Fatalf("got %v, want PINGRESP", p.Type())
	}
}

// memMeasure runs fill on a fresh broker's only client and returns the live
// heap growth per item, checking with count that memN items were made.
func memMeasure(b *testing.B, fill func(*rawClient), count func(tern.Stats) int) float64 {
	mem := listeners.NewMemory()
	br, err := tern.New(tern.Options{SysInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- br.Serve(mem) }()
	defer func() {
		// Ending a session of a million subscriptions takes a while on a
		// loaded machine; Close's own speed is not what is measured.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := br.Close(ctx); err != nil {
			b.Errorf("Close: %v", err)
		}
		<-served
	}()
	nc, err := mem.Dial()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	c := &rawClient{t: b, conn: nc, r: packets.NewReader(nc, 0)}
	if ack := c.connect("memory", true); ack.ReturnCode != 0 {
		b.Fatalf("CONNACK %d", ack.ReturnCode)
	}
	before := liveHeap()
	fill(c)
	after := liveHeap()
	if n := count(br.Stats()); n != memN {
		b.Fatalf("%d items in the broker, want %d", n, memN)
	}
	runtime.KeepAlive(c)
	return float64(int64(after)-int64(before)) / memN
}

// liveHeap returns the bytes of live heap objects after full collections:
// the second one also empties the sync.Pool victim caches.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
