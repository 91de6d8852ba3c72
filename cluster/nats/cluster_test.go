package nats

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ternmq/tern"
	"github.com/ternmq/tern/cluster/nats/internal/mqtttest"
	"github.com/ternmq/tern/packets"
)

// wait is how long a test waits for what should happen at once: generous,
// for a loaded machine.
const patience = 20 * time.Second

// testNode is a broker of an in-process test cluster.
type testNode struct {
	b       *tern.Broker
	c       *Cluster
	addr    string // MQTT over TCP
	cfg     Config
	stopped bool
}

// freePorts returns n loopback TCP ports nothing listens on now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("TERN_CLUSTER_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startCluster starts n nodes with embedded NATS servers routed to each
// other, and closes them at the end of the test.
func startCluster(t *testing.T, n int) []*testNode {
	t.Helper()
	ports := freePorts(t, n)
	nodes := make([]*testNode, n)
	for i := range n {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		nodes[i] = &testNode{cfg: Config{
			Name:     fmt.Sprintf("n%d", i+1),
			LeaseTTL: 2 * time.Second,
			Logger:   testLogger(t),
			Embedded: &Embedded{
				StoreDir:      t.TempDir(),
				ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
				Routes:        routes,
			},
		}}
	}
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Go(func() { nd.start(t) })
	}
	wg.Wait()
	for _, nd := range nodes {
		require.NotNil(t, nd.b, "node %s did not start", nd.cfg.Name)
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Go(nd.stop)
		}
		wg.Wait()
	})
	return nodes
}

// start starts (or restarts) the node's broker on a new TCP port.
func (nd *testNode) start(t *testing.T) {
	c, err := New(nd.cfg)
	if !assert.NoError(t, err) {
		return
	}
	b, err := tern.New(tern.Options{Cluster: c, Logger: nd.cfg.Logger})
	if !assert.NoError(t, err) {
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if !assert.NoError(t, err) {
		b.Close(context.Background())
		return
	}
	go b.Serve(l)
	nd.b, nd.c, nd.addr, nd.stopped = b, c, l.Addr().String(), false
}

// stop closes the node's broker (and its NATS server).
func (nd *testNode) stop() {
	if nd.stopped || nd.b == nil {
		return
	}
	nd.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nd.b.Close(ctx)
}

// dial connects an MQTT client to nd, closed at the end of the test.
func dial(t *testing.T, nd *testNode, o mqtttest.Options) (*mqtttest.Client, *packets.Connack) {
	t.Helper()
	c, ack, err := mqtttest.Dial(nd.addr, o, patience)
	require.NoError(t, err)
	t.Cleanup(c.Drop)
	return c, ack
}

// probe publishes on topic from pub until sub receives it: the
// subscription has reached every NATS server. The probes received are
// dropped.
func probe(t *testing.T, pub, sub *mqtttest.Client, topic string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := pub.Publish(topic, []byte("probe"), 0, false, patience)
		require.NoError(t, err)
		_, err = sub.Message(50 * time.Millisecond)
		return err == nil
	}, patience, time.Millisecond)
	for {
		select {
		case <-sub.Messages():
		case <-time.After(200 * time.Millisecond):
			return
		}
	}
}

func TestMessagesCrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	sub, _ := dial(t, nodes[0], mqtttest.Options{ClientID: "sub", Clean: true})
	pub, _ := dial(t, nodes[2], mqtttest.Options{ClientID: "pub", Clean: true})
	_, err := sub.Subscribe("room/+/temp", 1, patience)
	require.NoError(t, err)
	probe(t, pub, sub, "room/probe/temp")
	for i := range 50 {
		_, err := pub.Publish(fmt.Sprintf("room/%d/temp", i), []byte{byte(i)}, byte(i%2), false, patience)
		require.NoError(t, err)
	}
	for i := range 50 {
		m, err := sub.Message(patience)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("room/%d/temp", i), m.Topic)
		assert.Equal(t, byte(i%2), m.QoS)
	}
}
