package tern_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// smallSendBuffers gives every accepted TCP connection a small kernel send
// buffer, so that a client that stops reading fills it after a few KiB and
// the broker's own bounds are what the tests observe.
type smallSendBuffers struct{ net.Listener }

const kernelSendBuffer = 8 << 10

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(kernelSendBuffer)
	}
	return c, err
}

func startSmallBufferBroker(t testing.TB, opts tern.Options) (*tern.Broker, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return startBrokerOn(t, opts, smallSendBuffers{l}), l.Addr().String()
}

// stuckSubscriber connects, subscribes to filter and then never reads
// again; its kernel receive buffer is made small so that it fills quickly.
func stuckSubscriber(t testing.TB, addr, id, filter string, qos byte) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	require.NoError(t, c.conn.(*net.TCPConn).SetReadBuffer(4<<10))
	c.connect(id, true)
	c.subscribe(1, packets.Subscription{Filter: filter, QoS: qos})
	return c
}

// [MQTT-4.8.0-2] a packet over the size limit is a transient error that
// closes that connection only; the other clients go on.
func TestMaxPacketSizeBoundaryAndReason(t *testing.T) {
	const limit = 1024
	b, addr := startBroker(t, tern.Options{MaxPacketSize: limit})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "t", QoS: 0})

	// A QoS 0 PUBLISH to "t" of total size 1 + 2 (remaining length) + 3
	// (topic) + payload.
	atLimit := make([]byte, limit-6)
	pub := mustConnect(t, addr, "pub", true)
	pub.send(&packets.Publish{Topic: "t", Payload: atLimit})
	require.Len(t, sub.recvPublish().Payload, len(atLimit), "payload at the limit")
	pub.send(&packets.Publish{Topic: "t", Payload: append(atLimit, 0)})
	pub.expectClosed()
	e := obs.next(t, "disconnect")
	assert.Equal(t, "pub", e.client.ID, "OnDisconnect client")
	assert.ErrorIs(t, e.reason, packets.ErrPacketTooLarge, "OnDisconnect reason")
}

// An announced size over the limit closes the connection at once: the
// broker neither waits for the body nor allocates room for it.
func TestOversizedAnnouncementClosesBeforeBodyArrives(t *testing.T) {
	const announced = 200 << 20
	header := append([]byte{0x30}, remainingLength(announced)...) // PUBLISH QoS 0
	cases := []struct {
		name    string
		connect bool
		first   []byte
	}{
		{"publish after connect", true, header},
		{"connect as first packet", false, append([]byte{0x10}, remainingLength(announced)...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startBroker(t, tern.Options{}) // default limit 1 MiB
			c := dialRaw(t, addr)
			if tc.connect {
				require.Zero(t, c.connect("big", true).ReturnCode, "CONNACK return code")
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			allocated := ms.TotalAlloc
			start := time.Now()
			c.sendRaw(tc.first)
			c.expectClosed()
			assert.LessOrEqual(t, time.Since(start), time.Second, "the broker waited for the body")
			runtime.ReadMemStats(&ms)
			grew := ms.TotalAlloc - allocated
			assert.LessOrEqual(t, grew, uint64(announced/4), "%d MiB allocated while refusing a %d MiB packet", grew>>20, announced>>20)
		})
	}
}

// [MQTT-3.2.2-4] [MQTT-3.2.2-5] over the limit: CONNACK 0x03, session
// present 0, then close.
func TestMaxConnectionsRefusesWithConnack03AndCounts(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxConnections: 2})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	mustConnect(t, addr, "one", true)
	two := mustConnect(t, addr, "two", true)
	over := dialRaw(t, addr)
	ack := over.connect("three", true)
	require.Equal(t, packets.RefusedServerUnavailable, ack.ReturnCode, "CONNACK return code")
	require.False(t, ack.SessionPresent, "CONNACK: want session present 0")
	over.expectClosed()
	st := b.Stats()
	require.EqualValues(t, 1, st.Refused, "Refused")
	require.Equal(t, 2, st.ClientsConnected, "connected")
	// A freed slot is usable again.
	two.send(&packets.Disconnect{})
	obs.next(t, "disconnect")
	mustConnect(t, addr, "four", true)
	assert.EqualValues(t, 1, b.Stats().Refused, "Refused after a slot was freed")
}

