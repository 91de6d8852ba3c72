package tern_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/websocket"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/listeners/testcert"
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
	parked := goroutinesParked(runtime.NumGoroutine())

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

// goroutinesParked returns a condition for eventually: the goroutines are
// back to base, but for the reader goroutines kept waiting for work and a
// few in passing (a writer finishing, the poller). eventually runs its
// condition on a goroutine of its own, which the count leaves out.
func goroutinesParked(base int) func() bool {
	return func() bool { return runtime.NumGoroutine()-1 <= base+8+4 }
}

// layeredTransports carry MQTT over other protocols on a socket: their
// idle connections park on the socket under the layers (listeners.Socket).
// Their clients' TCP connections can hold writes (batchWrites).
var layeredTransports = []transport{
	{"tls", listenTLS},
	{"websocket", func(t *testing.T) (net.Listener, func() net.Conn) { return listenWS(t, nil, nil) }},
	{"websocket over tls", listenWSS},
}

// listenTLS serves MQTT over TLS.
func listenTLS(t *testing.T) (net.Listener, func() net.Conn) {
	certs := testcert.New(t)
	l, err := listeners.TLS("127.0.0.1:0", certs.ServerConfig(tls.NoClientCert), listeners.TLSOptions{})
	require.NoError(t, err)
	addr, cfg := l.Addr().String(), certs.ClientConfig()
	return l, func() net.Conn {
		hc := dialHold(t, addr)
		tc := tls.Client(hc, withServerName(cfg))
		require.NoError(t, tc.Handshake())
		return tc
	}
}

// listenWSS serves MQTT over WebSocket over TLS.
func listenWSS(t *testing.T) (net.Listener, func() net.Conn) {
	certs := testcert.New(t)
	return listenWS(t, certs.ServerConfig(tls.NoClientCert), certs.ClientConfig())
}

// listenWS serves MQTT over WebSocket, over TLS when server is set; its
// clients are golang.org/x/net/websocket's.
func listenWS(t *testing.T, server, client *tls.Config) (net.Listener, func() net.Conn) {
	l, err := listeners.ListenWebSocket("127.0.0.1:0", server, listeners.WebSocketOptions{})
	require.NoError(t, err)
	addr := l.Addr().(listeners.WebSocketAddr)
	return l, func() net.Conn {
		cfg, err := websocket.NewConfig(addr.String(), "http://localhost/")
		require.NoError(t, err)
		cfg.Protocol = []string{listeners.SubprotocolMQTT}
		hc := dialHold(t, addr.Host)
		var rwc net.Conn = hc
		if client != nil {
			tc := tls.Client(hc, withServerName(client))
			require.NoError(t, tc.Handshake())
			rwc = tc
		}
		ws, err := websocket.NewClient(cfg, rwc)
		require.NoError(t, err)
		ws.PayloadType = websocket.BinaryFrame
		return wsClientConn{ws, hc}
	}
}

func withServerName(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	cfg.ServerName = "localhost"
	return cfg
}

// wsClientConn is a WebSocket client connection and its TCP connection.
type wsClientConn struct {
	*websocket.Conn
	tcp *holdConn
}

// holdConn is a client's TCP connection that can hold what is written to
// it and send it in one write.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	held []byte
}

func dialHold(t *testing.T, addr string) *holdConn {
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return &holdConn{Conn: nc}
}

