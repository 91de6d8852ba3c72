package tern_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/packets"
)

// Faults: consumers that stop reading, peers that vanish without closing,
// clients taking their sessions over while messages flow, and Close in the
// middle of heavy traffic.

// ftClient is a raw MQTT client that reports errors instead of failing the
// test, so that it can run in its own goroutine.
type ftClient struct {
	nc net.Conn
	r  *packets.Reader
}

func ftDial(dial func() (net.Conn, error)) (*ftClient, error) {
	nc, err := dial()
	if err != nil {
		return nil, err
	}
	return &ftClient{nc: nc, r: packets.NewReader(nc, 0)}, nil
}

func tcpDialer(addr string) func() (net.Conn, error) {
	return func() (net.Conn, error) { return net.DialTimeout("tcp", addr, waitTimeout) }
}

func (c *ftClient) send(ps ...packets.Packet) error {
	var buf []byte
	for _, p := range ps {
		var err error
		if buf, err = p.Append(buf); err != nil {
			return err
		}
	}
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	_, err := c.nc.Write(buf)
	return err
}

func (c *ftClient) next(d time.Duration) (packets.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadPacket()
}

// connect sends CONNECT and requires CONNACK 0.
func (c *ftClient) connect(p *packets.Connect) (*packets.Connack, error) {
	if err := c.send(p); err != nil {
		return nil, err
	}
	pk, err := c.next(waitTimeout)
	if err != nil {
		return nil, fmt.Errorf("CONNACK for %q: %w", p.ClientID, err)
	}
	ack, ok := pk.(*packets.Connack)
	if !ok || ack.ReturnCode != 0 {
		return nil, fmt.Errorf("CONNECT %q: got %v %+v, want CONNACK 0", p.ClientID, pk.Type(), pk)
	}
	return ack, nil
}

// publish1 publishes at QoS 1 and waits for the PUBACK.
func (c *ftClient) publish1(id uint16, topic string, payload []byte) error {
	if err := c.send(&packets.Publish{Topic: topic, QoS: 1, PacketID: id, Payload: payload}); err != nil {
		return err
	}
	p, err := c.next(waitTimeout)
	if err != nil {
		return err
	}
	if ack, ok := p.(*packets.Puback); !ok || ack.PacketID != id {
		return fmt.Errorf("got %v %+v, want PUBACK %d", p.Type(), p, id)
	}
	return nil
}

// ftObserver records why each client's connections ended.
type ftObserver struct{ ends chan ftEnd }

type ftEnd struct {
	id     string
	reason error
}

func (o ftObserver) OnDisconnect(c tern.Client, reason error) {
	select {
	case o.ends <- ftEnd{c.ID, reason}:
	default:
	}
}

