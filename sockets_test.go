package tern_test

import (
	"bytes"
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

// socketModes are the two ways the broker serves a *net.TCPListener's
// connections: Tern's own sockets (on Linux) and Go's *net.TCPConn
// (Options.StandardSockets, and every other system).
var socketModes = []struct {
	name string
	opts tern.Options
}{
	{"own sockets", tern.Options{}},
	{"standard sockets", tern.Options{StandardSockets: true}},
}

// Both kinds of sockets serve the same broker: the client's address as
// seen by hooks and Clients, idle connections with no goroutine (Linux),
// large messages to a subscriber that reads slowly, keepalive expiry of a
// parked client [MQTT-3.1.2-24], and the end of a client that goes away.
func TestSocketModesServeAlike(t *testing.T) {
	for _, mode := range socketModes {
		t.Run(mode.name, func(t *testing.T) {
			b, addr := startBroker(t, mode.opts)
			disc := watchDisconnects(t, b)

			sub := mustConnect(t, addr, "sub", true)
			sub.subscribe(1, packets.Subscription{Filter: "big/#", QoS: 1})
			info := clientInfo(t, b, "sub")
			remote, ok := info.RemoteAddr.(*net.TCPAddr)
			require.True(t, ok, "Client.RemoteAddr is a *net.TCPAddr, not %T", info.RemoteAddr)
			assert.Equal(t, sub.conn.LocalAddr().String(), remote.String(), "Client.RemoteAddr")

			if runtime.GOOS == "linux" {
				parked := goroutinesParked(runtime.NumGoroutine())
				idle := make([]*rawClient, 50)
				for i := range idle {
					idle[i] = mustConnect(t, addr, fmt.Sprintf("idle-%d", i), true)
				}
				eventually(t, "the idle connections to park", parked)
			}

			// Messages larger than the sockets' buffers: the broker's writes
			// wait for the subscriber, its reads for the rest of a packet.
			pub := mustConnect(t, addr, "pub", true)
			const n, size = 10, 900 << 10 // within the default MaxPacketSize
			payload := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, size) }
			sent := make(chan error, 1)
			go func() {
				var out []byte
				for i := range n {
					p := &packets.Publish{Topic: fmt.Sprintf("big/%d", i), QoS: 1, PacketID: uint16(i + 1), Payload: payload(i)}
					out, _ = p.Append(out)
				}
				_, err := pub.conn.Write(out)
				sent <- err
			}()
			for i := range n {
				p := sub.recvPublish()
				require.Equal(t, fmt.Sprintf("big/%d", i), p.Topic, "messages in order")
				require.True(t, bytes.Equal(payload(i), p.Payload), "%s arrives intact", p.Topic)
				sub.send(&packets.Puback{PacketID: p.PacketID})
			}
			require.NoError(t, <-sent, "the publisher's write")
			for range n {
				_, ok := pub.recv().(*packets.Puback)
				require.True(t, ok, "PUBACK")
			}

			start := time.Now()
			quiet := connectKeepAlive(t, addr, "quiet", 1)
			require.ErrorIs(t, disc.wait(t, "quiet"), tern.ErrKeepAliveTimeout, "a parked client past its keepalive")
			quiet.expectClosed()
			d := time.Since(start)
			assert.True(t, d >= keepAliveEarliest && d <= keepAliveLatest, "keepalive 1 s closed after %v, want about 1.5 s", d)

			require.NoError(t, pub.conn.Close())
			require.Error(t, disc.wait(t, "pub"), "a client that went away without DISCONNECT")
		})
	}
}

// A listener the application closes ends Serve with an error that wraps
// net.ErrClosed; the broker serves on and closes as usual.
func TestServeEndsWhenTheApplicationClosesTheListener(t *testing.T) {
	for _, mode := range socketModes {
		t.Run(mode.name, func(t *testing.T) {
			b, err := tern.New(mode.opts)
			require.NoError(t, err)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			served := make(chan error, 1)
			go func() { served <- b.Serve(l) }()
			c := mustConnect(t, l.Addr().String(), "c", true)
			require.NoError(t, l.Close())
			select {
			case err := <-served:
				require.ErrorIs(t, err, net.ErrClosed, "Serve's return")
			case <-time.After(waitTimeout):
				require.FailNow(t, "Serve did not return")
			}
			c.send(&packets.Pingreq{})
			_, ok := c.recv().(*packets.Pingresp)
			assert.True(t, ok, "a connection of the closed listener goes on")
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			require.NoError(t, b.Close(ctx))
		})
	}
}

// On Tern's own sockets (Linux), a connection whose CONNECT has not come
// holds no goroutine: it waits parked, under its connect timeout
// [MQTT-3.1.0-1], so a flood of connections that send nothing costs no
// goroutine stacks. Each is answered once its CONNECT arrives.
func TestConnectionsWaitingForCONNECTHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Tern's own sockets, which park before CONNECT, are Linux's")
	}
	_, addr := startBroker(t, tern.Options{ConnectTimeout: time.Minute})
	parked := goroutinesParked(runtime.NumGoroutine())
	const n = 200
	silent := make([]*rawClient, n)
	for i := range silent {
		silent[i] = dialRaw(t, addr)
	}
	eventually(t, "the connections waiting for their CONNECT to park", parked)
	for i, c := range silent {
		ack := c.connect(fmt.Sprintf("late-%d", i), true)
		require.Zero(t, ack.ReturnCode, "CONNACK of a CONNECT that came late")
	}
	for _, c := range silent {
		c.send(&packets.Pingreq{})
		_, ok := c.recv().(*packets.Pingresp)
		require.True(t, ok, "PINGRESP")
	}
}

