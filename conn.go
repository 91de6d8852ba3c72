package tern

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
)

// Reasons a connection ends, as OnDisconnect hooks see them.
var (
	ErrKeepAliveTimeout = errors.New("tern: keepalive timeout")
	ErrConnectTimeout   = errors.New("tern: no CONNECT within the connect timeout")
	ErrTakenOver        = errors.New("tern: session taken over by a new connection with the same client id")
	ErrServerShutdown   = errors.New("tern: server shutting down")
	ErrProtocol         = errors.New("tern: protocol violation")
	ErrWriteTimeout     = errors.New("tern: write timed out (client not reading)")
	ErrKicked           = errors.New("tern: disconnected by the application")
)

// conn is one network connection. Its reader goroutine (serve) owns the
// reading side; writes go through out, drained by a writer goroutine that
// runs only while there is something to write.
//
// An idle connection is parked (park_linux.go) and holds only this struct
// and its socket, so the struct keeps what outlives a read batch; what only
// a running reader needs lives in the reader goroutine's scratch.
type conn struct {
	// Guarded by mu, and first, with the start of proto, in one cache
	// line: a QoS 0 delivery reads and writes nothing else of the
	// connection (the small fields first, where they pack).
	mu        sync.Mutex
	flushing  bool // a writer goroutine is running
	scheduled bool // a publisher will start the writer after its batch
	dead      bool // closed: nothing more is written
	ended     bool // end has finished
	// closing is set, under mu, when the writer is handed the last words
	// (ending); read without it.
	closing atomic.Bool
	out     []byte // encoded packets waiting for the writer
	// writing is the bytes the writer has taken from out and not yet
	// written. It is set under mu and cleared without it, after the write.
	writing atomic.Int64

	// Set once by the reader goroutine when CONNECT is accepted.
	proto     proto // the protocol level and what was negotiated
	s         *sess
	client    Client
	will      *session.Message
	reason    atomic.Pointer[error]
	willDelay uint32      // MQTT 5 Will Delay Interval, seconds
	willDone  atomic.Bool // the will was published or cancelled
	takeover  takeover    // a new connection with the same client id waits
	counted   bool        // counted in b.nconns
	layered   bool        // TLS or WebSocket over its socket: bytes may wait above it
	// sock: the poller can watch nc's socket (parkable), which park
	// takes from nc each time rather than keep; not set for Tern's own
	// sockets (fd), which are watched for life.
	sock      bool
	pollAdded bool // the socket is registered with epoll; the reader's
	// keepAliveSec is the keepalive in seconds (the protocol's unit and
	// limit), set once by the reader goroutine at CONNECT.
	keepAliveSec uint16
	// qos2In counts the QoS 2 PUBLISHes received and not yet released
	// (Receive Maximum), each with its own packet identifier (so at most
	// 65535); the reader goroutine's.
	qos2In uint16

	b  *Broker
	nc net.Conn // an *fdConn when it is one of Tern's own sockets (fdconn_linux.go)
	// r reads from (*connSource)(c). While a reader goroutine runs the
	// connection, r is normally its scratch's Reader, lent to it (attach);
	// a parked connection keeps none, unless it parked with part of a
	// packet read (then r is its own).
	r  *packets.Reader
	sc *scratch // the running reader's, nil while parked

	// Guarded by mu.
	needLSN uint64    // storage LSN that must be written before out
	rare    *connRare // nil until the connection needs it

	// Parking (park_linux.go): an idle connection has no goroutine.
	state     atomic.Int32 // stateRunning or stateParked
	pollSlot  uint32       // the poller's slot, 0 before the first park
	heapIndex int32        // in the poller's deadline heap; -1: not in it
	connIndex int32        // in b.conns, guarded by b.mu; -1: not in it

	// MQTT 5 state of the reader goroutine that few connections use,
	// apart (nil until used).
	x *connExtra
}

