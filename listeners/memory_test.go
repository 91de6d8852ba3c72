package listeners

import (
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memPair dials mem and returns the client and server ends.
func memPair(t *testing.T, mem *Memory) (client, server net.Conn) {
	t.Helper()
	accepted := acceptOne(t, mem)
	client, err := mem.Dial()
	require.NoError(t, err, "Dial")
	t.Cleanup(func() { _ = client.Close() })
	return client, receive(t, accepted)
}

// waitErr waits for the error of a call that ch reports, failing the test if
// it is still blocked after waitTimeout.
func waitErr(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitTimeout):
		require.FailNow(t, what+" still blocked")
		return nil
	}
}

func TestMemoryAcceptExchangeClose(t *testing.T) {
	checkGoroutines(t)
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })

	client, server := memPair(t, mem)
	exchange(t, client, server)

	assert.Equal(t, "memory", mem.Addr().Network(), "Addr().Network()")
	assert.True(t, server.LocalAddr() == mem.Addr() && client.RemoteAddr() == mem.Addr(),
		"server local %v, client remote %v, want both %v", server.LocalAddr(), client.RemoteAddr(), mem.Addr())
	assert.True(t, server.RemoteAddr() == client.LocalAddr() && client.LocalAddr().String() != mem.Addr().String(),
		"client address %v seen by server as %v", client.LocalAddr(), server.RemoteAddr())
	assert.True(t, NewMemory().Addr() != mem.Addr(), "two memory listeners share an address")

	require.NoError(t, mem.Close(), "Close")
	_, err := mem.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Accept after Close")
	_, err = mem.Dial()
	assert.ErrorIs(t, err, net.ErrClosed, "Dial after Close")
	// Accepted connections outlive the listener.
	exchange(t, server, client)
}

func TestMemoryCloseUnblocksAcceptAndDial(t *testing.T) {
	checkGoroutines(t)
	mem := NewMemory()
	acceptErr := make(chan error, 1)
	go func() {
		_, err := mem.Accept()
		acceptErr <- err
	}()
	// A second listener with nobody accepting: its Dial blocks until Close.
	lonely := NewMemory()
	dialErr := make(chan error, 1)
	go func() {
		_, err := lonely.Dial()
		dialErr <- err
	}()

	_ = mem.Close()
	_ = lonely.Close()
	for name, ch := range map[string]chan error{"Accept": acceptErr, "Dial": dialErr} {
		assert.ErrorIs(t, waitErr(t, name+" after Close", ch), net.ErrClosed, name)
	}
}

func TestMemoryDialContextCanceled(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := mem.DialContext(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "DialContext with nobody accepting")
}

// A writer does not wait for the reader while the buffer has room: the
// broker can write to a client that is busy writing itself.
func TestMemoryWritesAreBuffered(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)

	msg := bytes.Repeat([]byte{0xA5}, MemoryBufferSize/2)
	_ = server.SetWriteDeadline(time.Now().Add(waitTimeout))
	_, err := server.Write(msg)
	require.NoError(t, err, "server Write with nobody reading")
	_, err = client.Write(msg) // both sides at once: no deadlock
	require.NoError(t, err, "client Write with nobody reading")
	got := make([]byte, len(msg))
	_, err = io.ReadFull(client, got)
	require.NoError(t, err, "client read")
	require.True(t, bytes.Equal(got, msg), "client read bytes that do not match")
}

func TestMemoryWriteDeadlineWhenBufferFull(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)

	// The client never reads: a stuck consumer.
	_ = server.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	n, err := server.Write(make([]byte, MemoryBufferSize+1000))
	require.True(t, isTimeout(err), "Write to a full buffer: %v, want a timeout", err)
	assert.Equal(t, MemoryBufferSize, n, "bytes written before timing out")
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "Write timed out before its deadline")
	// The bytes that fit are delivered, and the writer recovers once the
	// deadline is lifted and the reader catches up.
	_ = server.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := server.Write([]byte("tail"))
		done <- err
	}()
	got, err := io.ReadAll(io.LimitReader(client, int64(MemoryBufferSize+4)))
	require.NoError(t, err)
	require.Len(t, got, MemoryBufferSize+4)
	require.Equal(t, "tail", string(got[MemoryBufferSize:]))
	require.NoError(t, <-done, "Write after lifting the deadline")
}

func TestMemoryReadDeadline(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)

	_ = server.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	_, err := server.Read(make([]byte, 10))
	require.True(t, isTimeout(err), "Read with nothing sent: %v, want a timeout", err)
	assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond, "Read timed out before its deadline")
	// A passed deadline fails at once even when data is waiting.
	_, err = client.Write([]byte("x"))
	require.NoError(t, err)
	_, err = server.Read(make([]byte, 10))
	require.True(t, isTimeout(err), "Read after the deadline passed: %v, want a timeout", err)
	// A new deadline makes the connection usable again.
	_ = server.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 10)
	n, err := server.Read(buf)
	require.NoError(t, err, "Read after extending the deadline")
	require.Equal(t, "x", string(buf[:n]), "Read after extending the deadline")
}

