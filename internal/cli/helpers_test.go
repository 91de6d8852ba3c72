package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// testTimeout bounds every wait; generous, for a loaded machine.
const testTimeout = 20 * time.Second

// logWatch is the program's stderr in tests: it keeps the log and lets a
// test wait for a line.
type logWatch struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newLogWatch() *logWatch { return &logWatch{changed: make(chan struct{})} }

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitLine waits for the n-th line (1-based) containing every one of subs,
// and returns it.
func (w *logWatch) waitLine(t *testing.T, n int, subs ...string) string {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		w.mu.Lock()
		text, changed := w.buf.String(), w.changed
		w.mu.Unlock()
		seen := 0
		for line := range strings.Lines(text) {
			all := true
			for _, s := range subs {
				all = all && strings.Contains(line, s)
			}
			if all {
				if seen++; seen == n {
					return line
				}
			}
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no log line %d with %q within %v; log:\n%s", n, subs, testTimeout, text)
			return ""
		}
	}
}

// addrOf returns the addr= attribute of a log line.
func addrOf(t *testing.T, line string) string {
	t.Helper()
	_, a, ok := strings.Cut(line, " addr=")
	require.True(t, ok, "no addr in %q", line)
	return strings.Fields(a)[0]
}

// server is run() in this process.
type server struct {
	logs   *logWatch
	reload chan os.Signal
	stop   func() error
}

// startRun runs the program with args until the test ends or stop is
// called, and waits until its first listener is logged. stop returns
// run's error.
func startRun(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{logs: newLogWatch(), reload: make(chan os.Signal, 1)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: s.logs, reload: s.reload})
	}()
	stopped := false
	s.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(testTimeout):
			t.Fatalf("run did not return after cancel\n%s", s.logs)
			return nil
		}
	}
	t.Cleanup(func() { s.stop() })
	deadline := time.After(testTimeout)
	for {
		s.logs.mu.Lock()
		text, changed := s.logs.buf.String(), s.logs.changed
		s.logs.mu.Unlock()
		if strings.Contains(text, "msg=listening") || strings.Contains(text, `"msg":"listening"`) {
			return s
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("run returned %v before listening\n%s", err, text)
		case <-changed:
		case <-deadline:
			t.Fatalf("no listener logged\n%s", text)
		}
	}
}

// doReload sends the program a SIGHUP and waits until it has reloaded.
func (s *server) doReload(t *testing.T, n int) {
	t.Helper()
	s.reload <- os.Interrupt // any value: the channel stands for SIGHUP
	s.logs.waitLine(t, n, "reload finished")
}

// tcpAddr returns the address of the n-th TCP listener.
func (s *server) tcpAddr(t *testing.T) string {
	return addrOf(t, s.logs.waitLine(t, 1, "msg=listening", "transport=tcp"))
}

// client is a minimal MQTT 3.1.1 client over the packets codec.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *packets.Reader
}

func dialConn(t *testing.T, nc net.Conn, cp *packets.Connect) (*client, *packets.Connack) {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, r: packets.NewReader(nc, 0)}
	cp.ProtocolName, cp.ProtocolLevel, cp.KeepAlive = "MQTT", 4, 60
	c.send(cp)
	ack, ok := c.recv().(*packets.Connack)
	require.True(t, ok, "expected CONNACK")
	return c, ack
}

func dial(t *testing.T, addr string, cp *packets.Connect) (*client, *packets.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, testTimeout)
	require.NoError(t, err)
	return dialConn(t, nc, cp)
}

func (c *client) send(p packets.Packet) {
	c.t.Helper()
	b, err := p.Append(nil)
	require.NoError(c.t, err)
	c.nc.SetWriteDeadline(time.Now().Add(testTimeout))
	_, err = c.nc.Write(b)
	require.NoError(c.t, err)
}

func (c *client) recv() packets.Packet {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	p, err := c.r.ReadPacket()
	require.NoError(c.t, err, "recv")
	return p
}

// writeFile writes a file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
