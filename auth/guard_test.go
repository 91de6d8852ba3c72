package auth_test

import (
	"context"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

func parseWith(t *testing.T, o auth.Options, lines ...string) *auth.File {
	t.Helper()
	f, err := auth.ParseWithOptions(strings.NewReader(file(t, lines...)), "test.conf", o)
	require.NoError(t, err)
	return f
}

func login(user, pw string, from net.Addr) tern.ConnectInfo {
	return tern.ConnectInfo{ClientID: "c", Username: user, HasUsername: true,
		Password: []byte(pw), HasPassword: true, RemoteAddr: from}
}

func tcpAddr(s string) net.Addr { return net.TCPAddrFromAddrPort(netipMustParse(s)) }

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		o    auth.Options
		want string
	}{
		{auth.Options{MaxConcurrentChecks: -1}, "auth: Options.MaxConcurrentChecks must not be negative, got -1"},
		{auth.Options{MaxWaiting: -2}, "auth: Options.MaxWaiting must not be negative, got -2"},
		{auth.Options{MaxWait: -time.Second}, "auth: Options.MaxWait must not be negative, got -1s"},
		{auth.Options{CacheTTL: -time.Minute}, "auth: Options.CacheTTL must not be negative, got -1m0s"},
		{auth.Options{CacheSize: -1}, "auth: Options.CacheSize must not be negative, got -1"},
		{auth.Options{FailureBurst: -1}, "auth: Options.FailureBurst must not be negative, got -1"},
		{auth.Options{FailureRate: -0.5}, "auth: Options.FailureRate must not be negative, got -0.5"},
		{auth.Options{FailureRate: math.NaN()}, "auth: Options.FailureRate must be a finite number, got NaN"},
		{auth.Options{FailureRate: math.Inf(1)}, "auth: Options.FailureRate must be a finite number, got +Inf"},
		{auth.Options{MaxAddresses: -1}, "auth: Options.MaxAddresses must not be negative, got -1"},
	}
	for _, tt := range tests {
		_, err := auth.ParseWithOptions(strings.NewReader("anonymous on\n"), "x", tt.o)
		assert.EqualError(t, err, tt.want)
		_, err = auth.LoadWithOptions("does-not-matter.conf", tt.o)
		assert.EqualError(t, err, tt.want, "LoadWithOptions checks the options first")
	}
	_, err := auth.ParseWithOptions(strings.NewReader("anonymous on\n"), "x", auth.Options{})
	assert.NoError(t, err, "the zero Options")
}

// TestSuccessCache checks that a successful check is remembered: the same
// user name and password connect again without a hash, other passwords
// are still checked, and a reload or the end of CacheTTL forgets it.
func TestSuccessCache(t *testing.T) {
	path := writeFile(t, "user alice HASH(right)", "user bob HASH(b)")
	f, err := auth.LoadWithOptions(path, auth.Options{})
	require.NoError(t, err)
	ctx := t.Context()
	from := tcpAddr("192.0.2.1:1000")

	require.NoError(t, f.Authenticate(ctx, login("alice", "right", from)))
	assert.Equal(t, auth.Stats{Checks: 1}, f.Stats())
	require.NoError(t, f.Authenticate(ctx, login("alice", "right", from)))
	assert.Equal(t, auth.Stats{Checks: 1, CacheHits: 1}, f.Stats(), "the second connect is a cache hit")
	assert.ErrorIs(t, f.Authenticate(ctx, login("alice", "wrong", from)), tern.ErrBadCredentials)
	assert.ErrorIs(t, f.Authenticate(ctx, login("bob", "right", from)), tern.ErrBadCredentials,
		"the cache is keyed by user name and password")
	assert.Equal(t, auth.Stats{Checks: 3, Failed: 2, CacheHits: 1}, f.Stats())

	require.NoError(t, f.Reload())
	require.NoError(t, f.Authenticate(ctx, login("alice", "right", from)))
	assert.Equal(t, uint64(4), f.Stats().Checks, "a reload forgets the cache")

	// A password changed in the file: the old one stops working at once.
	writeTo(t, path, "user alice HASH(new)", "user bob HASH(b)")
	require.NoError(t, f.Reload())
	assert.ErrorIs(t, f.Authenticate(ctx, login("alice", "right", from)), tern.ErrBadCredentials)
	assert.NoError(t, f.Authenticate(ctx, login("alice", "new", from)))

	short := parseWith(t, auth.Options{CacheTTL: time.Nanosecond}, "user alice HASH(right)")
	for range 2 {
		require.NoError(t, short.Authenticate(ctx, login("alice", "right", from)))
	}
	assert.Equal(t, auth.Stats{Checks: 2}, short.Stats(), "an expired entry is checked again")

	small := parseWith(t, auth.Options{CacheSize: 1}, "user alice HASH(a)", "user bob HASH(b)")
	for _, u := range []string{"alice", "bob", "alice"} {
		require.NoError(t, small.Authenticate(ctx, login(u, u[:1], from)))
	}
	assert.Equal(t, auth.Stats{Checks: 3}, small.Stats(), "a full cache drops its oldest entry")
}

