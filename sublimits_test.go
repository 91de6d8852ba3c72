package tern_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// subs makes SUBSCRIBE entries from filter/QoS pairs.
func subs(pairs ...any) []packets.Subscription {
	var out []packets.Subscription
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, packets.Subscription{Filter: pairs[i].(string), QoS: byte(pairs[i+1].(int))})
	}
	return out
}

// TestMaxSubscriptionsPerClientRefusesTheExtraFilters: a SUBSCRIBE that
// would take a client past Options.MaxSubscriptionsPerClient gets the
// failure return code 0x80 for the filters over the limit [MQTT-3.9.3-1]
// (one return code per filter, in order), counted in
// Stats.SubscriptionsRefused and logged at debug level. A filter the
// client already has is replaced [MQTT-3.8.4-3] and does not count.
func TestMaxSubscriptionsPerClientRefusesTheExtraFilters(t *testing.T) {
	opts, logs := debugLogged()
	opts.MaxSubscriptionsPerClient = 3
	b, addr := startBroker(t, opts)
	c := mustConnect(t, addr, "c", true)

	ack := c.subscribe(1, subs("a/1", 0, "a/2", 1, "a/3", 2, "a/4", 1, "a/5", 0)...)
	assert.Equal(t, []byte{0, 1, 2, packets.SubackFailure, packets.SubackFailure}, ack.ReturnCodes)
	st := b.Stats()
	assert.Equal(t, int64(2), st.SubscriptionsRefused)
	assert.Equal(t, 3, st.Subscriptions)
	assert.Equal(t, 3, clientInfo(t, b, "c").Subscriptions)
	assert.Contains(t, logs.String(), `level=DEBUG msg="subscription refused: over Options.MaxSubscriptionsPerClient" client=c filter=a/4 limit=3`)

	// A re-subscription replaces, within the limit; a new filter does not fit.
	ack = c.subscribe(2, subs("a/2", 0, "a/6", 1, "a/1", 1)...)
	assert.Equal(t, []byte{0, packets.SubackFailure, 1}, ack.ReturnCodes)
	assert.Equal(t, int64(3), b.Stats().SubscriptionsRefused)

	// A refused filter gets nothing; a granted one at its new QoS.
	ctx := context.Background()
	require.NoError(t, b.Publish(ctx, "a/4", []byte("no"), 0, false))
	require.NoError(t, b.Publish(ctx, "a/2", []byte("yes"), 1, false))
	got := c.recvPublish()
	assert.Equal(t, "a/2", got.Topic)
	assert.Equal(t, byte(0), got.QoS, "a/2 was re-subscribed at QoS 0")

	// Unsubscribing makes room.
	c.send(&packets.Unsubscribe{PacketID: 3, Filters: []string{"a/1"}})
	assert.Equal(t, &packets.Unsuback{PacketID: 3}, c.recv())
	assert.Equal(t, []byte{1}, c.subscribe(4, subs("a/6", 1)...).ReturnCodes)

	// Each client has its own budget.
	d := mustConnect(t, addr, "d", true)
	assert.Equal(t, []byte{0, 0, 0}, d.subscribe(1, subs("x/1", 0, "x/2", 0, "x/3", 0)...).ReturnCodes)
	assert.Equal(t, int64(3), b.Stats().SubscriptionsRefused)
}

// TestMaxSubscriptionsPerClientCountsTheResumedSession: the subscriptions
// a persistent session kept [MQTT-3.1.2-4] count against the limit after
// the client reconnects.
func TestMaxSubscriptionsPerClientCountsTheResumedSession(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxSubscriptionsPerClient: 2})
	c := mustConnect(t, addr, "p", false)
	assert.Equal(t, []byte{1, 1}, c.subscribe(1, subs("p/1", 1, "p/2", 1)...).ReturnCodes)
	c.send(&packets.Disconnect{})
	c.expectClosed()

	c = dialRaw(t, addr)
	require.True(t, c.connect("p", false).SessionPresent)
	assert.Equal(t, []byte{packets.SubackFailure, 2}, c.subscribe(2, subs("p/3", 1, "p/1", 2)...).ReturnCodes)
	assert.Equal(t, int64(1), b.Stats().SubscriptionsRefused)
}

