//go:build linux

package tern

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fdTestTimeout = 5 * time.Second

// fdPair returns one of Tern's own sockets, registered with a broker's
// poller as the broker registers the connections it accepts, and its peer:
// a Go socket.
func fdPair(t *testing.T) (*fdConn, net.Conn) {
	t.Helper()
	b, err := New(Options{SysInterval: -1})
	require.NoError(t, err, "New")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "Listen")
	p := b.poller()
	require.NotNil(t, p, "the broker's poller")
	a := b.newFDAccepter(l.(*net.TCPListener), p)
	require.NotNil(t, a, "an accepter for a *net.TCPListener")
	peer, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err, "Dial")
	nc, err := a.Accept()
	require.NoError(t, err, "Accept")
	fc, ok := nc.(*fdConn)
	require.True(t, ok, "Accept returns an *fdConn, not %T", nc)
	c := &conn{b: b, nc: fc, heapIndex: -1}
	require.NoError(t, p.register(c, int(fc.fd)), "register")
	t.Cleanup(func() {
		peer.Close()
		fc.Close()
		b.releasePoll(c)
		a.close()
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), fdTestTimeout)
		defer cancel()
		assert.NoError(t, b.Close(ctx), "Close")
	})
	return fc, peer
}

// result runs f in a goroutine and returns a channel with its outcome.
func result(f func() (int, error)) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := f()
		ch <- err
	}()
	return ch
}

func waitResult(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(fdTestTimeout):
		require.FailNow(t, what+" did not return")
		return nil
	}
}

func TestFDConnReadWaitsForBytes(t *testing.T) {
	fc, peer := fdPair(t)
	buf := make([]byte, 64)
	var n int
	done := result(func() (int, error) {
		var err error
		n, err = fc.Read(buf)
		return n, err
	})
	_, err := peer.Write([]byte("hello"))
	require.NoError(t, err, "peer Write")
	require.NoError(t, waitResult(t, "Read", done), "Read")
	assert.Equal(t, "hello", string(buf[:n]), "bytes read")

	n, err = fc.Read(nil)
	assert.NoError(t, err, "Read of nothing")
	assert.Zero(t, n, "Read of nothing")
}

func TestFDConnAddresses(t *testing.T) {
	fc, peer := fdPair(t)
	remote, ok := fc.RemoteAddr().(*net.TCPAddr)
	require.True(t, ok, "RemoteAddr is a *net.TCPAddr, not %T", fc.RemoteAddr())
	assert.Equal(t, peer.LocalAddr().String(), remote.String(), "RemoteAddr")
	assert.Equal(t, peer.RemoteAddr().String(), fc.LocalAddr().String(), "LocalAddr")
	assert.Equal(t, "tcp", remote.Network(), "Network")
}

func TestFDConnReadDeadline(t *testing.T) {
	fc, peer := fdPair(t)
	require.NoError(t, fc.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err := fc.Read(make([]byte, 8))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "Read past its deadline")
	var ne net.Error
	require.ErrorAs(t, err, &ne, "a net.Error")
	assert.True(t, ne.Timeout(), "Timeout()")

	// A deadline moved into the past wakes a Read that waits.
	require.NoError(t, fc.SetReadDeadline(time.Time{}))
	done := result(func() (int, error) { return fc.Read(make([]byte, 8)) })
	require.NoError(t, fc.SetReadDeadline(time.Unix(1, 0)))
	require.ErrorIs(t, waitResult(t, "Read", done), os.ErrDeadlineExceeded, "Read woken by its deadline")

	// Cleared, the connection reads on.
	require.NoError(t, fc.SetReadDeadline(time.Time{}))
	_, err = peer.Write([]byte("on"))
	require.NoError(t, err)
	buf := make([]byte, 8)
	n, err := fc.Read(buf)
	require.NoError(t, err, "Read after the deadline was cleared")
	assert.Equal(t, "on", string(buf[:n]))
}

// A Write waits while the peer does not read: its deadline ends it with
// what it wrote counted; once the peer reads, everything arrives intact.
func TestFDConnWriteWaitsForTheReader(t *testing.T) {
	fc, peer := fdPair(t)
	data := make([]byte, 16<<20) // more than both socket buffers hold
	for i := range data {
		data[i] = byte(i * 7)
	}
	require.NoError(t, fc.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	n, err := fc.Write(data)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "Write to a peer that does not read")
	require.Less(t, n, len(data), "bytes written before the deadline")

	require.NoError(t, fc.SetWriteDeadline(time.Time{}))
	done := result(func() (int, error) { return fc.Write(data[n:]) })
	got := make([]byte, len(data))
	_, err = io.ReadFull(peer, got)
	require.NoError(t, err, "peer reads everything")
	require.NoError(t, waitResult(t, "Write", done), "the rest of the Write")
	require.True(t, bytes.Equal(data, got), "the bytes arrive intact and in order")
}

