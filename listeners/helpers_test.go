package listeners

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

// checkGoroutines records the number of goroutines now and, at cleanup,
// fails the test unless it returns to that number before a deadline. Call it
// first in a test, so that its cleanup runs after the others (cleanups run
// last-in, first-out). Tests that use it must not run in parallel.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		// Eventually runs the condition in a goroutine of its own.
		if !assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= base+1 },
			waitTimeout, time.Millisecond, "goroutines: %d at start", base) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Logf("%d goroutines at end:\n%s", runtime.NumGoroutine(), buf[:n])
		}
	})
}

// acceptOne accepts one connection in a goroutine and returns a channel
// that yields it (or fails the test).
func acceptOne(t *testing.T, l net.Listener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if !assert.NoError(t, err, "Accept") {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// receive waits for the accepted connection.
func receive(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c, ok := <-ch:
		require.True(t, ok, "no connection accepted")
		t.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(waitTimeout):
		require.FailNow(t, "timed out waiting for Accept")
		return nil
	}
}

// exchange sends distinct bytes each way between a and b and checks that
// they arrive intact.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	send := func(from, to net.Conn, msg []byte) {
		t.Helper()
		errc := make(chan error, 1)
		go func() {
			_, err := from.Write(msg)
			errc <- err
		}()
		_ = to.SetReadDeadline(time.Now().Add(waitTimeout))
		got := make([]byte, len(msg))
		_, err := io.ReadFull(to, got)
		require.NoError(t, err, "read")
		_ = to.SetReadDeadline(time.Time{})
		require.NoError(t, <-errc, "write")
		require.True(t, bytes.Equal(got, msg), "got %q, want %q", got, msg)
	}
	send(a, b, []byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c")) // CONNECT-shaped bytes
	send(b, a, []byte("\x20\x02\x00\x00"))                     // CONNACK-shaped bytes
	send(a, b, bytes.Repeat([]byte("payload-"), 20000))        // larger than one read
}

// isTimeout reports whether err is a deadline error in both of the ways
// callers test for one.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}
