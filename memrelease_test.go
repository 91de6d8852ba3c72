package tern_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// TestReleaseMemoryAfterBurst: after a burst of at least 256 connections
// coming or going, once none comes or goes for Options.ReleaseMemoryAfter,
// the broker returns free memory to the operating system, once; a smaller
// burst does not, and neither does a quiet broker again.
func TestReleaseMemoryAfterBurst(t *testing.T) {
	const after = 20 * time.Millisecond
	b, addr := startBroker(t, tern.Options{ReleaseMemoryAfter: after})
	releases := func() int64 { return b.Stats().MemoryReleases }

	clients := make([]*rawClient, 0, 256)
	for i := range 255 {
		clients = append(clients, mustConnect(t, addr, fmt.Sprintf("c%d", i), true))
	}
	assert.Never(t, func() bool { return releases() > 0 }, 10*after, after/4,
		"255 connections are not a burst worth a forced collection")

	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	clients = append(clients, mustConnect(t, addr, "c255", true))
	require.Eventually(t, func() bool { return releases() == 1 }, waitTimeout, after/4,
		"the 256th connection completes a burst: memory is released once it is over")
	first := time.Now()
	var now runtime.MemStats
	runtime.ReadMemStats(&now)
	assert.Greater(t, now.NumForcedGC, before.NumForcedGC, "the release forced a collection")

	assert.Never(t, func() bool { return releases() != 1 }, 10*after, after/4,
		"a quiet broker releases nothing more")

	// The connections going count as well.
	for _, c := range clients {
		c.send(&packets.Disconnect{})
		c.expectClosed()
	}
	require.Eventually(t, func() bool { return releases() == 2 }, waitTimeout, after/4,
		"256 connections ending are a burst too")
	assert.GreaterOrEqual(t, time.Since(first), 900*time.Millisecond,
		"releases are at least a second apart, however the clients come and go")
}

// TestReleaseMemoryOffByDefault: the library leaves the process's memory to
// its application unless asked.
func TestReleaseMemoryOffByDefault(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	for i := range 300 {
		mustConnect(t, addr, fmt.Sprintf("c%d", i), true)
	}
	assert.Never(t, func() bool { return b.Stats().MemoryReleases > 0 }, 300*time.Millisecond, 10*time.Millisecond)
}
