package bolt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/ternmq/tern/storage"
)

// ErrCorrupt is wrapped by the errors of Open and Load when the data file
// is not a readable Tern store.
var ErrCorrupt = errors.New("data file is corrupt")

// Durability says when Write returns.
type Durability uint8

const (
	// Sync, the default: Write returns once its ops are committed and
	// synced to disk. Concurrent Writes share one commit.
	Sync Durability = iota
	// Async: Write returns at once; a background flush commits what was
	// written every Options.FlushInterval and at Close. A crash loses at
	// most the last interval's ops, each Write entirely or not at all.
	Async
)

// String returns "sync" or "async".
func (d Durability) String() string {
	switch d {
	case Sync:
		return "sync"
	case Async:
		return "async"
	}
	return fmt.Sprintf("Durability(%d)", uint8(d))
}

// Defaults of Options.
const (
	DefaultFlushInterval = 100 * time.Millisecond
	DefaultLockTimeout   = time.Second
)

// asyncMaxPending bounds the bytes an Async store holds unflushed: a Write
// that finds more waits for the flush, so a disk slower than the broker
// slows the broker instead of filling memory.
const asyncMaxPending = 32 << 20

// Options configure a Store. The zero value is a synchronous store.
type Options struct {
	// Durability is Sync (the default) or Async.
	Durability Durability
	// FlushInterval is how often an Async store commits. 0:
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// LockTimeout is how long Open waits for another process to release
	// the file. 0: DefaultLockTimeout.
	LockTimeout time.Duration
	// Logger receives the errors of background flushes. nil: silent.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Durability != Sync && o.Durability != Async {
		return o, fmt.Errorf("storage/bolt: unknown Options.Durability %d", o.Durability)
	}
	if o.FlushInterval < 0 {
		return o, fmt.Errorf("storage/bolt: Options.FlushInterval must not be negative, got %s", o.FlushInterval)
	}
	if o.LockTimeout < 0 {
		return o, fmt.Errorf("storage/bolt: Options.LockTimeout must not be negative, got %s", o.LockTimeout)
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Store is a storage.Store on a bbolt file. It is safe for concurrent use.
type Store struct {
	path string
	db   *bbolt.DB
	opts Options

	mu         sync.Mutex
	queue      []*request // Writes waiting for the writer
	queued     int        // bytes in queue
	maxPending int        // asyncMaxPending, lowered by tests
	closed     bool
	failed     error // refuses further work: a commit failed unseen, or the file is damaged
	lost       error // a commit of Writes that had returned failed
	kick       chan struct{}
	stop       chan struct{}
	stopped    chan struct{}

	closeOnce sync.Once
	closeErr  error

	// For tests and benchmarks: queues taken by the writer, transactions
	// committed.
	batches, commits atomic.Uint64
}

// Open opens the store in the file at path, creating it if needed. It
// fails, naming the file, if the file is locked by another process for
// longer than Options.LockTimeout, is empty, or is not a readable Tern
// store (wrapping ErrCorrupt), or was written by a later version of Tern
// in a layout this one does not know (wrapping ErrNewerLayout). A file of
// an earlier layout is upgraded to the current one, in one transaction;
// the versions of Tern that wrote it then refuse it.
func Open(path string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	// bbolt would make an empty file a new store, silently starting with
	// no state. Open never leaves its file empty (bbolt writes the first
	// pages as it creates it), so an empty file is someone else's: a
	// truncation, a wrong path, a placeholder. Refuse it.
	if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() && info.Size() == 0 {
		return nil, fmt.Errorf("storage/bolt: open %s: %w: the file is empty; remove it to start with no state", path, ErrCorrupt)
	}
	db, err := openDB(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:       path,
		db:         db,
		opts:       opts,
		maxPending: asyncMaxPending,
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if err := guard(s.prepare); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storage/bolt: open %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

// openDB opens the bbolt file. A file whose pages lie past its end can make
// bbolt fault while it reads its free list; that becomes an error here (the
// mapping of such a file is then left to the process's end).
func openDB(path string, timeout time.Duration) (db *bbolt.DB, err error) {
	var file *os.File
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("storage/bolt: open %s: %w (%v)", path, ErrCorrupt, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:      timeout,
		FreelistType: bbolt.FreelistMapType,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
	var errno syscall.Errno
	var pathErr *fs.PathError
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bberrors.ErrTimeout):
		return nil, fmt.Errorf("storage/bolt: open %s: locked by another process for %s: %w", path, timeout, err)
	case file == nil, errors.As(err, &errno), errors.As(err, &pathErr):
		// The system refused: no such directory, permission, memory.
		return nil, fmt.Errorf("storage/bolt: open %s: %w", path, err)
	}
	// bbolt read the file and refused its contents (bad meta pages, too
	// small for them, unknown version).
	return nil, fmt.Errorf("storage/bolt: open %s: %w: %w", path, ErrCorrupt, err)
}

// prepare checks that the file is whole, a Tern store, and of a layout
// this package reads; makes a new file a store; and upgrades a file of an
// earlier layout to the current one, in one transaction.
func (s *Store) prepare() error {
	info, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	fresh := false
	var layout uint64
	err = s.db.View(func(tx *bbolt.Tx) error {
		if need := tx.Size(); need > info.Size() {
			return fmt.Errorf("%w: truncated: %d bytes, its pages need %d", ErrCorrupt, info.Size(), need)
		}
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			// A new file has no bucket; a file with others is not ours.
			fresh = tx.ForEach(func([]byte, *bbolt.Bucket) error { return errNotEmpty }) == nil
			if !fresh {
				return fmt.Errorf("%w: not a Tern store (no %q bucket)", ErrCorrupt, metaBucket)
			}
			return nil
		}
		var err error
		if layout, err = readLayout(meta); err != nil {
			return err
		}
		if err := checkLayout(layout); err != nil {
			return err
		}
		for _, name := range bucketNames {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case fresh:
		return s.db.Update(func(tx *bbolt.Tx) error {
			for _, name := range bucketNames {
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			meta, err := tx.CreateBucket(metaBucket)
			if err != nil {
				return err
			}
			return meta.Put(formatKey, appendLayout(nil, layoutCurrent))
		})
	case layout < layoutCurrent:
		if err := s.db.Update(func(tx *bbolt.Tx) error { return upgrade(tx, layout) }); err != nil {
			return err
		}
		s.opts.Logger.Info("storage/bolt: data file upgraded", "file", s.path, "from_layout", layout, "to_layout", layoutCurrent)
	}
	return nil
}

var errNotEmpty = errors.New("not empty")

// guard runs fn, turning a panic of bbolt on a malformed page, or a fault
// on a page past the end of the file, into an error.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w (%v)", ErrCorrupt, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return fn()
}

// Path returns the path the store was opened with.
func (s *Store) Path() string { return s.path }

// Close commits what is pending, stops the writer and closes the file.
// Its error also reports ops lost by a failed Async commit. Closing twice
// returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		<-s.stopped
		s.mu.Lock()
		lost := s.lost
		s.mu.Unlock()
		var err error
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("storage/bolt: close %s: %w", s.path, cerr)
		}
		s.closeErr = errors.Join(lost, err)
	})
	return s.closeErr
}

