//go:build linux

package tern

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Idle connections are parked: instead of keeping a goroutine (and its
// stack) blocked in Read for every quiet client, the reader registers the
// socket with one epoll instance and returns. When bytes arrive, the poller
// hands the connection to a reader goroutine (readers.go), which reads it
// until it falls idle again. An idle TCP or unix-socket connection then
// costs its socket and a few small structs, not a goroutine stack and a read
// buffer. Other transports (TLS, WebSocket, in-memory) keep a blocked reader.

// poller waits for parked connections to become readable.
type poller struct {
	epfd   int
	wakeFd int // an eventfd that stops the loop

	mu     sync.Mutex
	parked map[uint64]*conn
	nextID uint64
}

// parkState values of conn.state.
const (
	stateRunning int32 = iota
	stateParked
)

var errParked = errors.New("tern: connection parked")

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	r, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, errno
	}
	p := &poller{epfd: epfd, wakeFd: int(r), parked: make(map[uint64]*conn)}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setEventID(&ev, 0)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wakeFd, &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p.wakeFd)
		return nil, err
	}
	return p, nil
}

func setEventID(ev *syscall.EpollEvent, id uint64) {
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = id
}

func eventID(ev *syscall.EpollEvent) uint64 {
	return *(*uint64)(unsafe.Pointer(&ev.Fd))
}

// loop resumes parked connections as they become readable, until stop.
func (p *poller) loop(b *Broker) {
	defer b.wg.Done()
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			b.log.Error("epoll_wait failed; parked connections are resumed", "error", err)
			p.resumeAll(b)
			return
		}
		for i := range events[:n] {
			id := eventID(&events[i])
			if id == 0 {
				syscall.Close(p.epfd)
				syscall.Close(p.wakeFd)
				return
			}
			p.mu.Lock()
			c := p.parked[id]
			delete(p.parked, id)
			p.mu.Unlock()
			if c != nil && c.state.CompareAndSwap(stateParked, stateRunning) {
				c.stopIdleTimer()
				b.runReader(c, true)
			}
		}
		// Let the woken readers run on this thread now, rather than wait
		// for another thread to wake up and take them; the poller goes
		// back to epoll_wait from wherever it is scheduled next.
		runtime.Gosched()
	}
}

// resumeAll wakes every parked connection (the poller failed).
func (p *poller) resumeAll(b *Broker) {
	p.mu.Lock()
	all := p.parked
	p.parked = make(map[uint64]*conn)
	p.mu.Unlock()
	for _, c := range all {
		if c.state.CompareAndSwap(stateParked, stateRunning) {
			c.stopIdleTimer()
			b.runReader(c, true)
		}
	}
}

// stop ends the loop; call it once no connection can park any more.
func (p *poller) stop() {
	one := [8]byte{1}
	syscall.Write(p.wakeFd, one[:])
}

// parkable reports whether nc is a socket the poller can watch.
func parkable(nc net.Conn) (syscall.RawConn, bool) {
	switch c := nc.(type) {
	case *net.TCPConn:
		rc, err := c.SyscallConn()
		return rc, err == nil
	case *net.UnixConn:
		rc, err := c.SyscallConn()
		return rc, err == nil
	}
	return nil, false
}

// park hands c to the poller and reports whether it did; the caller's
// goroutine then returns errParked, and the connection keeps its place in
// the broker's WaitGroup while parked.
func (b *Broker) park(c *conn) bool {
	if c.raw == nil || b.isClosed() {
		return false
	}
	b.pollOnce.Do(func() {
		p, err := newPoller()
		if err != nil {
			b.log.Warn("idle connections cannot be parked", "error", err)
			return
		}
		b.poll = p
		b.wg.Add(1)
		go p.loop(b)
	})
	p := b.poll
	if p == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return false
	}
	if c.pollID == 0 {
		p.mu.Lock()
		p.nextID++
		c.pollID = p.nextID
		p.mu.Unlock()
	}
	// Nothing of c may be touched once it is registered: the poller may
	// resume it at once, on another goroutine.
	c.r.Release() // an idle connection holds no read buffer
	if c.keepAlive > 0 {
		// [MQTT-3.1.2-24] the keepalive deadline of a parked client.
		if c.idleTimer == nil {
			c.idleTimer = time.AfterFunc(c.keepAlive*3/2, c.parkedTimeout)
		} else {
			c.idleTimer.Reset(c.keepAlive * 3 / 2)
		}
	}
	p.mu.Lock()
	p.parked[c.pollID] = c
	p.mu.Unlock()
	c.state.Store(stateParked)
	var ctlErr error
	err := c.raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
		setEventID(&ev, c.pollID)
		op := syscall.EPOLL_CTL_MOD
		if !c.pollAdded {
			op = syscall.EPOLL_CTL_ADD
		}
		ctlErr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
		if ctlErr == syscall.EEXIST {
			ctlErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		}
		if ctlErr == nil {
			c.pollAdded = true
		}
	})
	if err == nil && ctlErr == nil {
		// A takeover that found c still running before it parked asks it
		// to read what it has received: whichever of the two takes c back
		// from the poller runs its reader.
		if c.takeover.flag.Load() && c.unpark() {
			return false
		}
		return true
	}
	p.mu.Lock()
	delete(p.parked, c.pollID)
	p.mu.Unlock()
	c.stopIdleTimer()
	// Someone (a timeout, a kill) may have taken the parked connection in
	// the meantime; then it is theirs.
	return !c.state.CompareAndSwap(stateParked, stateRunning)
}

// unpark takes c back from the poller if it is parked, so that the caller
// can end it; it reports whether it did.
func (c *conn) unpark() bool {
	if !c.state.CompareAndSwap(stateParked, stateRunning) {
		return false
	}
	p := c.b.poll
	p.mu.Lock()
	delete(p.parked, c.pollID)
	p.mu.Unlock()
	c.stopIdleTimer()
	c.raw.Control(func(fd uintptr) {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	return true
}

// parkedTimeout ends a parked connection whose keepalive expired.
func (c *conn) parkedTimeout() {
	if c.unpark() {
		c.finish(ErrKeepAliveTimeout) // end tells an MQTT 5 client why, then closes
	}
}

func (c *conn) stopIdleTimer() {
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
}

// socketBytes reports how many bytes wait in the socket's receive queue,
// or -1 if it cannot tell.
func socketBytes(raw syscall.RawConn) int {
	n := -1
	raw.Control(func(fd uintptr) {
		var v int32
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&v))); errno == 0 {
			n = int(v)
		}
	})
	return n
}
