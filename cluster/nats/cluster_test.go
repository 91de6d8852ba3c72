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
	ports, err := mqtttest.FreePorts(n)
	require.NoError(t, err)
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
			// One clock: a session resumed elsewhere gets no more than
			// what it missed.
			ClockSkew: time.Microsecond,
			Logger:    testLogger(t),
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

// probe waits until sub's subscription to topic has reached every node
// (mqtttest.Probe).
func probe(t *testing.T, pub, sub *mqtttest.Client, topic string) {
	t.Helper()
	require.NoError(t, mqtttest.Probe(pub, sub, topic, patience))
}

// TestCluster runs the in-process checks on one three-node cluster; each
// uses its own topics and client identifiers.
func TestCluster(t *testing.T) {
	nodes := startCluster(t, 3)
	t.Run("messages cross nodes", func(t *testing.T) { testMessagesCrossNodes(t, nodes) })
	t.Run("overlapping filters deliver once", func(t *testing.T) { testOverlapOnce(t, nodes) })
	t.Run("retained", func(t *testing.T) { testRetained(t, nodes) })
	t.Run("shared subscriptions", func(t *testing.T) { testShared(t, nodes) })
	t.Run("takeover", func(t *testing.T) { testTakeover(t, nodes) })
	t.Run("session moves", func(t *testing.T) { testSessionMoves(t, nodes) })
	t.Run("in-process API", func(t *testing.T) { testInProcess(t, nodes) })
	t.Run("records read from the leader", func(t *testing.T) { testLeaderReads(t, nodes) })
}

// The session records and the leases are read from their bucket's leader:
// a direct get, which any replica may answer, could return a record older
// than the node's own last write.
func testLeaderReads(t *testing.T, nodes []*testNode) {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for _, bucket := range []string{"tern-sessions", "tern-nodes"} {
		st, err := nodes[0].c.js.Stream(ctx, "KV_"+bucket)
		require.NoError(t, err)
		assert.False(t, st.CachedInfo().Config.AllowDirect, "direct gets on %s", bucket)
	}
}

func testMessagesCrossNodes(t *testing.T, nodes []*testNode) {
	sub, _ := dial(t, nodes[0], mqtttest.Options{ClientID: "x-sub", Clean: true})
	pub, _ := dial(t, nodes[2], mqtttest.Options{ClientID: "x-pub", Clean: true})
	_, err := sub.Subscribe("room/+/temp", 1, patience)
	require.NoError(t, err)
	probe(t, pub, sub, "room/probe/temp")
	for i := range 50 {
		_, err := pub.Publish(fmt.Sprintf("room/%d/temp", i), []byte{byte(i)}, byte(i%2), false, patience)
		require.NoError(t, err)
	}
	for i := range 50 {
		m, err := sub.MessageNotOn("room/probe/temp", patience)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("room/%d/temp", i), m.Topic)
		assert.Equal(t, byte(i%2), m.QoS)
	}
	// A topic that needs escaping crosses unchanged.
	_, err = sub.Subscribe("esc/#", 0, patience)
	require.NoError(t, err)
	probe(t, pub, sub, "esc/probe")
	for _, topic := range []string{"esc/a.b c", "esc//x/", "esc/ü/*>", "esc"} {
		_, err := pub.Publish(topic, []byte("x"), 0, false, patience)
		require.NoError(t, err)
		m, err := sub.MessageNotOn("esc/probe", patience)
		require.NoError(t, err)
		assert.Equal(t, topic, m.Topic)
	}
}

// [MQTT-3.3.5-1] one copy per client even when its subscriptions overlap,
// though the node then holds two NATS subscriptions that both match.
func testOverlapOnce(t *testing.T, nodes []*testNode) {
	sub, _ := dial(t, nodes[1], mqtttest.Options{ClientID: "o-sub", Clean: true})
	other, _ := dial(t, nodes[1], mqtttest.Options{ClientID: "o-other", Clean: true})
	pub, _ := dial(t, nodes[0], mqtttest.Options{ClientID: "o-pub", Clean: true})
	_, err := sub.Subscribe("ov/#", 1, patience)
	require.NoError(t, err)
	_, err = other.Subscribe("ov/a/+", 1, patience)
	require.NoError(t, err)
	probe(t, pub, other, "ov/a/probe")
	probe(t, pub, sub, "ov/a/probe")
	_, err = pub.Publish("ov/a/b", []byte("once"), 1, false, patience)
	require.NoError(t, err)
	for _, c := range []*mqtttest.Client{sub, other} {
		m, err := c.MessageNotOn("ov/a/probe", patience)
		require.NoError(t, err)
		assert.Equal(t, "once", string(m.Payload))
		_, err = c.MessageNotOn("ov/a/probe", 300*time.Millisecond)
		assert.Error(t, err, "a second copy")
	}
}

