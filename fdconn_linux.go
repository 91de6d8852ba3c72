//go:build linux

package tern

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ternmq/tern/listeners"
)

// Tern's own TCP sockets. A connection accepted from a *net.TCPListener is
// not made a *net.TCPConn: Go's socket costs about 880 bytes of memory per
// connection (the netFD, both addresses, the netpoller's pollDesc with its
// two deadline timers, a finalizer), more than an idle MQTT connection's
// whole state. Tern accepts the descriptor itself (accept4) and serves it
// as an fdConn, a net.Conn on a non-blocking descriptor that waits on the
// broker's poller (park_linux.go), the epoll instance that already watches
// parked connections: its descriptor is registered once, edge-triggered,
// for the connection's life. An idle fdConn is its descriptor, a few words
// of state and the peer's address.
//
// A goroutine that must wait (a read of a packet's rest, a write to a
// client that does not read) waits on a channel made for that wait, which
// the poller signals on the next edge; deadlines are timers made for the
// wait. Those waits are rare: an idle connection parks (no goroutine), and
// a write normally completes at once.
//
// Descriptor lifetime follows Go's own: Close marks the connection closed
// and wakes its waiters, and the descriptor is closed once no Read, Write
// or other call uses it any more (refs), so that a number reused by the
// next accepted connection is never read or written in the old one's name.

// errWouldBlock is what a Read of an fdConn in its non-blocking mode
// returns when the socket holds nothing: not a timeout.
var errWouldBlock = errors.New("tern: nothing to read yet")

// fdConn flags.
const (
	fdClosed   uint32 = 1 << iota // Close was called
	fdReadable                    // an input edge came since the last wait for one
	fdWritable                    // an output edge came since the last wait for one
	fdHangup                      // the peer closed (or the socket failed): reads end
)

// fdConn is a TCP connection on a non-blocking descriptor, served by the
// broker's poller. It is a net.Conn.
type fdConn struct {
	fd    int32
	refs  atomic.Int32  // 1 while open, plus one per call in progress; 0: descriptor closed
	flags atomic.Uint32 // fdClosed, fdReadable, fdWritable, fdHangup
	// nonblock makes Read return errWouldBlock rather than wait; set by
	// the connection's reader goroutine around its reads of packets
	// (conn.readPacket).
	nonblock bool

	// Deadlines in Unix nanoseconds (0: none), set under mu.
	rDeadline, wDeadline atomic.Int64

	mu    sync.Mutex
	rWait chan struct{} // a Read waits for an edge; nil: none
	wWait chan struct{} // a Write waits for an edge; nil: none

	remote *net.TCPAddr
}

func newFDConn(fd int, remote *net.TCPAddr) *fdConn {
	fc := &fdConn{fd: int32(fd), remote: remote}
	fc.refs.Store(1)
	return fc
}

// acquire takes a reference for a call; false once the connection is
// closed.
func (fc *fdConn) acquire() bool {
	for {
		r := fc.refs.Load()
		if r <= 0 || fc.flags.Load()&fdClosed != 0 {
			return false
		}
		if fc.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the descriptor (an
// accepter's waker has none).
func (fc *fdConn) release() {
	if fc.refs.Add(-1) == 0 && fc.fd >= 0 {
		syscall.Close(int(fc.fd))
	}
}

func (fc *fdConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Addr: fc.remote, Err: err}
}

// Read reads what the socket holds, waiting for bytes if it holds none.
func (fc *fdConn) Read(p []byte) (int, error) {
	if !fc.acquire() {
		return 0, fc.opError("read", net.ErrClosed)
	}
	defer fc.release()
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if err := fc.usable(&fc.rDeadline); err != nil {
			return 0, fc.opError("read", err)
		}
		n, err := syscall.Read(int(fc.fd), p)
		switch {
		case err == nil && n > 0:
			return n, nil
		case err == nil:
			return 0, io.EOF
		case err == syscall.EINTR:
			continue
		case err != syscall.EAGAIN:
			return 0, fc.opError("read", os.NewSyscallError("read", err))
		case fc.nonblock:
			return 0, errWouldBlock
		}
		if err := fc.wait(fdReadable, &fc.rDeadline, &fc.rWait); err != nil {
			return 0, fc.opError("read", err)
		}
	}
}

// Write writes all of p, waiting while the socket's send buffer is full.
func (fc *fdConn) Write(p []byte) (int, error) {
	if !fc.acquire() {
		return 0, fc.opError("write", net.ErrClosed)
	}
	defer fc.release()
	n := 0
	for n < len(p) {
		if err := fc.usable(&fc.wDeadline); err != nil {
			return n, fc.opError("write", err)
		}
		m, err := send(int(fc.fd), p[n:])
		if m > 0 {
			n += m
		}
		switch {
		case err == nil || err == syscall.EINTR:
			continue
		case err != syscall.EAGAIN:
			return n, fc.opError("write", os.NewSyscallError("write", err))
		}
		if err := fc.wait(fdWritable, &fc.wDeadline, &fc.wWait); err != nil {
			return n, fc.opError("write", err)
		}
	}
	return n, nil
}

// send writes p without raising SIGPIPE on a connection the peer reset.
func send(fd int, p []byte) (int, error) {
	r, _, errno := syscall.Syscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))),
		uintptr(len(p)), syscall.MSG_NOSIGNAL, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// usable returns net.ErrClosed once the connection is closed (a call