func (c *holdConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// flush sends what was held, in one write, and stops holding.
func (c *holdConn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	if _, err := c.Conn.Write(c.held); err != nil {
		panic(err) // a test's loopback connection
	}
	c.held = nil
}

// batchWrites makes the TCP connection under nc, a client of
// layeredTransports, hold its writes until flush.
func batchWrites(t *testing.T, nc net.Conn) *holdConn {
	t.Helper()
	var hc *holdConn
	switch c := nc.(type) {
	case *tls.Conn:
		hc, _ = c.NetConn().(*holdConn)
	case wsClientConn:
		hc = c.tcp
	}
	require.NotNil(t, hc, "%T is not a client of layeredTransports", nc)
	hc.mu.Lock()
	hc.hold = true
	hc.mu.Unlock()
	return hc
}

// Idle TLS and WebSocket connections are parked like TCP ones: they hold
// no goroutine while quiet, and when many wake at once every message goes
// through, from the clients and to them.
func TestIdleLayeredConnectionsPark(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle connections are parked on epoll, which only Linux has")
	}
	for _, tr := range layeredTransports {
		t.Run(tr.name, func(t *testing.T) {
			_, dial := serveOn(t, tr, tern.Options{})
			sub := dial()
			require.Zero(t, sub.connect("sub", true).ReturnCode)
			sub.subscribe(1, packets.Subscription{Filter: "idle/#"})
			base := runtime.NumGoroutine()
			// The reader goroutines kept waiting for work, and a few in
			// passing (a writer finishing, a handshake ending, the poller).
			limit := base + 8 + 4

			const n = 50
			clients := make([]*rawClient, n)
			for i := range clients {
				clients[i] = dial()
				require.Zero(t, clients[i].connect(fmt.Sprintf("idle-%d", i), true).ReturnCode)
				clients[i].subscribe(1, packets.Subscription{Filter: fmt.Sprintf("to/%d", i)})
			}
			require.Eventually(t, func() bool { return runtime.NumGoroutine() <= limit },
				waitTimeout, 2*time.Millisecond, "the idle connections park")

			for round := range 2 {
				// Every client publishes at once: many parked readers wake
				// together.
				for i, c := range clients {
					c.send(&packets.Publish{Topic: fmt.Sprintf("idle/%d/%d", round, i), Payload: []byte("up")})
				}
				got := make(map[string]bool, n)
				for len(got) < n {
					got[sub.recvPublish().Topic] = true
				}
				for i := range clients {
					assert.True(t, got[fmt.Sprintf("idle/%d/%d", round, i)], "round %d: client %d's message was not delivered", round, i)
				}
				require.Eventually(t, func() bool { return runtime.NumGoroutine() <= limit },
					waitTimeout, 2*time.Millisecond, "round %d: the woken connections park again", round)
				// And each parked client receives.
				for i := range clients {
					sub.send(&packets.Publish{Topic: fmt.Sprintf("to/%d", i), Payload: fmt.Appendf(nil, "down %d", round)})
				}
				for i, c := range clients {
					p := c.recvPublish()
					assert.Equal(t, fmt.Sprintf("to/%d", i), p.Topic)
					assert.Equal(t, fmt.Sprintf("down %d", round), string(p.Payload))
				}
			}
		})
	}
}

// The broker parks a TLS or WebSocket connection only once the layers
// hold nothing more: packets that reached the broker in one read, in
// separate TLS records or WebSocket frames, are all handled though the
// client sends nothing after them.
func TestPacketsBufferedAboveTheSocketAreNotLeftWaiting(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle connections are parked on epoll, which only Linux has")
	}
	for _, tr := range layeredTransports {
		t.Run(tr.name, func(t *testing.T) {
			_, dial := serveOn(t, tr, tern.Options{})
			sub := dial()
			require.Zero(t, sub.connect("sub", true).ReturnCode)
			sub.subscribe(1, packets.Subscription{Filter: "burst/#"})
			pub := dial()
			require.Zero(t, pub.connect("pub", true).ReturnCode)
			for round := range 20 {
				// One write of the client's socket carries the three
				// PUBLISHes, each in its own record or frame.
				batch := batchWrites(t, pub.conn)
				for i := range 3 {
					pub.send(&packets.Publish{Topic: fmt.Sprintf("burst/%d/%d", round, i), Payload: []byte("x")})
				}
				batch.flush()
				for i := range 3 {
					assert.Equal(t, fmt.Sprintf("burst/%d/%d", round, i), sub.recvPublish().Topic, "round %d", round)
				}
			}
		})
	}
}

// [MQTT-3.1.2-24] [v5 MQTT-4.13.1-1] A parked TLS or WebSocket connection
// whose client stays silent for one and a half keepalive periods is
// closed, an MQTT 5 client being told why with DISCONNECT 0x8D.
func TestParkedLayeredConnectionKeepAliveExpiry(t *testing.T) {
	for _, tr := range layeredTransports {
		t.Run(tr.name, func(t *testing.T) {
			b, dial := serveOn(t, tr, tern.Options{})
			disc := watchDisconnects(t, b)
			c := dial()
			c.r.SetVersion(packets.Level5)
			ack := c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: packets.Level5, ClientID: "mute", CleanSession: true, KeepAlive: 1})
			require.Equal(t, byte(packets.Success), ack.ReturnCode)
			start := time.Now()
			p, err := c.tryRecv(waitTimeout)
			require.NoError(t, err, "waiting for the broker's DISCONNECT")
			d, ok := p.(*packets.Disconnect)
			require.True(t, ok, "got %v, want DISCONNECT", p.Type())
			assert.Equal(t, packets.KeepAliveTimeout, d.ReasonCode)
			c.expectClosed()
			if e := time.Since(start); e < keepAliveEarliest || e > keepAliveLatest {
				t.Errorf("closed %v after CONNACK, want about 1.5 s", e)
			}
			assert.ErrorIs(t, disc.wait(t, "mute"), tern.ErrKeepAliveTimeout)
		})
	}
}