// [MQTT-3.3.1-5, MQTT-3.3.1-6, MQTT-3.3.1-10] retained messages are the
// cluster's: set on one node, sent on subscription on another, cleared
// everywhere by an empty one.
func testRetained(t *testing.T, nodes []*testNode) {
	pub, _ := dial(t, nodes[0], mqtttest.Options{ClientID: "r-pub", Clean: true})
	_, err := pub.Publish("ret/a/state", []byte("on"), 1, true, patience)
	require.NoError(t, err)
	_, err = pub.Publish("ret/b/state", []byte("off"), 0, true, patience)
	require.NoError(t, err)
	for _, nd := range nodes[1:] {
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			c, _, err := mqtttest.Dial(nd.addr, mqtttest.Options{ClientID: "r-sub-" + nd.cfg.Name, Clean: true}, patience)
			require.NoError(ct, err)
			defer c.Drop()
			_, err = c.Subscribe("ret/+/state", 1, patience)
			require.NoError(ct, err)
			got := map[string]string{}
			for range 2 {
				m, err := c.Message(time.Second)
				require.NoError(ct, err)
				assert.True(ct, m.Retain)
				got[m.Topic] = string(m.Payload)
			}
			assert.Equal(ct, map[string]string{"ret/a/state": "on", "ret/b/state": "off"}, got)
		}, patience, 50*time.Millisecond)
	}
	_, err = pub.Publish("ret/a/state", nil, 1, true, patience)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		c, _, err := mqtttest.Dial(nodes[2].addr, mqtttest.Options{ClientID: "r-sub-clear", Clean: true}, patience)
		require.NoError(ct, err)
		defer c.Drop()
		_, err = c.Subscribe("ret/a/state", 1, patience)
		require.NoError(ct, err)
		_, err = c.Message(300 * time.Millisecond)
		assert.Error(ct, err, "cleared retained message still sent")
	}, patience, 50*time.Millisecond)
}

// [v5 MQTT-4.8.2-2] each message of a shared subscription goes to one
// member, whichever node it is on, the publisher's included.
func testShared(t *testing.T, nodes []*testNode) {
	var members []*mqtttest.Client
	for i, nd := range nodes {
		c, _ := dial(t, nd, mqtttest.Options{ClientID: fmt.Sprintf("s-member-%d", i), Clean: true, V5: true})
		_, err := c.Subscribe("$share/workers/jobs/#", 1, patience)
		require.NoError(t, err)
		members = append(members, c)
	}
	pub, _ := dial(t, nodes[0], mqtttest.Options{ClientID: "s-pub", Clean: true})
	// Wait until every member's node has joined the group.
	seen := map[int]bool{}
	require.Eventually(t, func() bool {
		_, err := pub.Publish("jobs/probe", []byte("probe"), 0, false, patience)
		require.NoError(t, err)
		for i, m := range members {
			select {
			case <-m.Messages():
				seen[i] = true
			default:
			}
		}
		return len(seen) == len(members)
	}, patience, 5*time.Millisecond)
	for _, m := range members {
		for len(m.Messages()) > 0 {
			<-m.Messages()
		}
	}
	const n = 60
	for i := range n {
		_, err := pub.Publish("jobs/x", []byte(fmt.Sprint(i)), 1, false, patience)
		require.NoError(t, err)
	}
	got := map[string]int{}
	require.Eventually(t, func() bool {
		for _, m := range members {
			for len(m.Messages()) > 0 {
				p := <-m.Messages()
				if string(p.Payload) != "probe" {
					got[string(p.Payload)]++
				}
			}
		}
		return len(got) == n
	}, patience, 10*time.Millisecond)
	for k, v := range got {
		assert.Equal(t, 1, v, "message %s delivered %d times", k, v)
	}
}

