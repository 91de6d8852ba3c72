package tern

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// A burst of new connections leaves garbage behind: TLS handshakes
// allocate tens of kilobytes each, CONNECT decoding and session set-up a
// little more. The Go runtime frees it at its next collection, but keeps
// the freed pages as resident memory up to its next heap goal (twice the
// live heap with GOGC=100), and only returns what lies above that goal.
// An idle broker that has just taken 10,000 TLS clients thus holds about
// half as much memory again as its connections need, until the process
// ends or its load grows into it. A burst of connections ending is the
// same: what they held stays resident until a collection that an idle
// broker has no reason to start.
//
// With Options.ReleaseMemoryAfter, once a burst is over (no connection
// accepted, answered with a CONNACK or ended for that long, and at least
// releaseBurst connections accepted or ended since the last release), the
// broker forces one collection and returns every free page to the
// operating system (runtime/debug.FreeOSMemory). It costs one garbage
// collection per burst, and is never repeated while connections keep
// coming and going.

// releaseBurst is how many connections must be accepted or end after a
// release before the next: fewer leave too little garbage to be worth a
// forced collection of the whole heap.
const releaseBurst = 256

// Releases are spaced by at least releaseSpacing, and by releaseCost times
// the last one's duration: clients that come and go in bursts cannot make
// the broker spend more than about 2 % of a core on forced collections,
// however large its heap.
const (
	releaseSpacing = time.Second
	releaseCost    = 50
)

// memReleaser returns memory to the operating system after bursts of
// connections. nil when Options.ReleaseMemoryAfter is 0.
type memReleaser struct {
	b     *Broker
	after time.Duration
	last  atomic.Int64 // ns since b.started of the last accept, CONNACK or end
	churn atomic.Int64 // connections accepted or ended
	armed atomic.Bool  // the timer is set

	mu        sync.Mutex
	timer     *time.Timer
	closed    bool
	releasing bool         // a release is under way
	notBefore int64        // ns since b.started: no release before
	mark      atomic.Int64 // churn at the last release
	releases  atomic.Int64
}

func newMemReleaser(b *Broker, after time.Duration) *memReleaser {
	if after <= 0 {
		return nil
	}
	return &memReleaser{b: b, after: after}
}

// now is the releaser's clock: monotonic nanoseconds since New.
func (m *memReleaser) now() int64 { return int64(time.Since(m.b.started)) }

// touch records a connection accepted or ended (n = 1), or answered (n =
// 0): the burst goes on. Once enough connections came or went since the
// last release, it sets the timer that releases memory when they stop.
func (m *memReleaser) touch(n int64) {
	if m == nil {
		return
	}
	m.last.Store(m.now())
	if churn := m.churn.Add(n); m.armed.Load() || churn-m.mark.Load() < releaseBurst {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.armed.Load() {
		return
	}
	m.armed.Store(true)
	if m.timer == nil {
		m.timer = time.AfterFunc(m.after, m.fire)
	} else {
		m.timer.Reset(m.after)
	}
}

// fire releases memory if the burst is over, and otherwise waits for the
// rest of the quiet period again.
func (m *memReleaser) fire() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	now := m.now()
	if quiet := time.Duration(now - m.last.Load()); quiet < m.after {
		m.timer.Reset(m.after - quiet)
		m.mu.Unlock()
		return
	}
	if m.releasing {
		// The release under way sets the timer again when it ends.
		m.mu.Unlock()
		return
	}
	if now < m.notBefore {
		m.timer.Reset(time.Duration(m.notBefore - now))
		m.mu.Unlock()
		return
	}
	m.releasing = true
	churn := m.churn.Load()
	n := churn - m.mark.Swap(churn)
	m.armed.Store(false)
	// Close waits for a release under way, as for every goroutine the
	// broker runs; stop has not run yet (closed is false under mu), so
	// the Add comes before Close's Wait.
	m.b.wg.Add(1)
	m.mu.Unlock()
	defer m.b.wg.Done()
	start := time.Now()
	debug.FreeOSMemory()
	took := time.Since(start)
	m.mu.Lock()
	m.releasing = false
	spacing := max(releaseSpacing, releaseCost*took)
	m.notBefore = m.now() + int64(spacing)
	if m.armed.Load() && !m.closed {
		// A burst that came during the release waits for the spacing.
		m.timer.Reset(spacing)
	}
	m.mu.Unlock()
	m.releases.Add(1)
	m.b.log.Debug("memory returned to the operating system after a burst of connections",
		"connections_opened_or_ended", n, "took", took)
}

// stop keeps the timer from firing again; a release under way is waited
// for by Close (b.wg).
func (m *memReleaser) stop() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.closed = true
	if m.timer != nil {
		m.timer.Stop()
	}
	m.mu.Unlock()
}

// count returns the releases so far.
func (m *memReleaser) count() int64 {
	if m == nil {
		return 0
	}
	return m.releases.Load()
}
