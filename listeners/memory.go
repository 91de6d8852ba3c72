package listeners

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// memoryNetwork is the Network() of in-memory addresses.
const memoryNetwork = "memory"

// MemoryAddr is the address of an in-memory listener or connection. Its
// Network is "memory".
type MemoryAddr string

// Network returns "memory".
func (a MemoryAddr) Network() string { return memoryNetwork }

// String returns the address as a string.
func (a MemoryAddr) String() string { return string(a) }

// Memory is an in-memory net.Listener: Dial and DialContext return a
// connected net.Conn without touching the network, which suits tests and
// in-process clients.
//
// The connections are buffered in each direction (see MemoryBufferSize), so
// one side may write while the other is not reading, and they honour read and
// write deadlines with errors that satisfy errors.Is(err,
// os.ErrDeadlineExceeded) and net.Error's Timeout. Each end is also a
// sync.Locker, which a client that writes one packet in several Writes
// from several goroutines (paho.golang) takes so that its packets are not
// interleaved.
//
// A Dial waits until Accept takes the connection (there is no backlog).
// Close unblocks Accept and makes pending and later dials fail; connections
// already accepted stay open until either end closes them.
type Memory struct {
	addr    MemoryAddr
	conns   chan *memConn
	done    chan struct{}
	once    sync.Once
	clients atomic.Uint64
}

// NewMemory returns an in-memory listener with a unique address.
func NewMemory() *Memory {
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return &Memory{
		addr:  MemoryAddr("memory-" + hex.EncodeToString(id[:])),
		conns: make(chan *memConn),
		done:  make(chan struct{}),
	}
}

// Accept waits for the next Dial and returns the server end of the
// connection. After Close it returns an error wrapping net.ErrClosed.
func (m *Memory) Accept() (net.Conn, error) {
	if m.closed() {
		return nil, &net.OpError{Op: "accept", Net: memoryNetwork, Addr: m.addr, Err: net.ErrClosed}
	}
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		return nil, &net.OpError{Op: "accept", Net: memoryNetwork, Addr: m.addr, Err: net.ErrClosed}
	}
}

// Close stops the listener. It is safe to call more than once.
func (m *Memory) Close() error {
	m.once.Do(func() { close(m.done) })
	return nil
}

// closed reports whether Close has been called; checking it first makes the
// outcome deterministic when a select would otherwise pick at random.
func (m *Memory) closed() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Addr returns the listener's MemoryAddr.
func (m *Memory) Addr() net.Addr { return m.addr }

// Dial connects to the listener; it is DialContext with a background
// context.
func (m *Memory) Dial() (net.Conn, error) {
	return m.DialContext(context.Background())
}

// DialContext connects to the listener and returns the client end of the
// connection once Accept has taken the server end. It fails with an error
// wrapping net.ErrClosed when the listener is closed, or with ctx's error.
func (m *Memory) DialContext(ctx context.Context) (net.Conn, error) {
	if m.closed() {
		return nil, &net.OpError{Op: "dial", Net: memoryNetwork, Addr: m.addr, Err: net.ErrClosed}
	}
	clientAddr := MemoryAddr(fmt.Sprintf("%s/client-%d", m.addr, m.clients.Add(1)))
	client, server := newMemPair(clientAddr, m.addr)
	select {
	case m.conns <- server:
		return client, nil
	case <-m.done:
		return nil, &net.OpError{Op: "dial", Net: memoryNetwork, Addr: m.addr, Err: net.ErrClosed}
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: memoryNetwork, Addr: m.addr, Err: ctx.Err()}
	}
}