// TestFailureLimit checks the per-address limit: after FailureBurst failed
// checks, an address is refused with ErrServerUnavailable without a check,
// unknown users count as known ones do, a cached success still passes,
// and other addresses are not concerned.
func TestFailureLimit(t *testing.T) {
	f := parseWith(t, auth.Options{FailureBurst: 4, FailureRate: 1e-9}, "user alice HASH(right)", "user bob HASH(b)")
	ctx := t.Context()
	attacker := tcpAddr("192.0.2.66:4000")
	require.NoError(t, f.Authenticate(ctx, login("alice", "right", attacker)), "alice, before the attack")

	for i := range 4 {
		user := []string{"alice", "nobody"}[i%2]
		assert.ErrorIs(t, f.Authenticate(ctx, login(user, "guess", attacker)), tern.ErrBadCredentials, "failure %d", i+1)
	}
	for _, user := range []string{"alice", "nobody", "bob"} {
		err := f.Authenticate(ctx, login(user, "guess", tcpAddr("192.0.2.66:4001")))
		assert.ErrorIs(t, err, tern.ErrServerUnavailable, "%s from a limited address", user)
		assert.NotErrorIs(t, err, tern.ErrBadCredentials)
	}
	assert.ErrorIs(t, f.Authenticate(ctx, login("bob", "b", attacker)), tern.ErrServerUnavailable,
		"a good password not seen before is not checked either")
	assert.NoError(t, f.Authenticate(ctx, login("alice", "right", attacker)), "a cached success still passes")
	assert.Equal(t, auth.Stats{Checks: 5, Failed: 4, CacheHits: 1, RateLimited: 4}, f.Stats())

	assert.NoError(t, f.Authenticate(ctx, login("bob", "b", tcpAddr("192.0.2.7:4000"))), "another address")
	// IPv6 addresses count by /64 network.
	for _, a := range []string{"[2001:db8::1]:1", "[2001:db8::2]:1", "[2001:db8::3]:1", "[2001:db8::4]:1"} {
		assert.ErrorIs(t, f.Authenticate(ctx, login("alice", "guess", tcpAddr(a))), tern.ErrBadCredentials)
	}
	assert.ErrorIs(t, f.Authenticate(ctx, login("alice", "guess", tcpAddr("[2001:db8::5]:1"))), tern.ErrServerUnavailable,
		"same /64")
	assert.ErrorIs(t, f.Authenticate(ctx, login("alice", "guess", tcpAddr("[2001:db8:0:1::5]:1"))), tern.ErrBadCredentials,
		"another /64")
	// A connection without an IP address is not limited.
	for range 6 {
		assert.ErrorIs(t, f.Authenticate(ctx, login("alice", "guess", nil)), tern.ErrBadCredentials)
	}

	// Successes give their token back: one address logs in again and
	// again, with a burst of one.
	one := parseWith(t, auth.Options{FailureBurst: 1, FailureRate: 1e-9, CacheSize: 1}, "user alice HASH(a)", "user bob HASH(b)")
	for i := range 4 {
		u := []string{"alice", "bob"}[i%2]
		assert.NoError(t, one.Authenticate(ctx, login(u, u[:1], attacker)))
	}
}

// TestRefusalsAreLoggedOncePerSecond floods a limited address: every
// refusal is counted, and one warning is logged.
func TestRefusalsAreLoggedOncePerSecond(t *testing.T) {
	var mu sync.Mutex
	var records []slog.Record
	log := slog.New(handlerFunc(func(r slog.Record) {
		mu.Lock()
		defer mu.Unlock()
		records = append(records, r)
	}))
	f := parseWith(t, auth.Options{FailureBurst: 1, FailureRate: 1e-9, Logger: log}, "user alice HASH(right)")
	from := tcpAddr("192.0.2.66:4000")
	assert.ErrorIs(t, f.Authenticate(t.Context(), login("alice", "guess", from)), tern.ErrBadCredentials)
	for range 50 {
		assert.ErrorIs(t, f.Authenticate(t.Context(), login("alice", "guess", from)), tern.ErrServerUnavailable)
	}
	assert.Equal(t, uint64(50), f.Stats().RateLimited)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, records, 1, "one warning for 50 refusals within a second")
	r := records[0]
	assert.Equal(t, slog.LevelWarn, r.Level)
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	assert.Equal(t, map[string]string{"too_many_failures": "1", "checks_busy": "0", "last_address": "192.0.2.66"}, attrs)
}

// handlerFunc is a slog.Handler that passes each record to a function.
type handlerFunc func(slog.Record)

func (h handlerFunc) Enabled(context.Context, slog.Level) bool      { return true }
func (h handlerFunc) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h handlerFunc) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h handlerFunc) WithGroup(string) slog.Handler                 { return h }

func TestAuthenticateHonoursContext(t *testing.T) {
	f := mustParse(t, "user alice HASH(right)")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := f.Authenticate(ctx, login("alice", "right", nil))
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, tern.ErrServerUnavailable, "CONNACK 0x03: the password could not be checked")
	assert.Equal(t, auth.Stats{}, f.Stats(), "no check after the context ended")
}
