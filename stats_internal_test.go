package tern

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// TestHistogramBuckets: an observation on a bound falls in that bound's
// bucket, one just above it in the next; past the last bound, the +Inf
// bucket.
func TestHistogramBuckets(t *testing.T) {
	secs := durationBoundsSeconds()
	require.Len(t, secs, durationBounds)
	assert.Equal(t, 1e-6, secs[0])
	assert.Equal(t, 2.5e-6, secs[1])
	assert.Equal(t, 10.0, secs[len(secs)-1])
	assert.Equal(t, 0, durationBucket(0))
	for i, s := range secs {
		d := time.Duration(s * 1e9)
		assert.Equal(t, i, durationBucket(d), "%v", d)
		assert.Equal(t, i+1, durationBucket(d+1), "%v + 1ns", d)
	}
	assert.Equal(t, durationBounds, durationBucket(time.Hour))

	sizes := sizeBoundsList()
	require.Len(t, sizes, sizeBounds)
	assert.Equal(t, 4096.0, sizes[len(sizes)-1])
	assert.Equal(t, 0, sizeBucket(0))
	for i, s := range sizes {
		assert.Equal(t, i, sizeBucket(int(s)), "%v", s)
		assert.Equal(t, i+1, sizeBucket(int(s)+1), "%v + 1", s)
	}

	var h histogram
	h.observe(durationBucket(3*time.Microsecond), 3000)
	h.observe(durationBucket(time.Minute), int64(time.Minute))
	snap := h.snapshot(secs, 1e-9)
	assert.Equal(t, uint64(2), snap.Count)
	assert.InDelta(t, 60.000003, snap.Sum, 1e-9)
	assert.Equal(t, uint64(1), snap.Counts[2], "3µs: the 5µs bucket")
	assert.Equal(t, uint64(1), snap.Counts[durationBounds], "a minute: +Inf")
	assert.Len(t, snap.Counts, durationBounds+1)
}

// TestHookKinds: every hook call in the package is measured under its own
// kind, not "other": a hook method added to hookset.go needs a kind in
// stats_metrics.go.
func TestHookKinds(t *testing.T) {
	names := hookNames()
	seen := map[string]bool{}
	for k, n := range names {
		assert.False(t, seen[n], "%s twice", n)
		seen[n] = true
		if k != hookHandler && k != hookOther {
			assert.Equal(t, k, hookKindOf(n), n)
		}
	}
	assert.Equal(t, hookHandler, hookKindOf("Subscribe handler"))
	assert.Equal(t, hookOther, hookKindOf("Unknown"))

	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	calls := regexp.MustCompile(`\bcall\([a-z.]+, "([^"]+)"`)
	found := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range calls.FindAllStringSubmatch(string(src), -1) {
			found++
			assert.NotEqual(t, hookOther, hookKindOf(m[1]), "%s: the hook call %q has no kind in hookKindOf", f, m[1])
		}
	}
	assert.GreaterOrEqual(t, found, numHookKinds-1, "the hook calls were not found")
}

// TestReasons: every reason has its own label; the errors and CONNACK
// codes map to theirs.
func TestReasons(t *testing.T) {
	labels := map[string]bool{}
	for r := range NumRefuseReasons {
		assert.False(t, labels[r.String()], "%s twice", r)
		labels[r.String()] = true
	}
	assert.Equal(t, "other", RefusedOther.String())
	clear(labels)
	for r := range NumDropReasons {
		assert.False(t, labels[r.String()], "%s twice", r)
		labels[r.String()] = true
	}
	assert.Equal(t, "other", DropOther.String())

	refusals := map[packets.ReasonCode]RefuseReason{
		packets.BadUserNameOrPassword:      RefusedBadCredentials,
		packets.NotAuthorized:              RefusedNotAuthorized,
		packets.ClientIdentifierNotValid:   RefusedIdentifier,
		packets.UnsupportedProtocolVersion: RefusedProtocolVersion,
		packets.ServerUnavailable:          RefusedServerUnavailable,
		packets.ServerBusy:                 RefusedServerUnavailable,
		packets.UseAnotherServer:           RefusedServerUnavailable,
		packets.ServerMoved:                RefusedServerUnavailable,
		packets.QuotaExceeded:              RefusedQuotaExceeded,
		packets.ConnectionRateExceeded:     RefusedQuotaExceeded,
		packets.Banned:                     RefusedBanned,
		packets.BadAuthenticationMethod:    RefusedBadAuthMethod,
		packets.UnspecifiedError:           RefusedOther,
		packets.PayloadFormatInvalid:       RefusedOther,
	}
	for code, want := range refusals {
		assert.Equal(t, want, connackRefusal(code, errors.New("x")), "%s", code)
	}
	assert.Equal(t, RefusedStoreFailing, connackRefusal(packets.ServerUnavailable, errStoreFailing))

	drops := map[error]DropReason{
		errQueueFull:         DropQueueFull,
		errOfflineQoS0:       DropOfflineQoS0,
		errPendingFull:       DropWriteBufferFull,
		errConnClosed:        DropConnectionClosed,
		errTooLarge:          DropTooLarge,
		errNotReadable:       DropReadDenied,
		errExpired:           DropExpired,
		fmt.Errorf("other"):  DropOther,
		ErrRefused:           DropOther, // counted where it happens, as DropPublishRefused
		ErrServerUnavailable: DropOther,
		ErrKeepAliveTimeout:  DropOther,
	}
	for why, want := range drops {
		assert.Equal(t, want, dropReasonOf(why), "%v", why)
	}
}

// BenchmarkCounters measures what the counters cost the hot paths: the end
// of a fan-out (its sends by QoS and drops by reason added), a received
// PUBLISH, and the measurement around a hook call.
func BenchmarkCounters(b *testing.B) {
	var c counters
	b.Run("fanout-finish", func(b *testing.B) {
		sent := [3]int64{0, 5, 0}
		var drops dropCounts
		for b.Loop() {
			c.addSent(&sent)
			c.addDrops(&drops)
		}
	})
	b.Run("received", func(b *testing.B) {
		for b.Loop() {
			c.received(1)
		}
	})
	b.Run("hook-call", func(b *testing.B) {
		br := &Broker{started: time.Now()}
		for b.Loop() {
			br.hookDone("AuthorizeRead", br.clock())
		}
	})
}
