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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	require.NoError(t, err)
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
	}
	require.NoError(t, err, "New")
	for _, h := range hooks {
		require.NoError(t, b.AddHook(h), "AddHook")
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		assert.NoError(t, b.Close(ctx), "Close")
		assert.ErrorIs(t, <-served, tern.ErrClosed, "Serve's return")
		waitGoroutines(t, before)
	})
	return b
}

// waitGoroutines waits until the goroutine count is back to at most n,
// and on failure prints every goroutine's stack to show what was left.
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	// Eventually runs the condition on a goroutine of its own: that one is
	// the measurement's, not left behind, so it does not count.
	back := func() bool { return runtime.NumGoroutine()-1 <= n }
	if !assert.Eventually(t, back, waitTimeout, 5*time.Millisecond, "goroutines left behind: want <= %d", n) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Logf("%d goroutines:\n%s", runtime.NumGoroutine(), buf)
	}
}

// eventually waits, failing the test after waitTimeout, until cond holds.
// cond runs on a goroutine of its own, so it must not call t.FailNow.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, waitTimeout, 2*time.Millisecond, "timed out waiting for %s", what)
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
	require.NoError(t, err, "dial")
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, conn: nc, r: packets.NewReader(nc, 0)}
}

func (c *rawClient) sendRaw(b []byte) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	_, err := c.conn.Write(b)
	require.NoError(c.t, err, "write")
}

func (c *rawClient) send(p packets.Packet) {
	c.t.Helper()
	b, err := p.Append(nil)
	require.NoError(c.t, err, "encode %v", p.Type())
	c.sendRaw(b)
}

// recv reads the next packet, failing the test after waitTimeout.
func (c *rawClient) recv() packets.Packet {
	c.t.Helper()
	p, err := c.tryRecv(waitTimeout)
	require.NoError(c.t, err, "recv")
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
		require.Failf(c.t, "expected the connection to close", "got %v %+v", p.Type(), p)
	}
	require.True(c.t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err),
		"expected the connection to close, got error %v", err)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "closed"))
}

// expectNothing checks that no packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	p, err := c.tryRecv(d)
	if err == nil {
		require.Failf(c.t, "expected no packet", "got %v %+v", p.Type(), p)
	}
	var ne net.Error
	require.True(c.t, errors.As(err, &ne) && ne.Timeout(), "expected silence, got error %v", err)
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
	got := c.recv()
	ack, ok := got.(*packets.Connack)
	require.True(c.t, ok, "expected CONNACK, got %v %+v", got.Type(), got)
	return ack
}

// mustConnect dials and connects, requiring CONNACK 0.
func mustConnect(t testing.TB, addr, id string, clean bool) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	require.Zero(t, c.connect(id, clean).ReturnCode, "CONNACK return code of %s", id)
	return c
}

func (c *rawClient) subscribe(id uint16, subs ...packets.Subscription) *packets.Suback {
	c.t.Helper()
	c.send(&packets.Subscribe{PacketID: id, Subscriptions: subs})
	p := c.recv()
	ack, ok := p.(*packets.Suback)
	require.True(c.t, ok, "expected SUBACK, got %v", p.Type())
	return ack
}

func (c *rawClient) recvPublish() *packets.Publish {
	c.t.Helper()
	p := c.recv()
	pub, ok := p.(*packets.Publish)
	require.True(c.t, ok, "expected PUBLISH, got %v %+v", p.Type(), p)
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
		ack, ok := c.recv().(*packets.Puback)
		require.True(c.t, ok && ack.PacketID == id, "expected PUBACK %d", id)
	case 2:
		rec, ok := c.recv().(*packets.Pubrec)
		require.True(c.t, ok && rec.PacketID == id, "expected PUBREC %d", id)
		c.send(&packets.Pubrel{PacketID: id})
		comp, ok := c.recv().(*packets.Pubcomp)
		require.True(c.t, ok && comp.PacketID == id, "expected PUBCOMP %d", id)
	}
}

// clientInfo returns the Broker.Clients entry of client id, failing the
// test if there is none.
func clientInfo(t testing.TB, b *tern.Broker, id string) tern.ClientInfo {
	t.Helper()
	ci, ok := findClient(b, id)
	require.True(t, ok, "client %q not in Clients()", id)
	return ci
}

// findClient returns the Broker.Clients entry of client id, if any. Unlike
// clientInfo it does not fail the test, so an eventually condition (which
// runs on a goroutine of its own) may call it.
func findClient(b *tern.Broker, id string) (tern.ClientInfo, bool) {
	for _, ci := range b.Clients() {
		if ci.ID == id {
			return ci, true
		}
	}
	return tern.ClientInfo{}, false
}