// The outbound window holds at most MaxInflight unacknowledged QoS 1 and 2
// deliveries; the rest wait in order [MQTT-4.6.0-6] and leave as the
// window frees.
func TestMaxInflightBoundsTheOutboundWindow(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos %d", qos), func(t *testing.T) {
			b, addr := startBroker(t, tern.Options{MaxInflight: 2})
			sub := mustConnect(t, addr, "sub", true)
			sub.subscribe(1, packets.Subscription{Filter: "w", QoS: qos})
			pub := mustConnect(t, addr, "pub", true)
			for i := range 5 {
				pub.publishQoS(uint16(i+1), "w", fmt.Sprint(i), qos, false)
			}
			first, second := sub.recvPublish(), sub.recvPublish()
			require.Equal(t, "0", string(first.Payload), "first delivery")
			require.Equal(t, "1", string(second.Payload), "second delivery")
			sub.expectNothing(200 * time.Millisecond)
			ci := clientInfo(t, b, "sub")
			require.Equal(t, 2, ci.Inflight, "Inflight")
			require.Equal(t, 3, ci.Queued, "Queued")
			complete := func(p *packets.Publish) {
				if qos == 1 {
					sub.send(&packets.Puback{PacketID: p.PacketID})
					return
				}
				sub.send(&packets.Pubrec{PacketID: p.PacketID})
				rel, ok := sub.recv().(*packets.Pubrel)
				require.True(t, ok && rel.PacketID == p.PacketID, "expected PUBREL %d", p.PacketID)
				// Past PUBREC the delivery still holds its place in the
				// window until PUBCOMP.
				sub.expectNothing(100 * time.Millisecond)
				sub.send(&packets.Pubcomp{PacketID: p.PacketID})
			}
			complete(first)
			for i := 2; i < 5; i++ {
				p := sub.recvPublish()
				require.Equal(t, fmt.Sprint(i), string(p.Payload), "delivery %d", i)
				complete(second)
				second = p
			}
			complete(second)
			eventually(t, "window empty", func() bool {
				ci, ok := findClient(b, "sub")
				return ok && ci.Inflight == 0
			})
			assert.Zero(t, b.Stats().PublishDropped, "PublishDropped: the window must delay, not drop")
		})
	}
}

// [MQTT-3.1.2-5] an offline session stores QoS 1 messages, up to MaxQueued.
func TestMaxQueuedDropsAndCountsForOfflineSession(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxQueued: 3})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	sub := mustConnect(t, addr, "durable", false)
	sub.subscribe(1, packets.Subscription{Filter: "q", QoS: 1})
	sub.send(&packets.Disconnect{})
	obs.next(t, "disconnect")
	pub := mustConnect(t, addr, "pub", true)
	for i := range 5 {
		pub.publishQoS(uint16(i+1), "q", fmt.Sprint(i), 1, false)
	}
	require.EqualValues(t, 2, b.Stats().PublishDropped, "PublishDropped")
	ci := clientInfo(t, b, "durable")
	require.Equal(t, 3, ci.Queued, "Queued: want 3 queued offline")
	require.False(t, ci.Connected, "connected: want 3 queued offline")
	back := dialRaw(t, addr)
	back.connect("durable", false)
	for i := range 3 {
		p := back.recvPublish()
		require.Equal(t, fmt.Sprint(i), string(p.Payload), "want the oldest messages first")
		back.send(&packets.Puback{PacketID: p.PacketID})
	}
	back.expectNothing(200 * time.Millisecond)
}

func TestMaxQueuedDropsBehindAFullWindowOnline(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxInflight: 1, MaxQueued: 2})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "q", QoS: 1})
	pub := mustConnect(t, addr, "pub", true)
	for i := range 6 {
		pub.publishQoS(uint16(i+1), "q", fmt.Sprint(i), 1, false)
	}
	require.EqualValues(t, 3, b.Stats().PublishDropped, "PublishDropped: want 3 (1 in flight, 2 queued, 3 over)")
	for i := range 3 {
		p := sub.recvPublish()
		require.Equal(t, fmt.Sprint(i), string(p.Payload), "delivery %d", i)
		sub.send(&packets.Puback{PacketID: p.PacketID})
	}
	sub.expectNothing(200 * time.Millisecond)
}

