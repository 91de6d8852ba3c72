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
		deadline := time.Now().Add(waitTimeout)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutines: %d at start, %d at end:\n%s", base, runtime.NumGoroutine(), buf[:n])
				return
			}
			runtime.Gosched()
			time.Sleep(time.Millisecond) // polling interval, not synchronisation
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
		if err != nil {
			t.Errorf("Accept: %v", err)
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
		if !ok {
			t.Fatal("no connection accepted")
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for Accept")
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
		if _, err := io.ReadFull(to, got); err != nil {
			t.Fatalf("read: %v", err)
		}
		_ = to.SetReadDeadline(time.Time{})
		if err := <-errc; err != nil {
			t.Fatalf("write: %v", err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("got %q, want %q", got, msg)
		}
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
