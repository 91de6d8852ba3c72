package tern_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage/bolt"
)

// TestPersistFileStaysBoundedUnderSteadyTraffic sends 100,000 QoS 1
// messages through a persistent session stored in bolt: delivered and
// acknowledged messages are deleted, and bbolt reuses the freed pages, so
// the file ends small (measured: 1 MiB, bbolt's minimum growth step;
// the bound is 8 MiB).
func TestPersistFileStaysBoundedUnderSteadyTraffic(t *testing.T) {
	const total, window = 100_000, 200
	path := filepath.Join(t.TempDir(), "tern.db")
	st, err := bolt.Open(path, bolt.Options{Durability: bolt.Async})
	require.NoError(t, err)
	b, addr := startBroker(t, tern.Options{Store: st})
	sub := mustConnect(t, addr, "steady-sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "steady/#", QoS: 1})
	pub := mustConnect(t, addr, "steady-pub", true)

	payload := make([]byte, 200)
	sub.conn.SetWriteDeadline(time.Time{}) // acknowledgements for as long as it takes
	done := make(chan error, 1)
	var got atomic.Int64
	go func() { // the subscriber acknowledges everything it gets
		for n := 0; n < total; n++ {
			p, err := sub.tryRecv(waitTimeout)
			if err != nil {
				done <- fmt.Errorf("subscriber after %d: %w", n, err)
				return
			}
			if m, ok := p.(*packets.Publish); ok {
				ack, _ := (&packets.Puback{PacketID: m.PacketID}).Append(nil)
				if _, err := sub.conn.Write(ack); err != nil {
					done <- fmt.Errorf("subscriber PUBACK: %w", err)
					return
				}
			}
			got.Add(1)
		}
		done <- nil
	}()
	var batch []byte
	for sent := 0; sent < total; sent += window {
		// Stay within the subscriber's queue: this test is about the
		// file, not about dropping.
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			assert.GreaterOrEqual(c, got.Load(), int64(sent-5000), "the subscriber fell behind: received of %d sent", sent)
		}, waitTimeout, time.Millisecond)
		batch = batch[:0]
		for i := 0; i < window; i++ {
			batch, _ = (&packets.Publish{Topic: "steady/t", Payload: payload, QoS: 1, PacketID: uint16(i + 1)}).Append(batch)
		}
		pub.sendRaw(batch)
		for i := 0; i < window; i++ {
			_, ok := pub.recv().(*packets.Puback)
			require.True(t, ok, "expected PUBACK")
		}
	}
	require.NoError(t, <-done)
	sub.send(&packets.Pingreq{}) // the last PUBACKs are handled
	for {
		if _, ok := sub.recv().(*packets.Pingresp); ok {
			break
		}
	}
	require.NoError(t, b.Close(context.Background()))
	require.NoError(t, st.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	t.Logf("file size after %d messages: %d bytes", total, fi.Size())
	require.LessOrEqual(t, fi.Size(), int64(8<<20), "file size in bytes after %d delivered messages, want at most 8 MiB", total)
	st, err = bolt.Open(path, bolt.Options{})
	require.NoError(t, err)
	defer st.Close()
	snap, err := st.Load(context.Background())
	require.NoError(t, err)
	assert.Empty(t, snap.Deliveries, "deliveries left in the store after all were acknowledged")
}