// [MQTT-3.1.2-24] Parked connections with different keepalives each
// expire on their own deadline, and a client that pings is not closed:
// its deadline moves each time it wakes.
func TestParkedKeepAliveDeadlines(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	start := time.Now()
	short := connectKeepAlive(t, addr, "short", 1)
	long := connectKeepAlive(t, addr, "long", 2)
	pinger := connectKeepAlive(t, addr, "pinger", 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond) // paces the client
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				pinger.send(&packets.Pingreq{})
			}
		}
	}()
	assert.ErrorIs(t, disc.wait(t, "short"), tern.ErrKeepAliveTimeout)
	shortAt := time.Since(start)
	assert.ErrorIs(t, disc.wait(t, "long"), tern.ErrKeepAliveTimeout)
	longAt := time.Since(start)
	close(done)
	wg.Wait()
	short.expectClosed()
	long.expectClosed()
	assert.True(t, shortAt >= keepAliveEarliest && shortAt <= keepAliveLatest, "keepalive 1 s closed after %v, want about 1.5 s", shortAt)
	assert.True(t, longAt >= 2*keepAliveEarliest && longAt <= 2*keepAliveLatest, "keepalive 2 s closed after %v, want about 3 s", longAt)
	// The pinger is still connected: past its PINGRESPs, it gets its
	// PUBACK.
	pinger.send(&packets.Publish{Topic: "still/here", QoS: 1, PacketID: 7})
	for {
		p := pinger.recv()
		if p.Type() == packets.TypePingresp {
			continue
		}
		ack, ok := p.(*packets.Puback)
		require.True(t, ok, "got %v, want PUBACK", p.Type())
		assert.Equal(t, uint16(7), ack.PacketID)
		break
	}
}

// A TLS or WebSocket connection can park with part of a packet read: the
// layers held a whole PUBLISH and the start of the next, in records or
// frames that reached the broker in one read. It keeps those bytes while
// the reader goroutines read other connections, and each PUBLISH arrives
// whole once the rest comes. (Over TLS: a plain WebSocket connection
// reads its frames straight from the socket, so the start of a packet
// waits there, not in the layer, when the connection parks.)
func TestLayeredConnectionsParkHalfwayThroughAPacket(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle connections are parked on epoll, which only Linux has")
	}
	for _, tr := range layeredTransports {
		if tr.name == "websocket" {
			continue
		}
		t.Run(tr.name, func(t *testing.T) {
			_, dial := serveOn(t, tr, tern.Options{})
			sub := dial()
			require.Zero(t, sub.connect("sub", true).ReturnCode)
			sub.subscribe(1, packets.Subscription{Filter: "half/#"})
			base := runtime.NumGoroutine()
			limit := base + 8 + 4 // as in TestIdleLayeredConnectionsPark

			const n = 20
			clients := make([]*rawClient, n)
			rest := make([][]byte, n)
			for i := range clients {
				c := dial()
				clients[i] = c
				require.Zero(t, c.connect(fmt.Sprintf("half-%d", i), true).ReturnCode)
				p := &packets.Publish{Topic: fmt.Sprintf("half/%d", i), Payload: bytes.Repeat([]byte{byte('a' + i)}, 300)}
				wire, err := p.Append(nil)
				require.NoError(t, err)
				rest[i] = wire[len(wire)/2:]
				batch := batchWrites(t, c.conn)
				c.send(&packets.Publish{Topic: fmt.Sprintf("half/%d/first", i), Payload: []byte("first")})
				c.sendRaw(wire[:len(wire)/2])
				batch.flush()
				assert.Equal(t, fmt.Sprintf("half/%d/first", i), sub.recvPublish().Topic)
			}
			require.Eventually(t, func() bool { return runtime.NumGoroutine() <= limit },
				waitTimeout, 2*time.Millisecond, "the connections park halfway through their second PUBLISH")

			// Whole packets from another connection go through the reader
			// goroutines meanwhile.
			other := dial()
			require.Zero(t, other.connect("other", true).ReturnCode)
			for i := range 5 {
				other.send(&packets.Publish{Topic: "half/other", Payload: fmt.Appendf(nil, "other %d", i)})
				assert.Equal(t, fmt.Sprintf("other %d", i), string(sub.recvPublish().Payload))
			}

			for i, c := range clients {
				c.sendRaw(rest[i])
			}
			got := map[string]string{}
			for range n {
				p := sub.recvPublish()
				got[p.Topic] = string(p.Payload)
			}
			for i := range clients {
				assert.Equal(t, strings.Repeat(string(rune('a'+i)), 300), got[fmt.Sprintf("half/%d", i)], "client %d", i)
			}
		})
	}
}