// TestStuckPersistentQoS1ConsumerKeepsItsQueueBounded: a persistent QoS 1
// subscriber that stops reading and acknowledging holds at most
// MaxInflight messages in flight and MaxQueued behind them, online and then
// offline; the rest are dropped and counted, while another subscriber gets
// every message. When it comes back, it gets what its session kept, in
// order, the unacknowledged ones again with DUP set.
// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-4.4.0-1] [MQTT-4.6.0-6]
func TestStuckPersistentQoS1ConsumerKeepsItsQueueBounded(t *testing.T) {
	const (
		inflight = 10
		queued   = 100
		n        = 3000
	)
	b, addr := startBroker(t, tern.Options{MaxInflight: inflight, MaxQueued: queued})
	stuck := dialRaw(t, addr)
	stuck.connect("stuck-q1", false)
	stuck.subscribe(1, packets.Subscription{Filter: "work/#", QoS: 1})
	// The other subscriber takes the messages at QoS 0, so that its own
	// window and queue (the same options) do not limit it: only its write
	// buffer (MaxPending, 4 MiB) does, and it holds the whole burst.
	good := mustConnect(t, addr, "good", true)
	good.subscribe(1, packets.Subscription{Filter: "work/#", QoS: 0})
	pub := mustConnect(t, addr, "producer", true)
	before := b.Stats()

	payload := func(i int) string { return fmt.Sprintf("%04d-%s", i, make([]byte, 1000)) }
	published := make(chan error, 1)
	go func() { // the publisher pipelines, then reads every PUBACK
		var burst []byte
		for i := range n {
			burst, _ = (&packets.Publish{Topic: "work/item", QoS: 1, PacketID: uint16(i%65535 + 1), Payload: []byte(payload(i))}).Append(burst)
		}
		pub.conn.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := pub.conn.Write(burst); err != nil {
			published <- err
			return
		}
		for range n {
			if p, err := pub.r.ReadPacket(); err != nil || p.Type() != packets.TypePuback {
				published <- fmt.Errorf("PUBACK: %v %v", p, err)
				return
			}
		}
		published <- nil
	}()
	start := time.Now()
	for i := range n {
		p := good.recvPublish()
		if string(p.Payload) != payload(i) {
			t.Fatalf("the reading subscriber got %.4q, want %04d", p.Payload, i)
		}
	}
	t.Logf("the reading subscriber got all %d messages in %v beside a stuck one", n, time.Since(start).Round(time.Millisecond))
	if err := <-published; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	ci := clientInfo(t, b, "stuck-q1")
	if ci.Inflight != inflight || ci.Queued != queued {
		t.Fatalf("stuck session: Inflight %d Queued %d, want %d and %d", ci.Inflight, ci.Queued, inflight, queued)
	}
	if d := b.Stats().PublishDropped - before.PublishDropped; d != n-inflight-queued {
		t.Fatalf("PublishDropped %d, want %d", d, n-inflight-queued)
	}

	// Offline, the session stays bounded.
	stuck.conn.Close()
	eventually(t, "stuck-q1 offline", func() bool { ci, ok := findClient(b, "stuck-q1"); return ok && !ci.Connected })
	for i := range 50 {
		pub.publishQoS(uint16(i+1), "work/late", "late", 1, false)
	}
	for range 50 {
		good.recvPublish()
	}
	if ci := clientInfo(t, b, "stuck-q1"); ci.Inflight+ci.Queued != inflight+queued {
		t.Fatalf("offline stuck session holds %d in flight and %d queued, want %d in all", ci.Inflight, ci.Queued, inflight+queued)
	}

	// Back online: the window again with DUP, then the queue, in order.
	back := dialRaw(t, addr)
	if ack := back.connect("stuck-q1", false); !ack.SessionPresent {
		t.Fatal("session present 0, want 1")
	}
	for i := range inflight + queued {
		p := back.recvPublish()
		if string(p.Payload) != payload(i) || p.Dup != (i < inflight) {
			t.Fatalf("delivery %d: %.4q DUP %v, want %04d DUP %v", i, p.Payload, p.Dup, i, i < inflight)
		}
		back.send(&packets.Puback{PacketID: p.PacketID})
	}
	back.expectNothing(200 * time.Millisecond)
}

// freezer is a TCP proxy in front of the broker that can stop forwarding in
// both directions without closing anything: to the broker, the client
// vanished as a peer does when its network goes away (no FIN, no RST).
type freezer struct {
	l      net.Listener
	frozen chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, upstream string) *freezer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{l: l, frozen: make(chan struct{}), done: make(chan struct{})}
	f.wg.Add(1)
	go f.accept(upstream)
	t.Cleanup(func() {
		close(f.done)
		l.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *freezer) accept(upstream string) {
	defer f.wg.Done()
	for {
		down, err := f.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", upstream)
		if err != nil {
			down.Close()
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, down, up)
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(up, down)
		go f.pipe(down, up)
	}
}

// pipe copies src to dst until the proxy freezes; then it holds what it
// read and waits, closing nothing, until the test ends.
func (f *freezer) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-f.frozen:
			<-f.done
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *freezer) freeze() { close(f.frozen) }

