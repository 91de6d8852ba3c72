//go:build linux

package tern

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ternmq/tern/listeners"
)

// Idle connections are parked: instead of keeping a goroutine (and its
// stack) blocked in Read for every quiet client, the reader registers the
// socket with one epoll instance and returns. When bytes arrive, the poller
// hands the connection to a reader goroutine (readers.go), which reads it
// until it falls idle again. An idle connection then costs its socket and a
// few small structs, not a goroutine stack and a read buffer.
//
// TCP and unix-socket connections park as they are. TLS and WebSocket
// connections (listeners.Socket) park on the socket under their layers,
// once a read whose deadline has passed has shown that the layers hold
// nothing more (conn.loop); in-memory connections keep a blocked reader.
// A connection woken by bytes that carry no MQTT data (a WebSocket ping, a
// TLS key update) keeps its reader until its next packet or its keepalive
// deadline: the layer's Read returns only data.
//
// The keepalive deadlines of parked connections are kept in one heap with
// one timer for the earliest, rather than a timer per connection.

// poller waits for parked connections to become readable.
type poller struct {
	epfd   int
	wakeFd int // an eventfd that stops the loop
	epoch  time.Time

	// epMu guards epfd against its close: epoll_ctl calls hold it for
	// reading, the loop closes epfd holding it for writing (a number
	// reused after the close must not be operated on).
	epMu     sync.RWMutex
	epClosed bool
	failed   atomic.Bool   // epoll_wait failed: nothing is watched any more
	done     chan struct{} // closed when the loop has returned
	stopOnce sync.Once

	mu sync.Mutex
	// slots hold the parked connections by the slot each was given at its
	// first park (an epoll event carries the slot and its generation);
	// slot 0 is the wake-up eventfd's. A slot is freed when its connection
	// ends, and its generation changes, so that a late event for the old
	// connection finds nobody.
	slots []pollSlot
	free  []uint32
	// heap orders the parked connections with a keepalive by deadline;
	// timer fires at the first one's.
	heap    []parkedDeadline
	timer   *time.Timer
	timerAt int64 // when timer fires (poller clock); 0: stopped
	stopped bool
}

type pollSlot struct {
	c   *conn // nil unless parked
	gen uint32
}

// parkedDeadline is a parked connection's keepalive deadline (poller
// clock).
type parkedDeadline struct {
	at int64
	c  *conn
}

// parkState values of conn.state.
const (
	stateRunning int32 = iota
	stateParked
)

var errParked = errors.New("tern: connection parked")

// epollET is EPOLLET as the uint32 of an epoll_event (package syscall
// declares it negative).
const epollET = 1 << 31

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
	p := &poller{epfd: epfd, wakeFd: int(r), epoch: time.Now(), slots: make([]pollSlot, 1), done: make(chan struct{})}
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

// now is the poller's clock: monotonic nanoseconds since it started.
func (p *poller) now() int64 { return int64(time.Since(p.epoch)) }

// loop resumes parked connections as they become readable, and wakes
// the calls of Tern's own sockets that wait, until stop. It runs until
// the connections have ended (Broker.Close stops it last): the last
// writes of closing connections on Tern's own sockets wait on it.
func (p *poller) loop(b *Broker) {
	defer close(p.done)
	defer p.closeEpoll()
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			b.log.Error("epoll_wait failed; parked connections are resumed, those on Tern's own sockets closed", "error", err)
			p.fail(b)
			return
		}
		for i := range events[:n] {
			id := eventID(&events[i])
			if id == 0 {
				return
			}
			if c := p.take(uint32(id), uint32(id>>32), events[i].Events); c != nil {
				b.runReader(c, true)
			}
		}
		// Let the woken readers run on this thread now, rather than wait
		// for another thread to wake up and take them; the poller goes
		// back to epoll_wait from wherever it is scheduled next.
		runtime.Gosched()
	}
}

// take handles the events of slot (of generation gen): it returns the
// connection parked there, no longer parked, or nil if there is none: it
// was taken by someone else, or the event is for a connection that has
// ended. The events of one of Tern's own sockets (fdconn_linux.go) go to
// it first, whether it is parked or not; it is taken only for input.
func (p *poller) take(slot, gen, events uint32) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(slot) >= len(p.slots) || p.slots[slot].gen != gen {
		return nil
	}
	c := p.slots[slot].c
	if c == nil {
		return nil
	}
	if c.fd() != nil {
		c.fd().notify(events)
		if events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 {
			return nil
		}
	}
	if !c.state.CompareAndSwap(stateParked, stateRunning) {
		return nil
	}
	p.forgetLocked(c)
	return c
}