// Close wakes the calls that wait, which return net.ErrClosed; the peer
// sees the end of the stream.
func TestFDConnCloseWakesCalls(t *testing.T) {
	fc, peer := fdPair(t)
	reading := result(func() (int, error) { return fc.Read(make([]byte, 8)) })
	writing := result(func() (int, error) { return fc.Write(make([]byte, 16<<20)) })
	// Both are waiting once the send buffer is full and nothing came in;
	// Close must end them wherever they are.
	require.Eventually(t, func() bool {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return fc.rWait != nil && fc.wWait != nil
	}, fdTestTimeout, time.Millisecond, "Read and Write wait")
	require.NoError(t, fc.Close(), "Close")
	assert.ErrorIs(t, waitResult(t, "Read", reading), net.ErrClosed, "Read woken by Close")
	assert.ErrorIs(t, waitResult(t, "Write", writing), net.ErrClosed, "Write woken by Close")
	_, err := fc.Read(make([]byte, 8))
	assert.ErrorIs(t, err, net.ErrClosed, "Read after Close")
	_, err = fc.Write([]byte("x"))
	assert.ErrorIs(t, err, net.ErrClosed, "Write after Close")
	assert.ErrorIs(t, fc.Close(), net.ErrClosed, "second Close")
	_, err = io.Copy(io.Discard, peer)
	assert.NoError(t, err, "the peer reads to the end of the stream")
	assert.Equal(t, int32(0), fc.refs.Load(), "the descriptor is closed")
}

// The descriptor stays open while a call uses it: a number reused by the
// next socket is never read or written in the closed connection's name.
func TestFDConnClosesItsDescriptorAfterTheLastCall(t *testing.T) {
	fc, _ := fdPair(t)
	require.True(t, fc.acquire(), "acquire, as a call does")
	require.NoError(t, fc.Close(), "Close")
	require.NoError(t, fdOpen(fc.fd), "the descriptor is open while a call uses it")
	assert.False(t, fc.acquire(), "no new call after Close")
	fc.release()
	assert.ErrorIs(t, fdOpen(fc.fd), syscall.EBADF, "the descriptor is closed after the last call")
}

// fdOpen returns nil if fd is an open descriptor, EBADF if not.
func fdOpen(fd int32) error {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func TestFDConnPeerClose(t *testing.T) {
	fc, peer := fdPair(t)
	_, err := peer.Write([]byte("bye"))
	require.NoError(t, err)
	require.NoError(t, peer.(*net.TCPConn).CloseWrite(), "peer CloseWrite")
	got, err := io.ReadAll(fc)
	require.NoError(t, err, "read to the end of the stream")
	assert.Equal(t, "bye", string(got))
	// Once the poller has seen the peer's end, the socket is not idle
	// even with nothing to read: its reader must see the end.
	require.Eventually(t, func() bool { return !fc.idle() }, fdTestTimeout, time.Millisecond,
		"a socket whose peer closed is not idle")

	require.NoError(t, fc.CloseWrite(), "CloseWrite")
	_, err = io.ReadAll(peer)
	assert.NoError(t, err, "the peer sees the end of the stream")
}

func TestFDConnIdle(t *testing.T) {
	fc, peer := fdPair(t)
	assert.True(t, fc.idle(), "a new socket with nothing received")
	assert.Zero(t, fc.received(), "received")
	_, err := peer.Write([]byte("abc"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return fc.received() == 3 }, fdTestTimeout, time.Millisecond, "3 bytes received")
	assert.False(t, fc.idle(), "bytes wait")
	_, err = io.ReadFull(fc, make([]byte, 3))
	require.NoError(t, err)
	assert.True(t, fc.idle(), "read to the last byte")
}

// A listener the application closes ends Accept with net.ErrClosed; the
// poller does not report it, the accepter sees it within acceptPoll.
func TestFDAccepterSeesTheListenerClosed(t *testing.T) {
	b, err := New(Options{SysInterval: -1})
	require.NoError(t, err, "New")
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "Listen")
	a := b.newFDAccepter(l.(*net.TCPListener), b.poller())
	require.NotNil(t, a)
	defer a.close()
	done := result(func() (int, error) {
		_, err := a.Accept()
		return 0, err
	})
	require.NoError(t, l.Close())
	err = waitResult(t, "Accept", done)
	require.True(t, errors.Is(err, net.ErrClosed), "Accept on a closed listener: %v", err)
}
