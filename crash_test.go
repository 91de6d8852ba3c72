package tern_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// Crash tests: cmd/tern runs as a process on a data directory with
// -durability sync, is killed with SIGKILL in the middle of a stream of QoS
// 1 and QoS 2 messages, and restarted on the same directory. Every message
// whose PUBACK or PUBREC the publisher received must then reach the
// persistent subscriber: QoS 1 ones at least once, QoS 2 ones exactly once
// (counted as a client counts them, see psReceiver).

// crMessages is how many messages of each QoS the publisher sends; the
// broker is killed once crKillAt of them were acknowledged.
const (
	crMessages = 2000
	crKillAt   = 2 * crMessages * 2 / 5
	crWindow   = 200 // publisher's messages in flight
)

// TestCrashRecoveryKeepsEveryAcknowledgedMessage kills the broker process
// with SIGKILL while a publisher streams messages to a persistent
// subscriber that is offline, or online and receiving, and checks after a
// restart that every acknowledged message arrives, QoS 2 ones exactly once,
// in order.
// [MQTT-4.3.2-2] [MQTT-4.3.3-2] [MQTT-4.4.0-1] [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-4.6.0-6]
func TestCrashRecoveryKeepsEveryAcknowledgedMessage(t *testing.T) {
	bin := crBuildServer(t)
	for _, online := range []bool{false, true} {
		name := "subscriber offline"
		if online {
			name = "subscriber online"
		}
		t.Run(name, func(t *testing.T) { crRun(t, bin, online) })
	}
}

func crRun(t *testing.T, bin string, online bool) {
	dir := t.TempDir()
	srv := crStart(t, bin, dir)
	sub := &crSubscriber{}
	c, err := crDial(srv.addr, "crash-sub", false)
	require.NoError(t, err)
	require.NoError(t, c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "crash/#", QoS: 2}}}))
	p, err := c.recv(waitTimeout)
	require.NoError(t, err, "SUBACK")
	require.Equal(t, packets.TypeSuback, p.Type(), "SUBACK: %+v", p)
	subDone := make(chan error, 1)
	if online {
		go func() { subDone <- sub.receive(c, nil, time.Hour) }()
	} else {
		c.send(&packets.Disconnect{})
		c.nc.Close()
	}

	pub := &crPublisher{}
	pc, err := crDial(srv.addr, "crash-pub", true)
	require.NoError(t, err)
	halfway := make(chan struct{})
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.run(pc, halfway) }()
	select {
	case <-halfway:
	case err := <-pubDone:
		require.FailNow(t, "publisher ended before the kill", "%v\n%s", err, srv.log())
	case <-time.After(10 * time.Second):
		require.FailNow(t, "too few messages acknowledged", "only %d of %d messages acknowledged in 10 s\n%s", pub.acks.Load(), 2*crMessages, srv.log())
	}
	srv.kill()
	<-pubDone // the connection breaks; the publisher's state is final
	if online {
		<-subDone
	}
	acked := pub.acks.Load()
	require.Less(t, acked, int64(2*crMessages), "every message was acknowledged before the kill: the broker was not killed mid-stream")
	t.Logf("%d of %d messages acknowledged when the broker was killed", acked, 2*crMessages)

	srv = crStart(t, bin, dir)
	c, err = crDial(srv.addr, "crash-sub", false)
	require.NoError(t, err)
	require.True(t, c.ack.SessionPresent, "the persistent session did not survive the crash (session present 0)")
	complete := func() bool { return sub.has(0, pub.acked[0]) && sub.has(1, pub.acked[1]) }
	if err := sub.receive(c, complete, 10*time.Second); err != nil {
		require.FailNow(t, "after the restart", "%v; missing QoS 1 %v, QoS 2 %v\n%s", err,
			sub.missing(0, pub.acked[0]), sub.missing(1, pub.acked[1]), srv.log())
	}
	sub.check(t)
	c.send(&packets.Disconnect{})
	c.nc.Close()
	srv.kill()
}