// TestHalfOpenConnectionIsDetectedByKeepalive: a client with keepalive 1 s
// whose peer vanishes without closing (a TCP proxy that stops forwarding
// both ways; an in-memory connection whose client end goes silent) is
// closed by the broker after 1.5 s without a packet [MQTT-3.1.2-24], even
// while the broker has messages to send to it, and its will is published
// [MQTT-3.1.2-8].
func TestHalfOpenConnectionIsDetectedByKeepalive(t *testing.T) {
	cases := []struct {
		name string
		// start returns the broker, a dialer for the victim, a dialer
		// for the others, and what makes the victim vanish.
		start func(t *testing.T, opts tern.Options) (*tern.Broker, func() (net.Conn, error), func() (net.Conn, error), func(*ftClient))
	}{
		{"TCP proxy stops forwarding", func(t *testing.T, opts tern.Options) (*tern.Broker, func() (net.Conn, error), func() (net.Conn, error), func(*ftClient)) {
			b, addr := startBroker(t, opts)
			f := newFreezer(t, addr)
			return b, tcpDialer(f.l.Addr().String()), tcpDialer(addr), func(*ftClient) { f.freeze() }
		}},
		{"in-memory peer goes silent", func(t *testing.T, opts tern.Options) (*tern.Broker, func() (net.Conn, error), func() (net.Conn, error), func(*ftClient)) {
			b, l := ftStartMemory(t, opts)
			return b, l.Dial, l.Dial, func(*ftClient) {} // the victim stops reading and writing
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			obs := ftObserver{ends: make(chan ftEnd, 16)}
			b, victimDial, dial, vanish := tc.start(t, tern.Options{})
			if err := b.AddHook(obs); err != nil {
				t.Fatal(err)
			}
			watcher := ftMust(t, dial, &packets.Connect{ClientID: "watcher", CleanSession: true})
			must(t, watcher.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "halfopen/will", QoS: 1}}}))
			ftExpect(t, watcher, packets.TypeSuback)
			victim := ftMust(t, victimDial, &packets.Connect{ClientID: "victim", CleanSession: true, KeepAlive: 1,
				WillFlag: true, WillTopic: "halfopen/will", WillQoS: 1, WillMessage: []byte("vanished")})
			must(t, victim.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "halfopen/flow", QoS: 1}}}))
			ftExpect(t, victim, packets.TypeSuback)
			t.Cleanup(func() { victim.nc.Close() })

			// Messages keep flowing to the victim while it is gone.
			pub := ftMust(t, dial, &packets.Connect{ClientID: "flow", CleanSession: true})
			vanish(victim)
			gone := time.Now()
			stop, stopped := make(chan struct{}), make(chan error, 1)
			go func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						stopped <- nil
						return
					default:
					}
					if err := pub.publish1(uint16(i%65535+1), "halfopen/flow", make([]byte, 512)); err != nil {
						stopped <- err
						return
					}
				}
			}()
			p, err := watcher.next(waitTimeout)
			detected := time.Since(gone)
			close(stop)
			if err != nil {
				t.Fatalf("no will: %v", err)
			}
			if m, ok := p.(*packets.Publish); !ok || m.Topic != "halfopen/will" || string(m.Payload) != "vanished" {
				t.Fatalf("got %v %+v, want the will", p.Type(), p)
			}
			if err := <-stopped; err != nil {
				t.Fatalf("the publisher was held up: %v", err)
			}
			// 1.5 x keepalive from the last packet, which came just before
			// the peer vanished.
			if detected < time.Second || detected > 3*time.Second {
				t.Fatalf("will published %v after the peer vanished, want about 1.5 s", detected)
			}
			if e := ftEndOf(t, obs, "victim"); !errors.Is(e, tern.ErrKeepAliveTimeout) {
				t.Fatalf("victim's connection ended with %v, want ErrKeepAliveTimeout", e)
			}
			t.Logf("half-open connection detected after %v", detected.Round(time.Millisecond))
		})
	}
}

