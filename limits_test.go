package tern_test

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

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
	if err != nil {
		t.Fatal(err)
	}
	return startBrokerOn(t, opts, smallSendBuffers{l}), l.Addr().String()
}

// stuckSubscriber connects, subscribes to filter and then never reads
// again; its kernel receive buffer is made small so that it fills quickly.
func stuckSubscriber(t testing.TB, addr, id, filter string, qos byte) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	if err := c.conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
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
	if got := sub.recvPublish(); len(got.Payload) != len(atLimit) {
		t.Fatalf("got a payload of %d bytes, want %d", len(got.Payload), len(atLimit))
	}
	pub.send(&packets.Publish{Topic: "t", Payload: append(atLimit, 0)})
	pub.expectClosed()
	e := obs.next(t, "disconnect")
	if e.client.ID != "pub" || !errors.Is(e.reason, packets.ErrPacketTooLarge) {
		t.Fatalf("OnDisconnect %q reason %v, want pub with ErrPacketTooLarge", e.client.ID, e.reason)
	}
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
				if ack := c.connect("big", true); ack.ReturnCode != 0 {
					t.Fatalf("CONNACK 0x%02x", ack.ReturnCode)
				}
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			allocated := ms.TotalAlloc
			start := time.Now()
			c.sendRaw(tc.first)
			c.expectClosed()
			if d := time.Since(start); d > time.Second {
				t.Errorf("closed after %v: the broker waited for the body", d)
			}
			runtime.ReadMemStats(&ms)
			if grew := ms.TotalAlloc - allocated; grew > announced/4 {
				t.Errorf("%d MiB allocated while refusing a %d MiB packet", grew>>20, announced>>20)
			}
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
	if ack := over.connect("three", true); ack.ReturnCode != packets.RefusedServerUnavailable || ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want 0x03", ack)
	}
	over.expectClosed()
	if st := b.Stats(); st.Refused != 1 || st.ClientsConnected != 2 {
		t.Fatalf("Refused %d, connected %d; want 1 and 2", st.Refused, st.ClientsConnected)
	}
	// A freed slot is usable again.
	two.send(&packets.Disconnect{})
	obs.next(t, "disconnect")
	mustConnect(t, addr, "four", true)
	if st := b.Stats(); st.Refused != 1 {
		t.Fatalf("Refused %d after a slot was freed, want 1", st.Refused)
	}
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
			if string(first.Payload) != "0" || string(second.Payload) != "1" {
				t.Fatalf("got %q %q, want 0 1", first.Payload, second.Payload)
			}
			sub.expectNothing(200 * time.Millisecond)
			if ci := clientInfo(t, b, "sub"); ci.Inflight != 2 || ci.Queued != 3 {
				t.Fatalf("Inflight %d Queued %d, want 2 and 3", ci.Inflight, ci.Queued)
			}
			complete := func(p *packets.Publish) {
				if qos == 1 {
					sub.send(&packets.Puback{PacketID: p.PacketID})
					return
				}
				sub.send(&packets.Pubrec{PacketID: p.PacketID})
				if rel, ok := sub.recv().(*packets.Pubrel); !ok || rel.PacketID != p.PacketID {
					t.Fatalf("expected PUBREL %d", p.PacketID)
				}
				// Past PUBREC the delivery still holds its place in the
				// window until PUBCOMP.
				sub.expectNothing(100 * time.Millisecond)
				sub.send(&packets.Pubcomp{PacketID: p.PacketID})
			}
			complete(first)
			for i := 2; i < 5; i++ {
				p := sub.recvPublish()
				if string(p.Payload) != fmt.Sprint(i) {
					t.Fatalf("got %q, want %d", p.Payload, i)
				}
				complete(second)
				second = p
			}
			complete(second)
			eventually(t, "window empty", func() bool { return clientInfo(t, b, "sub").Inflight == 0 })
			if d := b.Stats().PublishDropped; d != 0 {
				t.Fatalf("PublishDropped %d: the window must delay, not drop", d)
			}
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
	if st := b.Stats(); st.PublishDropped != 2 {
		t.Fatalf("PublishDropped %d, want 2", st.PublishDropped)
	}
	if ci := clientInfo(t, b, "durable"); ci.Queued != 3 || ci.Connected {
		t.Fatalf("Queued %d connected %v, want 3 queued offline", ci.Queued, ci.Connected)
	}
	back := dialRaw(t, addr)
	back.connect("durable", false)
	for i := range 3 {
		p := back.recvPublish()
		if string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("got %q, want the oldest messages first", p.Payload)
		}
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
	if st := b.Stats(); st.PublishDropped != 3 {
		t.Fatalf("PublishDropped %d, want 3 (1 in flight, 2 queued, 3 over)", st.PublishDropped)
	}
	for i := range 3 {
		p := sub.recvPublish()
		if string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("got %q, want %d", p.Payload, i)
		}
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
			c := dialRaw(t, addr)
			start := time.Now()
			if tc.send != nil {
				c.sendRaw(tc.send)
			}
			c.expectClosed()
			if d := time.Since(start); d < timeout*3/4 || d > 10*timeout {
				t.Fatalf("closed after %v, want about %v", d, timeout)
			}
			if st := b.Stats(); st.Connects != 0 {
				t.Fatalf("Connects %d, want 0", st.Connects)
			}
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
		if err != nil {
			t.Fatal(err)
		}
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
		if p.PacketID == 0 || len(p.Payload) != len(payload) {
			t.Fatalf("message %d: %+v", i, p)
		}
		good.send(&packets.Puback{PacketID: p.PacketID})
	}
	elapsed := time.Since(start)
	if err := <-acked; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	t.Logf("the reading subscriber got %d messages in %v (%.0f/s) beside a stuck one", n, elapsed, n/elapsed.Seconds())

	st := b.Stats()
	sent, dropped := st.PublishSent-before.PublishSent, st.PublishDropped-before.PublishDropped
	if dropped == 0 {
		t.Fatal("nothing was dropped for the stuck subscriber")
	}
	if sent+dropped != 2*n {
		t.Fatalf("sent %d + dropped %d, want every one of 2 x %d deliveries accounted for", sent, dropped, n)
	}
	// What the stuck client was given sits in its write buffer (at most
	// MaxPending plus one packet), in the batch its writer is blocked on
	// (as much again), or in the kernel buffers.
	stuck := (sent - n) * int64(pktLen)
	if bound := int64(2*(maxPending+pktLen) + 256<<10); stuck > bound {
		t.Fatalf("%d bytes went to the stuck subscriber, want at most %d", stuck, bound)
	}
	t.Logf("%d bytes went to the stuck subscriber, %d deliveries to it were dropped", stuck, dropped)
	drops := 0
	for drops < int(dropped) {
		if e := obs.next(t, "drop"); e.client.ID != "stuck" || e.reason == nil {
			t.Fatalf("drop for %q (%v), want stuck only, with a reason", e.client.ID, e.reason)
		}
		drops++
	}
	if ci := clientInfo(t, b, "stuck"); !ci.Connected {
		t.Fatal("the stuck subscriber was disconnected before its write timeout")
	}
}

