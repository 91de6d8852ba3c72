//go:build unix

package tern_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// fdLimitChildEnv, when set, makes TestServeSurvivesFileLimit run the broker
// side of the test in this process, under a low descriptor limit.
const fdLimitChildEnv = "TERN_TEST_FDLIMIT_CHILD"

const (
	// childFileLimit is the child's RLIMIT_NOFILE soft limit.
	childFileLimit = 256
	// childMaxConnections is the documented default of
	// Options.MaxConnections for that limit: the limit minus a margin of
	// max(32, limit/10), at most 1024.
	childMaxConnections = childFileLimit - 32
	// excessConns is how many connections the parent opens: far more than
	// the child has descriptors for.
	excessConns = 400
)

// A broker that runs out of file descriptors keeps serving: it refuses the
// connections it has no descriptor for (accepting and closing them at
// once, with its reserve descriptor) instead of leaving them hanging or
// stopping, keeps its clients, and serves new clients once descriptors are
// free again. The broker runs in a child process whose RLIMIT_NOFILE is
// lowered; the parent's limit is not.
func TestServeSurvivesFileLimit(t *testing.T) {
	if os.Getenv(fdLimitChildEnv) != "" {
		runFileLimitChild(t)
		return
	}
	child := startFileLimitChild(t)

	conns := make([]*rawClient, 0, excessConns)
	for range excessConns {
		conns = append(conns, dialRaw(t, child.addr))
	}
	// Every connection the child has no descriptor for is refused: at
	// least excessConns-childFileLimit of them.
	var st childStats
	require.Eventually(t, func() bool {
		st = child.stats(t)
		return st.AcceptErrors > 0 && st.Refused >= excessConns-childFileLimit
	}, waitTimeout, 10*time.Millisecond, "the child never refused the excess connections: %+v", &st)

	// Each connection is answered: CONNACK 0 up to MaxConnections (whose
	// default follows the descriptor limit), CONNACK 0x03 past it while
	// descriptors last, and a plain close (FIN, not a reset nor silence)
	// for the connections refused at accept.
	var accepted, unavailable, closed int
	for i, c := range conns {
		c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: fmt.Sprintf("c%d", i), CleanSession: true, KeepAlive: 60})
	}
	for _, c := range conns {
		p, err := c.tryRecv(waitTimeout)
		switch ack, ok := p.(*packets.Connack); {
		case err == nil && ok && ack.ReturnCode == 0:
			accepted++
		case err == nil && ok && ack.ReturnCode == packets.RefusedServerUnavailable:
			unavailable++
		case errors.Is(err, io.EOF) || isReset(err):
			closed++ // a reset here answers our CONNECT, sent after the close
		default:
			require.Failf(t, "connection not answered", "got %v, %v", p, err)
		}
	}
	assert.Equal(t, childMaxConnections, accepted, "CONNACK 0: the default MaxConnections")
	assert.GreaterOrEqual(t, closed, excessConns-childFileLimit, "closed at accept")
	assert.Equal(t, excessConns, accepted+unavailable+closed)
	t.Logf("CONNACK 0: %d, CONNACK 0x03: %d, closed: %d", accepted, unavailable, closed)

	// Free the descriptors; the broker serves a new client end to end.
	for _, c := range conns {
		c.conn.Close()
	}
	require.Eventually(t, func() bool { return child.stats(t).ClientsConnected == 0 },
		waitTimeout, 10*time.Millisecond, "the child kept the closed connections")
	sub := mustConnect(t, child.addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "fd/limit", QoS: 1})
	pub := mustConnect(t, child.addr, "pub", true)
	pub.publishQoS(7, "fd/limit", "still serving", 1, false) // waits for PUBACK
	got := sub.recvPublish()
	assert.Equal(t, "still serving", string(got.Payload))
	assert.Equal(t, byte(1), got.QoS)
	sub.send(&packets.Puback{PacketID: got.PacketID})

	child.stop(t)
}

// fileLimitChild is the parent's handle on the broker process.
type fileLimitChild struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *strings.Builder
	addr   string
}

// childStats is the part of tern.Stats the parent reads, decoded by JSON
// name.
type childStats struct {
	Refused          int64 `json:"refused"`
	AcceptErrors     int64 `json:"accept_errors"`
	ClientsConnected int   `json:"clients_connected"`
}

// startFileLimitChild re-executes this test binary as the broker process
// and reads the address it serves on.
func startFileLimitChild(t *testing.T) *fileLimitChild {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestServeSurvivesFileLimit$", "-test.count=1")
	cmd.Env = append(os.Environ(), fdLimitChildEnv+"=1")
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c := &fileLimitChild{cmd: cmd, in: in, out: bufio.NewScanner(out), stderr: &strings.Builder{}}
	cmd.Stderr = c.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Wait() // stop waits first; this reaps a child left by a failure
	})
	c.addr = c.line(t, "addr ")
	return c
}

// line returns the rest of the child's next output line that starts with
// prefix, failing the test if the child ends first.
func (c *fileLimitChild) line(t *testing.T, prefix string) string {
	t.Helper()
	for c.out.Scan() {
		if s, ok := strings.CutPrefix(c.out.Text(), prefix); ok {
			return s
		}
		if s, ok := strings.CutPrefix(c.out.Text(), "serve "); ok {
			require.Failf(t, "the broker stopped serving", "Serve returned: %s\nstderr: %s", s, c.stderr)
		}
	}
	require.Failf(t, "the broker process ended", "scan: %v\nstderr: %s", c.out.Err(), c.stderr)
	return ""
}

// stats asks the child for its broker's Stats; it fails the test if the
// child is gone.
func (c *fileLimitChild) stats(t *testing.T) childStats {
	t.Helper()
	_, err := io.WriteString(c.in, "stats\n")
	require.NoError(t, err, "the broker process is gone")
	var st childStats
	require.NoError(t, json.Unmarshal([]byte(c.line(t, "stats ")), &st))
	return st
}

// stop closes the child's stdin, which closes its broker, and checks that
// it exited cleanly.
func (c *fileLimitChild) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, c.in.Close())
	require.NoError(t, c.cmd.Wait(), "stderr: %s", c.stderr)
}

// runFileLimitChild is the child: it lowers its descriptor limit, serves a
// broker with default options on a loopback port, prints "addr ADDR", and
// answers each "stats" line on stdin with "stats JSON" until stdin closes.
// If Serve returns, it prints "serve ERROR" and exits with status 3, as a
// standalone server whose listener failed would.
func runFileLimitChild(t *testing.T) {
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	lim.Cur = childFileLimit
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))

	b, err := tern.New(tern.Options{SysInterval: -1})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		err := b.Serve(l)
		if !errors.Is(err, tern.ErrClosed) {
			fmt.Printf("serve %v\n", err)
			os.Exit(3)
		}
	}()
	fmt.Printf("addr %s\n", l.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		js, err := json.Marshal(b.Stats())
		require.NoError(t, err)
		fmt.Printf("stats %s\n", js)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, b.Close(ctx))
}
