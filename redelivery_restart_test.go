package tern_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// [MQTT-4.4.0-1] A QoS 1 message that waited in a persistent session's
// queue gets its packet identifier when it moves into flight; that
// identifier is stored before the PUBLISH leaves, so that after a crash the
// message is resent with the same identifier and DUP set, as the client
// last saw it.
func TestQueuedQoS1MovedIntoFlightIsStoredBeforeItLeaves(t *testing.T) {
	e, g := psStartGated(t, tern.Options{MaxInflight: 1})
	sub := mustConnect(t, e.addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "q", QoS: 1})
	pub := mustConnect(t, e.addr, "pub", true)
	pub.publishQoS(1, "q", "first", 1, false)
	pub.publishQoS(2, "q", "second", 1, false) // queued behind the window of 1
	first := sub.recvPublish()
	require.Equal(t, "first", string(first.Payload))

	g.hold()
	sub.send(&packets.Puback{PacketID: first.PacketID}) // "second" moves into flight
	g.waitEntered(t)
	sub.expectNothing(200 * time.Millisecond)
	// What a crash now would find: "second" still queued, without an
	// identifier; nothing the client has seen.
	snap, err := g.Store.Load(context.Background())
	require.NoError(t, err)
	for _, d := range snap.Deliveries {
		if string(d.Msg.Payload) == "second" {
			assert.Zero(t, d.PacketID, "stored with an identifier the client has not seen: %+v", d)
		}
	}
	g.release()
	second := sub.recvPublish()
	require.Equal(t, "second", string(second.Payload))
	require.False(t, second.Dup)
	snap, err = g.Store.Load(context.Background())
	require.NoError(t, err)
	require.Len(t, snap.Deliveries, 1)
	assert.Equal(t, second.PacketID, snap.Deliveries[0].PacketID, "the identifier on the wire is the stored one")
}