// connExtra is MQTT 5 state of a connection's reader goroutine, made for
// a client that sets topic aliases or authenticates with an
// authentication method: kept apart, so that the many connections that do
// neither do not carry it.
type connExtra struct {
	aliases  []string      // the client's topic aliases, by alias - 1
	reauth   *AuthExchange // a re-authentication in progress
	authHook EnhancedAuthenticator
}

// extra returns c.x, made if need be; only the reader goroutine calls it.
func (c *conn) extra() *connExtra {
	if c.x == nil {
		c.x = new(connExtra)
	}
	return c.x
}

// connRare is what only some connections need: an ending connection, or
// one waited for, and an MQTT 5 connection that Tern sends topic aliases
// to. Kept apart so that the many connections that are none of these do
// not carry it. Guarded by conn.mu.
type connRare struct {
	// When the connection ends while a writer runs, the writer is handed
	// the last words (a server DISCONNECT) and the end waits for it.
	lastWords []byte
	idle      sync.Cond // signalled when the writer stops, for waiters
	waiters   int
	done      chan struct{} // made by doneChan for whoever waits for end
	// outAliases are the topic aliases Tern defined on this connection
	// (alias.go); nil until the first PUBLISH that takes one.
	outAliases *outAliases
}

// rareLocked returns c.rare, made if need be; c.mu is held.
func (c *conn) rareLocked() *connRare {
	if c.rare == nil {
		c.rare = &connRare{idle: sync.Cond{L: &c.mu}}
	}
	return c.rare
}

func newConn(b *Broker, nc net.Conn) *conn {
	c := &conn{b: b, nc: nc, heapIndex: -1, connIndex: -1}
	if _, ok := nc.(*fdConn); ok {
		return c
	}
	c.sock, c.layered = parkable(nc)
	return c
}

// attach gives c to the reader goroutine that owns sc. Unless c kept a
// Reader of its own, it reads with sc's, whose buffer then serves one
// connection after another: a parked connection holds no Reader, and a
// woken one allocates no buffer.
func (c *conn) attach(sc *scratch) {
	c.sc = sc
	if c.r == nil {
		sc.r.Reset((*connSource)(c), c.b.opts.MaxPacketSize)
		if c.proto.v5() {
			sc.r.SetVersion(packets.Level5)
		}
		c.r = &sc.r
	}
}

// detach takes the scratch back from c, which is about to park: c keeps
// only what it has read of its next packet, in a Reader of its own.
func (c *conn) detach() {
	sc := c.sc
	c.sc = nil
	switch {
	case !c.r.Pending():
		c.r = nil
	case c.r == &sc.r:
		own := new(packets.Reader)
		*own = sc.r
		sc.r = packets.Reader{}
		c.r = own
	}
}

// keepAlive returns the connection's keepalive; 0: none.
func (c *conn) keepAlive() time.Duration { return time.Duration(c.keepAliveSec) * time.Second }

// setKeepAlive sets the connection's keepalive: whole seconds (Keep Alive
// is in seconds; Options.MaxKeepAlive is, and what a ConnectInterceptor
// sets is rounded), at most 65535.
func (c *conn) setKeepAlive(d time.Duration) {
	c.keepAliveSec = uint16(min(max(d, 0).Round(time.Second), 65535*time.Second) / time.Second)
}

// fd returns c's socket when it is one of Tern's own, or nil.
func (c *conn) fd() *fdConn {
	fc, _ := c.nc.(*fdConn)
	return fc
}

// doneChan returns a channel closed once end has finished; it is made only
// for a connection someone waits for (a takeover), not for every one.
func (c *conn) doneChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.rareLocked()
	if e.done == nil {
		e.done = make(chan struct{})
		if c.ended {
			close(e.done)
		}
	}
	return e.done
}

// connSource is what a connection's packets.Reader reads: the network
// connection, counting the bytes read. Before each read, which may block,
// it starts the writers that the packets decoded so far touched: a read
// batch ends when the reader must wait for the network, not when its
// buffer happens to empty at a packet boundary (a sender streaming packets
// may never leave it empty, or may pause mid-packet).
type connSource conn

