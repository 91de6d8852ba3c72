package auth_test

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
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/ternmq/tern/auth"
	"github.com/ternmq/tern/brokertest"
	"github.com/ternmq/tern/packets"
)

// The flood: floodWorkers connections at a time, each sending a CONNECT
// with a wrong password, for floodDuration, from a separate process at the
// lowest priority (an attacker is another machine: its own CPU work must
// not count as the broker's), and the bounds the legitimate clients are
// held to meanwhile.
const (
	floodDuration   = 5 * time.Second
	floodWorkers    = 64
	maxMedian       = 50 * time.Millisecond
	maxP99          = 500 * time.Millisecond
	maxFirstConnect = 2 * time.Second
	// answerTimeout is how long any CONNECT may wait for its CONNACK
	// before it counts as unanswered.
	answerTimeout = 10 * time.Second
)

// The attacker process learns the broker's address and the duration from
// these variables.
const (
	envFloodBroker   = "TERN_AUTH_FLOOD_BROKER"
	envFloodDuration = "TERN_AUTH_FLOOD_DURATION"
)

// attackerAddr is the attackers' source address: Linux routes all of
// 127/8 to the loopback interface.
var attackerAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// floodResult is what the attacker process reports, as one JSON line
// after floodResultPrefix on its standard output.
type floodResult struct {
	Attempts   int64
	Unanswered int64
	Codes      [6]int64 // CONNACK return codes received
	Elapsed    time.Duration
	FirstError string // of the unanswered attempts
}

const floodResultPrefix = "flood-result: "

// TestWrongPasswordFloodDoesNotLockOutUsers floods the broker with wrong
// passwords (bcrypt cost 10) from 127.0.0.2 while a legitimate user
// reconnects again and again from 127.0.0.1, and a user never seen before
// connects once: the legitimate connects stay fast, and every attacker
// CONNECT gets an answer.
func TestWrongPasswordFloodDoesNotLockOutUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("the flood runs for several seconds; not run with -short")
	}
	if raceEnabled {
		t.Skip("timing bounds: the race detector slows bcrypt about tenfold")
	}
	if l, err := net.ListenTCP("tcp", attackerAddr); err != nil {
		t.Skipf("cannot bind 127.0.0.2 for the attackers: %v", err)
	} else {
		l.Close()
	}

	path := filepath.Join(t.TempDir(), "auth.conf")
	var conf []byte
	for _, u := range []string{"alice", "bob"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-password"), 10)
		require.NoError(t, err)
		conf = fmt.Appendf(conf, "user %s %s\n", u, h)
	}
	require.NoError(t, os.WriteFile(path, conf, 0o600))
	f, err := auth.Load(path)
	require.NoError(t, err)
	srv := brokertest.New(t, brokertest.WithHook(f), brokertest.WithTimeout(15*time.Second))
	addr := srv.Addr()

	// alice's credentials are checked once before the flood.
	code, err := connectOnce(addr, nil, "alice-0", "alice", "alice-password")
	require.NoError(t, err)
	require.Equal(t, packets.Accepted, code, "alice before the flood")

	attacker := startAttacker(t, addr)
	ctx, stop := context.WithTimeout(t.Context(), floodDuration)
	defer stop()

	// A user never seen before connects once, in the middle of the flood.
	type firstConnect struct {
		took time.Duration
		err  error
	}
	first := make(chan firstConnect, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-time.After(floodDuration / 3):
		case <-ctx.Done():
		}
		t0 := time.Now()
		code, err := connectOnce(addr, nil, "bob-1", "bob", "bob-password")
		if err == nil && code != packets.Accepted {
			err = fmt.Errorf("CONNACK 0x%02x", code)
		}
		first <- firstConnect{time.Since(t0), err}
	})

	// alice reconnects again and again, one connect after the other.
	var times []time.Duration
	var legitErrs []error
	for ctx.Err() == nil {
		t0 := time.Now()
		code, err := connectOnce(addr, nil, "alice-1", "alice", "alice-password")
		if err == nil && code != packets.Accepted {
			err = fmt.Errorf("CONNACK 0x%02x", code)
		}
		if err != nil {
			legitErrs = append(legitErrs, err)
			continue
		}
		times = append(times, time.Since(t0))
	}
	wg.Wait()
	res := attacker()

	slices.Sort(times)
	require.NotEmpty(t, times, "alice never connected; errors: %v", legitErrs)
	median := times[len(times)/2]
	p99 := times[(len(times)*99+99)/100-1]
	fc := <-first
	refused := res.Codes[packets.RefusedBadUsernamePassword] + res.Codes[packets.RefusedServerUnavailable]
	t.Logf("flood: %d CONNECTs in %v from %d workers: %.0f refusals/s (0x04: %d, 0x03: %d), %d unanswered",
		res.Attempts, res.Elapsed.Round(time.Millisecond), floodWorkers, float64(refused)/res.Elapsed.Seconds(),
		res.Codes[packets.RefusedBadUsernamePassword], res.Codes[packets.RefusedServerUnavailable], res.Unanswered)
	t.Logf("legitimate reconnects: %d, median %v, p99 %v, max %v; first-time user: %v",
		len(times), median.Round(time.Microsecond), p99.Round(time.Microsecond),
		times[len(times)-1].Round(time.Microsecond), fc.took.Round(time.Microsecond))
	t.Logf("hook: %+v", f.Stats())

	assert.Empty(t, legitErrs, "alice's reconnects failed")
	assert.LessOrEqual(t, median, maxMedian, "median legitimate reconnect")
	assert.LessOrEqual(t, p99, maxP99, "p99 legitimate reconnect")
	assert.NoError(t, fc.err, "first-time user")
	assert.LessOrEqual(t, fc.took, maxFirstConnect, "first-time user's connect")
	assert.Zero(t, res.Unanswered, "attacker CONNECTs without an answer (first error: %s)", res.FirstError)
	assert.Zero(t, res.Codes[packets.Accepted], "attacker CONNECTs accepted")
	assert.Positive(t, refused, "no attacker CONNECT was refused")
}