// crBuildServer builds cmd/tern into a temporary directory, with the
// race detector when this test binary has it (so the build reuses its
// compiled packages, and the server is checked too).
func crBuildServer(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to build cmd/tern with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tern-server")
	args := []string{"build", "-o", bin}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	cmd := exec.Command(goCmd, append(args, "./cmd/tern")...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building cmd/tern:\n%s", out)
	return bin
}

// crServer is a running cmd/tern process.
type crServer struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	done chan struct{} // closed when the process has exited

	mu     sync.Mutex
	stderr bytes.Buffer
}

// crStart runs the server on dir, listening on a free loopback port, and
// waits until it logs its address.
func crStart(t *testing.T, bin, dir string) *crServer {
	t.Helper()
	s := &crServer{t: t, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "-tcp", "127.0.0.1:0", "-data", dir, "-durability", "sync")
	stderr, err := s.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, s.cmd.Start())
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.stderr.WriteString(line + "\n")
			s.mu.Unlock()
			if strings.Contains(line, "transport=tcp") {
				if _, a, ok := strings.Cut(line, " addr="); ok {
					addr <- strings.Fields(a)[0]
				}
			}
		}
		io.Copy(io.Discard, stderr)
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.kill)
	select {
	case s.addr = <-addr:
	case <-s.done:
		require.FailNow(t, "server exited before listening", s.log())
	case <-time.After(waitTimeout):
		require.FailNow(t, "server did not report its address", s.log())
	}
	return s
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (s *crServer) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

func (s *crServer) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// crConn is a raw client connection whose failures are errors, not test
// failures: the broker dies under it.
type crConn struct {
	nc  net.Conn
	r   *packets.Reader
	ack *packets.Connack

	wmu sync.Mutex
	buf []byte
}

func crDial(addr, id string, clean bool) (*crConn, error) {
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		return nil, err
	}
	c := &crConn{nc: nc, r: packets.NewReader(nc, 0)}
	if err := c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: clean}); err != nil {
		nc.Close()
		return nil, err
	}
	p, err := c.recv(waitTimeout)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("CONNACK for %s: %w", id, err)
	}
	ack, ok := p.(*packets.Connack)
	if !ok || ack.ReturnCode != 0 {
		nc.Close()
		return nil, fmt.Errorf("CONNACK for %s: got %v %+v", id, p.Type(), p)
	}
	c.ack = ack
	return c, nil
}

// send writes p; it is safe for concurrent use.
func (c *crConn) send(p packets.Packet) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	if c.buf, err = p.Append(c.buf[:0]); err != nil {
		return err
	}
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	_, err = c.nc.Write(c.buf)
	return err
}

func (c *crConn) recv(d time.Duration) (packets.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadPacket()
}

// crPublisher publishes crMessages messages at QoS 1 on crash/q1 and as
// many at QoS 2 on crash/q2, alternately, their sequence numbers as
// payloads, with up to crWindow in flight, and records which ones the
// broker acknowledged (PUBACK, PUBREC). Packet identifier 2i+1 carries
// QoS 1 message i, 2i+2 QoS 2 message i.
type crPublisher struct {
	acked [2][crMessages]bool // [0]: QoS 1, [1]: QoS 2; final once run returned
	acks  atomic.Int64
}

// run publishes on c until every message is sent and the connection
// breaks; it closes halfway once crKillAt messages are acknowledged.
func (p *crPublisher) run(c *crConn, halfway chan<- struct{}) error {
	window := make(chan struct{}, crWindow)
	done := make(chan error, 1)
	go func() {
		for {
			pk, err := c.recv(time.Minute)
			if err != nil {
				done <- err
				return
			}
			switch a := pk.(type) {
			case *packets.Puback:
				p.acked[0][(a.PacketID-1)/2] = true
				<-window
			case *packets.Pubrec:
				p.acked[1][(a.PacketID-2)/2] = true
				c.send(&packets.Pubrel{PacketID: a.PacketID})
			case *packets.Pubcomp:
				<-window
				continue
			default:
				done <- fmt.Errorf("publisher got %v", pk.Type())
				return
			}
			if p.acks.Add(1) == crKillAt {
				close(halfway)
			}
		}
	}()
	for i := range crMessages {
		for q := range 2 {
			select {
			case window <- struct{}{}:
			case err := <-done:
				return err
			}
			m := &packets.Publish{Topic: "crash/q" + strconv.Itoa(q+1), Payload: []byte(strconv.Itoa(i)), QoS: byte(q + 1), PacketID: uint16(2*i + q + 1)}
			if err := c.send(m); err != nil {
				c.nc.Close()
				return <-done
			}
		}
	}
	return <-done
}