func (cs *connSource) Read(p []byte) (int, error) {
	c := (*conn)(cs)
	c.flushKicks()
	n, err := c.nc.Read(p)
	c.b.stats.bytesReceived.Add(int64(n))
	return n, err
}

// setReason records why the connection ends; the first reason wins.
func (c *conn) setReason(err error) {
	c.reason.CompareAndSwap(nil, &err)
}

// shutdown closes the connection from outside its reader goroutine on
// broker Close. As with every end without DISCONNECT, the will is published
// (as Mosquitto does when it shuts down).
func (c *conn) shutdown() { c.closeWith(ErrServerShutdown) }

// closeWith closes the connection from outside its reader goroutine: an
// MQTT 5 client is told why first (DISCONNECT with the reason code).
func (c *conn) closeWith(reason error) {
	c.setReason(reason)
	if code, why, ok := disconnectReason(reason); ok {
		if last := c.proto.disconnect(code, why); last != nil {
			c.flushBeforeClose(last)
		}
	}
	c.kill()
}

// kill marks the connection dead and closes the socket, which ends the
// reader goroutine and any write in progress. A parked connection has no
// reader: it is ended here, in a new goroutine.
func (c *conn) kill() {
	c.mu.Lock()
	c.dead = true
	c.out = nil
	c.mu.Unlock()
	if c.unpark() {
		c.nc.Close()
		go c.finish(ErrServerShutdown) // the reason set before kill wins
		return
	}
	c.nc.Close()
}

// serve is the connection's first reader goroutine, with its scratch. The
// connection holds one count of the broker's WaitGroup from startConn to
// finish, parked or not.
func (c *conn) serve(sc *scratch) {
	c.attach(sc)
	c.finish(c.run())
}

// resume is the reader goroutine of a connection woken from parking:
// one that parked waiting for its CONNECT (it has no session yet) reads
// it; any other reads on.
func (c *conn) resume(sc *scratch) {
	c.attach(sc)
	if c.s == nil {
		c.finish(c.readConnect())
		return
	}
	c.finish(c.loop(true))
}

// finish ends the connection unless its reader only parked it (park took
// the scratch back then).
func (c *conn) finish(err error) {
	if err == errParked {
		return
	}
	defer func() { c.sc, c.r = nil, nil }()
	if err != nil && !errors.Is(err, io.EOF) {
		c.b.log.Debug("connection closed", "client", c.client.ID, "remote", c.nc.RemoteAddr().String(), "error", err)
	}
	c.end(err)
	c.b.wg.Done()
}

func (c *conn) run() error {
	b := c.b
	if n := b.nconns.Add(1); b.opts.MaxConnections > 0 && n > int64(b.opts.MaxConnections) {
		b.nconns.Add(-1)
		b.stats.refuse(RefusedConnectionLimit, 1)
		// Read the CONNECT so that the client sees a CONNACK it expects, in
		// its protocol's form: 0x03 server unavailable, or in MQTT 5 0x89
		// server busy.
		c.nc.SetReadDeadline(time.Now().Add(b.opts.ConnectTimeout))
		if fh, body, err := c.r.ReadRaw(); err == nil && fh.Type == packets.TypeConnect {
			var cp packets.Connect
			if cp.Decode(fh, body) == nil {
				c.proto.version = cp.ProtocolLevel
			}
			c.writeNow(c.proto.connack(false, packets.ServerBusy, nil))
		}
		return errors.New("tern: connection limit reached")
	}
	c.counted = true

	// The first packet must be CONNECT, within the connect timeout
	// [MQTT-3.1.0-1].
	c.nc.SetReadDeadline(time.Now().Add(b.opts.ConnectTimeout))
	return c.readConnect()
}

