package tern_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// waitTimeout bounds every wait in these tests; nothing sleeps.
const waitTimeout = 5 * time.Second

// startBroker starts a broker on a TCP loopback listener and closes it at
// cleanup, failing the test if goroutines were left behind.
func startBroker(t testing.TB, opts tern.Options) (*tern.Broker, string) {
	t.Helper()
	before := runtime.NumGoroutine()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveBroker(t, before, opts, l), l.Addr().String()
}

// startBrokerOn is startBroker with a listener chosen by the test.
func startBrokerOn(t testing.TB, opts tern.Options, l net.Listener) *tern.Broker {
	t.Helper()
	return serveBroker(t, runtime.NumGoroutine(), opts, l)
}

// serveBroker starts a broker with hooks serving l ($SYS off unless opts
// set an interval). At cleanup it closes the broker and checks that Serve
// returned ErrClosed and that the goroutine count is back to before.
func serveBroker(t testing.TB, before int, opts tern.Options, l net.Listener, hooks ...any) *tern.Broker {
	t.Helper()
	if opts.SysInterval == 0 {
		opts.SysInterval = -1
	}
	b, err := tern.New(opts)
	if err != nil {
		l.Close()
		t.Fatalf("New: %v", err)
	}
	for _, h := range hooks {
		if err := b.AddHook(h); err != nil {
			t.Fatal(err)
		}
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, tern.ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
		waitGoroutines(t, before)
	})
	return b
}

// waitGoroutines polls until the goroutine count is back to at most n.
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines left behind: %d, want <= %d\n%s", runtime.NumGoroutine(), n, buf)
			return
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval
	}
}

// rawClient speaks MQTT packet by packet, so tests can send anything and
// check exactly what the broker answers.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *packets.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, conn: nc, r: packets.NewReader(nc, 0)}
}

func (c *rawClient) sendRaw(b []byte) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) send(p packets.Packet) {
	c.t.Helper()
	b, err := p.Append(nil)
	if err != nil {
		c.t.Fatalf("encode %v: %v", p.Type(), err)
	}
	c.sendRaw(b)
}

// recv reads the next packet, failing the test after waitTimeout.
func (c *rawClient) recv() packets.Packet {
	c.t.Helper()
	p, err := c.tryRecv(waitTimeout)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return p
}

func (c *rawClient) tryRecv(d time.Duration) (packets.Packet, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadPacket()
}

// expectClosed waits for the broker to close the connection, failing if a
// packet arrives instead.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	p, err := c.tryRecv(waitTimeout)
	if err == nil {
		c.t.Fatalf("expected the connection to close, got %v %+v", p.Type(), p)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		c.t.Fatalf("expected the connection to close, got error %v", err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "closed"))
}

// expectNothing checks that no packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	p, err := c.tryRecv(d)
	if err == nil {
		c.t.Fatalf("expected no packet, got %v %+v", p.Type(), p)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("expected silence, got error %v", err)
	}
	// A read deadline that fired mid-packet would corrupt the stream; these
	// tests only use expectNothing when the broker is silent.
}

func (c *rawClient) connect(id string, clean bool) *packets.Connack {
	c.t.Helper()
	return c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: clean, KeepAlive: 60})
}

func (c *rawClient) connectWith(p *packets.Connect) *packets.Connack {
	c.t.Helper()
	c.send(p)
	ack, ok := c.recv().(*packets.Connack)
	if !ok {
		c.t.Fatalf("expected CONNACK")
	}
	return ack
}

// mustConnect dials and connects, requiring CONNACK 0.
func mustConnect(t testing.TB, addr, id string, clean bool) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	if ack := c.connect(id, clean); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK return code %d", ack.ReturnCode)
	}
	return c
}

func (c *rawClient) subscribe(id uint16, subs ...packets.Subscription) *packets.Suback {
	c.t.Helper()
	c.send(&packets.Subscribe{PacketID: id, Subscriptions: subs})
	p := c.recv()
	ack, ok := p.(*packets.Suback)
	if !ok {
		c.t.Fatalf("expected SUBACK, got %v", p.Type())
	}
	return ack
}

func (c *rawClient) recvPublish() *packets.Publish {
	c.t.Helper()
	p := c.recv()
	pub, ok := p.(*packets.Publish)
	if !ok {
		c.t.Fatalf("expected PUBLISH, got %v %+v", p.Type(), p)
	}
	return pub
}

// publishQoS publishes and completes the QoS handshake as a client.
func (c *rawClient) publishQoS(id uint16, topic, payload string, qos byte, retain bool) {
	c.t.Helper()
	p := &packets.Publish{Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain}
	if qos > 0 {
		p.PacketID = id
	}
	c.send(p)
	switch qos {
	case 1:
		if ack, ok := c.recv().(*packets.Puback); !ok || ack.PacketID != id {
			c.t.Fatalf("expected PUBACK %d", id)
		}
	case 2:
		if rec, ok := c.recv().(*packets.Pubrec); !ok || rec.PacketID != id {
			c.t.Fatalf("expected PUBREC %d", id)
		}
		c.send(&packets.Pubrel{PacketID: id})
		if comp, ok := c.recv().(*packets.Pubcomp); !ok || comp.PacketID != id {
			c.t.Fatalf("expected PUBCOMP %d", id)
		}
	}
}

// clientInfo returns the Broker.Clients entry of client id.
func clientInfo(t testing.TB, b *tern.Broker, id string) tern.ClientInfo {
	t.Helper()
	for _, ci := range b.Clients() {
		if ci.ID == id {
			return ci
		}
	}
	t.Fatalf("client %q not in Clients()", id)
	return tern.ClientInfo{}
}
