package cli

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The end-to-end test runs the tern binary on a Mosquitto configuration
// with a TCP and a WebSocket listener, the password file Debian's
// mosquitto_passwd wrote (auth/testdata/mosquitto.passwd; its passwords
// are in auth/mosquitto_test.go) and an ACL file, all used unchanged, and
// checks them with Mosquitto's own command-line clients (TCP) and Paho
// (WebSocket); then it edits the files and sends SIGHUP.

// aclBefore and aclAfter are the ACL file before and after the edit.
const (
	aclBefore = `# alice owns a/; bob reads it and writes b/.
user alice
topic readwrite a/#

user bob
topic read a/#
topic write b/#
`
	aclAfter = `# alice keeps only a/public/ to read; newbie writes a/.
user alice
topic readwrite a/public/#
topic write a/#

user bob
topic read a/#

user newbie
topic write a/#
`
)

func TestMosquittoConfigEndToEnd(t *testing.T) {
	pubCmd, errPub := exec.LookPath("mosquitto_pub")
	subCmd, errSub := exec.LookPath("mosquitto_sub")
	if errPub != nil || errSub != nil {
		t.Skip("mosquitto_pub and mosquitto_sub are not installed (apt-get install mosquitto-clients; .ci/run installs them)")
	}
	bin := buildTern(t)
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	orig, err := os.ReadFile("../../auth/testdata/mosquitto.passwd")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(passwd, orig, 0o600))
	acl := writeFile(t, dir, "acl", aclBefore)
	tcpPort, wsPort := freePort(t), freePort(t)
	conf := writeFile(t, dir, "mosquitto.conf", fmt.Sprintf(`# As a Mosquitto 2 user would write it.
per_listener_settings false
allow_anonymous false
password_file %s
acl_file %s

listener %d 127.0.0.1

listener %d 127.0.0.1
protocol websockets
`, passwd, acl, tcpPort, wsPort))
	srv := startProcess(t, bin, "-c", conf)
	srv.logs.waitLine(t, 1, "msg=listening", "transport=tcp", fmt.Sprintf("addr=127.0.0.1:%d", tcpPort))
	srv.logs.waitLine(t, 1, "msg=listening", "transport=ws", fmt.Sprintf("addr=ws://127.0.0.1:%d/mqtt", wsPort))

	mc := mosquittoClients{t: t, pubBin: pubCmd, subBin: subCmd, port: tcpPort}
	alice := []string{"-u", "alice", "-P", "alice-password"}
	bob := []string{"-u", "bob", "-P", "bob pässword"}

	// Authentication, as the password file says.
	assert.Contains(t, mc.pubFails("-u", "alice", "-P", "wrong", "-t", "a/x", "-m", "x"), "bad user name or password")
	assert.Contains(t, mc.pubFails("-u", "mallory", "-P", "alice-password", "-t", "a/x", "-m", "x"), "bad user name or password")
	assert.Contains(t, mc.pubFails("-t", "a/x", "-m", "x"), "not authorised", "allow_anonymous false")

	// The ACL: alice reads and writes a/; bob may not write there.
	watch := mc.subscribe(append(alice, "-i", "alice-watch", "-t", "a/#")...)
	mc.pub(append(alice, "-t", "a/1", "-m", "one")...)
	assert.Equal(t, "a/1 one", watch.next())
	mc.pub(append(bob, "-t", "a/2", "-m", "from bob")...) // acknowledged, not delivered
	mc.pub(append(alice, "-t", "a/3", "-m", "three")...)
	assert.Equal(t, "a/3 three", watch.next(), "bob's publish to a/2 was refused by the ACL")

	// The WebSocket listener, with the same files: bob reads a/.
	wsURL := fmt.Sprintf("ws://127.0.0.1:%d/mqtt", wsPort)
	_, err = wsConnect(wsURL, "bob", "wrong")
	assert.ErrorContains(t, err, "bad user name or password")
	bobWS, err := wsConnect(wsURL, "bob", "bob pässword")
	require.NoError(t, err)
	t.Cleanup(func() { bobWS.Disconnect(0) })
	got := make(chan string, 4)
	tok := bobWS.Subscribe("a/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() + " " + string(m.Payload()) })
	require.True(t, tok.WaitTimeout(testTimeout))
	require.NoError(t, tok.Error())
	mc.pub(append(alice, "-q", "1", "-t", "a/ws", "-m", "over websocket")...)
	assert.Equal(t, "a/ws over websocket", receive(t, got))
	assert.Equal(t, "a/ws over websocket", watch.next())

	// Edit the files: a new user, a removed user, a narrower ACL for the
	// connected alice; then SIGHUP.
	tern := func(args ...string) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	tern("passwd", "-b", passwd, "newbie", "newbie-pw")
	tern("passwd", "-D", passwd, "bob")
	require.NoError(t, os.WriteFile(acl, []byte(aclAfter), 0o600))
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGHUP))
	srv.logs.waitLine(t, 1, "reload finished", "failed=0")

	newbie := []string{"-u", "newbie", "-P", "newbie-pw"}
	mc.pub(append(newbie, "-t", "a/secret", "-m", "hidden")...)
	mc.pub(append(newbie, "-t", "a/public/x", "-m", "visible")...)
	assert.Equal(t, "a/public/x visible", watch.next(), "the new ACL applies to the connected alice: a/secret is no longer hers to read")
	assert.Contains(t, mc.pubFails(append(bob, "-t", "b/x", "-m", "x")...), "bad user name or password", "bob was removed")
	assert.Contains(t, strings.Join([]string{receive(t, got), receive(t, got)}, ","), "a/public/x visible",
		"bob's connection made before the reload stays up")

	// A file with a mistake keeps the previous content, and the log says
	// where the mistake is.
	require.NoError(t, os.WriteFile(acl, []byte("user alice\nfrobnicate a/#\n"), 0o600))
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGHUP))
	srv.logs.waitLine(t, 1, "keeping the previous users and ACL", "acl:2")
	srv.logs.waitLine(t, 1, "reload finished", "failed=1")
	mc.pub(append(newbie, "-t", "a/secret", "-m", "hidden again")...)
	mc.pub(append(newbie, "-t", "a/public/y", "-m", "still the edited ACL")...)
	assert.Equal(t, "a/public/y still the edited ACL", watch.next())

	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-srv.done:
		assert.NoError(t, srv.waitErr, "exit status after SIGTERM\n%s", srv.logs)
	case <-time.After(testTimeout):
		t.Fatalf("tern did not exit after SIGTERM\n%s", srv.logs)
	}
}