// readConnect reads the CONNECT, within the read deadline run set. On one
// of Tern's own sockets, a connection whose CONNECT has not arrived parks
// until it does (fdConn keeps the deadline, the poller enforces it): a
// flood of connections that send nothing holds no goroutines.
func (c *conn) readConnect() error {
	b := c.b
	if fc := c.fd(); fc != nil && c.r.Buffered() == 0 && fc.idle() && b.park(c) {
		return errParked
	}
	fh, body, err := c.readPacket(false)
	if errors.Is(err, errWouldBlock) {
		// Part of the CONNECT came: the rest will wake the connection.
		if b.park(c) {
			return errParked
		}
		fh, body, err = c.readPacket(true) // not parked: read, waiting
	}
	if err != nil {
		if isTimeout(err) {
			return ErrConnectTimeout
		}
		return err
	}
	if fh.Type != packets.TypeConnect {
		return fmt.Errorf("%w: first packet is %v, not CONNECT [MQTT-3.1.0-1]", ErrProtocol, fh.Type)
	}
	b.stats.packetsReceived.Add(1)
	var cp packets.Connect
	if err := cp.Decode(fh, body); err != nil {
		var pe *packets.Error
		switch {
		case errors.Is(err, packets.ErrProtocolLevel):
			// [MQTT-3.1.2-2] [v5 MQTT-3.1.2-2] unsupported protocol level:
			// CONNACK 0x01 in the 3.1.1 form (a client of an unknown
			// version may not read the MQTT 5 one), close.
			b.stats.refuse(RefusedProtocolVersion, 1)
			c.writeNow([]byte{0x20, 2, 0, packets.RefusedProtocolVersion})
		case errors.As(err, &pe) && pe.Version == packets.Level5:
			// [v5 MQTT-3.1.4-1] a malformed MQTT 5 CONNECT: CONNACK with
			// 0x81 or 0x82 (section 4.13.1), close.
			c.proto.version = packets.Level5
			c.writeNow(c.proto.connack(false, pe.Code, nil))
		}
		// Any other malformed CONNECT is closed without CONNACK [MQTT-3.1.4-1].
		return err
	}
	if err := c.connect(&cp); err != nil {
		return err
	}
	if c.keepAliveSec == 0 {
		// Keepalive 0 turns the timeout off (section 3.1.2.10): lift the
		// connect timeout's deadline, or it would close the client later.
		c.nc.SetReadDeadline(time.Time{})
	}
	return c.loop(false)
}

// loop reads and handles packets after CONNECT until the connection ends
// or, when it falls idle, parks (errParked). resumed is true for a reader
// just woken because bytes arrived: it reads before parking again.
func (c *conn) loop(resumed bool) error {
	b := c.b
	// probing: the read deadline has passed, so that a read returns only
	// what a layered transport holds.
	probing := false
	for {
		if c.r.Buffered() == 0 {
			// The read batch is done: start the writers it touched
			// (coalesced writes), then wait for more.
			started := c.flushKicks()
			if c.fd() != nil {
				// One of Tern's own sockets (fdconn_linux.go): it parks
				// once it holds nothing more to read, woken or not (a
				// wake-up may be for bytes already read).
				if started {
					runtime.Gosched()
				}
				if c.fd().idle() && b.park(c) {
					return errParked
				}
			} else if !resumed && c.sock {
				if started {
					// The writers just started go first: parking (a system
					// call) can wait until the bytes are on their way.
					runtime.Gosched()
				}
				if c.layered {
					// TLS or WebSocket: bytes already read from the socket
					// may wait in the layers above it, where epoll does
					// not see them. A read whose deadline has passed
					// returns them without waiting for the socket
					// (listeners.Socket); then the connection parks.
					if !probing {
						c.nc.SetReadDeadline(time.Unix(1, 0))
						probing = true
					}
				} else if b.park(c) {
					return errParked
				}
			}
			if !probing {
				c.keepAliveDeadline()
			}
			resumed = false
		}
		// Checked after the keepalive deadline is set: a takeover that
		// set its wake-up deadline before that is seen here.
		if c.takeover.flag.Load() && c.takeoverRequested() {
			return c.readRest()
		}
		fh, body, err := c.readPacket(false)
		if errors.Is(err, errWouldBlock) {
			// Part of a packet came and the rest has not: the connection
			// parks with what it read, under the deadline it had (an
			// incomplete packet does not count for the keepalive).
			if b.park(c) {
				return errParked
			}
			fh, body, err = c.readPacket(true) // not parked: read, waiting
		}
		if err != nil {
			if !isTimeout(err) {
				return err
			}
			if c.takeoverRequested() {
				return c.readRest() // woken by the takeover
			}
			if !probing {
				return ErrKeepAliveTimeout
			}
			// The layers hold nothing more (the start of a packet, at
			// most): the rest can only come from the socket.
			if b.park(c) {
				return errParked
			}
			probing, resumed = false, true // not parked: read on, waiting
			c.keepAliveDeadline()
			continue
		}
		b.stats.packetsReceived.Add(1)
		if err := c.handle(fh, body); err != nil {
			if errors.Is(err, errDisconnect) {
				return nil
			}
			return err
		}
		if len(body) > 16<<10 && c.r.Buffered() == 0 {
			c.r.Release() // do not keep a large buffer for an idle client
		}
	}
}