func TestConnectTimeoutClosesSilentConnection(t *testing.T) {
	cases := []struct {
		name string
		send []byte
	}{
		{"nothing sent", nil},
		{"partial CONNECT", []byte{0x10, 20, 0, 4, 'M'}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 200 * time.Millisecond
			b, addr := startBroker(t, tern.Options{ConnectTimeout: timeout})
			// The broker's timer starts once it has accepted the connection,
			// so after this: the test being descheduled between dialling and
			// reading the clock must not make the close look early.
			start := time.Now()
			c := dialRaw(t, addr)
			if tc.send != nil {
				c.sendRaw(tc.send)
			}
			c.expectClosed()
			d := time.Since(start)
			require.GreaterOrEqual(t, d, timeout*3/4, "closed after %v, want about %v", d, timeout)
			require.LessOrEqual(t, d, 10*timeout, "closed after %v, want about %v", d, timeout)
			assert.Zero(t, b.Stats().Connects, "Connects")
		})
	}
}

// A subscriber that stops reading must not slow the publisher or the other
// subscribers: what waits for it is bounded by MaxPending, and its QoS 0
// overflow is dropped and counted.
func TestStuckSubscriberDoesNotSlowOthers(t *testing.T) {
	const (
		maxPending = 64 << 10
		n          = 4000
	)
	b, addr := startSmallBufferBroker(t, tern.Options{MaxPending: maxPending})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	stuckSubscriber(t, addr, "stuck", "busy/#", 0)
	good := mustConnect(t, addr, "good", true)
	good.subscribe(1, packets.Subscription{Filter: "busy/#", QoS: 1})
	pub := mustConnect(t, addr, "pub", true)
	before := b.Stats()

	payload := make([]byte, 1000)
	var burst []byte
	var pktLen int
	for i := range n {
		p := &packets.Publish{Topic: "busy/x", Payload: payload, QoS: 1, PacketID: uint16(i%65535 + 1)}
		var err error
		burst, err = p.Append(burst)
		require.NoError(t, err)
		if i == 0 {
			pktLen = len(burst) - 2 // as delivered at QoS 0: no packet identifier
		}
	}
	start := time.Now()
	acked := make(chan error, 1)
	go func() {
		// The publisher's side: one write of the whole burst, then every
		// PUBACK.
		pub.conn.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := pub.conn.Write(burst); err != nil {
			acked <- err
			return
		}
		for i := range n {
			p, err := pub.r.ReadPacket()
			if err != nil {
				acked <- fmt.Errorf("PUBACK %d: %w", i, err)
				return
			}
			if _, ok := p.(*packets.Puback); !ok {
				acked <- fmt.Errorf("got %v, want PUBACK", p.Type())
				return
			}
		}
		acked <- nil
	}()
	for i := range n {
		p := good.recvPublish()
		require.NotZero(t, p.PacketID, "message %d: %+v", i, p)
		require.Len(t, p.Payload, len(payload), "message %d", i)
		good.send(&packets.Puback{PacketID: p.PacketID})
	}
	elapsed := time.Since(start)
	require.NoError(t, <-acked, "publisher")
	t.Logf("the reading subscriber got %d messages in %v (%.0f/s) beside a stuck one", n, elapsed, n/elapsed.Seconds())

	st := b.Stats()
	sent, dropped := st.PublishSent-before.PublishSent, st.PublishDropped-before.PublishDropped
	require.NotZero(t, dropped, "nothing was dropped for the stuck subscriber")
	require.EqualValues(t, 2*n, sent+dropped, "sent %d + dropped %d, want every one of 2 x %d deliveries accounted for", sent, dropped, n)
	// What the stuck client was given sits in its write buffer (at most
	// MaxPending plus one packet), in the batch its writer is blocked on
	// (as much again), or in the kernel buffers.
	stuck := (sent - n) * int64(pktLen)
	require.LessOrEqual(t, stuck, int64(2*(maxPending+pktLen)+256<<10), "bytes that went to the stuck subscriber")
	t.Logf("%d bytes went to the stuck subscriber, %d deliveries to it were dropped", stuck, dropped)
	drops := 0
	for drops < int(dropped) {
		e := obs.next(t, "drop")
		require.Equal(t, "stuck", e.client.ID, "drop: want for stuck only, with a reason")
		require.Error(t, e.reason, "drop: want for stuck only, with a reason")
		drops++
	}
	assert.True(t, clientInfo(t, b, "stuck").Connected, "the stuck subscriber was disconnected before its write timeout")
}