// buildTern builds the command into a temporary directory, with the race
// detector when this test binary has it.
func buildTern(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to build tern with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tern")
	args := []string{"build", "-o", bin}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	out, err := exec.Command(goCmd, append(args, "../../cmd/tern")...).CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// freePort returns a TCP port free on loopback a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is the tern binary running.
type process struct {
	cmd     *exec.Cmd
	logs    *logWatch
	done    chan struct{}
	waitErr error
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), logs: newLogWatch(), done: make(chan struct{})}
	p.cmd.Stderr = p.logs
	require.NoError(t, p.cmd.Start())
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// mosquittoClients runs mosquitto_pub and mosquitto_sub against a port.
type mosquittoClients struct {
	t              *testing.T
	pubBin, subBin string
	port           int
}

func (m mosquittoClients) args(extra []string) []string {
	return append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(m.port)}, extra...)
}

// pub publishes and requires success.
func (m mosquittoClients) pub(args ...string) {
	m.t.Helper()
	out, err := exec.Command(m.pubBin, m.args(args)...).CombinedOutput()
	require.NoError(m.t, err, "mosquitto_pub %v: %s", args, out)
}

// pubFails requires mosquitto_pub to fail, and returns what it printed.
func (m mosquittoClients) pubFails(args ...string) string {
	m.t.Helper()
	out, err := exec.Command(m.pubBin, m.args(args)...).CombinedOutput()
	require.Error(m.t, err, "mosquitto_pub %v succeeded: %s", args, out)
	return string(out)
}

// subscription is a running mosquitto_sub -v.
type subscription struct {
	t     *testing.T
	lines chan string
}

// subscribe starts mosquitto_sub -v and waits for its SUBACK.
func (m mosquittoClients) subscribe(args ...string) *subscription {
	m.t.Helper()
	argv := append([]string{m.subBin}, m.args(append([]string{"-d", "-v", "-q", "1"}, args...))...)
	if stdbuf, err := exec.LookPath("stdbuf"); err == nil {
		argv = append([]string{stdbuf, "-oL"}, argv...) // line-buffered, so that SUBACK shows at once
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	require.NoError(m.t, err)
	require.NoError(m.t, cmd.Start())
	s := &subscription{t: m.t, lines: make(chan string, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	m.t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
	})
	for {
		select {
		case l, ok := <-s.lines:
			require.True(m.t, ok, "mosquitto_sub exited before its SUBACK")
			if strings.Contains(l, "received SUBACK") {
				return s
			}
		case <-time.After(testTimeout):
			m.t.Fatal("mosquitto_sub got no SUBACK")
		}
	}
}

// next returns the next message line ("topic payload"), skipping the
// debug lines.
func (s *subscription) next() string {
	s.t.Helper()
	for {
		select {
		case l, ok := <-s.lines:
			require.True(s.t, ok, "mosquitto_sub exited")
			if !strings.HasPrefix(l, "Client ") && !strings.HasPrefix(l, "Subscribed ") {
				return l
			}
		case <-time.After(testTimeout):
			s.t.Fatal("mosquitto_sub received no message")
			return ""
		}
	}
}

// wsConnect connects a Paho client over WebSocket.
func wsConnect(url, user, password string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(url).SetClientID("ws-" + user).
		SetUsername(user).SetPassword(password).SetAutoReconnect(false).
		SetConnectRetry(false).SetConnectTimeout(testTimeout)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(testTimeout) {
		return nil, fmt.Errorf("connect to %s timed out", url)
	}
	return c, tok.Error()
}

func receive(t *testing.T, c <-chan string) string {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(testTimeout):
		t.Fatal("no message over WebSocket")
		return ""
	}
}