func TestMaxSubscriptionsPerClientOption(t *testing.T) {
	_, err := tern.New(tern.Options{MaxSubscriptionsPerClient: -1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Options.MaxSubscriptionsPerClient")
}

// heapSlack is the growth of the live heap that TestHeapReturnsAfter-
// SubscribersLeave tolerates beyond 10% of its baseline: maps that do not
// shrink in the broker (sessions, connections) and in the runtime, for a
// few clients, are a few KiB; the rest is room for the test's own
// allocations between the two measurements. It is about 1% of what the
// subscriptions cost while they lived.
const heapSlack = 256 << 10

// TestHeapReturnsAfterSubscribersLeave: clients subscribe many filters,
// some as deep as Options.MaxTopicLevels allows, over real connections;
// once they have disconnected (clean sessions end with their connections
// [MQTT-3.1.2-6]), the broker's live heap is back within 10% of where it
// was before they came. A client that stays keeps a subscription beside
// theirs, so that the trie node they shared survives them and must give
// back what it grew for them.
func TestHeapReturnsAfterSubscribersLeave(t *testing.T) {
	const clients, deepFilters, wideFilters = 10, 100, 2000
	b, addr := startBroker(t, tern.Options{})
	deep := strings.Repeat("level/", tern.DefaultMaxTopicLevels-3) // 197 levels
	session := func(id string) *rawClient {
		c := mustConnect(t, addr, id, true)
		var fs []packets.Subscription
		for j := range deepFilters {
			// 200 levels, all but the first two distinct per filter.
			fs = append(fs, packets.Subscription{Filter: fmt.Sprintf("shared/%s-%d/%s#", id, j, deep), QoS: 1})
		}
		for j := range wideFilters {
			fs = append(fs, packets.Subscription{Filter: fmt.Sprintf("shared/%s-w%d", id, j), QoS: 0})
		}
		ack := c.subscribe(1, fs...)
		require.Len(t, ack.ReturnCodes, len(fs))
		require.Equal(t, byte(1), ack.ReturnCodes[0])
		return c
	}
	leave := func(c *rawClient) {
		c.send(&packets.Disconnect{})
		c.expectClosed()
	}
	// A first client comes and goes, so that what the broker makes once
	// (pools, the reader goroutines' buffers) is in the baseline.
	leave(session("warm-up"))
	stayer := mustConnect(t, addr, "stayer", true)
	stayer.subscribe(1, packets.Subscription{Filter: "shared/stay", QoS: 0})
	require.Eventually(t, func() bool { return b.Stats().ClientsTotal == 1 }, waitTimeout, time.Millisecond)

	base := liveHeap()
	cs := make([]*rawClient, clients)
	for i := range cs {
		cs[i] = session(fmt.Sprint("c", i))
	}
	require.Equal(t, 1+clients*(deepFilters+wideFilters), b.Stats().Subscriptions)
	peak := liveHeap()
	for _, c := range cs {
		leave(c)
	}
	require.Eventually(t, func() bool {
		st := b.Stats()
		return st.ClientsTotal == 1 && st.Subscriptions == 1
	}, waitTimeout, time.Millisecond)
	after := liveHeap()
	t.Logf("live heap: %d KiB before, %d KiB with %d subscriptions (%d of 200 levels), %d KiB after they left",
		base>>10, peak>>10, clients*(deepFilters+wideFilters), clients*deepFilters, after>>10)
	require.Greater(t, peak, base+uint64(clients*deepFilters*200*32), "the subscriptions were not measured")
	assert.LessOrEqual(t, after, base+base/10+heapSlack, "live heap after the clients left")

	// The client that stayed is still served.
	require.NoError(t, b.Publish(context.Background(), "shared/stay", []byte("x"), 0, false))
	assert.Equal(t, "shared/stay", stayer.recvPublish().Topic)
}
