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
