package main

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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

const testTimeout = 5 * time.Second

// logWatch is run's stderr: it keeps the log and reports the address of
// the TCP listener once it is logged.
type logWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	addr chan string
}

func newLogWatch() *logWatch { return &logWatch{addr: make(chan string, 1)} }

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := w.buf.Len()
	w.buf.Write(p)
	for _, line := range strings.Split(w.buf.String()[start:], "\n") {
		if !strings.Contains(line, "transport=tcp") {
			continue
		}
		if _, a, ok := strings.Cut(line, " addr="); ok {
			select {
			case w.addr <- strings.Fields(a)[0]:
			default:
			}
		}
	}
	return len(p), nil
}

func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startRun runs the server with args until the returned stop is called;
// stop returns run's error.
func startRun(t *testing.T, args ...string) (addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatch()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-tcp", "127.0.0.1:0"}, args...), strings.NewReader(""), &bytes.Buffer{}, logs)
	}()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(2 * testTimeout):
			require.FailNow(t, "run did not return after cancel", "log:\n%s", logs)
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	select {
	case addr = <-logs.addr:
	case err := <-done:
		require.FailNow(t, "run returned before listening", "error %v; log:\n%s", err, logs)
	case <-time.After(testTimeout):
		require.FailNow(t, "no listening address logged", "log:\n%s", logs)
	}
	return addr, stop
}

// client is a minimal MQTT client over the packets codec.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *packets.Reader
}

func dial(t *testing.T, addr string, cp *packets.Connect) (*client, *packets.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, testTimeout)
	require.NoError(t, err, "dial")
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, r: packets.NewReader(nc, 0)}
	cp.ProtocolName, cp.ProtocolLevel, cp.KeepAlive = "MQTT", 4, 60
	c.send(cp)
	p := c.recv()
	require.IsType(t, &packets.Connack{}, p, "expected CONNACK")
	return c, p.(*packets.Connack)
}

func (c *client) send(p packets.Packet) {
	c.t.Helper()
	b, err := p.Append(nil)
	require.NoError(c.t, err, "encoding %T", p)
	c.nc.SetWriteDeadline(time.Now().Add(testTimeout))
	_, err = c.nc.Write(b)
	require.NoError(c.t, err, "writing %T", p)
}

func (c *client) recv() packets.Packet {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	p, err := c.r.ReadPacket()
	require.NoError(c.t, err, "recv")
	return p
}

// TestRunKeepsStateInTheDataDirectory: with -data, a persistent session
// (its subscription and a message queued for it) and a retained message
// outlive the process: a second run on the same directory restores them.
func TestRunKeepsStateInTheDataDirectory(t *testing.T) {
	for _, durability := range []string{"sync", "async"} {
		t.Run(durability, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state") // created by run
			addr, stop := startRun(t, "-data", dir, "-durability", durability)
			sub, _ := dial(t, addr, &packets.Connect{ClientID: "keeper"})
			sub.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "k/#", QoS: 1}}})
			require.IsType(t, &packets.Suback{}, sub.recv(), "expected SUBACK")
			sub.send(&packets.Disconnect{})
			pub, _ := dial(t, addr, &packets.Connect{ClientID: "pub", CleanSession: true})
			for i, m := range []packets.Publish{
				{Topic: "k/queued", Payload: []byte("for keeper"), QoS: 1, PacketID: 1},
				{Topic: "r", Payload: []byte("retained"), QoS: 1, PacketID: 2, Retain: true},
			} {
				pub.send(&m)
				require.Equal(t, &packets.Puback{PacketID: uint16(i + 1)}, pub.recv(), "expected PUBACK %d", i+1)
			}
			require.NoError(t, stop(), "run")
			_, err := os.Stat(filepath.Join(dir, "tern.db"))
			require.NoError(t, err, "no data file")

			addr, stop = startRun(t, "-data", dir, "-durability", durability)
			sub, ack := dial(t, addr, &packets.Connect{ClientID: "keeper"})
			require.Equal(t, packets.Accepted, ack.ReturnCode, "CONNACK %+v, want the stored session", ack)
			require.True(t, ack.SessionPresent, "CONNACK %+v, want the stored session", ack)
			p := sub.recv()
			require.IsType(t, &packets.Publish{}, p, "expected the queued message, got %+v", p)
			require.Equal(t, "for keeper", string(p.(*packets.Publish).Payload), "expected the queued message, got %+v", p)
			late, _ := dial(t, addr, &packets.Connect{ClientID: "late", CleanSession: true})
			late.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "r", QoS: 0}}})
			late.recv() // SUBACK
			p = late.recv()
			require.IsType(t, &packets.Publish{}, p, "expected the retained message, got %+v", p)
			require.Equal(t, "retained", string(p.(*packets.Publish).Payload), "expected the retained message, got %+v", p)
			require.True(t, p.(*packets.Publish).Retain, "expected the retained message, got %+v", p)
			require.NoError(t, stop(), "run")
		})
	}
}