// Parked connections share the reader goroutines, and with them the
// buffers packets are read into: every payload arrives as it was sent,
// whatever its size (within the first buffer or past it) and whichever
// connections were read in between, at QoS 0 and 1.
func TestPayloadsIntactAcrossParkedConnections(t *testing.T) {
	for _, tr := range append([]transport{{"tcp", listenTCP}}, layeredTransports...) {
		t.Run(tr.name, func(t *testing.T) {
			_, dial := serveOn(t, tr, tern.Options{})
			sub := dial()
			require.Zero(t, sub.connect("sub", true).ReturnCode)
			sub.subscribe(1, packets.Subscription{Filter: "p/#", QoS: 1})
			const n, rounds = 30, 6
			pubs := make([]*rawClient, n)
			for i := range pubs {
				pubs[i] = dial()
				require.Zero(t, pubs[i].connect(fmt.Sprintf("p-%d", i), true).ReturnCode)
			}
			payload := func(i, round int) []byte {
				size := 1 + (i*97+round*389)%1500 // from 1 byte to past the first 512-byte buffer
				return bytes.Repeat([]byte{byte('A' + (i+round)%26)}, size)
			}
			for round := range rounds {
				qos := byte(round % 2)
				for i, c := range pubs {
					c.send(&packets.Publish{Topic: fmt.Sprintf("p/%d/%d", i, round), QoS: qos, PacketID: uint16(round + 1), Payload: payload(i, round)})
				}
				if qos == 1 {
					for _, c := range pubs {
						_, ok := c.recv().(*packets.Puback)
						require.True(t, ok, "PUBACK")
					}
				}
				for range n {
					p := sub.recvPublish()
					if p.QoS > 0 {
						sub.send(&packets.Puback{PacketID: p.PacketID})
					}
					var i, r int
					_, err := fmt.Sscanf(p.Topic, "p/%d/%d", &i, &r)
					require.NoError(t, err, p.Topic)
					require.Equal(t, round, r, p.Topic)
					assert.Equal(t, payload(i, r), p.Payload, "%s: payload", p.Topic)
				}
			}
		})
	}
}

// keptRetains is a RetainObserver that keeps the messages it is told of,
// without copying them.
type keptRetains struct {
	mu   sync.Mutex
	msgs []tern.Message
}

func (k *keptRetains) OnRetain(m tern.Message) {
	k.mu.Lock()
	k.msgs = append(k.msgs, m)
	k.mu.Unlock()
}

// A RetainObserver is given the retained store's own copy of the message:
// a hook that keeps it keeps bytes that the reads of other connections,
// into the same reader buffers, do not overwrite.
func TestRetainObserverKeepsIntactMessages(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	kept := &keptRetains{}
	serveBroker(t, runtime.NumGoroutine(), tern.Options{}, l, kept)
	addr := l.Addr().String()
	const n = 40
	pubs := make([]*rawClient, n)
	for i := range pubs {
		pubs[i] = mustConnect(t, addr, fmt.Sprintf("r-%d", i), true)
	}
	want := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 100+i) }
	for i, c := range pubs {
		c.publishQoS(1, fmt.Sprintf("keep/%d", i), want(i), 1, true)
		// Other connections' packets go through the reader goroutines.
		pubs[(i+1)%n].publishQoS(2, "other", strings.Repeat("Z", 300), 1, false)
	}
	kept.mu.Lock()
	defer kept.mu.Unlock()
	require.Len(t, kept.msgs, n)
	for _, m := range kept.msgs {
		var i int
		_, err := fmt.Sscanf(m.Topic, "keep/%d", &i)
		require.NoError(t, err)
		assert.Equal(t, want(i), string(m.Payload), m.Topic)
	}
}
