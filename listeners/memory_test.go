package listeners

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// memPair dials mem and returns the client and server ends.
func memPair(t *testing.T, mem *Memory) (client, server net.Conn) {
	t.Helper()
	accepted := acceptOne(t, mem)
	client, err := mem.Dial()
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client, receive(t, accepted)
}

func TestMemoryAcceptExchangeClose(t *testing.T) {
	checkGoroutines(t)
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })

	client, server := memPair(t, mem)
	exchange(t, client, server)

	if got := mem.Addr().Network(); got != "memory" {
		t.Errorf("Addr().Network() = %q, want memory", got)
	}
	if server.LocalAddr() != mem.Addr() || client.RemoteAddr() != mem.Addr() {
		t.Errorf("server local %v, client remote %v, want both %v", server.LocalAddr(), client.RemoteAddr(), mem.Addr())
	}
	if server.RemoteAddr() != client.LocalAddr() || client.LocalAddr().String() == mem.Addr().String() {
		t.Errorf("client address %v seen by server as %v", client.LocalAddr(), server.RemoteAddr())
	}
	if NewMemory().Addr() == mem.Addr() {
		t.Error("two memory listeners share an address")
	}

	if err := mem.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := mem.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := mem.Dial(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: %v, want net.ErrClosed", err)
	}
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
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s: %v, want net.ErrClosed", name, err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%s still blocked after Close", name)
		}
	}
}

func TestMemoryDialContextCanceled(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := mem.DialContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DialContext with nobody accepting: %v, want context.DeadlineExceeded", err)
	}
}

// A writer does not wait for the reader while the buffer has room: the
// broker can write to a client that is busy writing itself.
func TestMemoryWritesAreBuffered(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)

	msg := bytes.Repeat([]byte{0xA5}, MemoryBufferSize/2)
	_ = server.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := server.Write(msg); err != nil {
		t.Fatalf("server Write with nobody reading: %v", err)
	}
	if _, err := client.Write(msg); err != nil { // both sides at once: no deadlock
		t.Fatalf("client Write with nobody reading: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("client read %d matching=%v err=%v", len(got), bytes.Equal(got, msg), err)
	}
}

func TestMemoryWriteDeadlineWhenBufferFull(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)

	// The client never reads: a stuck consumer.
	_ = server.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	n, err := server.Write(make([]byte, MemoryBufferSize+1000))
	if !isTimeout(err) {
		t.Fatalf("Write to a full buffer: %v, want a timeout", err)
	}
	if n != MemoryBufferSize {
		t.Errorf("Write wrote %d bytes before timing out, want %d", n, MemoryBufferSize)
	}
	if elapsed := time.Since(start); elapsed < 50*time.Millisecond {
		t.Errorf("Write timed out after %v, before its deadline", elapsed)
	}
	// The bytes that fit are delivered, and the writer recovers once the
	// deadline is lifted and the reader catches up.
	_ = server.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := server.Write([]byte("tail"))
		done <- err
	}()
	got, err := io.ReadAll(io.LimitReader(client, int64(MemoryBufferSize+4)))
	if err != nil || len(got) != MemoryBufferSize+4 || string(got[MemoryBufferSize:]) != "tail" {
		t.Fatalf("read %d bytes (%v), want %d ending in tail", len(got), err, MemoryBufferSize+4)
	}
	if err := <-done; err != nil {
		t.Fatalf("Write after lifting the deadline: %v", err)
	}
}

func TestMemoryReadDeadline(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)

	_ = server.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	_, err := server.Read(make([]byte, 10))
	if !isTimeout(err) {
		t.Fatalf("Read with nothing sent: %v, want a timeout", err)
	}
	if elapsed := time.Since(start); elapsed < 30*time.Millisecond {
		t.Errorf("Read timed out after %v, before its deadline", elapsed)
	}
	// A passed deadline fails at once even when data is waiting.
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Read(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("Read after the deadline passed: %v, want a timeout", err)
	}
	// A new deadline makes the connection usable again.
	_ = server.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 10)
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("Read after extending the deadline: %q, %v", buf[:n], err)
	}
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
		select {
		case err := <-ch:
			if !isTimeout(err) {
				t.Errorf("blocked %s: %v, want a timeout", name, err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("blocked %s not woken by a past deadline", name)
		}
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
	if _, err := server.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := server.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read blocked during Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Read still blocked after Close")
	}
	if err := server.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	buf := make([]byte, 8)
	if _, err := server.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := server.Write(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}

	// The peer still reads what was written before Close, then io.EOF, and
	// its writes fail.
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "last words" {
		t.Fatalf("peer read after Close: %q, %v; want %q", got, err, "last words")
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Write to a closed peer: %v, want io.ErrClosedPipe", err)
	}
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
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	first, second := got[:size], got[size:]
	if bytes.Count(first, first[:1]) != size || bytes.Count(second, second[:1]) != size || first[0] == second[0] {
		t.Fatalf("writes interleaved: first half has %d %q, second half %d %q",
			bytes.Count(first, first[:1]), first[:1], bytes.Count(second, second[:1]), second[:1])
	}
}

func TestMemoryZeroLengthIO(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)
	if n, err := server.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v; want 0, nil without blocking", n, err)
	}
	if n, err := client.Write(nil); n != 0 || err != nil {
		t.Errorf("Write(nil) = %d, %v; want 0, nil", n, err)
	}
}
