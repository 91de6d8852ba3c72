package auth

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
)

// acquireErr takes a slot and gives it back at once, returning the error.
func acquireErr(g *guard, ctx context.Context, suspect bool) error {
	release, err := g.acquire(ctx, "a", suspect)
	if err == nil {
		release()
	}
	return err
}

// TestCheckSlots holds the only check slot and checks the bounds on
// waiting for it: MaxWaiting waiters at most, each for MaxWait at most,
// and for no longer than its context.
func TestCheckSlots(t *testing.T) {
	g, err := newGuard(Options{MaxConcurrentChecks: 1, MaxWaiting: 1, MaxWait: time.Hour})
	require.NoError(t, err)
	g.slots <- struct{}{} // a check runs

	ctx, cancel := context.WithCancel(t.Context())
	waiter := make(chan error)
	go func() { waiter <- acquireErr(g, ctx, false) }()
	require.Eventually(t, func() bool { return g.waiting.Load() == 1 }, 5*time.Second, time.Millisecond)

	err = acquireErr(g, t.Context(), false)
	assert.ErrorIs(t, err, tern.ErrServerUnavailable, "a second waiter is refused at once")
	assert.Equal(t, uint64(1), g.stats().Busy)

	cancel()
	err = <-waiter
	assert.ErrorIs(t, err, context.Canceled, "the waiter ends with its context")
	assert.ErrorIs(t, err, tern.ErrServerUnavailable)
	assert.Zero(t, g.waiting.Load())

	// A waiter gets the slot when the running check ends.
	go func() { waiter <- acquireErr(g, t.Context(), false) }()
	require.Eventually(t, func() bool { return g.waiting.Load() == 1 }, 5*time.Second, time.Millisecond)
	<-g.slots
	require.NoError(t, <-waiter)
	assert.Empty(t, g.slots, "the slot was given back")

	// MaxWait bounds the wait.
	short, err := newGuard(Options{MaxConcurrentChecks: 1, MaxWait: 20 * time.Millisecond})
	require.NoError(t, err)
	short.slots <- struct{}{}
	t0 := time.Now()
	err = acquireErr(short, t.Context(), false)
	assert.ErrorIs(t, err, tern.ErrServerUnavailable)
	assert.GreaterOrEqual(t, time.Since(t0), 20*time.Millisecond)
	assert.Equal(t, uint64(1), short.stats().Busy)
}

// TestSuspectSlots checks that checks for addresses with recent failures
// hold at most half of the slots, so that the other half stays free for
// clients without failures.
func TestSuspectSlots(t *testing.T) {
	g, err := newGuard(Options{MaxConcurrentChecks: 4, MaxWait: time.Hour})
	require.NoError(t, err)
	var releases []func()
	for range 2 {
		r, err := g.acquire(t.Context(), "suspect", true)
		require.NoError(t, err)
		releases = append(releases, r)
	}
	_, err = g.acquire(t.Context(), "suspect", true)
	assert.ErrorIs(t, err, tern.ErrServerUnavailable, "a third suspect check is refused at once")
	for range 2 {
		r, err := g.acquire(t.Context(), "clean", false)
		require.NoError(t, err, "clean checks find the other half free")
		releases = append(releases, r)
	}
	for _, r := range releases {
		r()
	}
	assert.Empty(t, g.slots)
	assert.Empty(t, g.suspect)

	one, err := newGuard(Options{MaxConcurrentChecks: 1})
	require.NoError(t, err)
	assert.NoError(t, acquireErr(one, t.Context(), true), "with one slot, a suspect check may use it")
}

// TestLimiterSuspect checks when an address is suspect: from its first
// failure until its whole allowance could have come back.
func TestLimiterSuspect(t *testing.T) {
	l := newLimiter(4, 2, 10) // 2 s to come back
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	ok, suspect := l.take(a, now)
	require.True(t, ok)
	assert.False(t, suspect, "a new address")
	l.refund(a, now)
	ok, suspect = l.take(a, now)
	require.True(t, ok)
	assert.False(t, suspect, "successes do not make it suspect")
	l.fail(a, now)
	ok, suspect = l.take(a, now.Add(time.Second))
	require.True(t, ok)
	assert.True(t, suspect, "a second after a failure")
	l.refund(a, now.Add(time.Second))
	ok, suspect = l.take(a, now.Add(3*time.Second))
	require.True(t, ok)
	assert.False(t, suspect, "the allowance is back")
}

// TestCacheKeyHoldsNoPassword checks that the cache is keyed by an HMAC
// of the user name and password under a key of its own guard.
func TestCacheKeyHoldsNoPassword(t *testing.T) {
	g1, err := newGuard(Options{})
	require.NoError(t, err)
	g2, err := newGuard(Options{})
	require.NoError(t, err)
	k := g1.cacheKey("alice", []byte("secret-password"))
	assert.False(t, bytes.Contains(k[:], []byte("secret")))
	assert.Equal(t, k, g1.cacheKey("alice", []byte("secret-password")))
	assert.NotEqual(t, k, g2.cacheKey("alice", []byte("secret-password")), "each guard has its own key")
	assert.NotEqual(t, k, g1.cacheKey("alice", []byte("secret-passwore")))
	assert.NotEqual(t, g1.cacheKey("ab", []byte("c")), g1.cacheKey("a", []byte("bc")), "the user name's length is hashed")
}

// TestLimiterEviction fills the limiter: addresses that have regained
// their allowance go first, and the number of addresses stays bounded.
func TestLimiterEviction(t *testing.T) {
	l := newLimiter(2, 1, 3)
	now := time.Now()
	a := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, i}) }
	take := func(a netip.Addr, at time.Time) bool { ok, _ := l.take(a, at); return ok }
	require.True(t, take(a(1), now))
	require.True(t, take(a(2), now))
	require.True(t, take(a(3), now))
	later := now.Add(10 * time.Second) // a(1..3) are full again
	require.True(t, take(a(4), later))
	assert.LessOrEqual(t, len(l.buckets), 3)
	assert.Contains(t, l.buckets, a(4))

	// With no full bucket, one address goes to make room.
	l = newLimiter(1, 1e-9, 2)
	for i := range byte(5) {
		require.True(t, take(a(i), now))
		assert.LessOrEqual(t, len(l.buckets), 2)
	}
	assert.False(t, take(a(4), now), "the newest address is still limited")
}

func TestAddrKey(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 1}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1, Zone: "eth0"}, "2001:db8:1:2::"},
		{&net.UnixAddr{Name: "/run/tern.sock", Net: "unix"}, "invalid IP"},
		{nil, "invalid IP"},
		{stringAddr("198.51.100.7:1883"), "198.51.100.7"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, addrKey(tt.addr).String(), "%v", tt.addr)
	}
}

type stringAddr string

func (a stringAddr) Network() string { return "ws" }
func (a stringAddr) String() string  { return string(a) }