// woken by Close ends, as on Go's sockets, even if bytes have come), and
// the timeout error once the deadline has passed.
func (fc *fdConn) usable(deadline *atomic.Int64) error {
	if fc.flags.Load()&fdClosed != 0 {
		return net.ErrClosed
	}
	if d := deadline.Load(); d != 0 && monoNow() >= d {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// monoEpoch is the origin of the monotonic clock of fdConn deadlines:
// like Go's own deadlines, they do not move when the wall clock is set.
var monoEpoch = time.Now()

// monoNow is the monotonic clock of deadlines, in nanoseconds; never 0.
func monoNow() int64 { return int64(time.Since(monoEpoch)) + 1 }

// monoTime converts a deadline to that clock; 0 (none) for the zero time.
func monoTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(int64(t.Sub(monoEpoch))+1, 1)
}

// wait returns once an edge of the kind (fdReadable or fdWritable) came
// since the last wait for one, the deadline passed, the deadline changed,
// or the connection closed; the caller tries again, and sees the timeout
// or the close then. An edge that came before the wait (the poller is
// another goroutine) is not lost: the flag keeps it.
func (fc *fdConn) wait(kind uint32, deadline *atomic.Int64, slot *chan struct{}) error {
	fc.mu.Lock()
	if fc.flags.Load()&fdClosed != 0 {
		fc.mu.Unlock()
		return net.ErrClosed
	}
	if fc.flags.Load()&kind != 0 {
		fc.flags.And(^kind)
		fc.mu.Unlock()
		return nil
	}
	d := deadline.Load()
	var timeout <-chan time.Time
	if d != 0 {
		left := time.Duration(d - monoNow())
		if left <= 0 {
			fc.mu.Unlock()
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(left)
		defer t.Stop()
		timeout = t.C
	}
	ch := make(chan struct{}, 1)
	*slot = ch
	fc.mu.Unlock()
	select {
	case <-ch:
	case <-timeout:
	}
	fc.mu.Lock()
	if *slot == ch {
		*slot = nil
	}
	fc.mu.Unlock()
	return nil
}

// wake signals a waiting call, if any; fc.mu is held.
func wake(ch chan struct{}) {
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// notify records the poller's events for the socket and wakes the calls
// they concern.
func (fc *fdConn) notify(events uint32) {
	var set uint32
	if events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		set |= fdReadable
	}
	if events&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		set |= fdWritable
	}
	if events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		set |= fdHangup
	}
	fc.mu.Lock()
	fc.flags.Or(set)
	if set&fdReadable != 0 {
		wake(fc.rWait)
	}
	if set&fdWritable != 0 {
		wake(fc.wWait)
	}
	fc.mu.Unlock()
}

// idle reports whether the socket has nothing to read and the peer has not
// closed it: the reader may park. It peeks at the socket (MSG_PEEK), which
// every kind of TCP socket answers (MPTCP ones too).
func (fc *fdConn) idle() bool {
	if fc.flags.Load()&fdHangup != 0 || !fc.acquire() {
		return false
	}
	defer fc.release()
	var b [1]byte
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, uintptr(fc.fd), uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		// EAGAIN: nothing to read. A byte, the end of the stream (0) or an
		// error: the reader must see it.
		return errno == syscall.EAGAIN
	}
}

// received reports how many bytes wait in the socket's receive queue, or
// -1 if it cannot tell.
func (fc *fdConn) received() int {
	if !fc.acquire() {
		return -1
	}
	defer fc.release()
	return receiveQueue(uintptr(fc.fd))
}

// Close closes the connection: calls in progress return net.ErrClosed, and
// the descriptor is closed when the last of them has.
func (fc *fdConn) Close() error {
	fc.mu.Lock()
	if fc.flags.Load()&fdClosed != 0 {
		fc.mu.Unlock()
		return fc.opError("close", net.ErrClosed)
	}
	fc.flags.Or(fdClosed)
	wake(fc.rWait)
	wake(fc.wWait)
	fc.mu.Unlock()
	fc.release()
	return nil
}

// CloseWrite shuts the sending side: the peer reads what was sent, then
// the end of the stream.
func (fc *fdConn) CloseWrite() error {
	if !fc.acquire() {
		return fc.opError("close", net.ErrClosed)
	}
	defer fc.release()
	if err := syscall.Shutdown(int(fc.fd), syscall.SHUT_WR); err != nil {
		return fc.opError("close", os.NewSyscallError("shutdown", err))
	}
	return nil
}

// LocalAddr returns the socket's address (a *net.TCPAddr).
func (fc *fdConn) LocalAddr() net.Addr {
	if !fc.acquire() {
		return nil
	}
	defer fc.release()
	sa, err := syscall.Getsockname(int(fc.fd))
	if err != nil {
		return nil
	}
	return tcpAddr(sa)
}

