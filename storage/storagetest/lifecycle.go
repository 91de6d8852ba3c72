package storagetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/storage"
)

func testRestart(t *testing.T, h *harness) {
	want := fill(h, "x", "y", "z")
	m := storage.Message{Topic: "r/1", Payload: []byte("v"), QoS: 1, Retain: true}
	h.write(putRetained(m))
	want.Retained = append(want.Retained, m)
	h.expectBoth(want)

	// Changes after a restart are kept by the next one too.
	h.write(deleteSession("y"), deleteRetained("r/1"))
	want = without(want, "y")
	want.Retained = nil
	h.reopen()
	h.expect(want)

	// Reopening without writing changes nothing.
	h.reopen()
	h.reopen()
	h.expect(want)
}

func testAtomicOnBadOp(t *testing.T, h *harness) {
	before := fill(h, "c")
	for _, kind := range []storage.Kind{0, storage.DeleteRetained + 1, 255} {
		err := h.st.Write(context.Background(), []storage.Op{
			putDelivery(delivery("c", 99, "t", "x")),
			deleteSession("c"),
			{Kind: kind},
			putRetained(storage.Message{Topic: "t"}),
		})
		assert.Error(t, err, "Write with an op of kind %d", kind)
	}
	h.expectBoth(before)
}

func testCallerOwnsBuffers(t *testing.T, h *harness) {
	buf := []byte("original")
	d := delivery("c", 1, "t", "")
	d.Msg.Payload = buf
	h.write(putDelivery(d), putRetained(storage.Message{Topic: "t", Payload: buf}))
	copy(buf, "XXXXXXXX") // the broker reuses its buffers after Write

	want := &storage.Snapshot{
		Deliveries: []storage.Delivery{delivery("c", 1, "t", "original")},
		Retained:   []storage.Message{{Topic: "t", Payload: []byte("original")}},
	}
	h.expect(want)

	// What Load returns belongs to the caller.
	snap := h.load()
	for _, p := range [][]byte{snap.Deliveries[0].Msg.Payload, snap.Retained[0].Payload} {
		copy(p, "YYYYYYYY")
	}
	h.expectBoth(want)
}

func testCancelledContext(t *testing.T, h *harness) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := h.st.Write(ctx, []storage.Op{putSession(storage.Session{ClientID: "c"})})
	assert.ErrorIs(t, err, context.Canceled, "Write with a cancelled context")
	_, err = h.st.Load(ctx)
	assert.ErrorIs(t, err, context.Canceled, "Load with a cancelled context")
	h.expectBoth(&storage.Snapshot{})
}

func testClose(t *testing.T, h *harness) {
	want := fill(h, "c")
	st := h.st
	h.st = nil
	require.NoError(t, st.Close(), "Close")
	assert.NoError(t, st.Close(), "second Close")
	err := st.Write(context.Background(), []storage.Op{deleteSession("c")})
	assert.ErrorIs(t, err, storage.ErrClosed, "Write after Close")
	_, err = st.Load(context.Background())
	assert.ErrorIs(t, err, storage.ErrClosed, "Load after Close")
	h.reopen()
	h.expect(want)
}

func testConcurrentWriters(t *testing.T, h *harness) {
	const writers, rounds = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("client-%d", w)
			for r := range rounds {
				// As the broker does for QoS 1: queue a message, and
				// delete the previous one once acknowledged.
				ops := []storage.Op{
					putDelivery(delivery(id, uint64(r), "t", fmt.Sprint(r))),
					putRetained(storage.Message{Topic: fmt.Sprintf("r/%d", w), Payload: []byte(fmt.Sprint(r))}),
				}
				if r > 0 && r%2 == 1 {
					ops = append(ops, deleteDelivery(id, uint64(r-1)))
				}
				if err := h.st.Write(context.Background(), ops); err != nil {
					errs <- fmt.Errorf("writer %d round %d: %w", w, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err, "concurrent Write")
	}
	want := &storage.Snapshot{}
	for w := range writers {
		id := fmt.Sprintf("client-%d", w)
		for r := 1; r < rounds; r += 2 {
			want.Deliveries = append(want.Deliveries, delivery(id, uint64(r), "t", fmt.Sprint(r)))
		}
		want.Retained = append(want.Retained, storage.Message{Topic: fmt.Sprintf("r/%d", w), Payload: []byte(fmt.Sprint(rounds - 1))})
	}
	h.expectBoth(want)
}
