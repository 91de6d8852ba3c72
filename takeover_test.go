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
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/packets"
)

// transport is a listener for the broker and a way for clients to reach it.
type transport struct {
	name   string
	listen func(t *testing.T) (net.Listener, func() net.Conn)
}

// takeoverTransports covers the ways a connection's reader waits: parked
// on epoll (TCP, and TLS and WebSocket over TLS, whose layers may hold
// bytes the socket no longer shows), blocked in Read (TCP behind a wrapper
// the broker cannot park), and in-memory connections.
var takeoverTransports = []transport{
	{"tls parked", listenTLS},
	{"websocket over tls parked", listenWSS},
	{"tcp parked", listenTCP},
	{"tcp not parked", func(t *testing.T) (net.Listener, func() net.Conn) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		return unparkableListener{l}, tcpConnDialer(t, l.Addr().String())
	}},
	{"memory", func(t *testing.T) (net.Listener, func() net.Conn) {
		l := listeners.NewMemory()
		return l, func() net.Conn {
			nc, err := l.Dial()
			require.NoError(t, err)
			t.Cleanup(func() { nc.Close() })
			return nc
		}
	}},
}

// serveOn starts a broker with opts on tr and returns the clients' dialer.
func serveOn(t *testing.T, tr transport, opts tern.Options) (*tern.Broker, func() *rawClient) {
	t.Helper()
	before := runtime.NumGoroutine()
	l, dial := tr.listen(t)
	b := serveBroker(t, before, opts, l)
	return b, func() *rawClient { return rawOn(t, dial()) }
}

// listenTCP serves MQTT over loopback TCP.
func listenTCP(t *testing.T) (net.Listener, func() net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return l, tcpConnDialer(t, l.Addr().String())
}

func tcpConnDialer(t *testing.T, addr string) func() net.Conn {
	return func() net.Conn {
		nc, err := net.DialTimeout("tcp", addr, waitTimeout)
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		return nc
	}
}

// unparkableListener hands the broker connections it cannot park (they are
// not *net.TCPConn), so each keeps a reader goroutine blocked in Read.
type unparkableListener struct{ net.Listener }

type unparkableConn struct{ net.Conn }

func (l unparkableListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return unparkableConn{nc}, nil
}

func rawOn(t testing.TB, nc net.Conn) *rawClient {
	return &rawClient{t: t, conn: nc, r: packets.NewReader(nc, 0)}
}

// sendAll writes each packet in its own write, as a client library does.
func (c *rawClient) sendEach(ps ...packets.Packet) {
	c.t.Helper()
	for _, p := range ps {
		c.send(p)
	}
}

// [MQTT-3.1.2-10] [MQTT-3.14.4-3] [MQTT-3.1.4-2] A client that sends a
// PUBLISH and a DISCONNECT, closes its socket, and reconnects with the same
// client identifier as soon as its PUBLISH was delivered must not have its
// will published: the old connection handles the DISCONNECT it received
// before the new connection takes the session over.
func TestQuickReconnectAfterDisconnectPublishesNoWill(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	for _, tr := range takeoverTransports {
		t.Run(tr.name, func(t *testing.T) {
			_, dial := serveOn(t, tr, tern.Options{})
			watcher := dial()
			require.Zero(t, watcher.connect("watcher", true).ReturnCode)
			watcher.subscribe(1, packets.Subscription{Filter: "will/#", QoS: 1}, packets.Subscription{Filter: "data/#"})

			connect := &packets.Connect{
				ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "device", KeepAlive: 60,
				WillFlag: true, WillTopic: "will/device", WillMessage: []byte("offline"), WillQoS: 1,
			}
			dev := dial()
			require.Zero(t, dev.connectWith(connect).ReturnCode)
			for i := range rounds {
				payload := fmt.Sprint(i)
				dev.sendEach(&packets.Publish{Topic: "data/device", Payload: []byte(payload)}, &packets.Disconnect{})
				dev.conn.Close()
				p := watcher.recvPublish()
				require.Equal(t, "data/device", p.Topic, "round %d: the will was published after a DISCONNECT", i)
				require.Equal(t, payload, string(p.Payload), "round %d", i)
				dev = dial()
				ack := dev.connectWith(connect)
				require.Zero(t, ack.ReturnCode, "round %d", i)
			}
			// Nothing else reached the watcher: a marker comes next.
			marker := dial()
			require.Zero(t, marker.connect("marker", true).ReturnCode)
			marker.send(&packets.Publish{Topic: "data/marker", Payload: []byte("end")})
			p := watcher.recvPublish()
			assert.Equal(t, "data/marker", p.Topic, "a will or a message out of place reached the watcher")
		})
	}
}