// forgetLocked removes c, just taken from the parked state, from the
// deadline heap, and from its slot unless the slot is its own for life
// (Tern's own sockets); p.mu is held.
func (p *poller) forgetLocked(c *conn) {
	if c.fd() == nil {
		p.slots[c.pollSlot].c = nil
	}
	if c.heapIndex >= 0 {
		p.heapRemove(int(c.heapIndex))
	}
}

// fail handles a failed epoll_wait: nothing parks any more, the parked
// connections on Go's sockets are resumed (their readers wait in Read
// from then on), and those on Tern's own sockets, which cannot be served
// without the poller, are closed; Serve accepts Go's sockets from then on
// (fdAccepter).
func (p *poller) fail(b *Broker) {
	p.failed.Store(true)
	var resume, kill []*conn
	p.mu.Lock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
	for i := range p.slots {
		c := p.slots[i].c
		switch {
		case c == nil:
		case c.fd() != nil:
			kill = append(kill, c)
		case c.state.CompareAndSwap(stateParked, stateRunning):
			p.forgetLocked(c)
			resume = append(resume, c)
		}
	}
	p.mu.Unlock()
	for _, c := range resume {
		b.runReader(c, true)
	}
	for _, c := range kill {
		c.setReason(errPollerFailed)
		c.kill()
	}
}

var errPollerFailed = errors.New("tern: the poller of idle connections failed")

// ctl is epoll_ctl on p's instance, unless the loop has closed it.
func (p *poller) ctl(op, fd int, ev *syscall.EpollEvent) error {
	p.epMu.RLock()
	defer p.epMu.RUnlock()
	if p.epClosed {
		return net.ErrClosed
	}
	return syscall.EpollCtl(p.epfd, op, fd, ev)
}

// closeEpoll closes the epoll instance and the wake-up eventfd.
func (p *poller) closeEpoll() {
	p.epMu.Lock()
	defer p.epMu.Unlock()
	p.epClosed = true
	syscall.Close(p.epfd)
	syscall.Close(p.wakeFd)
}

// stopParking makes every later park and registration fail, and stops
// the keepalive timer; Broker.Close calls it once it has ended every
// connection.
func (p *poller) stopParking() {
	p.mu.Lock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
}

// stop ends the loop and waits for it; call it once no connection is
// left.
func (p *poller) stop() {
	p.stopOnce.Do(func() {
		p.stopParking()
		one := [8]byte{1}
		syscall.Write(p.wakeFd, one[:])
	})
	<-p.done
}

// poller returns the broker's poller, started on first use; nil if epoll
// cannot be used.
func (b *Broker) poller() *poller {
	b.pollOnce.Do(func() {
		p, err := newPoller()
		if err != nil {
			b.log.Warn("idle connections cannot be parked", "error", err)
			return
		}
		b.poll = p
		go p.loop(b) // stopped by Broker.Close once every connection has ended
	})
	return b.poll
}

// accepter returns what Serve accepts l's connections with, and what it
// calls when it returns: Tern's own sockets (fdconn_linux.go) for a
// *net.TCPListener, unless Options.StandardSockets, l.Accept otherwise.
func (b *Broker) accepter(l net.Listener) (accept func() (net.Conn, error), done func()) {
	if tl, ok := l.(*net.TCPListener); ok && !b.opts.StandardSockets {
		if p := b.poller(); p != nil {
			if a := b.newFDAccepter(tl, p); a != nil {
				return a.Accept, a.close
			}
		}
	}
	return l.Accept, func() {}
}

// parkable reports whether the poller can watch nc's socket, and whether
// nc is layered over it (listeners.Socket).
func parkable(nc net.Conn) (ok, layered bool) {
	_, layered, ok = listeners.Socket(nc)
	return ok, layered && ok
}

