package nats

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ternmq/tern/cluster/nats/internal/mqtttest"
	"github.com/ternmq/tern/packets"
)

// cutProxy forwards TCP connections to a NATS server until cut: then it
// closes them, and refuses new ones until restored.
type cutProxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{l: l, target: target, conns: make(map[net.Conn]bool)}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		l.Close()
		p.setCut(true)
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.l.Addr().String() }

func (p *cutProxy) accept() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		for _, pair := range [][2]net.Conn{{in, out}, {out, in}} {
			p.wg.Go(func() {
				io.Copy(pair[0], pair[1])
				pair[0].Close()
				pair[1].Close()
			})
		}
	}
}

// setCut cuts (closing every connection) or restores the link.
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
			delete(p.conns, c)
		}
	}
}

// A node whose link to NATS dropped may have missed messages for the
// offline sessions its broker keeps: when such a session resumes there,
// it gets them from the stream [MQTT-3.1.2-5] rather than the broker's
// copy, which lacks them.
func TestResumeAfterNATSDisconnect(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	require.NoError(t, err)
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	require.True(t, srv.ReadyForConnections(patience))
	proxy := newCutProxy(t, srv.Addr().String())

	cfg := func(name, addr string) Config {
		return Config{Name: name, URLs: []string{"nats://" + addr}, LeaseTTL: 4 * time.Second, ClockSkew: time.Microsecond, Logger: testLogger(t)}
	}
	a := &testNode{cfg: cfg("a", proxy.addr())}
	b := &testNode{cfg: cfg("b", srv.Addr().String())}
	for _, nd := range []*testNode{a, b} {
		nd.start(t)
		require.NotNil(t, nd.b, "node %s did not start", nd.cfg.Name)
		t.Cleanup(nd.stop)
	}

	// A persistent session, offline on a.
	dev, _ := dial(t, a, mqtttest.Options{ClientID: "d-dev"})
	_, err = dev.Subscribe("d/#", 1, patience)
	require.NoError(t, err)
	dev.Disconnect()

	// a loses NATS; a message for the session is published meanwhile.
	a.c.mu.Lock()
	epoch := a.c.epoch
	a.c.mu.Unlock()
	proxy.setCut(true)
	require.Eventually(t, func() bool {
		a.c.mu.Lock()
		defer a.c.mu.Unlock()
		return a.c.epoch > epoch
	}, patience, 10*time.Millisecond, "a did not notice the link dropped")
	pub, _ := dial(t, b, mqtttest.Options{ClientID: "d-pub", Clean: true})
	code, err := pub.Publish("d/missed", []byte("missed"), 1, false, patience)
	require.NoError(t, err)
	require.Less(t, byte(code), byte(0x80))

	proxy.setCut(false)
	require.Eventually(t, func() bool { return a.c.nc.IsConnected() && a.c.ncShared.IsConnected() }, patience, 10*time.Millisecond)
	var ack *packets.Connack
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		c, k, err := mqtttest.Dial(a.addr, mqtttest.Options{ClientID: "d-dev"}, patience)
		require.NoError(ct, err)
		dev, ack = c, k
	}, patience, 50*time.Millisecond)
	t.Cleanup(dev.Drop)
	assert.True(t, ack.SessionPresent, "[MQTT-3.2.2-2] session present")
	m, err := dev.Message(patience)
	require.NoError(t, err, "the message published while a was cut off")
	assert.Equal(t, "d/missed", m.Topic)
	assert.Equal(t, "missed", string(m.Payload))
}
