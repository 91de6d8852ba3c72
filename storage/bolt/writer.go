package bolt

import (
	"context"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/ternmq/tern/storage"
)

// request is one Write, or a Load's barrier, waiting for the writer.
type request struct {
	b    *batch
	ctx  context.Context // nil when nobody waits
	done chan error      // nil when nobody waits (an Async Write)
}

// Write encodes ops, then hands them to the writer goroutine, which
// commits everything handed to it since its last commit in one bbolt
// transaction (group commit). A Sync store returns once that transaction
// is synced to disk; an Async store returns at once, unless more than
// 32 MiB wait to be flushed, and then it waits like a Sync one.
//
// An op of unknown Kind fails the call before anything is written. If ctx
// ends while the ops are waiting, they are not written and Write returns
// ctx's error; if it ends during the commit, Write returns ctx's error and
// the ops may be committed.
func (s *Store) Write(ctx context.Context, ops []storage.Op) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage/bolt: write %s: %w", s.path, err)
	}
	b, err := encode(ops)
	if err != nil {
		return fmt.Errorf("storage/bolt: write %s: %w", s.path, err)
	}
	req := &request{b: b}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	if len(b.muts) == 0 {
		s.mu.Unlock()
		return nil
	}
	wait := s.opts.Durability == Sync || s.queued+len(b.buf) > s.maxPending
	if wait {
		req.ctx, req.done = ctx, make(chan error, 1)
	}
	s.queue = append(s.queue, req)
	s.queued += len(b.buf)
	s.mu.Unlock()
	if !wait {
		return nil
	}
	s.wake()
	return s.await(ctx, req)
}

// barrier returns once everything written before it is committed.
func (s *Store) barrier(ctx context.Context) error {
	req := &request{b: &batch{}, ctx: ctx, done: make(chan error, 1)}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.queue = append(s.queue, req)
	s.mu.Unlock()
	s.wake()
	return s.await(ctx, req)
}

func (s *Store) await(ctx context.Context, req *request) error {
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("storage/bolt: write %s: %w", s.path, ctx.Err())
	}
}

// wake makes the writer commit now.
func (s *Store) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run is the writer: it commits when woken (Sync, or a Load's barrier),
// every FlushInterval (Async), and a last time at Close.
func (s *Store) run() {
	defer close(s.stopped)
	var tick <-chan time.Time
	if s.opts.Durability == Async {
		t := time.NewTicker(s.opts.FlushInterval)
		defer t.Stop()
		tick = t.C
	}
	var spare []*request
	for {
		select {
		case <-s.kick:
		case <-tick:
		case <-s.stop:
			s.flush(nil)
			return
		}
		spare = s.flush(spare)
	}
}

// flush commits the queue in one transaction and answers its requests. It
// takes spare as the next queue and returns the old one, emptied, so that
// two slices serve forever.
func (s *Store) flush(spare []*request) []*request {
	s.mu.Lock()
	reqs, failed := s.queue, s.failed
	s.queue, s.queued = spare, 0
	s.mu.Unlock()
	if len(reqs) == 0 {
		return reqs
	}
	s.batches.Add(1)
	live := reqs[:0]
	for _, r := range reqs {
		if r.ctx != nil && r.ctx.Err() != nil {
			r.done <- fmt.Errorf("storage/bolt: write %s: %w", s.path, r.ctx.Err())
			continue
		}
		live = append(live, r)
	}
	err := failed
	if err == nil {
		err = s.commit(live)
	}
	unanswered := false
	for _, r := range live {
		if r.done == nil {
			unanswered = true
		}
	}
	// A failed commit is reported to the Writes that wait for it. When
	// an Async Write was in it, nobody learns of the loss but through the
	// store refusing further work; so too after a fault in the file. The
	// store refuses before the waiting calls return, so that a caller
	// told of the failure finds the store failed.
	if err != nil && failed == nil && (unanswered || errors.Is(err, ErrCorrupt)) {
		s.opts.Logger.Error("storage/bolt: commit failed; the store refuses further writes", "file", s.path, "error", err)
		s.mu.Lock()
		s.failed = err
		if unanswered {
			s.lost = err
		}
		s.mu.Unlock()
	}
	for _, r := range live {
		if r.done != nil {
			r.done <- err
		}
	}
	clear(reqs)
	return reqs[:0]
}

// commit writes the batches of reqs in one transaction.
func (s *Store) commit(reqs []*request) error {
	n := 0
	for _, r := range reqs {
		n += len(r.b.muts)
	}
	if n == 0 {
		return nil // barriers only
	}
	err := guard(func() error {
		return s.db.Update(func(tx *bbolt.Tx) error {
			var bks [numBuckets]*bbolt.Bucket
			for i, name := range bucketNames {
				if bks[i] = tx.Bucket(name); bks[i] == nil {
					return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
				}
			}
			for _, r := range reqs {
				if err := r.b.apply(&bks); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("storage/bolt: commit %s: %w", s.path, err)
	}
	s.commits.Add(1)
	return nil
}
