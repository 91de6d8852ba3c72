package tern_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Idle TCP connections are parked: they hold no goroutine while quiet, and
// the goroutines that read the connections woken by new bytes do not pile
// up when many wake at once.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle connections are parked on epoll, which only Linux has")
	}
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "idle/#", QoS: 0})
	base := runtime.NumGoroutine()
	// The reader goroutines kept waiting for work, and a few in passing
	// (a writer finishing, the poller).
	limit := base + 8 + 4
	// eventually runs its condition on a goroutine of its own, which the
	// count must leave out.
	parked := func() bool { return runtime.NumGoroutine()-1 <= limit }

	const n = 200
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = mustConnect(t, addr, fmt.Sprintf("idle-%d", i), true)
	}
	eventually(t, "the new connections to park", parked)

	for round := range 2 {
		// Every client publishes at once: many parked readers wake together.
		for i, c := range clients {
			c.send(&packets.Publish{Topic: fmt.Sprintf("idle/%d/%d", round, i), Payload: []byte("x")})
		}
		got := make(map[string]bool, n)
		for len(got) < n {
			got[sub.recvPublish().Topic] = true
		}
		for i := range clients {
			topic := fmt.Sprintf("idle/%d/%d", round, i)
			require.True(t, got[topic], "round %d: %s was not delivered", round, topic)
		}
		eventually(t, "the woken connections to park again", parked)
	}
}