// Moving the deadline into the past wakes a Read that is already blocked,
// which is how a broker interrupts a reader.
func TestMemorySetDeadlineWakesBlockedCalls(t *testing.T) {
	checkGoroutines(t)
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)

	readErr := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 1))
		readErr <- err
	}()
	writeErr := make(chan error, 1)
	go func() {
		_, err := client.Write(make([]byte, MemoryBufferSize+1)) // blocks: nobody reads
		writeErr <- err
	}()
	_ = server.SetDeadline(time.Now().Add(-time.Second))
	_ = client.SetWriteDeadline(time.Now().Add(-time.Second))
	for name, ch := range map[string]chan error{"Read": readErr, "Write": writeErr} {
		err := waitErr(t, "blocked "+name+" not woken by a past deadline:", ch)
		assert.True(t, isTimeout(err), "blocked %s: %v, want a timeout", name, err)
	}
}

func TestMemoryClose(t *testing.T) {
	checkGoroutines(t)
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)

	// Close wakes a Read blocked on the same end with net.ErrClosed.
	readErr := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 1))
		readErr <- err
	}()
	_, err := server.Write([]byte("last words"))
	require.NoError(t, err)
	require.NoError(t, server.Close(), "Close")
	assert.ErrorIs(t, waitErr(t, "Read after Close", readErr), net.ErrClosed, "Read blocked during Close")
	assert.ErrorIs(t, server.Close(), net.ErrClosed, "second Close")
	buf := make([]byte, 8)
	_, err = server.Read(buf)
	assert.ErrorIs(t, err, net.ErrClosed, "Read after Close")
	_, err = server.Write(buf)
	assert.ErrorIs(t, err, net.ErrClosed, "Write after Close")

	// The peer still reads what was written before Close, then io.EOF, and
	// its writes fail.
	got, err := io.ReadAll(client)
	require.NoError(t, err, "peer read after Close")
	require.Equal(t, "last words", string(got), "peer read after Close")
	_, err = client.Write([]byte("x"))
	assert.ErrorIs(t, err, io.ErrClosedPipe, "Write to a closed peer")
}

// Concurrent writes are not interleaved, even when each is larger than the
// buffer and has to wait for the reader.
func TestMemoryConcurrentWritesStayWhole(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)

	const size = MemoryBufferSize + MemoryBufferSize/2
	errs := make(chan error, 2)
	for _, b := range []byte("ab") {
		go func() {
			_, err := server.Write(bytes.Repeat([]byte{b}, size))
			errs <- err
		}()
	}
	got := make([]byte, 2*size)
	_, err := io.ReadFull(client, got)
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, <-errs)
	}
	first, second := got[:size], got[size:]
	require.True(t, bytes.Count(first, first[:1]) == size && bytes.Count(second, second[:1]) == size && first[0] != second[0],
		"writes interleaved: first half has %d %q, second half %d %q",
		bytes.Count(first, first[:1]), first[:1], bytes.Count(second, second[:1]), second[:1])
}

func TestMemoryZeroLengthIO(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)
	n, err := server.Read(nil)
	assert.NoError(t, err, "Read(nil) without blocking")
	assert.Zero(t, n, "Read(nil)")
	n, err = client.Write(nil)
	assert.NoError(t, err, "Write(nil)")
	assert.Zero(t, n, "Write(nil)")
}

// A writer that takes the connection's sync.Locker around a packet written
// in several Writes (paho.golang does, as net.Buffers writes one Write per
// part to anything but a socket) gets the packet through whole while
// another goroutine writes its own packets the same way.
func TestMemoryLockedPacketsStayWhole(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)
	locker, ok := client.(sync.Locker)
	require.True(t, ok, "the client end of a memory connection is a sync.Locker")

	const packets = 500
	parts := map[byte]net.Buffers{
		'a': {[]byte("a1"), []byte("a2"), []byte("a3")},
		'b': {[]byte("b1"), []byte("b2")},
	}
	errs := make(chan error, len(parts))
	for _, p := range parts {
		go func() {
			for range packets {
				locker.Lock()
				bufs := slices.Clone(p)
				_, err := bufs.WriteTo(client)
				locker.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	got := make([]byte, packets*(6+4))
	_, err := io.ReadFull(server, got)
	require.NoError(t, err, "read the packets")
	for range parts {
		require.NoError(t, <-errs, "write the packets")
	}
	for i := 0; i < len(got); {
		want := bytes.Join(parts[got[i]], nil)
		require.NotNil(t, want, "offset %d starts no packet: %q", i, got[i])
		require.Equal(t, string(want), string(got[i:i+len(want)]), "packet at offset %d", i)
		i += len(want)
	}
}
