//go:build unix

package tern_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// scriptedListener is a net.Listener whose Accept returns what the test
// sends on next, one result per call.
type scriptedListener struct {
	next      chan acceptResult
	done      chan struct{}
	closeOnce sync.Once
}

type acceptResult struct {
	conn net.Conn
	err  error
}

func newScriptedListener() *scriptedListener {
	return &scriptedListener{next: make(chan acceptResult), done: make(chan struct{})}
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	select {
	case r := <-l.next:
		return r.conn, r.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *scriptedListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *scriptedListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883}
}

// give hands r to the next Accept call, failing if Serve stopped calling it.
func (l *scriptedListener) give(t *testing.T, served <-chan error, r acceptResult) {
	t.Helper()
	select {
	case l.next <- r:
	case err := <-served:
		require.Failf(t, "Serve returned", "Serve returned %v while accept errors were temporary", err)
	}
}

// acceptError is an accept error as the net package returns it.
func acceptError(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// timeoutError is a net.Error that reports a timeout.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// countingHandler counts the log records at Warn level and above.
type countingHandler struct {
	mu    sync.Mutex
	warns int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level >= slog.LevelWarn {
		h.warns++
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.warns
}

// Accept errors that say the system is loaded (out of descriptors, out of
// buffers, a connection aborted before it was accepted, a timeout) do not
// stop Serve: it backs off, retries, counts each in Stats.AcceptErrors,
// logs at most once a second, and serves the next connection.
func TestServeRetriesTemporaryAcceptErrors(t *testing.T) {
	logs := &countingHandler{}
	b, err := tern.New(tern.Options{SysInterval: -1, Logger: slog.New(logs)})
	require.NoError(t, err)
	l := newScriptedListener()
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()

	errs := []error{
		acceptError(syscall.EMFILE),
		acceptError(syscall.ENFILE),
		acceptError(syscall.ECONNABORTED),
		acceptError(syscall.ENOBUFS),
		acceptError(syscall.ENOMEM),
		acceptError(syscall.EMFILE),
		timeoutError{},
	}
	for _, e := range errs {
		l.give(t, served, acceptResult{err: e})
	}
	server, client := net.Pipe()
	l.give(t, served, acceptResult{conn: server})

	c := &rawClient{t: t, conn: client, r: packets.NewReader(client, 0)}
	t.Cleanup(func() { client.Close() })
	ack := c.connect("after-emfile", true)
	assert.Equal(t, byte(0), ack.ReturnCode)
	assert.Equal(t, int64(len(errs)), b.Stats().AcceptErrors)
	assert.GreaterOrEqual(t, logs.count(), 1, "accept errors are logged")
	assert.Less(t, logs.count(), len(errs), "accept errors are logged at most once a second, not once each")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, b.Close(ctx))
	assert.ErrorIs(t, <-served, tern.ErrClosed)
}

// An accept error that is not temporary ends Serve with that error, as
// http.Server.Serve does; the broker keeps serving its other listeners.
func TestServeReturnsPermanentAcceptError(t *testing.T) {
	b, err := tern.New(tern.Options{SysInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		assert.NoError(t, b.Close(ctx))
	})
	l := newScriptedListener()
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	broken := acceptError(syscall.EINVAL)
	l.next <- acceptResult{err: broken}
	err = <-served
	require.ErrorIs(t, err, syscall.EINVAL)
	assert.True(t, b.Serving())
	assert.Equal(t, int64(0), b.Stats().AcceptErrors)
}
