package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/storage"
)

// BenchmarkQoS1 measures the store's share of a QoS 1 message: a Write
// queueing its delivery, then a Write deleting it once acknowledged, from
// 1, 8 and 64 concurrent writers (one session each). It reports messages
// per second and commits per second; each commit syncs the file twice
// (bbolt's data pages, then its meta page).
//
//	go test -run XXX -bench QoS1 -benchtime 2000x ./storage/bolt/
func BenchmarkQoS1(b *testing.B) {
	payload := make([]byte, 128)
	for _, d := range []Durability{Sync, Async} {
		for _, writers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", d, writers), func(b *testing.B) {
				s, err := Open(filepath.Join(b.TempDir(), "tern.db"), Options{Durability: d})
				require.NoError(b, err, "Open")
				defer s.Close()
				ctx := context.Background()
				var wg sync.WaitGroup
				errs := make(chan error, writers)
				b.ResetTimer()
				start, commits := time.Now(), s.commits.Load()
				for w := range writers {
					n := b.N / writers
					if w < b.N%writers {
						n++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						id := fmt.Sprintf("client-%d", w)
						put := []storage.Op{{Kind: storage.PutDelivery, Delivery: storage.Delivery{
							ClientID: id, QoS: 1, Msg: storage.Message{Topic: "sensors/" + id + "/temp", QoS: 1, Payload: payload},
						}}}
						del := []storage.Op{{Kind: storage.DeleteDelivery, Delivery: storage.Delivery{ClientID: id}}}
						for seq := range uint64(n) {
							put[0].Delivery.Seq, put[0].Delivery.PacketID = seq, uint16(seq%65535+1)
							del[0].Delivery.Seq = seq
							if err := s.Write(ctx, put); err != nil {
								errs <- err
								return
							}
							if err := s.Write(ctx, del); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				if d == Async {
					// Count the flush of what is pending.
					require.NoError(b, s.barrier(ctx), "flush of what is pending")
				}
				elapsed := time.Since(start).Seconds()
				b.StopTimer()
				close(errs)
				for err := range errs {
					require.NoError(b, err, "Write")
				}
				c := s.commits.Load() - commits
				b.ReportMetric(float64(b.N)/elapsed, "msgs/s")
				b.ReportMetric(float64(c)/elapsed, "commits/s")
				b.ReportMetric(float64(2*b.N)/float64(max(c, 1)), "writes/commit")
			})
		}
	}
}

// benchDelivery is a QoS 1 delivery as an MQTT 3.1.1 client's traffic
// makes it: no MQTT 5 field set.
func benchDelivery() storage.Delivery {
	return storage.Delivery{
		ClientID: "client-17", Seq: 123456, PacketID: 4242, QoS: 1,
		Msg: storage.Message{Topic: "sensors/client-17/temp", QoS: 1, Payload: make([]byte, 128)},
	}
}

// BenchmarkEncode measures encoding a Write's ops into the keys and values
// the writer hands to bbolt: a batch of 64 deliveries, put then deleted,
// as the broker's group commit makes them. It runs without bbolt, so the
// encoding's cost is not lost in the fsync's.
//
//	go test -run XXX -bench 'Encode|Decode' -benchmem ./storage/bolt/
func BenchmarkEncode(b *testing.B) {
	ops := make([]storage.Op, 0, 128)
	for i := range 64 {
		d := benchDelivery()
		d.Seq += uint64(i)
		ops = append(ops, storage.Op{Kind: storage.PutDelivery, Delivery: d},
			storage.Op{Kind: storage.DeleteDelivery, Delivery: storage.Delivery{ClientID: d.ClientID, Seq: d.Seq}})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encode(ops); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ops)), "ns/op-encoded")
}

// BenchmarkDecode measures decoding one stored delivery, as Load does for
// each.
func BenchmarkDecode(b *testing.B) {
	d := benchDelivery()
	v := appendDeliveryValue(nil, &d)
	b.ReportAllocs()
	for b.Loop() {
		var out storage.Delivery
		if _, err := decodeDelivery(v, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(v)), "value-bytes")
}