// RemoteAddr returns the peer's address (a *net.TCPAddr).
func (fc *fdConn) RemoteAddr() net.Addr { return fc.remote }

func (fc *fdConn) SetDeadline(t time.Time) error {
	fc.setDeadline(&fc.rDeadline, &fc.rWait, t)
	fc.setDeadline(&fc.wDeadline, &fc.wWait, t)
	return nil
}

func (fc *fdConn) SetReadDeadline(t time.Time) error {
	fc.setDeadline(&fc.rDeadline, &fc.rWait, t)
	return nil
}

func (fc *fdConn) SetWriteDeadline(t time.Time) error {
	fc.setDeadline(&fc.wDeadline, &fc.wWait, t)
	return nil
}

// setDeadline sets a deadline and wakes the call waiting under it, which
// waits again under the new one.
func (fc *fdConn) setDeadline(deadline *atomic.Int64, slot *chan struct{}, t time.Time) {
	d := monoTime(t)
	fc.mu.Lock()
	deadline.Store(d)
	wake(*slot)
	fc.mu.Unlock()
}

// tcpAddr converts a socket address; nil for anything but IPv4 and IPv6.
func tcpAddr(sa syscall.Sockaddr) *net.TCPAddr {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)))
	case *syscall.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			zone := strconv.Itoa(int(sa.ZoneId))
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			}
			a = a.WithZone(zone)
		}
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(sa.Port)))
	}
	return nil
}

// fdAccepter accepts connections from a TCP listener as fdConns. The
// listener stays Go's (its RawConn does not wait for reads): its socket is
// also registered with the broker's poller, under a connection of its own
// (waker) that has no socket, only the fdConn state a wait needs.
type fdAccepter struct {
	p     *poller
	l     *net.TCPListener
	raw   syscall.RawConn
	ka    net.KeepAliveConfig
	waker *conn
	stop  func() bool // ends the wake-up at broker Close
}

// acceptPoll bounds a wait for connections: a listener the application
// closes itself, which the poller does not report, is seen within it.
const acceptPoll = time.Second

// newFDAccepter returns an accepter for l, or nil when l's socket cannot
// be watched by p.
func (b *Broker) newFDAccepter(l *net.TCPListener, p *poller) *fdAccepter {
	raw, err := l.SyscallConn()
	if err != nil {
		return nil
	}
	waker := &conn{b: b, heapIndex: -1, nc: newFDConn(-1, nil)}
	var regErr error
	if err := raw.Control(func(lfd uintptr) { regErr = p.register(waker, int(lfd)) }); err != nil || regErr != nil {
		b.releasePoll(waker)
		return nil
	}
	a := &fdAccepter{p: p, l: l, raw: raw, ka: listeners.TCPKeepAlive(), waker: waker}
	a.stop = context.AfterFunc(b.ctx, func() { waker.nc.Close() })
	return a
}

// close stops watching the listener; Serve calls it when it returns.
func (a *fdAccepter) close() {
	a.stop()
	_ = a.raw.Control(func(lfd uintptr) {
		_ = a.p.ctl(syscall.EPOLL_CTL_DEL, int(lfd), &syscall.EpollEvent{})
	})
	a.waker.b.releasePoll(a.waker)
}

// Accept waits for the next connection, as net.Listener's Accept does, and
// returns it as an fdConn with the socket options of listeners.TCP:
// TCP_NODELAY and TCP keep-alive as listeners.TCPKeepAlive describes.
func (a *fdAccepter) Accept() (net.Conn, error) {
	w := a.waker.fd()
	for {
		if a.p.failed.Load() {
			return a.l.Accept() // the poller failed: Go's sockets from then on
		}
		var (
			fd  int
			sa  syscall.Sockaddr
			err error
		)
		cerr := a.raw.Control(func(lfd uintptr) {
			for {
				fd, sa, err = syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
				if err != syscall.EINTR && err != syscall.ECONNABORTED {
					return // ECONNABORTED: that one is gone, the next may wait
				}
			}
		})
		switch {
		case cerr != nil:
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: a.l.Addr(), Err: cerr}
		case err == syscall.EAGAIN:
			w.rDeadline.Store(monoTime(time.Now().Add(acceptPoll)))
			if werr := w.wait(fdReadable, &w.rDeadline, &w.rWait); errors.Is(werr, net.ErrClosed) {
				// Broker.Close (b.ctx): Serve returns ErrClosed once it
				// sees the broker closed, which Close does next.
				<-a.waker.b.closing
				return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: a.l.Addr(), Err: net.ErrClosed}
			}
			continue
		case err != nil:
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: a.l.Addr(), Err: os.NewSyscallError("accept4", err)}
		}
		remote := tcpAddr(sa)
		if remote == nil {
			syscall.Close(fd)
			continue
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if a.ka.Enable {
			_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(a.ka.Idle/time.Second))
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(a.ka.Interval/time.Second))
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, a.ka.Count)
		}
		return newFDConn(fd, remote), nil
	}
}