// crSubscriber is the persistent subscriber: it counts the messages it is
// delivered by topic and sequence number, across connections.
type crSubscriber struct {
	r     psReceiver
	got   [2]map[int]int // [0]: crash/q1, [1]: crash/q2; deliveries per sequence number
	first [2][]int       // sequence numbers in order of first delivery
}

// receive takes deliveries on c until complete reports true and the broker
// has been quiet for a moment, or until c breaks (nil complete: until c
// breaks), or timeout.
func (s *crSubscriber) receive(c *crConn, complete func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p, err := c.recv(300 * time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if complete != nil && complete() {
				return nil
			}
			continue
		}
		if err != nil {
			return err
		}
		ack, msg := s.r.receive(p)
		if ack == nil && msg == nil {
			return fmt.Errorf("subscriber got %v %+v", p.Type(), p)
		}
		// Count the message before acknowledging it: psReceiver has taken
		// it (for QoS 2 it keeps the packet identifier, and answers the
		// broker's DUP resend after the restart with PUBREC only), so an
		// acknowledgement that fails because the broker was just killed
		// must not lose it.
		if msg != nil {
			if err := s.record(msg); err != nil {
				return err
			}
		}
		if ack != nil {
			if err := c.send(ack); err != nil {
				return err
			}
		}
	}
	return errors.New("timed out")
}

func (s *crSubscriber) record(m *packets.Publish) error {
	q := slices.Index([]string{"crash/q1", "crash/q2"}, m.Topic)
	seq, err := strconv.Atoi(string(m.Payload))
	if q < 0 || err != nil || seq < 0 || seq >= crMessages || m.QoS != byte(q+1) {
		return fmt.Errorf("unexpected message %s %q at QoS %d", m.Topic, m.Payload, m.QoS)
	}
	if s.got[q] == nil {
		s.got[q] = make(map[int]int)
	}
	if s.got[q][seq] == 0 {
		s.first[q] = append(s.first[q], seq)
	}
	s.got[q][seq]++
	return nil
}

// has reports whether every acknowledged message of crash/q<q+1> arrived.
func (s *crSubscriber) has(q int, acked [crMessages]bool) bool {
	for seq, ok := range acked {
		if ok && s.got[q][seq] == 0 {
			return false
		}
	}
	return true
}

// missing lists the acknowledged messages of crash/q<q+1> not delivered,
// the first 20 of them.
func (s *crSubscriber) missing(q int, acked [crMessages]bool) []int {
	var out []int
	for seq, ok := range acked {
		if ok && s.got[q][seq] == 0 && len(out) < 20 {
			out = append(out, seq)
		}
	}
	return out
}

// check fails on a QoS 2 message delivered twice, and on messages of a topic
// first delivered out of order.
func (s *crSubscriber) check(t *testing.T) {
	t.Helper()
	for seq, n := range s.got[1] {
		assert.LessOrEqual(t, n, 1, "QoS 2 message %d delivered %d times", seq, n)
	}
	for q := range 2 {
		assert.True(t, slices.IsSorted(s.first[q]), "crash/q%d first delivered out of order: %v", q+1, s.first[q])
	}
	dups := 0
	for _, n := range s.got[0] {
		dups += n - 1
	}
	t.Logf("delivered: %d QoS 1 (%d duplicates, allowed), %d QoS 2", len(s.got[0]), dups, len(s.got[1]))
}