func TestWriteTimeoutDisconnectsStuckSubscriber(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	b, addr := startSmallBufferBroker(t, tern.Options{WriteTimeout: writeTimeout, MaxPending: 16 << 10})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	stuckSubscriber(t, addr, "stuck", "busy/#", 0)
	pub := mustConnect(t, addr, "pub", true)
	msg, err := (&packets.Publish{Topic: "busy/x", Payload: make([]byte, 1000)}).Append(nil)
	require.NoError(t, err)
	// Publish until the stuck client is cut off: how much its kernel buffers
	// absorb first is not the test's business.
	stop, stopped := make(chan struct{}), make(chan int)
	start := time.Now()
	go func() {
		n := 0
		defer func() { stopped <- n }()
		for ; n < 100000; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pub.conn.Write(msg); err != nil {
				return
			}
		}
	}()
	e := obs.next(t, "disconnect")
	close(stop)
	n := <-stopped
	require.Equal(t, "stuck", e.client.ID, "OnDisconnect client")
	require.ErrorIs(t, e.reason, tern.ErrWriteTimeout, "OnDisconnect reason")
	require.GreaterOrEqual(t, time.Since(start), writeTimeout, "disconnected before the write timeout")
	t.Logf("disconnected after %v and %d publishes", time.Since(start), n)
	for _, ci := range b.Clients() {
		require.NotEqual(t, "stuck", ci.ID, "the stuck client is still listed: %+v", ci)
	}
	// The publisher was not held up.
	pub.publishQoS(1, "busy/x", "after", 1, false)
}

// The packets a client sent before pausing mid-packet are delivered at once:
// the broker starts its writers before it waits for the rest, rather than
// when its read buffer happens to end at a packet boundary.
func TestPublisherPausingMidPacketDoesNotDelayEarlierDeliveries(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "t", QoS: 0})
	pub := mustConnect(t, addr, "pub", true)
	first, err := (&packets.Publish{Topic: "t", Payload: []byte("first")}).Append(nil)
	require.NoError(t, err)
	second, err := (&packets.Publish{Topic: "t", Payload: []byte("second")}).Append(nil)
	require.NoError(t, err)
	pub.sendRaw(append(first, second[:3]...)) // one packet and a half
	require.Equal(t, "first", string(sub.recvPublish().Payload))
	pub.sendRaw(second[3:])
	assert.Equal(t, "second", string(sub.recvPublish().Payload))
}

// A client that repeats a SUBSCRIBE without acknowledging what it is sent
// gets the retained messages again each time [MQTT-3.8.4-3], but its
// queue grows past Options.MaxQueued by one round of them at most: the
// rest are dropped and counted.
func TestRepeatedSubscribeKeepsRetainedQueueBounded(t *testing.T) {
	const (
		maxQueued = 10
		retained  = 50
		rounds    = 20
	)
	b, addr := startBroker(t, tern.Options{MaxQueued: maxQueued, MaxInflight: 1})
	ctx := context.Background()
	for i := range retained {
		require.NoError(t, b.Publish(ctx, fmt.Sprintf("keep/%d", i), []byte("r"), 1, true))
	}
	before := b.Stats().PublishDropped
	c := dialRaw(t, addr)
	require.Zero(t, c.connect("resubscriber", true).ReturnCode)
	for i := range rounds {
		// Never read, never acknowledged: one message in flight, the rest
		// queued.
		c.send(&packets.Subscribe{PacketID: uint16(i + 1), Subscriptions: []packets.Subscription{{Filter: "keep/#", QoS: 1}}})
	}
	// 1 in flight, maxQueued+retained queued, the rest of the
	// rounds*retained dropped.
	want := int64(rounds*retained - 1 - (maxQueued + retained))
	require.Eventually(t, func() bool { return b.Stats().PublishDropped-before == want }, waitTimeout, 10*time.Millisecond,
		"dropped %d, want %d", b.Stats().PublishDropped-before, want)
	ci, ok := findClient(b, "resubscriber")
	require.True(t, ok)
	assert.Equal(t, maxQueued+retained, ci.Queued, "queued")
	assert.Equal(t, 1, ci.Inflight, "in flight")
}