// [MQTT-3.1.4-2] a CONNECT with a client identifier a connection on
// another node holds closes that connection.
func testTakeover(t *testing.T, nodes []*testNode) {
	old, _ := dial(t, nodes[0], mqtttest.Options{ClientID: "t-dev", Clean: true, V5: true})
	start := time.Now()
	dial(t, nodes[1], mqtttest.Options{ClientID: "t-dev", Clean: true, V5: true})
	select {
	case <-old.Done():
	case <-time.After(patience):
		t.Fatal("the old connection is still open")
	}
	t.Logf("old connection closed after %s", time.Since(start))
	// Two clients racing for one identifier: one wins.
	var addrs []string
	var opts []mqtttest.Options
	for i := range 6 {
		addrs = append(addrs, nodes[i%3].addr)
		opts = append(opts, mqtttest.Options{ClientID: "t-race", Clean: i%2 == 0})
	}
	clients := mqtttest.DialAll(addrs, opts, patience)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 1, mqtttest.Open(clients), "connections left open for one identifier")
	}, patience, 20*time.Millisecond)
	for _, c := range clients {
		if c != nil {
			c.Drop()
		}
	}
}

// A persistent session moves between nodes: its subscriptions, and the
// QoS 1 messages published while it was offline [MQTT-3.1.2-5].
func testSessionMoves(t *testing.T, nodes []*testNode) {
	c, ack := dial(t, nodes[0], mqtttest.Options{ClientID: "m-dev", Clean: true})
	assert.False(t, ack.SessionPresent)
	c.Disconnect()
	c, ack = dial(t, nodes[0], mqtttest.Options{ClientID: "m-dev"})
	assert.False(t, ack.SessionPresent)
	_, err := c.Subscribe("move/#", 1, patience)
	require.NoError(t, err)
	c.Disconnect()
	pub, _ := dial(t, nodes[2], mqtttest.Options{ClientID: "m-pub", Clean: true})
	for i := range 20 {
		_, err := pub.Publish(fmt.Sprintf("move/%d", i), []byte(fmt.Sprint(i)), 1, false, patience)
		require.NoError(t, err)
	}
	c, ack = dial(t, nodes[1], mqtttest.Options{ClientID: "m-dev"})
	assert.True(t, ack.SessionPresent, "[MQTT-3.2.2-2] the session moved")
	got := map[string]bool{}
	for len(got) < 20 {
		m, err := c.Message(patience)
		require.NoError(t, err, "got %d of 20", len(got))
		got[string(m.Payload)] = true
	}
	// The subscription moved too: a live message arrives.
	probe(t, pub, c, "move/live")
	c.Disconnect()
	// And back, resuming on the first node: nothing more is owed.
	c, ack = dial(t, nodes[0], mqtttest.Options{ClientID: "m-dev"})
	assert.True(t, ack.SessionPresent)
	m, err := c.Message(500 * time.Millisecond)
	assert.Error(t, err, "unexpected %v", m)
	c.Disconnect()
	c, ack = dial(t, nodes[0], mqtttest.Options{ClientID: "m-dev", Clean: true})
	assert.False(t, ack.SessionPresent, "[MQTT-3.1.2-6] clean session discards it")
	c.Disconnect()
}

// The application's own publishes and subscriptions cross nodes too.
func testInProcess(t *testing.T, nodes []*testNode) {
	got := make(chan tern.Message, 10)
	cancel, err := nodes[0].b.Subscribe("app/#", tern.SubscribeOptions{QoS: 1}, func(m tern.Message, _ tern.Client) { got <- m })
	require.NoError(t, err)
	defer cancel()
	require.Eventually(t, func() bool {
		require.NoError(t, nodes[1].b.Publish(context.Background(), "app/probe", []byte("x"), 0, false))
		select {
		case <-got:
			return true
		case <-time.After(50 * time.Millisecond):
			return false
		}
	}, patience, time.Millisecond)
	require.NoError(t, nodes[2].b.Publish(context.Background(), "app/q1", []byte("one"), 1, false))
	require.Eventually(t, func() bool {
		select {
		case m := <-got:
			return m.Topic == "app/q1"
		default:
			return false
		}
	}, patience, time.Millisecond)
}