// park hands c to the poller and reports whether it did; the caller's
// goroutine then returns errParked, and the connection keeps its place in
// the broker's WaitGroup while parked. A layered connection has been read
// to the end of what its layers hold.
func (b *Broker) park(c *conn) bool {
	if (!c.sock && c.fd() == nil) || b.isClosed() {
		return false
	}
	p := b.poller()
	if p == nil {
		return false
	}
	if c.fd() != nil {
		return b.parkFD(c, p)
	}
	raw, _, ok := listeners.Socket(c.nc) // not kept: a RawConn is 16 bytes per connection
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return false
	}
	// A parked connection keeps no packet reader (but one holding part of
	// a packet), no read buffer, no scratch and no armed deadline timer;
	// the reader sets its deadline again when it wakes.
	c.nc.SetReadDeadline(time.Time{})
	sc := c.sc
	c.detach()
	id, ok := p.markParked(c, c.keepAliveAt(p))
	if !ok {
		c.attach(sc)
		return false
	}
	// Nothing of c may be touched once it is registered without taking it
	// back first (a CompareAndSwap of its state): the poller may resume
	// it at once, on another goroutine.
	var ctlErr error
	err := raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
		setEventID(&ev, id)
		op := syscall.EPOLL_CTL_MOD
		if !c.pollAdded {
			op = syscall.EPOLL_CTL_ADD
		}
		ctlErr = p.ctl(op, int(fd), &ev)
		switch ctlErr {
		case syscall.EEXIST:
			ctlErr = p.ctl(syscall.EPOLL_CTL_MOD, int(fd), &ev)
		case syscall.ENOENT:
			ctlErr = p.ctl(syscall.EPOLL_CTL_ADD, int(fd), &ev)
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
			c.attach(sc)
			return false
		}
		return true
	}
	// Someone (a timeout, a kill) may have taken the parked connection in
	// the meantime; then it is theirs.
	if !c.state.CompareAndSwap(stateParked, stateRunning) {
		return true
	}
	p.mu.Lock()
	p.forgetLocked(c)
	p.mu.Unlock()
	c.attach(sc)
	return false
}

// keepAliveAt is the deadline of c parked between packets (poller
// clock): [MQTT-3.1.2-24] 1.5 times its keepalive from now; 0 (none) with
// keepalive 0.
func (c *conn) keepAliveAt(p *poller) int64 {
	if c.keepAliveSec == 0 {
		return 0
	}
	return p.now() + int64(c.keepAlive()*3/2)
}

// markParked records c as parked, with its deadline at (poller clock; 0:
// none), and returns the id the events of its socket carry; false if p
// has stopped. c.mu is held and c detached.
func (p *poller) markParked(c *conn, at int64) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return 0, false
	}
	id := p.slotLocked(c)
	if at != 0 {
		p.heapPush(parkedDeadline{at, c})
	}
	c.state.Store(stateParked)
	return id, true
}

// slotLocked gives c its slot, at its first park or registration, and
// returns the id the events of its socket carry; p.mu is held.
func (p *poller) slotLocked(c *conn) uint64 {
	if c.pollSlot == 0 {
		if n := len(p.free); n > 0 {
			c.pollSlot = p.free[n-1]
			p.free = p.free[:n-1]
		} else {
			c.pollSlot = uint32(len(p.slots))
			p.slots = append(p.slots, pollSlot{})
		}
	}
	slot := &p.slots[c.pollSlot]
	slot.c = c
	return uint64(slot.gen)<<32 | uint64(c.pollSlot)
}

// parkFD parks a connection on one of Tern's own sockets, registered with
// p for its life: no system call but one to see that the socket has
// nothing to read (fdConn.idle). Input that arrives once c is marked
// parked raises an edge that resumes it; input that arrived before (its
// edge came while c was running) is seen here, and c is taken back to
// read it.
func (b *Broker) parkFD(c *conn, p *poller) bool {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return false
	}
	fc := c.fd()
	// A connection waiting for its CONNECT, or for the rest of a packet,
	// keeps the deadline it had; one between packets waits under its
	// keepalive.
	var at int64
	switch d := fc.rDeadline.Load(); {
	case c.s != nil && !c.r.Pending():
		c.nc.SetReadDeadline(time.Time{})
		at = c.keepAliveAt(p)
	case d != 0:
		// Waiting for its CONNECT, under the connect timeout
		// [MQTT-3.1.0-1], or for the rest of a packet, under the
		// keepalive counted from the last whole one [MQTT-3.1.2-24]: the
		// socket keeps the deadline for when the connection wakes.
		at = p.now() + max(d-monoNow(), 0)
	case c.s == nil:
		at = p.now() + int64(b.opts.ConnectTimeout)
	}
	sc := c.sc
	c.detach()
	_, ok := p.markParked(c, at)
	c.mu.Unlock()
	if !ok {
		c.attach(sc)
		return false
	}
	if fc.idle() && !(c.takeover.flag.Load()) {
		return true
	}
	if !c.unpark() {
		return true // taken: by the poller for the input, or to be ended
	}
	c.attach(sc)
	return false
}

// register watches c's socket, one of Tern's own, for the connection's
// life: edge-triggered, for input, output and the peer's close.
func (p *poller) register(c *conn, fd int) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return net.ErrClosed
	}
	id := p.slotLocked(c)
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET}
	setEventID(&ev, id)
	if err := p.ctl(syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	c.pollAdded = true
	return nil
}