func TestWriteTimeoutDisconnectsStuckSubscriber(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	b, addr := startSmallBufferBroker(t, tern.Options{WriteTimeout: writeTimeout, MaxPending: 16 << 10})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	stuckSubscriber(t, addr, "stuck", "busy/#", 0)
	pub := mustConnect(t, addr, "pub", true)
	msg, err := (&packets.Publish{Topic: "busy/x", Payload: make([]byte, 1000)}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
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
	if e.client.ID != "stuck" || !errors.Is(e.reason, tern.ErrWriteTimeout) {
		t.Fatalf("OnDisconnect %q reason %v, want stuck with ErrWriteTimeout", e.client.ID, e.reason)
	}
	if d := time.Since(start); d < writeTimeout {
		t.Fatalf("disconnected after %v, before the write timeout", d)
	}
	t.Logf("disconnected after %v and %d publishes", time.Since(start), n)
	for _, ci := range b.Clients() {
		if ci.ID == "stuck" {
			t.Fatalf("the stuck client is still listed: %+v", ci)
		}
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
	if err != nil {
		t.Fatal(err)
	}
	second, err := (&packets.Publish{Topic: "t", Payload: []byte("second")}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub.sendRaw(append(first, second[:3]...)) // one packet and a half
	if got := sub.recvPublish(); string(got.Payload) != "first" {
		t.Fatalf("got %q, want first", got.Payload)
	}
	pub.sendRaw(second[3:])
	if got := sub.recvPublish(); string(got.Payload) != "second" {
		t.Fatalf("got %q, want second", got.Payload)
	}
}