// readPacket is c.r.ReadRaw, except that on one of Tern's own sockets,
// unless wait, it returns errWouldBlock instead of waiting for bytes that
// have not come: the caller parks the connection, which keeps what it has
// read of the packet.
func (c *conn) readPacket(wait bool) (packets.FixedHeader, []byte, error) {
	fc := c.fd()
	if fc == nil || wait {
		return c.r.ReadRaw()
	}
	fc.nonblock = true
	fh, body, err := c.r.ReadRaw()
	fc.nonblock = false
	return fh, body, err
}

// keepAliveDeadline sets the read deadline of a reader about to wait for
// the client: [MQTT-3.1.2-24] close after 1.5 x keepalive of silence; no
// deadline with keepalive 0.
func (c *conn) keepAliveDeadline() {
	if c.keepAliveSec > 0 {
		c.nc.SetReadDeadline(time.Now().Add(c.keepAlive() * 3 / 2))
	} else if c.layered {
		c.nc.SetReadDeadline(time.Time{}) // the probe's passed deadline
	}
}

// linger is for a connection whose own input made the broker end it with
// a DISCONNECT: it shuts the connection for writing (the client reads the
// DISCONNECT, then the end of the stream) and reads and discards what the
// client still sends, for at most lingerTimeout or lingerBytes, before the
// socket is closed. Closing a socket with bytes unread resets the
// connection, and a client still sending, or reading behind, would then
// lose the DISCONNECT and its reason code [v5 MQTT-4.13.1-1] to the reset.
// Broker.Close ends a lingering connection at once (it closes the socket).
// A socket the broker already closed (takeover, Close) returns at once.
func (c *conn) linger() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.CopyN(io.Discard, c.nc, lingerBytes)
}

// Bounds of linger: what a client that goes on sending after the broker's
// DISCONNECT costs.
const (
	lingerTimeout = time.Second
	lingerBytes   = 64 << 10
)

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeNow writes directly to the socket; used only before the connection
// has a session (refused CONNECTs).
func (c *conn) writeNow(p []byte) {
	c.nc.SetWriteDeadline(time.Now().Add(c.b.opts.WriteTimeout))
	if n, err := c.nc.Write(p); err == nil {
		c.b.stats.bytesSent.Add(int64(n))
	}
}