// TestHashPasswordGivesAHashTheAuthFileAccepts: -hash-password reads a
// password on standard input and prints a bcrypt hash; a server whose -auth
// file lists a user with that hash accepts that password and no other.
func TestHashPasswordGivesAHashTheAuthFileAccepts(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-hash-password"}, strings.NewReader("s3cret pass\r\n"), &out, &errOut)
	require.NoError(t, err, "-hash-password")
	hash := strings.TrimSpace(out.String())
	require.True(t, strings.HasPrefix(hash, "$2"), "output %q is not a bcrypt hash", out.String())
	require.Len(t, hash, 60, "output %q is not a bcrypt hash", out.String())
	authFile := filepath.Join(t.TempDir(), "auth.conf")
	require.NoError(t, os.WriteFile(authFile, []byte("user alice "+hash+"\n"), 0o600))
	addr, _ := startRun(t, "-auth", authFile)
	for _, tc := range []struct {
		password string
		code     byte
	}{
		{"s3cret pass", packets.Accepted},
		{"s3cret pass\r", packets.RefusedBadUsernamePassword}, // a wrong one: the line ending is not part of it
	} {
		_, ack := dial(t, addr, &packets.Connect{ClientID: "a", CleanSession: true, UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte(tc.password)})
		assert.Equal(t, tc.code, ack.ReturnCode, "password %q: CONNACK return code", tc.password)
	}

	err = run(context.Background(), []string{"-hash-password"}, strings.NewReader(""), &out, &errOut)
	assert.Error(t, err, "-hash-password with nothing on standard input succeeded")
}

// TestRunRefusesBadConfiguration: bad flags and unusable files make run
// return an error naming the problem, without serving.
func TestRunRefusesBadConfiguration(t *testing.T) {
	tmp := t.TempDir()
	notDir := filepath.Join(tmp, "file")
	require.NoError(t, os.WriteFile(notDir, []byte("x"), 0o600))
	corrupt := filepath.Join(tmp, "corrupt")
	require.NoError(t, os.MkdirAll(corrupt, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(corrupt, "tern.db"), bytes.Repeat([]byte("garbage "), 8192), 0o600))
	cases := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"unknown flag", []string{"-no-such-flag"}, "no-such-flag"},
		{"bad number", []string{"-max-connections", "many"}, "max-connections"},
		{"stray argument", []string{"-tcp", "127.0.0.1:0", "extra"}, `"extra"`},
		{"bad durability", []string{"-durability", "maybe"}, "-durability"},
		{"TLS without certificate", []string{"-tls", "127.0.0.1:0"}, "-cert"},
		{"no listener", []string{"-tcp", ""}, "no listener"},
		{"negative expiry", []string{"-tcp", "127.0.0.1:0", "-session-expiry", "-1s"}, "SessionExpiry"},
		{"data directory is a file", []string{"-tcp", "127.0.0.1:0", "-data", filepath.Join(notDir, "sub")}, "-data"},
		{"corrupt data file", []string{"-tcp", "127.0.0.1:0", "-data", corrupt}, filepath.Join(corrupt, "tern.db")},
		{"missing auth file", []string{"-tcp", "127.0.0.1:0", "-auth", filepath.Join(tmp, "none.conf")}, "none.conf"},
		{"unix socket path taken by a file", []string{"-tcp", "127.0.0.1:0", "-unix", notDir}, notDir},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			var stderr bytes.Buffer
			err := run(ctx, tc.args, strings.NewReader(""), &bytes.Buffer{}, &stderr)
			require.Error(t, err, "run %v succeeded\n%s", tc.args, stderr.String())
			require.NotErrorIs(t, ctx.Err(), context.DeadlineExceeded, "run %v served until the deadline before failing: %v", tc.args, err)
			require.Contains(t, err.Error(), tc.want, "run %v: the error does not name the problem", tc.args)
		})
	}
}