// ftEndOf waits for the end of a connection of client id.
func ftEndOf(t *testing.T, o ftObserver, id string) error {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case e := <-o.ends:
			if e.id == id {
				return e.reason
			}
		case <-timeout:
			t.Fatalf("%q never disconnected", id)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ftMust dials and connects, failing the test on error.
func ftMust(t testing.TB, dial func() (net.Conn, error), p *packets.Connect) *ftClient {
	t.Helper()
	c, err := ftDial(dial)
	must(t, err)
	t.Cleanup(func() { c.nc.Close() })
	_, err = c.connect(p)
	must(t, err)
	return c
}

func ftExpect(t testing.TB, c *ftClient, want packets.Type) packets.Packet {
	t.Helper()
	p, err := c.next(waitTimeout)
	if err != nil || p.Type() != want {
		t.Fatalf("got %v %v, want %v", p, err, want)
	}
	return p
}

// ftStartMemory starts a broker on an in-memory listener, closed at cleanup
// with a goroutine leak check.
func ftStartMemory(t testing.TB, opts tern.Options) (*tern.Broker, *listeners.Memory) {
	t.Helper()
	before := runtime.NumGoroutine()
	l := listeners.NewMemory()
	return serveBroker(t, before, opts, l), l
}

// TestTakeoverUnderLoadLosesNoAcknowledgedMessage: 100 clients with
// persistent sessions keep reconnecting with their own identifiers, each new
// connection taking the session over from the previous one while it is
// still open [MQTT-3.1.4-2], as QoS 1 messages flow to all of them. Every
// message acknowledged to its publisher reaches every session (duplicates
// allowed) [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-4.4.0-1], nothing panics, and
// no goroutine is left behind.
func TestTakeoverUnderLoadLosesNoAcknowledgedMessage(t *testing.T) {
	const (
		subscribers = 100
		publishers  = 4
		perPub      = 100
	)
	b, addr := startBroker(t, tern.Options{MaxQueued: 100_000})
	dial := tcpDialer(addr)
	id := func(i int) string { return fmt.Sprintf("takeover-%03d", i) }
	for i := range subscribers {
		c := ftMust(t, dial, &packets.Connect{ClientID: id(i), KeepAlive: 60})
		must(t, c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "load/#", QoS: 1}}}))
		ftExpect(t, c, packets.TypeSuback)
		c.nc.Close()
	}

	stop := make(chan struct{})
	var churn sync.WaitGroup
	seen := make([]map[string]bool, subscribers)
	errs := make(chan error, subscribers+publishers)
	takeovers := make([]int, subscribers)
	for i := range subscribers {
		seen[i] = make(map[string]bool)
		churn.Add(1)
		go func() {
			defer churn.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			var old *ftClient
			for {
				c, err := ftDial(dial)
				if err == nil {
					_, err = c.connect(&packets.Connect{ClientID: id(i), KeepAlive: 60})
				}
				if old != nil {
					// Taken over: read what reached the old connection.
					ftDrain(old, seen[i], 0)
					old.nc.Close()
				}
				if err != nil {
					errs <- err
					return
				}
				takeovers[i]++
				select {
				case <-stop:
					c.nc.Close()
					return
				default:
				}
				if err := ftDrain(c, seen[i], time.Duration(5+r.IntN(45))*time.Millisecond); err != nil {
					errs <- fmt.Errorf("%s: %w", id(i), err)
					c.nc.Close()
					return
				}
				old = c
			}
		}()
	}

	acked := make(chan string, publishers*perPub)
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			c, err := ftDial(dial)
			if err == nil {
				_, err = c.connect(&packets.Connect{ClientID: fmt.Sprintf("loader-%d", p), CleanSession: true})
			}
			if err != nil {
				errs <- err
				return
			}
			defer c.nc.Close()
			for k := range perPub {
				msg := fmt.Sprintf("p%d-%d", p, k)
				if err := c.publish1(uint16(k+1), "load/"+msg, []byte(msg)); err != nil {
					errs <- fmt.Errorf("publisher %d: %w", p, err)
					return
				}
				acked <- msg
			}
		}()
	}
	pubs.Wait()
	close(stop)
	churn.Wait()
	close(acked)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, n := range takeovers {
		total += n
	}
	t.Logf("%d sessions, %d connections (takeovers), %d messages acknowledged to their publishers", subscribers, total, publishers*perPub)

	// Each session, connected one last time, gets every acknowledged
	// message it has not seen yet.
	var want []string
	for m := range acked {
		want = append(want, m)
	}
	for i := range subscribers {
		c := ftMust(t, dial, &packets.Connect{ClientID: id(i), KeepAlive: 60})
		deadline := time.Now().Add(waitTimeout)
		for _, m := range want {
			for !seen[i][m] {
				if time.Now().After(deadline) {
					t.Fatalf("%s never got %q, acknowledged to its publisher", id(i), m)
				}
				if err := ftDrain(c, seen[i], 100*time.Millisecond); err != nil {
					t.Fatalf("%s: %v", id(i), err)
				}
			}
		}
		c.nc.Close()
	}
	if n := len(b.Clients()); n != subscribers {
		t.Errorf("%d sessions, want %d", n, subscribers)
	}
}