// end runs when the reader goroutine finishes: it detaches the connection
// from its session, ends a clean session, publishes the will when the
// connection ended without DISCONNECT, and tells the hooks.
func (c *conn) end(err error) {
	defer func() {
		c.mu.Lock()
		c.ended = true
		if e := c.rare; e != nil && e.done != nil {
			close(e.done)
		}
		c.mu.Unlock()
	}()
	b := c.b
	// Start the writers of the connections the last read batch wrote to:
	// a client may publish and end its connection in the same write (as
	// mosquitto_pub does at QoS 0: PUBLISH, then DISCONNECT), and the
	// subscribers' writers must not be left unstarted (and marked
	// scheduled, which would keep later publishers from starting them)
	// [MQTT-4.5.0-1]. The connection's own bytes go out in flushBeforeClose.
	c.startKicked()
	if err != nil {
		c.setReason(err)
	} else {
		// DISCONNECT: the will is deleted [MQTT-3.14.4-3]
		// [v5 MQTT-3.14.4-3, MQTT-3.1.2-10].
		c.willDone.Store(true)
		var none error
		c.reason.CompareAndSwap(nil, &none)
	}
	// An MQTT 5 client is told why the broker ends its connection
	// (section 4.13) [v5 MQTT-4.13.1-1, MQTT-3.14.0-1].
	var last []byte
	if code, why, ok := disconnectReason(*c.reason.Load()); ok {
		last = c.proto.disconnect(code, why)
	}
	if err == nil || last != nil || errors.Is(err, errDisconnectWithWill) || errors.Is(err, ErrProtocol) || errors.Is(err, packets.ErrMalformed) {
		// The socket still works: what the broker answered before the
		// client's DISCONNECT (whatever its reason code) or the violation
		// (a CONNACK, acknowledgements) goes out before the close.
		c.flushBeforeClose(last)
	}
	if last != nil && err != nil && !isTimeout(err) {
		c.linger()
	}
	c.kill()
	b.releasePoll(c)
	if c.counted {
		b.nconns.Add(-1)
	}
	b.forgetConn(c)
	b.mem.touch(1)
	s := c.s
	if s == nil {
		return
	}
	release := b.detach(s, c)
	reason := *c.reason.Load()
	b.willAtEnd(c, s, reason)
	if release {
		// After the will: one deferred by its delay is in the record
		// the cluster keeps, for a node to publish should this one fail.
		b.releaseSession(s)
	}
	b.hooks.onDisconnect(b, c.client, reason)
	b.stats.disconnects.Add(1)
}