// unpark takes c back from the poller if it is parked, so that the caller
// can end it; it reports whether it did.
func (c *conn) unpark() bool {
	if !c.state.CompareAndSwap(stateParked, stateRunning) {
		return false
	}
	p := c.b.poll
	p.mu.Lock()
	p.forgetLocked(c)
	p.mu.Unlock()
	// The socket stays registered: an event for it finds no connection
	// in the slot, and the one-shot registration is spent.
	return true
}

// releasePoll frees c's slot; c has ended and parks no more.
func (b *Broker) releasePoll(c *conn) {
	if c.pollSlot == 0 {
		return // never parked (b.poll may not be set yet)
	}
	p := b.poll
	p.mu.Lock()
	s := &p.slots[c.pollSlot]
	s.c = nil
	s.gen++
	p.free = append(p.free, c.pollSlot)
	p.mu.Unlock()
	c.pollSlot = 0
}

// expire ends the parked connections whose keepalive deadline has passed,
// and sets the timer for the next one.
func (p *poller) expire() {
	var expired []*conn
	p.mu.Lock()
	now := p.now()
	for len(p.heap) > 0 && p.heap[0].at <= now {
		c := p.heap[0].c
		p.heapRemove(0)
		if c.state.CompareAndSwap(stateParked, stateRunning) {
			if c.fd() == nil {
				p.slots[c.pollSlot].c = nil
			}
			expired = append(expired, c)
		}
	}
	p.timerAt = 0
	p.armLocked()
	p.mu.Unlock()
	for _, c := range expired {
		// end tells an MQTT 5 client why (DISCONNECT 0x8D), then closes;
		// each in its own goroutine, as a client that does not read
		// holds that write up to its deadline. One that parked before
		// its CONNECT came (no session) ran out of its connect timeout.
		reason := ErrKeepAliveTimeout
		if c.s == nil {
			reason = ErrConnectTimeout
		}
		go c.finish(reason)
	}
}

// armLocked sets the timer for the first deadline of the heap, unless it
// is set for that already; p.mu is held.
func (p *poller) armLocked() {
	if len(p.heap) == 0 || p.stopped {
		return
	}
	at := p.heap[0].at
	if p.timerAt != 0 && p.timerAt <= at {
		return // fires first; expire sets the timer again
	}
	p.timerAt = at
	d := time.Duration(at - p.now())
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.expire)
	} else {
		p.timer.Reset(d)
	}
}

// heapPush adds a deadline to the heap; p.mu is held.
func (p *poller) heapPush(d parkedDeadline) {
	d.c.heapIndex = int32(len(p.heap))
	p.heap = append(p.heap, d)
	p.heapUp(len(p.heap) - 1)
	if d.c.heapIndex == 0 {
		p.armLocked()
	}
}

// heapRemove removes the connection at i; p.mu is held. The timer stays
// set: firing early finds nothing to expire and sets it again.
func (p *poller) heapRemove(i int) {
	h := p.heap
	last := len(h) - 1
	h[i].c.heapIndex = -1
	if i != last {
		h[i] = h[last]
		h[i].c.heapIndex = int32(i)
	}
	h[last] = parkedDeadline{}
	p.heap = h[:last]
	if i != last {
		p.heapDown(i)
		p.heapUp(i)
	}
	if len(p.heap) == 0 && cap(p.heap) > 1024 {
		p.heap = nil // the connections that parked at once are gone
	}
}

func (p *poller) heapUp(i int) {
	h := p.heap
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].at <= h[i].at {
			break
		}
		p.heapSwap(i, parent)
		i = parent
	}
}

func (p *poller) heapDown(i int) {
	h := p.heap
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].at < h[least].at {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].at < h[least].at {
			least = r
		}
		if least == i {
			return
		}
		p.heapSwap(i, least)
		i = least
	}
}

func (p *poller) heapSwap(i, j int) {
	h := p.heap
	h[i], h[j] = h[j], h[i]
	h[i].c.heapIndex, h[j].c.heapIndex = int32(i), int32(j)
}

// socketBytes reports how many bytes wait in the receive queue of nc's
// socket, or -1 if it cannot tell.
func socketBytes(nc net.Conn) int {
	raw, _, ok := listeners.Socket(nc)
	if !ok {
		return -1
	}
	n := -1
	raw.Control(func(fd uintptr) { n = receiveQueue(fd) })
	return n
}

// receiveQueue reports how many bytes wait in socket fd's receive queue,
// or -1 if it cannot tell.
func receiveQueue(fd uintptr) int {
	var v int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&v))); errno != 0 {
		return -1
	}
	return int(v)
}