// ftDrain reads PUBLISH packets for d (0: until the connection ends),
// recording and acknowledging each. A closed connection ends it without an
// error; anything but a PUBLISH is an error.
func ftDrain(c *ftClient, seen map[string]bool, d time.Duration) error {
	until := time.Now().Add(d)
	if d == 0 {
		until = time.Now().Add(waitTimeout)
	}
	for {
		c.nc.SetReadDeadline(until)
		p, err := c.r.ReadPacket()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if d == 0 {
					return fmt.Errorf("the taken-over connection stayed open: %w", err)
				}
				return nil
			}
			return nil // closed (taken over, or the broker closed)
		}
		m, ok := p.(*packets.Publish)
		if !ok {
			return fmt.Errorf("got %v, want PUBLISH", p.Type())
		}
		seen[string(m.Payload)] = true
		if m.QoS == 1 {
			if err := c.send(&packets.Puback{PacketID: m.PacketID}); err != nil && d != 0 {
				return nil // taken over while acknowledging
			}
		}
	}
}

// TestCloseDuringHeavyTrafficReturnsPromptly closes a broker while
// publishers at every QoS, reading subscribers and stuck subscribers keep it
// busy: Close returns within 2 s without error, every client sees its
// connection end, and no goroutine is left behind.
func TestCloseDuringHeavyTrafficReturnsPromptly(t *testing.T) {
	transports := []struct {
		name  string
		start func(t *testing.T) (*tern.Broker, func() (net.Conn, error))
	}{
		{"tcp", func(t *testing.T) (*tern.Broker, func() (net.Conn, error)) {
			b, addr := startBroker(t, tern.Options{})
			return b, tcpDialer(addr)
		}},
		{"memory", func(t *testing.T) (*tern.Broker, func() (net.Conn, error)) {
			b, l := ftStartMemory(t, tern.Options{})
			return b, l.Dial
		}},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			b, dial := tr.start(t)
			var clients sync.WaitGroup
			t.Cleanup(clients.Wait) // before the broker's leak check
			run := func(name string, loop func(c *ftClient) error) {
				c := ftMust(t, dial, &packets.Connect{ClientID: name, CleanSession: true})
				clients.Add(1)
				go func() {
					defer clients.Done()
					defer c.nc.Close()
					_ = loop(c) // ends with an error when the broker closes
				}()
			}
			for i := range 10 {
				run(fmt.Sprintf("reader-%d", i), func(c *ftClient) error {
					if err := c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "heavy/#", QoS: byte(i % 3)}}}); err != nil {
						return err
					}
					for {
						p, err := c.next(waitTimeout)
						if err != nil {
							return err
						}
						if m, ok := p.(*packets.Publish); ok && m.QoS == 1 {
							c.send(&packets.Puback{PacketID: m.PacketID})
						} else if ok && m.QoS == 2 {
							c.send(&packets.Pubrec{PacketID: m.PacketID})
						} else if rel, ok := p.(*packets.Pubrel); ok {
							c.send(&packets.Pubcomp{PacketID: rel.PacketID})
						}
					}
				})
			}
			for i := range 3 {
				c := ftMust(t, dial, &packets.Connect{ClientID: fmt.Sprintf("stuck-%d", i), CleanSession: true})
				must(t, c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "heavy/#", QoS: 1}}}))
			}
			for i := range 6 {
				run(fmt.Sprintf("writer-%d", i), func(c *ftClient) error {
					clients.Add(1)
					go func() { // discard the acknowledgements
						defer clients.Done()
						io.Copy(io.Discard, c.nc)
					}()
					payload := make([]byte, 256)
					for k := 0; ; k++ {
						qos := byte(k % 3)
						p := &packets.Publish{Topic: fmt.Sprintf("heavy/%d", i), QoS: qos, Payload: payload}
						if qos > 0 {
							p.PacketID = uint16(k%65535 + 1)
						}
						if err := c.send(p); err != nil {
							return err
						}
					}
				})
			}
			eventually(t, "heavy traffic", func() bool { return b.Stats().PublishSent > 20_000 })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			if err := b.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			took := time.Since(start)
			st := b.Stats()
			t.Logf("Close took %v after %d PUBLISH received and %d sent", took.Round(time.Microsecond), st.PublishReceived, st.PublishSent)
			if took > 2*time.Second {
				t.Fatalf("Close took %v, want < 2 s", took)
			}
		})
	}
}