// Connections come and go by the hundred, half of them reset by their
// clients, while subscribers receive a stream of QoS 1 messages: the
// descriptor numbers of the connections that ended are reused by new ones
// at once, and every subscriber still gets its own messages, all of them,
// in order, and nobody else's.
func TestSocketChurnKeepsMessagesWithTheirClients(t *testing.T) {
	for _, mode := range socketModes {
		t.Run(mode.name, func(t *testing.T) {
			_, addr := startBroker(t, mode.opts)
			const subs, msgs, minChurn = 8, 2000, 300
			readers := make([]*rawClient, subs)
			for i := range readers {
				readers[i] = mustConnect(t, addr, fmt.Sprintf("reader-%d", i), true)
				readers[i].subscribe(1, packets.Subscription{Filter: fmt.Sprintf("own/%d", i), QoS: 1})
			}

			// The churn: until the readers are done, and at least
			// minChurn connections.
			done := make(chan struct{})
			churned := make(chan int, 1)
			go func() {
				n := 0
				for {
					select {
					case <-done:
						if n >= minChurn {
							churned <- n
							return
						}
					default:
					}
					nc, err := net.Dial("tcp", addr)
					if err != nil {
						churned <- -1
						return
					}
					b, err := (&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, ClientID: fmt.Sprintf("churn-%d", n), KeepAlive: 30}).Append(nil)
					if err != nil {
						churned <- -1
						return
					}
					if n%3 != 2 { // a third send nothing before they go
						_, _ = nc.Write(b)
					}
					if n%2 == 0 {
						_ = nc.(*net.TCPConn).SetLinger(0) // a reset, not a FIN
					}
					nc.Close()
					n++
				}
			}()

			// The readers check each message as it comes.
			errs := make(chan error, subs)
			for i, r := range readers {
				go func() {
					for m := range msgs {
						p, err := r.tryRecv(waitTimeout)
						if err != nil {
							errs <- fmt.Errorf("reader %d, message %d: %w", i, m, err)
							return
						}
						pub, ok := p.(*packets.Publish)
						want := fmt.Sprintf("%d:%d", i, m)
						if !ok || pub.Topic != fmt.Sprintf("own/%d", i) || string(pub.Payload) != want {
							errs <- fmt.Errorf("reader %d got %v, want own/%d %q", i, p, i, want)
							return
						}
						b, _ := (&packets.Puback{PacketID: pub.PacketID}).Append(nil)
						if _, err := r.conn.Write(b); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}

			pub := mustConnect(t, addr, "pub", true)
			acked := make(chan error, 1)
			go func() {
				for range msgs * subs {
					p, err := pub.tryRecv(waitTimeout)
					if _, ok := p.(*packets.Puback); err != nil || !ok {
						acked <- fmt.Errorf("PUBACK: got %v, %v", p, err)
						return
					}
				}
				acked <- nil
			}()
			var out []byte
			for m := range msgs {
				for i := range subs {
					out, _ = (&packets.Publish{Topic: fmt.Sprintf("own/%d", i), QoS: 1, PacketID: uint16((m*subs+i)%65535 + 1),
						Payload: fmt.Appendf(nil, "%d:%d", i, m)}).Append(out[:0])
					_, err := pub.conn.Write(out)
					require.NoError(t, err, "publish")
				}
			}
			for range subs {
				require.NoError(t, <-errs)
			}
			require.NoError(t, <-acked)
			close(done)
			n := <-churned
			require.GreaterOrEqual(t, n, minChurn, "connections that came and went meanwhile")
			t.Logf("%d connections came and went", n)
		})
	}
}

// On Tern's own sockets (Linux), a connection that has sent part of a
// packet, its CONNECT or a PUBLISH, and not the rest holds no goroutine:
// it parks with what it has read, and the packet is whole once the rest
// comes.
func TestConnectionsStalledHalfwayThroughAPacketHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Tern's own sockets, which park halfway through a packet, are Linux's")
	}
	_, addr := startBroker(t, tern.Options{ConnectTimeout: time.Minute})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "half/#", QoS: 0})
	parked := goroutinesParked(runtime.NumGoroutine())
	const n = 100

	connecting := make([]*rawClient, n)
	connects := make([][]byte, n)
	for i := range connecting {
		connecting[i] = dialRaw(t, addr)
		var err error
		connects[i], err = (&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, ClientID: fmt.Sprintf("half-%d", i), KeepAlive: 60}).Append(nil)
		require.NoError(t, err, "encode CONNECT")
		connecting[i].sendRaw(connects[i][:len(connects[i])/2])
	}
	eventually(t, "connections with half a CONNECT to park", parked)
	for i, c := range connecting {
		c.sendRaw(connects[i][len(connects[i])/2:])
		ack, ok := c.recv().(*packets.Connack)
		require.True(t, ok, "CONNACK")
		require.Zero(t, ack.ReturnCode, "CONNACK of a CONNECT sent in two halves")
	}

	publishes := make([][]byte, n)
	for i, c := range connecting {
		var err error
		publishes[i], err = (&packets.Publish{Topic: fmt.Sprintf("half/%d", i), Payload: bytes.Repeat([]byte{byte(i)}, 300)}).Append(nil)
		require.NoError(t, err, "encode PUBLISH")
		c.sendRaw(publishes[i][:len(publishes[i])/2])
	}
	eventually(t, "connections with half a PUBLISH to park", parked)
	for i, c := range connecting {
		c.sendRaw(publishes[i][len(publishes[i])/2:])
	}
	got := make(map[string][]byte, n)
	for range n {
		p := sub.recvPublish()
		got[p.Topic] = p.Payload
	}
	for i := range n {
		assert.Equal(t, bytes.Repeat([]byte{byte(i)}, 300), got[fmt.Sprintf("half/%d", i)], "half/%d arrives whole", i)
	}
}
