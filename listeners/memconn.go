package listeners

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// MemoryBufferSize is how many bytes each direction of an in-memory
// connection holds before a Write blocks until the peer reads. The buffer
// grows on demand up to this bound, and a drained buffer larger than a few
// KiB is released, so an idle connection stays small.
const MemoryBufferSize = 256 << 10

// memIdleKeep is the largest buffer capacity kept after a buffer drains;
// bigger ones are released so that an idle connection stays small.
const memIdleKeep = 4 << 10

// memBuffer is one direction of an in-memory connection: a bounded byte
// queue with one writing end and one reading end, each with its own deadline.
//
// Waiters block on changed, a channel that is closed (and forgotten) on every
// state change; that is a broadcast condition variable that can be used in a
// select together with a deadline timer.
type memBuffer struct {
	wmu sync.Mutex // serialises writers so one Write's bytes are contiguous

	mu        sync.Mutex
	data      []byte // unread bytes are data[off:]
	off       int
	rDeadline time.Time
	wDeadline time.Time
	rClosed   bool          // the reading end closed: writes fail, data is dropped
	wClosed   bool          // the writing end closed: reads drain, then io.EOF
	changed   chan struct{} // nil while nobody waits
}

// broadcast wakes every waiter. mu must be held.
func (b *memBuffer) broadcast() {
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// wait releases mu until the buffer changes or the deadline passes, then
// takes mu again. It returns os.ErrDeadlineExceeded only when the deadline
// had already passed on entry; callers loop and re-check their condition.
func (b *memBuffer) wait(deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	ch := b.changed
	b.mu.Unlock()
	select {
	case <-ch:
	case <-timeout:
	}
	b.mu.Lock()
	return nil
}

// expired reports whether deadline is set and has passed.
func expired(deadline time.Time) bool {
	return !deadline.IsZero() && !time.Now().Before(deadline)
}

func (b *memBuffer) read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		switch {
		case b.rClosed:
			return 0, net.ErrClosed
		case expired(b.rDeadline):
			return 0, os.ErrDeadlineExceeded
		case b.off < len(b.data):
			n := copy(p, b.data[b.off:])
			b.off += n
			if b.off == len(b.data) {
				b.reset()
			}
			b.broadcast()
			return n, nil
		case b.wClosed:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		if err := b.wait(b.rDeadline); err != nil {
			return 0, err
		}
	}
}

// reset empties the drained buffer, keeping only a small backing array.
func (b *memBuffer) reset() {
	b.off = 0
	if cap(b.data) > memIdleKeep {
		b.data = nil
		return
	}
	b.data = b.data[:0]
}

func (b *memBuffer) write(p []byte) (int, error) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for {
		switch {
		case b.wClosed:
			return n, net.ErrClosed
		case b.rClosed:
			return n, io.ErrClosedPipe
		case n == len(p) && n > 0:
			return n, nil
		case expired(b.wDeadline):
			return n, os.ErrDeadlineExceeded
		case len(p) == 0:
			return 0, nil
		}
		if free := MemoryBufferSize - (len(b.data) - b.off); free > 0 {
			chunk := min(free, len(p)-n)
			if b.off > 0 && len(b.data)+chunk > cap(b.data) {
				b.data = b.data[:copy(b.data, b.data[b.off:])]
				b.off = 0
			}
			b.data = append(b.data, p[n:n+chunk]...)
			n += chunk
			b.broadcast()
			continue
		}
		if err := b.wait(b.wDeadline); err != nil {
			return n, err
		}
	}
}

// closeRead closes the reading end: unread data is dropped and writers fail.
func (b *memBuffer) closeRead() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rClosed = true
	b.data, b.off = nil, 0
	b.broadcast()
}

// closeWrite closes the writing end: the reader drains, then sees io.EOF.
func (b *memBuffer) closeWrite() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wClosed = true
	b.broadcast()
}

func (b *memBuffer) setReadDeadline(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rDeadline = t
	b.broadcast()
}

func (b *memBuffer) setWriteDeadline(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wDeadline = t
	b.broadcast()
}

// memConn is one end of an in-memory connection. Unlike net.Pipe, each
// direction is buffered (up to MemoryBufferSize), so a writer does not wait
// for the reader unless the buffer is full, as with TCP.
type memConn struct {
	in, out       *memBuffer
	local, remote MemoryAddr
	closeOnce     sync.Once
	// packet is the sync.Locker of the connection (Lock, Unlock).
	packet sync.Mutex
}

// newMemPair returns two connected ends; a's local address is aAddr.
func newMemPair(aAddr, bAddr MemoryAddr) (a, b *memConn) {
	ab, ba := new(memBuffer), new(memBuffer)
	a = &memConn{in: ba, out: ab, local: aAddr, remote: bAddr}
	b = &memConn{in: ab, out: ba, local: bAddr, remote: aAddr}
	return a, b
}

func (c *memConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: memoryNetwork, Source: c.local, Addr: c.remote, Err: err}
}

// Read reads buffered bytes sent by the peer. It returns io.EOF once the
// peer has closed and every byte it sent has been read.
func (c *memConn) Read(p []byte) (int, error) {
	n, err := c.in.read(p)
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	return n, err
}

// Write queues p for the peer, blocking while the peer's buffer is full.
func (c *memConn) Write(p []byte) (int, error) {
	n, err := c.out.write(p)
	if err != nil {
		err = c.opError("write", err)
	}
	return n, err
}

// Close closes both directions. Bytes already written stay readable by the
// peer, which then sees io.EOF; the peer's later writes fail.
func (c *memConn) Close() error {
	err := error(nil)
	first := false
	c.closeOnce.Do(func() { first = true })
	if !first {
		err = c.opError("close", net.ErrClosed)
	}
	c.in.closeRead()
	c.out.closeWrite()
	return err
}

// Lock reserves the connection for one writer until Unlock, so that a
// packet written in several Writes (as net.Buffers writes it to anything
// but a socket) is not interleaved with another goroutine's packet: TCP
// sends such a packet in one writev, and an in-memory connection must not
// be the weaker transport. Clients that write from several goroutines and
// honour a connection's sync.Locker, as paho.golang does, take it around
// each packet. Writes need not take it; Lock does not exclude Read.
func (c *memConn) Lock() { c.packet.Lock() }

// Unlock ends the reservation Lock made.
func (c *memConn) Unlock() { c.packet.Unlock() }

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) SetDeadline(t time.Time) error {
	c.in.setReadDeadline(t)
	c.out.setWriteDeadline(t)
	return nil
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.in.setReadDeadline(t)
	return nil
}

func (c *memConn) SetWriteDeadline(t time.Time) error {
	c.out.setWriteDeadline(t)
	return nil
}

// Buffered reports how many bytes the peer has written that are not read
// yet: Read returns them without waiting. The broker uses it to handle
// what a connection has already received when a new connection takes its
// session over.
func (c *memConn) Buffered() int {
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	return len(c.in.data) - c.in.off
}