// startAttacker starts the attacker process (TestFloodAttacker in this
// test binary) against the broker at addr, and returns once the flood has
// begun. The function it returns waits for the process and returns its
// result.
func startAttacker(t *testing.T, addr string) func() floodResult {
	t.Helper()
	args := []string{os.Args[0], "-test.run=^TestFloodAttacker$", "-test.count=1"}
	// An attacker is another machine: at the lowest priority, the process
	// takes only the CPU the broker leaves, even on a machine loaded by
	// others. Each attacking connection still waits for its answer, so
	// the broker gets as many CONNECTs as it can answer.
	if nice, err := exec.LookPath("nice"); err == nil {
		args = append([]string{nice, "-n", "19"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), envFloodBroker+"="+addr, envFloodDuration+"="+floodDuration.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	wait := func() (string, bool) {
		for l := range lines {
			if strings.HasPrefix(l, floodResultPrefix) || l == "flood-started" {
				return l, true
			}
		}
		return "", false
	}
	var waited bool
	end := func() error {
		waited = true
		for range lines { // let the reader end
		}
		return cmd.Wait()
	}
	// When the test stops early, the attacker stops too.
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			end()
		}
	})
	l, ok := wait()
	require.True(t, ok && l == "flood-started", "the attacker process did not start the flood (%q)", l)
	return func() floodResult {
		l, ok := wait()
		require.NoError(t, end(), "attacker process")
		require.True(t, ok, "the attacker process gave no result")
		var res floodResult
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(l, floodResultPrefix)), &res))
		return res
	}
}

// TestFloodAttacker is the attacker of TestWrongPasswordFloodDoesNotLockOutUsers,
// in a process of its own.
func TestFloodAttacker(t *testing.T) {
	addr := os.Getenv(envFloodBroker)
	if addr == "" {
		t.Skip("the attacker process of TestWrongPasswordFloodDoesNotLockOutUsers: runs only when that test starts it")
	}
	d, err := time.ParseDuration(os.Getenv(envFloodDuration))
	require.NoError(t, err)
	ctx, stop := context.WithTimeout(context.Background(), d)
	defer stop()
	var (
		res        floodResult
		attempts   atomic.Int64
		unanswered atomic.Int64
		codes      [6]atomic.Int64
		firstErr   atomic.Value
		wg         sync.WaitGroup
	)
	fmt.Println("flood-started")
	start := time.Now()
	for w := range floodWorkers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				user := "alice"
				if i%2 == 1 {
					user = fmt.Sprintf("nobody-%d", w) // unknown users too
				}
				code, err := connectOnce(addr, attackerAddr, fmt.Sprintf("mallory-%d", w), user, "guess")
				attempts.Add(1)
				switch {
				case err != nil:
					unanswered.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case int(code) < len(codes):
					codes[code].Add(1)
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Attempts, res.Unanswered = attempts.Load(), unanswered.Load()
	for i := range codes {
		res.Codes[i] = codes[i].Load()
	}
	res.FirstError, _ = firstErr.Load().(string)
	b, err := json.Marshal(res)
	require.NoError(t, err)
	fmt.Println(floodResultPrefix + string(b))
}

// connectOnce dials the broker (from local, when not nil), sends a CONNECT
// with the credentials, and returns the CONNACK return code. An accepted
// connection is closed with DISCONNECT.
func connectOnce(addr string, local *net.TCPAddr, id, user, password string) (byte, error) {
	d := net.Dialer{Timeout: answerTimeout}
	if local != nil {
		d.LocalAddr = local
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	cp := packets.Connect{CleanSession: true, KeepAlive: 30, ClientID: id,
		UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(password)}
	b, err := cp.Append(nil)
	if err != nil {
		return 0, err
	}
	if err := c.SetDeadline(time.Now().Add(answerTimeout)); err != nil {
		return 0, err
	}
	if _, err := c.Write(b); err != nil {
		return 0, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return 0, err
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		return 0, errors.New("not a CONNACK")
	}
	if ack[3] == packets.Accepted {
		_, err = c.Write([]byte{0xe0, 0})
	}
	return ack[3], err
}