// willAtEnd publishes, defers or forgets the will of a connection that
// ended. [MQTT-3.1.2-8] [v5 MQTT-3.1.2-8] it is published when the
// connection ends without DISCONNECT (network error, keepalive expiry,
// protocol violation, takeover), or with an MQTT 5 DISCONNECT other than
// 0x00; after its Will Delay Interval if it has one and the session
// outlives the connection. On a takeover it is published only when the
// session ends with the old connection (its expiry is 0, or the new
// connection has Clean Start 1), at once whatever its delay: the session
// ended first, and the new connection is not to that session (section
// 3.1.4, step 1). When the session carries on, a new connection to it came
// [v5 MQTT-3.1.3-9] and the client is online again (as Mosquitto does).
func (b *Broker) willAtEnd(c *conn, s *sess, reason error) {
	if c.will == nil || !c.willDone.CompareAndSwap(false, true) {
		return
	}
	if errors.Is(reason, ErrTakenOver) {
		if c.keepsSession() {
			return
		}
		b.publishWill(c.client, c.will)
		return
	}
	if c.willDelay > 0 {
		s.mu.Lock()
		if !s.gone && !s.s.Clean && s.conn.Load() == nil {
			b.deferWill(s, c.will, c.willDelay)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock() // the session ended with the connection
	}
	b.publishWill(c.client, c.will)
}

// flushKicks starts the writers of the connections this reader's batch
// wrote to, and reports whether it started a goroutine.
//
// The connection's own bytes (acknowledgements, CONNACK) are written here,
// on the reader goroutine, when no writer is running: no goroutine to start
// for a lone PUBACK, and a client that does not read its acknowledgements
// holds up only its own reading.
func (c *conn) flushKicks() (started bool) {
	own, started := c.startKicked()
	if own {
		if c.waitsForStore() {
			// Bytes that wait for a storage write go to a writer goroutine:
			// the reader reads on, and the next messages join the same
			// group commit instead of waiting for the next one.
			return c.startWriter() || started
		}
		c.mu.Lock()
		c.scheduled = false
		if c.flushing || c.dead || len(c.out) == 0 {
			c.mu.Unlock()
			return started
		}
		c.flushing = true
		c.mu.Unlock()
		c.drain()
	}
	return started
}

// startKicked empties the kick list, starting the writers of the other
// connections on it; it reports whether c itself was on it and whether a
// writer goroutine started.
func (c *conn) startKicked() (own, started bool) {
	sc := c.sc
	if sc == nil {
		return false, false // parked or ended: no batch in progress
	}
	for i, k := range sc.kick {
		if k == c {
			own = true
		} else {
			started = k.startWriter() || started
		}
		sc.kick[i] = nil
	}
	sc.kick = sc.kick[:0]
	return own, started
}

// startWriter starts the writer goroutine if there is something to write
// and none is running, and reports whether it did.
func (c *conn) startWriter() bool {
	c.mu.Lock()
	c.scheduled = false
	if c.flushing || c.dead || len(c.out) == 0 {
		c.mu.Unlock()
		return false
	}
	c.flushing = true
	c.b.wg.Add(1)
	c.mu.Unlock()
	go c.writeLoop()
	return true
}

// touch notes, with c.mu held, that c has new bytes to write: the caller
// starts the writer at the end of its batch (kick list) or at once (nil).
// It reports whether the caller must add c to its kick list.
func (c *conn) touchLocked() bool {
	if c.flushing || c.scheduled {
		return false
	}
	c.scheduled = true
	return true
}

// minSpareBuf is the least bound on the write buffers kept for reuse (see
// spareLimit).
const minSpareBuf = 64 << 10

// spareLimit bounds the capacity of a write buffer kept for reuse: the
// spare a busy writer keeps for its next batch, and the buffers bufPool
// holds between bursts. A fast stream then does not allocate a batch's
// buffer again for every write, while a client that stops reading holds
// about 1.25 × MaxPending (the buffer being filled and the one being
// written), not twice it.
func (b *Broker) spareLimit() int { return max(minSpareBuf, b.opts.MaxPending/4) }

// pendingLocked reports the bytes waiting to be written to c, queued or
// being written; c.mu is held. MaxPending bounds it.
func (c *conn) pendingLocked() int { return len(c.out) + int(c.writing.Load()) }

// bufPool holds write buffers of connections whose writer is idle, so that
// an idle connection keeps none and a busy one does not grow a new one for
// every burst.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// buffer returns c.out, taking a buffer from the pool if c has none; c.mu
// is held.
func (c *conn) buffer() []byte {
	if c.out == nil {
		c.out = (*bufPool.Get().(*[]byte))[:0]
	}
	return c.out
}

func (b *Broker) putBuf(buf []byte) {
	if buf != nil && cap(buf) <= b.spareLimit() {
		buf = buf[:0]
		bufPool.Put(&buf)
	}
}

// flushBeforeClose writes what is queued for c, then last (a server
// DISCONNECT, or nil), within a short deadline; nothing is written after
// it. Queued bytes that still wait for the store are dropped: what they
// announce is not stored. When a writer goroutine is running, it is handed
// the last words and waited for (at most lastWordsTimeout): it writes them
// after the batch it holds, or instead of it if that waits for the store.
func (c *conn) flushBeforeClose(last []byte) {
	c.mu.Lock()
	if c.dead || (len(c.out) == 0 && last == nil && !c.flushing) {
		c.mu.Unlock()
		return
	}
	if c.flushing {
		c.handOver(last)
		return
	}
	out := c.out
	if c.waitsForStoreLocked() {
		out = out[:0]
	}
	out = append(out, last...)
	c.out = nil
	c.flushing = true
	c.dead = true // the last words: nothing goes after them [v5 MQTT-3.14.4-1]
	c.mu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(lastWordsTimeout))
	if n, err := c.nc.Write(out); err == nil {
		c.b.stats.bytesSent.Add(int64(n))
	}
	c.mu.Lock()
	c.stopFlushingLocked()
	c.mu.Unlock()
	c.b.putBuf(out)
}

// lastWordsTimeout bounds the write of a closing connection's last bytes.
const lastWordsTimeout = time.Second

