package bolt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/storage"
)

func open(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "tern.db"), opts)
	require.NoError(t, err, "Open")
	t.Cleanup(func() { s.Close() })
	return s
}

// waitFor is how long a test waits for the writer goroutine to reach a
// state: generous, for a loaded machine.
const waitFor = 10 * time.Second

func (s *Store) queueLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

func putOp(id string, seq uint64) []storage.Op {
	return []storage.Op{{Kind: storage.PutDelivery, Delivery: storage.Delivery{
		ClientID: id, Seq: seq, QoS: 1, Msg: storage.Message{Topic: "t", QoS: 1, Payload: []byte("p")},
	}}}
}

// blockWriter holds bbolt's write lock until the returned func is called,
// and returns once the writer is stuck on it with a first Write, whose
// result comes on the channel.
func blockWriter(t *testing.T, s *Store) (release func(), first <-chan error) {
	t.Helper()
	tx, err := s.db.Begin(true)
	require.NoError(t, err, "Begin")
	done := make(chan error, 1)
	taken := s.batches.Load()
	go func() { done <- s.Write(context.Background(), putOp("first", 0)) }()
	require.Eventually(t, func() bool { return s.batches.Load() > taken }, waitFor, time.Millisecond,
		"the writer never took the first Write")
	return func() { _ = tx.Rollback() }, done
}

func TestConcurrentWritesShareOneCommit(t *testing.T) {
	s := open(t, Options{})
	release, first := blockWriter(t, s)
	before := s.commits.Load()

	const writers = 20
	errs := make(chan error, writers)
	for i := range writers {
		go func() { errs <- s.Write(context.Background(), putOp("c", uint64(i))) }()
	}
	require.Eventually(t, func() bool { return s.queueLen() == writers }, waitFor, time.Millisecond,
		"the Writes were never all queued")
	release()
	for range writers {
		require.NoError(t, <-errs, "queued Write")
	}
	require.NoError(t, <-first, "blocked Write")
	assert.Equal(t, uint64(2), s.commits.Load()-before,
		"commits for one blocked Write and %d queued behind it", writers)
	snap, err := s.Load(context.Background())
	require.NoError(t, err, "Load")
	assert.Len(t, snap.Deliveries, writers+1, "deliveries stored")
}

func TestCancelledWhileQueuedIsNotWritten(t *testing.T) {
	s := open(t, Options{})
	release, first := blockWriter(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Write(ctx, putOp("cancelled", 1)) }()
	require.Eventually(t, func() bool { return s.queueLen() == 1 }, waitFor, time.Millisecond,
		"the Write was never queued")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled, "Write cancelled while queued")
	release()
	require.NoError(t, <-first, "blocked Write")
	// A later Write is committed after the writer dealt with the
	// cancelled one.
	require.NoError(t, s.Write(context.Background(), putOp("later", 1)), "later Write")
	snap, err := s.Load(context.Background())
	require.NoError(t, err, "Load")
	for _, d := range snap.Deliveries {
		assert.NotEqual(t, "cancelled", d.ClientID, "the cancelled Write was committed")
	}
	assert.Len(t, snap.Deliveries, 2, "deliveries, want first and later")
}

func TestAsyncWriteReturnsBeforeCommit(t *testing.T) {
	s := open(t, Options{Durability: Async, FlushInterval: time.Hour})
	s.maxPending = 1 << 10
	require.NoError(t, s.Write(context.Background(), putOp("c", 1)), "Write")
	require.Zero(t, s.commits.Load(), "commits after an Async Write with an hour's interval")
	// Over the pending bound, a Write waits for its commit.
	big := putOp("c", 2)
	big[0].Delivery.Msg.Payload = make([]byte, s.maxPending)
	require.NoError(t, s.Write(context.Background(), big), "Write over the pending bound")
	require.Equal(t, uint64(1), s.commits.Load(), "commits after a Write over the pending bound")
}

func TestAsyncFlushesOnInterval(t *testing.T) {
	s := open(t, Options{Durability: Async, FlushInterval: time.Millisecond})
	require.NoError(t, s.Write(context.Background(), putOp("c", 1)), "Write")
	require.Eventually(t, func() bool { return s.commits.Load() == 1 }, waitFor, time.Millisecond,
		"the interval's flush never committed")
}

// syncBuffer is a log destination written by the writer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestAsyncCommitFailureStopsTheStore(t *testing.T) {
	var logs syncBuffer
	s := open(t, Options{Durability: Async, FlushInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, s.Write(context.Background(), putOp("c", 1)), "Write")
	// The disk goes away under the store.
	require.NoError(t, s.db.Close(), "closing the database under the store")
	_, err := s.Load(context.Background())
	require.Error(t, err, "Load after a failed flush")
	err = s.Write(context.Background(), putOp("c", 2))
	if assert.Error(t, err, "Write after a failed flush") {
		assert.Contains(t, err.Error(), s.path, "Write after a failed flush: want an error naming the file")
	}
	assert.Error(t, s.Close(), "Close after lost writes")
	assert.Contains(t, logs.String(), "commit failed", "the failure was not logged")
}

func TestSyncCommitFailureIsReportedToTheWriter(t *testing.T) {
	s := open(t, Options{})
	require.NoError(t, s.db.Close(), "closing the database under the store")
	require.Error(t, s.Write(context.Background(), putOp("c", 1)), "Write on a closed database")
	assert.NoError(t, s.Close(), "Close: the failed Write was reported to its caller")
}

func TestCloseStopsTheWriter(t *testing.T) {
	for _, d := range []Durability{Sync, Async} {
		t.Run(d.String(), func(t *testing.T) {
			s := open(t, Options{Durability: d})
			require.NoError(t, s.Close(), "Close")
			select {
			case <-s.stopped:
			default:
				require.FailNow(t, "the writer goroutine still runs after Close")
			}
			assert.NoError(t, s.Close(), "second Close")
		})
	}
}

func TestDurabilityString(t *testing.T) {
	for d, want := range map[Durability]string{Sync: "sync", Async: "async", 7: "Durability(7)"} {
		assert.Equal(t, want, fmt.Sprint(d), "Durability %d printed", int(d))
	}
}