// Load returns everything stored, after committing what an Async store
// holds pending: deliveries in (ClientID, Seq) order, the other records in
// key order. The caller owns the snapshot; an empty payload, property
// block or list of subscription identifiers is nil. A malformed record
// fails Load with an error naming the file and the record and wrapping
// ErrCorrupt, and the store then refuses writes.
func (s *Store) Load(ctx context.Context) (*storage.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage/bolt: load %s: %w", s.path, err)
	}
	if s.opts.Durability == Async {
		if err := s.barrier(ctx); err != nil {
			return nil, err
		}
	} else if err := s.usable(); err != nil {
		return nil, err
	}
	snap := &storage.Snapshot{}
	err := guard(func() error {
		return s.db.View(func(tx *bbolt.Tx) error { return load(ctx, tx, snap) })
	})
	if err != nil {
		err = fmt.Errorf("storage/bolt: load %s: %w", s.path, err)
		if errors.Is(err, ErrCorrupt) {
			// Writing on into a damaged file could only make it worse.
			s.mu.Lock()
			if s.failed == nil {
				s.failed = err
			}
			s.mu.Unlock()
		}
		return nil, err
	}
	return snap, nil
}

// usable returns the error a closed or failed store answers with.
func (s *Store) usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usableLocked()
}

func (s *Store) usableLocked() error {
	if s.closed {
		return fmt.Errorf("storage/bolt: %s: %w", s.path, storage.ErrClosed)
	}
	return s.failed
}
