package tern_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Subscribers that stop reading cost the broker at most about MaxPending
// each: the bytes it holds for one connection's writes (the buffer being
// filled and the one being written) count against MaxPending together, and
// past it QoS 0 messages for that client are dropped and counted.
func TestStuckSubscribersHoldAtMostMaxPendingEach(t *testing.T) {
	const (
		stuck      = 20
		maxPending = 256 << 10
		msgSize    = 1 << 10
	)
	b, addr := startBroker(t, tern.Options{MaxPending: maxPending, WriteTimeout: time.Minute})
	for i := range stuck {
		nc, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		require.NoError(t, nc.(*net.TCPConn).SetReadBuffer(4096))
		c := rawOn(t, nc)
		t.Cleanup(func() { nc.Close() })
		require.Zero(t, c.connect("stuck-"+string(rune('a'+i)), true).ReturnCode)
		c.subscribe(1, packets.Subscription{Filter: "flood/#"})
		// From here on it never reads.
	}
	base := liveHeap()

	payload := make([]byte, msgSize)
	ctx := context.Background()
	// Flood until every stuck subscriber is full: a message then reaches
	// none of them. The kernel's socket buffers take what they can first.
	full := false
	for i := 0; i < 500_000 && !full; i++ {
		before := b.Stats().PublishDropped
		require.NoError(t, b.Publish(ctx, "flood/x", payload, 0, false))
		full = b.Stats().PublishDropped-before == stuck
	}
	require.True(t, full, "the stuck subscribers never filled up")
	// Keep flooding a while past full, then measure.
	for range 5000 {
		require.NoError(t, b.Publish(ctx, "flood/x", payload, 0, false))
	}
	perClient := (float64(liveHeap()) - float64(base)) / stuck
	limit := 1.25*maxPending + 64<<10
	t.Logf("live heap per stuck subscriber: %.0f B (MaxPending %d, limit %.0f)", perClient, maxPending, limit)
	assert.LessOrEqual(t, perClient, limit, "bytes held per stuck subscriber")
}