// TestMessagesPublishedJustBeforeTheConnectionEndsAreDelivered: a client
// that publishes and ends its connection in the same write (as
// mosquitto_pub does at QoS 0: PUBLISH then DISCONNECT) has its messages
// delivered at once, and the subscriber keeps receiving later messages from
// others. The same holds when the connection ends with a protocol
// violation or the network closing after the PUBLISH.
// [MQTT-4.5.0-1]: a message the broker took ownership of reaches the
// sessions with matching subscriptions, however its sender leaves.
func TestMessagesPublishedJustBeforeTheConnectionEndsAreDelivered(t *testing.T) {
	publish, err := (&packets.Publish{Topic: "last/words", Payload: []byte("bye")}).Append(nil)
	must(t, err)
	cases := []struct {
		name  string
		after []byte // sent with the PUBLISH, in the same write
		close bool   // the client closes right after the write
	}{
		{"then DISCONNECT", []byte{0xE0, 0}, false},
		{"then a protocol violation", []byte{0xF0, 0}, false},
		{"then the network closes", nil, true},
	}
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "listener", true)
	sub.subscribe(1, packets.Subscription{Filter: "last/#", QoS: 0})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustConnect(t, addr, fmt.Sprintf("leaver-%d", i), true)
			c.sendRaw(append(publish, tc.after...))
			if tc.close {
				c.conn.Close()
			}
			s := *sub
			s.t = t
			if p := s.recvPublish(); p.Topic != "last/words" {
				t.Fatalf("got %q, want last/words", p.Topic)
			}
			// Later messages from another client arrive too.
			other := mustConnect(t, addr, fmt.Sprintf("other-%d", i), true)
			other.publishQoS(1, "last/after", "later", 1, false)
			if p := s.recvPublish(); p.Topic != "last/after" {
				t.Fatalf("got %q, want last/after", p.Topic)
			}
		})
	}
}