// [MQTT-3.1.4-2] [MQTT-4.6.0-6] The PUBLISHes an old connection sent just
// before a new connection takes its session over are delivered, in order,
// before anything the new connection publishes.
func TestPublishesBeforeTakeoverComeFirst(t *testing.T) {
	for _, tr := range takeoverTransports {
		t.Run(tr.name, func(t *testing.T) {
			_, dial := serveOn(t, tr, tern.Options{})
			watcher := dial()
			require.Zero(t, watcher.connect("watcher", true).ReturnCode)
			watcher.subscribe(1, packets.Subscription{Filter: "order/#", QoS: 1})

			rounds, perRound := 20, 5
			old := dial()
			require.Zero(t, old.connect("device", false).ReturnCode)
			for r := range rounds {
				for i := range perRound {
					old.send(&packets.Publish{Topic: "order/old", Payload: fmt.Appendf(nil, "%d-%d", r, i)})
				}
				// No DISCONNECT, no close: the new connection takes over at
				// once, while the old one's packets may still be unread.
				next := dial()
				ack := next.connect("device", false)
				require.Zero(t, ack.ReturnCode, "round %d", r)
				require.True(t, ack.SessionPresent, "round %d", r)
				next.send(&packets.Publish{Topic: "order/new", Payload: fmt.Appendf(nil, "%d", r)})
				for i := range perRound {
					p := watcher.recvPublish()
					require.Equal(t, "order/old", p.Topic, "round %d: message %d of the old connection", r, i)
					require.Equal(t, fmt.Sprintf("%d-%d", r, i), string(p.Payload), "round %d", r)
					if p.QoS > 0 {
						watcher.send(&packets.Puback{PacketID: p.PacketID})
					}
				}
				p := watcher.recvPublish()
				require.Equal(t, "order/new", p.Topic, "round %d", r)
				require.Equal(t, fmt.Sprint(r), string(p.Payload), "round %d", r)
				old.expectClosed()
				old = next
			}
		})
	}
}

// [MQTT-3.1.4-2] A takeover of a connection that sent nothing more is not
// held up: the new connection gets its CONNACK promptly.
func TestTakeoverOfASilentConnectionIsPrompt(t *testing.T) {
	for _, tr := range takeoverTransports {
		t.Run(tr.name, func(t *testing.T) {
			_, dial := serveOn(t, tr, tern.Options{})
			old := dial()
			require.Zero(t, old.connect("device", false).ReturnCode)
			start := time.Now()
			next := dial()
			require.Zero(t, next.connect("device", false).ReturnCode)
			assert.Less(t, time.Since(start), time.Second, "CONNACK of the new connection")
			old.expectClosed()
		})
	}
}

// [MQTT-3.1.4-2] [MQTT-3.1.2-8] On takeover the old connection ends without
// DISCONNECT. Its will is published when its session ends with it (either
// connection asked for a clean session), and not when the session carries
// on into the new connection (both asked for a persistent one): the client
// is online again. This is what Mosquitto does.
func TestWillOnTakeoverFollowsTheSession(t *testing.T) {
	cases := []struct {
		oldClean, newClean bool
		will               bool
	}{
		{oldClean: false, newClean: false, will: false},
		{oldClean: false, newClean: true, will: true},
		{oldClean: true, newClean: false, will: true},
		{oldClean: true, newClean: true, will: true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("old clean %v new clean %v", tc.oldClean, tc.newClean), func(t *testing.T) {
			b, addr := startBroker(t, tern.Options{})
			disc := watchDisconnects(t, b)
			watcher := mustConnect(t, addr, "watcher", true)
			watcher.subscribe(1, packets.Subscription{Filter: "st/#", QoS: 1})
			old := dialRaw(t, addr)
			require.Zero(t, old.connectWith(&packets.Connect{
				ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "dev", KeepAlive: 60, CleanSession: tc.oldClean,
				WillFlag: true, WillTopic: "st/dev", WillMessage: []byte("offline"),
			}).ReturnCode)
			next := dialRaw(t, addr)
			ack := next.connect("dev", tc.newClean)
			require.Zero(t, ack.ReturnCode)
			assert.Equal(t, !tc.oldClean && !tc.newClean, ack.SessionPresent)
			old.expectClosed()
			assert.ErrorIs(t, disc.wait(t, "dev"), tern.ErrTakenOver)
			require.NoError(t, b.Publish(context.Background(), "st/marker", []byte("m"), 0, false))
			p := watcher.recvPublish()
			if tc.will {
				require.Equal(t, "st/dev", p.Topic, "the will")
				p = watcher.recvPublish()
			}
			assert.Equal(t, "st/marker", p.Topic, "no will expected before the marker")
		})
	}
}
