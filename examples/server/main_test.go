package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
			t.Fatalf("run did not return after cancel\n%s", logs)
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	select {
	case addr = <-logs.addr:
	case err := <-done:
		t.Fatalf("run returned %v before listening\n%s", err, logs)
	case <-time.After(testTimeout):
		t.Fatalf("no listening address logged\n%s", logs)
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
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, r: packets.NewReader(nc, 0)}
	cp.ProtocolName, cp.ProtocolLevel, cp.KeepAlive = "MQTT", 4, 60
	c.send(cp)
	ack, ok := c.recv().(*packets.Connack)
	if !ok {
		t.Fatal("expected CONNACK")
	}
	return c, ack
}

func (c *client) send(p packets.Packet) {
	c.t.Helper()
	b, err := p.Append(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nc.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) recv() packets.Packet {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	p, err := c.r.ReadPacket()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
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
			if _, ok := sub.recv().(*packets.Suback); !ok {
				t.Fatal("expected SUBACK")
			}
			sub.send(&packets.Disconnect{})
			pub, _ := dial(t, addr, &packets.Connect{ClientID: "pub", CleanSession: true})
			for i, m := range []packets.Publish{
				{Topic: "k/queued", Payload: []byte("for keeper"), QoS: 1, PacketID: 1},
				{Topic: "r", Payload: []byte("retained"), QoS: 1, PacketID: 2, Retain: true},
			} {
				pub.send(&m)
				if a, ok := pub.recv().(*packets.Puback); !ok || a.PacketID != uint16(i+1) {
					t.Fatalf("expected PUBACK %d", i+1)
				}
			}
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "tern.db")); err != nil {
				t.Fatalf("no data file: %v", err)
			}

			addr, stop = startRun(t, "-data", dir, "-durability", durability)
			sub, ack := dial(t, addr, &packets.Connect{ClientID: "keeper"})
			if ack.ReturnCode != 0 || !ack.SessionPresent {
				t.Fatalf("CONNACK %+v, want the stored session", ack)
			}
			if p, ok := sub.recv().(*packets.Publish); !ok || string(p.Payload) != "for keeper" {
				t.Fatalf("expected the queued message, got %+v", p)
			}
			late, _ := dial(t, addr, &packets.Connect{ClientID: "late", CleanSession: true})
			late.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "r", QoS: 0}}})
			late.recv() // SUBACK
			if p, ok := late.recv().(*packets.Publish); !ok || string(p.Payload) != "retained" || !p.Retain {
				t.Fatalf("expected the retained message, got %+v", p)
			}
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
		})
	}
}

// TestHashPasswordGivesAHashTheAuthFileAccepts: -hash-password reads a
// password on standard input and prints a bcrypt hash; a server whose -auth
// file lists a user with that hash accepts that password and no other.
func TestHashPasswordGivesAHashTheAuthFileAccepts(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-hash-password"}, strings.NewReader("s3cret pass\r\n"), &out, &errOut); err != nil {
		t.Fatalf("-hash-password: %v", err)
	}
	hash := strings.TrimSpace(out.String())
	if !strings.HasPrefix(hash, "$2") || len(hash) != 60 {
		t.Fatalf("output %q is not a bcrypt hash", out.String())
	}
	authFile := filepath.Join(t.TempDir(), "auth.conf")
	if err := os.WriteFile(authFile, []byte("user alice "+hash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, _ := startRun(t, "-auth", authFile)
	for _, tc := range []struct {
		password string
		code     byte
	}{
		{"s3cret pass", packets.Accepted},
		{"s3cret pass\r", packets.RefusedBadUsernamePassword}, // a wrong one: the line ending is not part of it
	} {
		_, ack := dial(t, addr, &packets.Connect{ClientID: "a", CleanSession: true, UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte(tc.password)})
		if ack.ReturnCode != tc.code {
			t.Errorf("password %q: CONNACK 0x%02x, want 0x%02x", tc.password, ack.ReturnCode, tc.code)
		}
	}

	if err := run(context.Background(), []string{"-hash-password"}, strings.NewReader(""), &out, &errOut); err == nil {
		t.Error("-hash-password with nothing on standard input succeeded")
	}
}

// TestRunRefusesBadConfiguration: bad flags and unusable files make run
// return an error naming the problem, without serving.
func TestRunRefusesBadConfiguration(t *testing.T) {
	tmp := t.TempDir()
	notDir := filepath.Join(tmp, "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(tmp, "corrupt")
	if err := os.MkdirAll(corrupt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, "tern.db"), bytes.Repeat([]byte("garbage "), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
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
			if err == nil {
				t.Fatalf("run %v succeeded\n%s", tc.args, stderr.String())
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatalf("run %v served until the deadline before failing: %v", tc.args, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run %v: %q does not mention %q", tc.args, err, tc.want)
			}
		})
	}
}
