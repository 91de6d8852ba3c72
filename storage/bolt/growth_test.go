package bolt_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/storage/bolt"
)

// TestFileSizeBounded sends 100 000 QoS 1 messages through one persistent
// session as the broker would: each Write queues a batch of new deliveries
// and deletes the batch acknowledged since the previous Write. Freed pages
// are reused, so the file stays the size of the few batches alive at once.
func TestFileSizeBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 000 deliveries; skipped in -short mode")
	}
	const total, batch = 100_000, 100
	const limit = 1 << 20 // measured: 256 KiB
	path := filepath.Join(t.TempDir(), "tern.db")
	st, err := bolt.Open(path, bolt.Options{})
	require.NoError(t, err, "Open")
	defer st.Close()
	ctx := context.Background()
	payload := make([]byte, 256)
	require.NoError(t, st.Write(ctx, []storage.Op{
		{Kind: storage.PutSession, Session: storage.Session{ClientID: "device-1"}},
		{Kind: storage.PutSubscription, Subscription: storage.Subscription{ClientID: "device-1", Filter: "cmd/#", QoS: 1}},
	}), "Write of the session")
	ops := make([]storage.Op, 0, 2*batch)
	for seq := 0; seq < total+batch; seq += batch {
		ops = ops[:0]
		for i := seq; i < seq+batch && i < total; i++ {
			ops = append(ops, storage.Op{Kind: storage.PutDelivery, Delivery: storage.Delivery{
				ClientID: "device-1", Seq: uint64(i), QoS: 1, PacketID: uint16(i%65535 + 1),
				Msg: storage.Message{Topic: "cmd/device-1", QoS: 1, Payload: payload},
			}})
		}
		for i := seq - batch; i >= 0 && i < seq; i++ {
			ops = append(ops, storage.Op{Kind: storage.DeleteDelivery, Delivery: storage.Delivery{ClientID: "device-1", Seq: uint64(i)}})
		}
		require.NoError(t, st.Write(ctx, ops), "Write of the batch at %d", seq)
	}
	snap, err := st.Load(ctx)
	require.NoError(t, err, "Load")
	require.Equal(t, []int{0, 1, 1}, []int{len(snap.Deliveries), len(snap.Sessions), len(snap.Subscriptions)},
		"deliveries, sessions and subscriptions left")
	info, err := os.Stat(path)
	require.NoError(t, err, "Stat")
	t.Logf("file size after %d deliveries (%d MiB of payload) put and deleted: %d bytes", total, total*len(payload)>>20, info.Size())
	assert.LessOrEqual(t, info.Size(), int64(limit), "file size in bytes")
}
