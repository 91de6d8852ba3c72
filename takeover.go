package tern

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// A CONNECT whose client identifier is held by a live connection takes the
// session over [MQTT-3.1.4-2]. Two rules shape how:
//
//   - The session belongs to the identity that created it: a CONNECT from
//     another identity is refused and changes nothing (ownership, below).
//   - Before the old connection ends, it handles every packet it had
//     already received: a device that sends DISCONNECT, closes its socket
//     and reconnects at once must not have its will published, and the
//     PUBLISHes it sent just before are delivered before anything from the
//     new connection. The new connection's CONNACK waits for that.

// ErrSessionOwned refuses a CONNECT (CONNACK 0x05) whose client identifier
// names a session that belongs to another identity.
var ErrSessionOwned = errors.New("tern: the client identifier's session belongs to another user")

const (
	// takeoverGrace bounds each read of what an old connection had already
	// received when the transport cannot tell whether bytes are waiting
	// (TLS, WebSocket): a read that finds nothing for this long means the
	// connection has nothing more.
	takeoverGrace = 100 * time.Millisecond
	// takeoverLimit bounds how long a new connection waits for the old one
	// to finish; past it, the old one is closed at once.
	takeoverLimit = 2 * time.Second
)

// takeover is the state a connection's reader shares with a new connection
// that takes its session over.
type takeover struct {
	flag      atomic.Bool // requested, for the reader's lock-free check
	mu        sync.Mutex
	requested bool // a new connection waits for this one to finish
	started   bool // the reader is reading the rest; deadlines are its own
	// keepSession is true when the session carries on into the new
	// connection (both connections asked for a persistent session): the
	// will is then not published, as Mosquitto does, because the client is
	// online again.
	keepSession bool
}

// checkOwner refuses a CONNECT for client id from an identity other than
// the one that owns its session, unless a TakeoverAuthorizer allows it.
func (b *Broker) checkOwner(ctx context.Context, info ConnectInfo) (allowed string, err error) {
	b.mu.Lock()
	s := b.sessions[info.ClientID]
	b.mu.Unlock()
	if s == nil {
		return "", nil
	}
	owner := s.identity()
	if owner.Username == info.Username {
		return owner.Username, nil
	}
	if err := b.hooks.authorizeSession(ctx, b, info, owner); err != nil {
		return "", err
	}
	return owner.Username, nil
}

// takeOver makes the connection that holds client id's session, if any,
// handle what it has received and end, and waits (bounded) until it has.
// clean is the new connection's clean-session flag.
func (b *Broker) takeOver(id string, clean bool) {
	for range 3 {
		b.mu.Lock()
		s := b.sessions[id]
		var old *conn
		keep := false
		if s != nil {
			s.mu.Lock()
			old = s.conn.Load()
			keep = !clean && !s.s.Clean
			s.mu.Unlock()
		}
		b.mu.Unlock()
		if old == nil {
			return
		}
		old.requestTakeover(keep)
		t := time.NewTimer(takeoverLimit)
		select {
		case <-old.doneChan():
			t.Stop()
			continue
		case <-b.closing:
			t.Stop()
			return
		case <-t.C:
		}
		// Stuck (a write to a client that does not read, a slow hook):
		// close it now; attach binds the session regardless.
		old.setReason(ErrTakenOver)
		old.kill()
		if b.cluster != nil {
			// Its release in the cluster must come before the new
			// connection's claim: wait (bounded) for it to end.
			t := time.NewTimer(takeoverLimit)
			select {
			case <-old.doneChan():
			case <-b.closing:
			case <-t.C:
			}
			t.Stop()
		}
		return
	}
}

// requestTakeover asks c's reader to handle what c has received and end;
// a parked connection gets a reader for that.
func (c *conn) requestTakeover(keepSession bool) {
	t := &c.takeover
	t.mu.Lock()
	if t.requested {
		t.mu.Unlock()
		return
	}
	t.requested = true
	t.keepSession = keepSession
	t.flag.Store(true)
	if !t.started {
		// Wake a reader blocked in Read; its loop sees the request. A
		// reader that sets its keepalive deadline after this sees the
		// request before it reads (takeoverRequested).
		c.nc.SetReadDeadline(time.Now())
	}
	t.mu.Unlock()
	if c.unpark() {
		c.b.runReader(c, true)
	}
}

// takeoverRequested reports, from the reader, whether a new connection
// waits for c; from then on the reader owns the read deadline.
func (c *conn) takeoverRequested() bool {
	t := &c.takeover
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.requested {
		t.started = true
	}
	return t.requested
}

// markTakenOver records, for a connection closed at once by a new one,
// whether the session carries on.
func (c *conn) markTakenOver(keepSession bool) {
	t := &c.takeover
	t.mu.Lock()
	if !t.requested {
		t.requested, t.started, t.keepSession = true, true, keepSession
		t.flag.Store(true)
	}
	t.mu.Unlock()
}

// keepsSession reports whether c was taken over by a connection that
// carries its session on.
func (c *conn) keepsSession() bool {
	t := &c.takeover
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.requested && t.keepSession
}

// readRest handles every packet c has already received, without waiting
// for more, then ends the connection as taken over (or as the packets
// say: a DISCONNECT there deletes the will [MQTT-3.14.4-3]).
func (c *conn) readRest() error {
	limit := time.Now().Add(takeoverLimit / 2)
	for {
		// Bytes in the reader's buffer may hold a whole packet, which
		// ReadRaw returns without reading; a partial one waits at most
		// the grace for the rest.
		if c.r.Buffered() == 0 && waiting(c) == 0 {
			return ErrTakenOver
		}
		deadline := time.Now().Add(takeoverGrace)
		if c.layered && socketBytes(c.nc) == 0 {
			// All that was received is above the socket, in the TLS or
			// WebSocket layers, and a read whose deadline has passed
			// returns it (listeners.Socket): no grace to wait.
			deadline = time.Unix(1, 0)
		}
		c.nc.SetReadDeadline(deadline)
		fh, body, err := c.r.ReadRaw()
		if err != nil {
			if isTimeout(err) {
				if waiting(c) > 0 && time.Now().Before(limit) {
					// The bytes were there: the deadline passed before
					// the read ran (a busy machine). Read them.
					continue
				}
				return ErrTakenOver
			}
			return err
		}
		c.b.stats.packetsReceived.Add(1)
		if err := c.handle(fh, body); err != nil {
			if errors.Is(err, errDisconnect) {
				return nil
			}
			return err
		}
	}
}

// waiting reports how many bytes wait to be read from c's transport: 0
// when none, -1 when the transport cannot tell. A layered transport (TLS,
// WebSocket) may hold bytes above its socket: only bytes in the socket
// tell.
func waiting(c *conn) int {
	if c.fd() != nil {
		return c.fd().received()
	}
	if c.sock {
		n := socketBytes(c.nc)
		if n == 0 && c.layered {
			return -1
		}
		return n
	}
	if bc, ok := c.nc.(interface{ Buffered() int }); ok {
		return bc.Buffered()
	}
	return -1
}
