package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/storage"
)

func open(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "tern.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

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
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	taken := s.batches.Load()
	go func() { done <- s.Write(context.Background(), putOp("first", 0)) }()
	eventually(t, "the writer takes the first Write", func() bool { return s.batches.Load() > taken })
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
	eventually(t, "all Writes are queued", func() bool { return s.queueLen() == writers })
	release()
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := s.commits.Load() - before; n != 2 {
		t.Errorf("%d commits for one blocked Write and %d queued behind it, want 2", n, writers)
	}
	snap, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Deliveries) != writers+1 {
		t.Errorf("%d deliveries stored, want %d", len(snap.Deliveries), writers+1)
	}
}

func TestCancelledWhileQueuedIsNotWritten(t *testing.T) {
	s := open(t, Options{})
	release, first := blockWriter(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Write(ctx, putOp("cancelled", 1)) }()
	eventually(t, "the Write is queued", func() bool { return s.queueLen() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Write: %v, want context.Canceled", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// A later Write is committed after the writer dealt with the
	// cancelled one.
	if err := s.Write(context.Background(), putOp("later", 1)); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range snap.Deliveries {
		if d.ClientID == "cancelled" {
			t.Error("the cancelled Write was committed")
		}
	}
	if len(snap.Deliveries) != 2 {
		t.Errorf("%d deliveries, want 2 (first, later)", len(snap.Deliveries))
	}
}

func TestAsyncWriteReturnsBeforeCommit(t *testing.T) {
	s := open(t, Options{Durability: Async, FlushInterval: time.Hour})
	s.maxPending = 1 << 10
	if err := s.Write(context.Background(), putOp("c", 1)); err != nil {
		t.Fatal(err)
	}
	if n := s.commits.Load(); n != 0 {
		t.Fatalf("%d commits after an Async Write with an hour's interval", n)
	}
	// Over the pending bound, a Write waits for its commit.
	big := putOp("c", 2)
	big[0].Delivery.Msg.Payload = make([]byte, s.maxPending)
	if err := s.Write(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	if n := s.commits.Load(); n != 1 {
		t.Fatalf("%d commits after a Write over the pending bound, want 1", n)
	}
}

func TestAsyncFlushesOnInterval(t *testing.T) {
	s := open(t, Options{Durability: Async, FlushInterval: time.Millisecond})
	if err := s.Write(context.Background(), putOp("c", 1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the interval's flush commits", func() bool { return s.commits.Load() == 1 })
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
	if err := s.Write(context.Background(), putOp("c", 1)); err != nil {
		t.Fatal(err)
	}
	// The disk goes away under the store.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background()); err == nil {
		t.Fatal("Load after a failed flush: no error")
	}
	if err := s.Write(context.Background(), putOp("c", 2)); err == nil || !strings.Contains(err.Error(), s.path) {
		t.Errorf("Write after a failed flush: %v, want an error naming the file", err)
	}
	if err := s.Close(); err == nil {
		t.Error("Close after lost writes: no error")
	}
	if !strings.Contains(logs.String(), "commit failed") {
		t.Errorf("the failure was not logged; logs: %q", logs.String())
	}
}

func TestSyncCommitFailureIsReportedToTheWriter(t *testing.T) {
	s := open(t, Options{})
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), putOp("c", 1)); err == nil {
		t.Fatal("Write on a closed database: no error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v; the failed Write was reported to its caller", err)
	}
}

func TestCloseStopsTheWriter(t *testing.T) {
	for _, d := range []Durability{Sync, Async} {
		t.Run(d.String(), func(t *testing.T) {
			s := open(t, Options{Durability: d})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.stopped:
			default:
				t.Fatal("the writer goroutine still runs after Close")
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestDurabilityString(t *testing.T) {
	for d, want := range map[Durability]string{Sync: "sync", Async: "async", 7: "Durability(7)"} {
		if got := fmt.Sprint(d); got != want {
			t.Errorf("%d prints as %q, want %q", d, got, want)
		}
	}
}
