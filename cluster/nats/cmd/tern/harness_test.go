package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ternmq/tern/cluster/nats/internal/mqtttest"
	"github.com/ternmq/tern/packets"
)

// The acceptance tests run the clustered tern binary as separate
// processes on loopback, each node with its embedded NATS server, and
// talk to them as MQTT clients do.

// patience bounds every wait: generous, for a loaded machine.
const patience = 30 * time.Second

// lease is the nodes' -cluster-lease: short, so that a test waits little
// for a killed node's identifiers.
const lease = 2 * time.Second

// ternBin is the clustered binary TestMain builds.
var ternBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tern-cluster-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ternBin = filepath.Join(dir, "tern")
	// Without -race: the nodes' latency is measured (acceptance test 1),
	// and three race-instrumented brokers would crowd a small machine.
	out, err := exec.Command("go", "build", "-o", ternBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the clustered tern: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// logs is a process's standard error, kept for waiting on lines and for
// failure reports.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// withoutNATSNotices is the log without the NATS server's lines below
// warning level (its errors are logged as warnings, its fatal errors as
// errors).
func (l *logs) withoutNATSNotices() string {
	var b strings.Builder
	for line := range strings.Lines(l.String()) {
		if !strings.Contains(line, "component=nats-server") ||
			strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// count is how many lines hold every one of subs.
func (l *logs) count(subs ...string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// node is one tern process of a test cluster.
type node struct {
	name        string
	mqtt, route string
	store       string
	routes      []string
	cmd         *exec.Cmd
	logs        *logs
	done        chan struct{}
	starts      int
}

// newNodes lays out n nodes (ports, store directories); start starts them.
func newNodes(t testing.TB, n int) []*node {
	t.Helper()
	ports, err := mqtttest.FreePorts(2 * n)
	require.NoError(t, err)
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = &node{
			name:  fmt.Sprintf("n%d", i+1),
			mqtt:  fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			route: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
			store: t.TempDir(),
		}
	}
	for _, nd := range nodes {
		for _, o := range nodes {
			if o != nd {
				nd.routes = append(nd.routes, o.route)
			}
		}
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.stop(t)
		}
		if t.Failed() {
			for _, nd := range nodes {
				if nd.logs != nil {
					t.Logf("--- log of %s, with only the NATS server's errors ---\n%s", nd.name, lastLines(nd.logs.withoutNATSNotices(), 80))
				}
			}
		}
	})
	return nodes
}

// startAll starts the nodes together (JetStream needs a quorum) and waits
// until each serves MQTT.
func startAll(t testing.TB, nodes ...*node) {
	t.Helper()
	for _, nd := range nodes {
		nd.spawn(t)
	}
	for _, nd := range nodes {
		nd.waitReady(t)
	}
}

// spawn starts the node's process.
func (nd *node) spawn(t testing.TB) {
	t.Helper()
	nd.starts++
	nd.logs = &logs{}
	args := []string{
		"-tcp", nd.mqtt,
		"-cluster-embedded", "-cluster-name", nd.name,
		"-cluster-store", nd.store,
		"-cluster-lease", lease.String(),
		"-cluster-timeout", "2s",
		"-cluster-clock-skew", "1ms",
	}
	if len(nd.routes) > 0 {
		args = append(args, "-cluster-listen", nd.route, "-cluster-routes", strings.Join(nd.routes, ","))
	}
	nd.cmd = exec.Command(ternBin, args...)
	nd.cmd.Stderr = nd.logs
	nd.cmd.Stdout = nd.logs
	require.NoError(t, nd.cmd.Start())
	nd.done = make(chan struct{})
	cmd, done := nd.cmd, nd.done
	go func() {
		cmd.Wait()
		close(done)
	}()
}

// waitReady waits until the node has joined and serves MQTT.
func (nd *node) waitReady(t testing.TB) {
	t.Helper()
	require.Eventually(t, func() bool {
		select {
		case <-nd.done:
			require.FailNow(t, "node exited", "%s:\n%s", nd.name, nd.logs.String())
		default:
		}
		return nd.logs.count(`msg="serving MQTT"`) > 0
	}, 2*patience, 20*time.Millisecond, "node %s did not start:\n%s", nd.name, lastLines(nd.logs.String(), 40))
}

// kill ends the process with SIGKILL: no goodbye to the cluster.
func (nd *node) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, nd.cmd.Process.Signal(syscall.SIGKILL))
	<-nd.done
}

// stop ends the process with SIGTERM (a clean shutdown), and kills it if
// it does not end in time. Stopping a stopped node does nothing.
func (nd *node) stop(t testing.TB) {
	if nd.cmd == nil {
		return
	}
	select {
	case <-nd.done:
		return
	default:
	}
	nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.done:
	case <-time.After(patience):
		t.Errorf("node %s did not stop on SIGTERM", nd.name)
		nd.cmd.Process.Kill()
		<-nd.done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dial connects a client to nd, dropped at the end of the test.
func dial(t testing.TB, nd *node, o mqtttest.Options) (*mqtttest.Client, *packets.Connack) {
	t.Helper()
	c, ack, err := mqtttest.Dial(nd.mqtt, o, patience)
	require.NoError(t, err, "connecting to %s", nd.name)
	t.Cleanup(c.Drop)
	return c, ack
}

// dialEventually connects to nd, trying again while the node refuses
// with "server unavailable" (the cluster is settling).
func dialEventually(t testing.TB, nd *node, o mqtttest.Options) (*mqtttest.Client, *packets.Connack) {
	t.Helper()
	var c *mqtttest.Client
	var ack *packets.Connack
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var err error
		c, ack, err = mqtttest.Dial(nd.mqtt, o, patience)
		require.NoError(ct, err)
	}, patience, 100*time.Millisecond, "connecting %s to %s", o.ClientID, nd.name)
	t.Cleanup(c.Drop)
	return c, ack
}

// probe waits until sub's subscription to topic has reached every node
// (mqtttest.Probe).
func probe(t testing.TB, pub, sub *mqtttest.Client, topic string) {
	t.Helper()
	require.NoError(t, mqtttest.Probe(pub, sub, topic, patience))
}

// publishAcked publishes payload on topic at QoS 1 from an MQTT 5 client
// of nd, as a client does whose message is not acknowledged: again (PUBACK
// 0x80 while the cluster elects a new leader), reconnecting if the
// connection ended. *c is the client, replaced when it reconnects.
func publishAcked(t testing.TB, nd *node, c **mqtttest.Client, id, topic string, payload []byte) {
	t.Helper()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		if *c == nil {
			nc, _, err := mqtttest.Dial(nd.mqtt, mqtttest.Options{ClientID: id, Clean: true, V5: true}, patience)
			require.NoError(ct, err)
			*c = nc
		}
		code, err := (*c).Publish(topic, payload, 1, false, patience)
		if err != nil {
			(*c).Drop()
			*c = nil
		}
		require.NoError(ct, err)
		require.Less(ct, byte(code), byte(0x80), "PUBACK 0x%02x", byte(code))
	}, patience, 100*time.Millisecond, "publishing on %s", topic)
}