// handOver gives the running writer the last words and waits, bounded,
// until it has written them; c.mu is held and is released.
func (c *conn) handOver(last []byte) {
	e := c.rareLocked()
	e.lastWords = last
	c.closing.Store(true)
	e.waiters++
	c.mu.Unlock()
	if p := c.b.persist; p != nil {
		p.wake() // a writer waiting for the store gives up on its batch
	}
	deadline := time.Now().Add(lastWordsTimeout + 500*time.Millisecond)
	c.nc.SetWriteDeadline(time.Now().Add(lastWordsTimeout)) // a blocked write returns
	t := time.AfterFunc(time.Until(deadline), func() {
		c.mu.Lock()
		e.idle.Broadcast()
		c.mu.Unlock()
	})
	c.mu.Lock()
	for c.flushing && time.Now().Before(deadline) {
		e.idle.Wait()
	}
	e.waiters--
	c.mu.Unlock()
	t.Stop()
}

// stopFlushingLocked ends a writer's run; c.mu is held.
func (c *conn) stopFlushingLocked() {
	c.flushing = false
	if e := c.rare; e != nil && e.waiters > 0 {
		e.idle.Broadcast()
	}
}

// writeLastWords is the end of a writer handed the last words: it writes
// what is queued (unless it waits for the store) and the last words, then
// nothing more.
func (c *conn) writeLastWords() {
	c.mu.Lock()
	out := c.out
	if c.waitsForStoreLocked() {
		out = out[:0]
	}
	if e := c.rare; e != nil {
		out = append(out, e.lastWords...)
		e.lastWords = nil
	}
	c.out = nil
	c.dead = true // [v5 MQTT-3.14.4-1] nothing after them
	c.mu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(lastWordsTimeout))
	if n, err := c.nc.Write(out); err == nil {
		c.b.stats.bytesSent.Add(int64(n))
	}
	c.mu.Lock()
	c.stopFlushingLocked()
	c.mu.Unlock()
}

// writeLoop is the writer goroutine.
func (c *conn) writeLoop() {
	defer c.b.wg.Done()
	c.drain()
}

// drain writes out to the socket, one write per batch of packets, until it
// is empty; the caller set c.flushing, drain clears it.
func (c *conn) drain() {
	b := c.b
	var buf []byte
	for {
		c.mu.Lock()
		if c.closing.Load() {
			// Checked under the lock, under which handOver sets it: the
			// last words handed over are this writer's to write.
			c.mu.Unlock()
			c.b.putBuf(buf)
			c.writeLastWords()
			return
		}
		if c.dead || len(c.out) == 0 {
			c.stopFlushingLocked()
			if len(c.out) == 0 {
				c.b.putBuf(c.out) // an idle connection holds no buffer
				c.out = nil
			}
			c.mu.Unlock()
			c.b.putBuf(buf)
			return
		}
		buf, c.out = c.out, buf[:0]
		c.writing.Store(int64(len(buf))) // still pending: counted against MaxPending
		lsn := c.needLSN
		c.mu.Unlock()
		if lsn > 0 && !b.persist.waitUnless(lsn, &c.closing) {
			// The connection closes while these bytes wait for the store:
			// what they announce is not stored, so they are dropped.
			c.writing.Store(0)
			c.b.putBuf(buf)
			c.writeLastWords()
			return
		}
		c.nc.SetWriteDeadline(time.Now().Add(b.opts.WriteTimeout))
		n, err := c.nc.Write(buf)
		b.stats.bytesSent.Add(int64(n))
		c.writing.Store(0) // written: the queue may refill what it took
		if err != nil {
			if isTimeout(err) {
				c.setReason(ErrWriteTimeout)
			} else {
				c.setReason(fmt.Errorf("tern: write: %w", err))
			}
			c.mu.Lock()
			c.stopFlushingLocked()
			c.mu.Unlock()
			c.kill()
			c.b.putBuf(buf)
			return
		}
		if cap(buf) > b.spareLimit() {
			buf = nil // keep a spare buffer while busy, within bounds
		}
		if s := c.s; s != nil {
			s.pump(c)
		}
	}
}
