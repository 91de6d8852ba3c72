package tern_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Benchmarks of the broker's hot paths over TCP loopback, so regressions
// show without the comparison harness:
//
//	go test -run '^$' -bench . -benchtime 2s .
//
// The codec and the tries have their own benchmarks in packets/ and topics/.

// BenchmarkRoundTrip publishes one message and waits for its delivery:
// the broker's latency path (decode, match, encode, write).
func BenchmarkRoundTrip(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			_, addr := startBroker(b, tern.Options{})
			sub := mustConnect(b, addr, "sub", true)
			sub.subscribe(1, packets.Subscription{Filter: "bench/rt", QoS: qos})
			pub := mustConnect(b, addr, "pub", true)
			payload := make([]byte, 64)
			enc, _ := (&packets.Publish{Topic: "bench/rt", Payload: payload, QoS: qos, PacketID: 1}).Append(nil)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.sendRaw(enc)
				got := sub.recvPublish()
				if qos == 1 {
					sub.send(&packets.Puback{PacketID: got.PacketID})
					pub.recv() // PUBACK
				}
			}
		})
	}
}

// BenchmarkFanout publishes QoS 0 messages to N subscribers of one topic;
// ns/op is per published message, deliveries/s is reported.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			_, addr := startBroker(b, tern.Options{})
			subs := make([]*rawClient, n)
			for i := range subs {
				subs[i] = mustConnect(b, addr, fmt.Sprintf("sub%d", i), true)
				subs[i].subscribe(1, packets.Subscription{Filter: "bench/fan", QoS: 0})
			}
			pub := mustConnect(b, addr, "pub", true)
			enc, _ := (&packets.Publish{Topic: "bench/fan", Payload: make([]byte, 64)}).Append(nil)
			const window = 256 // messages ahead of the slowest subscriber
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, s := range subs {
				wg.Add(1)
				go func(s *rawClient) {
					defer wg.Done()
					for i := 0; i < b.N; i++ {
						if _, err := s.tryRecv(waitTimeout); err != nil {
							b.Errorf("subscriber: %v after %d of %d", err, i, b.N)
							return
						}
					}
				}(s)
			}
			batch := make([]byte, 0, window*len(enc))
			for sent := 0; sent < b.N; {
				k := min(window, b.N-sent)
				batch = batch[:0]
				for j := 0; j < k; j++ {
					batch = append(batch, enc...)
				}
				pub.sendRaw(batch)
				sent += k
				// Flow control without reading the subscribers' progress:
				// a PINGREQ round trip orders the publisher behind its own
				// messages, which the broker has routed by then.
				pub.send(&packets.Pingreq{})
				pub.recv()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
