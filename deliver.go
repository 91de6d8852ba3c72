package tern

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
)

// subscriber is what the subscription index points at: a client session or
// an in-process handler.
type subscriber interface {
	deliver(qos byte, f *fanout)
	identity() Client
}

// sess is a client session as the broker holds it: the protocol state
// (session.Session) plus the connection currently bound to it.
type sess struct {
	b *Broker

	conn atomic.Pointer[conn] // the bound connection, nil while offline

	mu       sync.Mutex // guards everything below
	s        *session.Session
	client   Client
	gone     bool      // discarded: deliveries are ignored
	seq      uint64    // last delivery sequence number (stored sessions)
	lastSeen time.Time // when the client went offline
}

func (s *sess) identity() Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// fanout carries one message through its deliveries: the encoded PUBLISH
// shared by every subscriber that gets the same shape, the connections whose
// writers must be started, and counters added once at the end. A reader
// goroutine reuses one fanout for all its publishes.
type fanout struct {
	// msg is the message; its Payload may alias the publisher's read
	// buffer, so whatever keeps the message takes keep() instead.
	msg     session.Message
	kept    *session.Message
	enc     [3][]byte // by delivered QoS; RETAIN 0, DUP 0, packet id 1
	buf     []byte    // backs enc, reused
	kick    *[]*conn  // nil: start writers at once
	later   []*conn   // writers to start when kick is nil
	sent    int64
	drops   int64
	lsn     uint64    // storage LSN of the last change this message caused
	dropFor []dropped // for DropObserver hooks, only when there are some
}

// dropped is a delivery that was not made, for the DropObserver hooks.
type dropped struct {
	c   Client
	why error
}

// Why a delivery was dropped, as DropObserver hooks see it.
var (
	errOfflineQoS0 = errors.New("tern: QoS 0 message for an offline client")
	errPendingFull = errors.New("tern: the client's write buffer is full (it is not reading)")
	errConnClosed  = errors.New("tern: the client's connection is closing")
)

// drop counts a delivery that was not made and notes, for the DropObserver
// hooks, for whom and why.
func (f *fanout) drop(b *Broker, c Client, why error) {
	f.drops++
	if b.hooks.hasDropObservers() {
		f.dropFor = append(f.dropFor, dropped{c, why})
	}
}

// reset prepares a reused fanout for the next message.
func (f *fanout) reset(kick *[]*conn) {
	f.buf = f.buf[:0]
	if cap(f.buf) > 256<<10 {
		f.buf = nil
	}
	f.kept = nil
	f.enc = [3][]byte{}
	f.kick = kick
	f.later = f.later[:0]
	f.sent, f.drops, f.lsn = 0, 0, 0
	f.dropFor = f.dropFor[:0]
}

// keep returns the message as a value the broker may keep: its own copy of
// the payload, made at most once per message.
func (f *fanout) keep() *session.Message {
	if f.kept == nil {
		m := f.msg
		m.Payload = append([]byte(nil), m.Payload...)
		f.kept = &m
	}
	return f.kept
}

// encoded returns the PUBLISH for the message at qos, encoding it the first
// time it is asked for.
func (f *fanout) encoded(qos byte) []byte {
	if f.enc[qos] == nil {
		p := packets.Publish{Topic: f.msg.Topic, Payload: f.msg.Payload, QoS: qos}
		if qos > 0 {
			p.PacketID = 1 // patched per delivery
		}
		start := len(f.buf)
		f.buf, _ = p.Append(f.buf)
		f.enc[qos] = f.buf[start:len(f.buf):len(f.buf)]
	}
	return f.enc[qos]
}

// touched records that c has bytes to write.
func (f *fanout) touched(c *conn) {
	if f.kick != nil {
		*f.kick = append(*f.kick, c)
	} else {
		f.later = append(f.later, c)
	}
}

// deliver hands f's message to the session at the delivered QoS, live
// (RETAIN 0 [MQTT-3.3.1-9]).
func (s *sess) deliver(qos byte, f *fanout) {
	b := s.b
	if qos == 0 {
		// Fast path: QoS 0 to a connected client needs no session state.
		if c := s.conn.Load(); c != nil {
			s.sendQoS0(c, f)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return
	}
	c := s.conn.Load()
	if c == nil && qos == 0 && !b.opts.QueueQoS0 {
		f.drop(b, s.client, errOfflineQoS0)
		return
	}
	if c != nil && qos == 0 {
		s.sendQoS0(c, f) // connected again since the fast path looked
		return
	}
	online := c != nil && c.roomFor()
	dl := session.Delivery{Msg: f.keep(), QoS: qos}
	stored := b.persistent(s)
	if stored {
		s.seq++
		dl.Seq = s.seq
	}
	d, ok := s.s.Push(dl, online)
	if ok && stored {
		if d != nil {
			lsn, wait := b.recordDelivery(s.s.ID, d, true)
			if wait {
				c.waitFor(lsn)
			}
			f.lsn = max(f.lsn, lsn)
		} else {
			lsn, _ := b.recordDelivery(s.s.ID, &dl, true) // queued: nothing is sent yet
			f.lsn = max(f.lsn, lsn)
		}
	}
	if !ok {
		f.drop(b, s.client, errQueueFull)
		return
	}
	if d != nil {
		c.mu.Lock()
		if !c.dead {
			c.out = appendDeliveryShared(c.buffer(), f.encoded(qos), d.PacketID)
			f.sent++
			if c.touchLocked() {
				f.touched(c)
			}
		}
		c.mu.Unlock()
	}
}

// sendQoS0 appends the shared QoS 0 encoding to c's write buffer.
func (s *sess) sendQoS0(c *conn, f *fanout) {
	c.mu.Lock()
	switch {
	case c.dead:
		f.drop(s.b, c.client, errConnClosed)
	case c.pendingLocked() >= s.b.opts.MaxPending:
		// A client that does not read loses QoS 0 messages, not the
		// broker's memory.
		f.drop(s.b, c.client, errPendingFull)
	default:
		c.out = append(c.buffer(), f.encoded(0)...)
		f.sent++
		if c.touchLocked() {
			f.touched(c)
		}
	}
	c.mu.Unlock()
}

// roomFor reports whether c's write buffer has room for more.
func (c *conn) roomFor() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.dead && c.pendingLocked() < c.b.opts.MaxPending
}

// pump moves queued deliveries to c while its window and write buffer have
// room.
func (s *sess) pump(c *conn) {
	s.mu.Lock()
	s.pumpLocked(c)
	s.mu.Unlock()
}

// pumpLocked is pump with s.mu held. Each delivery is checked against
// the connection's current identity first: a message the client may not
// read (any more) is dropped, never sent.
func (s *sess) pumpLocked(c *conn) {
	if s.s.QueueLen() == 0 || s.conn.Load() != c {
		return
	}
	b := s.b
	stored := b.persistent(s)
	readCheck := b.hooks.hasReadChecks()
	n := 0
	for {
		c.mu.Lock()
		room := !c.dead && c.pendingLocked() < b.opts.MaxPending
		c.mu.Unlock()
		if !room {
			break
		}
		d := s.s.Next()
		if d == nil {
			break
		}
		if readCheck && !b.hooks.authorizeRead(b, s.client, d.Msg.Topic) {
			s.dropUnreadable(d)
			continue
		}
		c.mu.Lock()
		if stored {
			if d.QoS == 0 {
				b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq)) // done once written
			} else if lsn, wait := b.recordDelivery(s.s.ID, d, false); wait {
				c.needLSN = max(c.needLSN, lsn)
			}
		}
		c.out = appendDelivery(c.buffer(), d, false)
		c.mu.Unlock()
		n++
	}
	c.mu.Lock()
	kick := n > 0 && c.touchLocked()
	c.mu.Unlock()
	b.stats.publishSent.Add(int64(n))
	if kick {
		c.startWriter()
	}
}

// errNotReadable is why a queued, in-flight or restored message was dropped
// instead of sent: the client's identity may not read its topic.
var errNotReadable = errors.New("tern: the client may not read the message's topic")

// dropUnreadable drops a delivery the client may not read, queued or in
// flight, with its stored record; s.mu is held.
func (s *sess) dropUnreadable(d *session.Delivery) {
	b := s.b
	s.s.Drop(d)
	if b.persistent(s) {
		b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq))
	}
	b.stats.dropped.Add(1)
	b.log.Debug("message dropped: not readable by the client", "client", s.s.ID, "user", s.client.Username, "topic", d.Msg.Topic)
	b.hooks.onDrop(b, s.client, d.Msg, errNotReadable)
}

// finish starts the writers a fanout touched (when it had no kick list) and
// adds its counters.
func (f *fanout) finish(b *Broker) {
	for _, c := range f.later {
		c.startWriter()
	}
	if f.sent > 0 {
		b.stats.publishSent.Add(f.sent)
	}
	if f.drops > 0 {
		b.stats.dropped.Add(f.drops)
	}
	for _, d := range f.dropFor {
		b.hooks.onDrop(b, d.c, f.keep(), d.why)
	}
}

// appendDelivery encodes a delivery's PUBLISH.
func appendDelivery(dst []byte, d *session.Delivery, dup bool) []byte {
	p := packets.Publish{Topic: d.Msg.Topic, Payload: d.Msg.Payload, QoS: d.QoS, Retain: d.Retain, Dup: dup && d.QoS > 0, PacketID: d.PacketID}
	out, err := p.Append(dst)
	if err != nil {
		return dst // not representable; it was validated on the way in
	}
	return out
}

// appendDeliveryShared appends a PUBLISH encoded once for a fan-out,
// patching in this delivery's packet identifier.
func appendDeliveryShared(dst, enc []byte, id uint16) []byte {
	start := len(dst)
	dst = append(dst, enc...)
	if enc[0]&0x06 != 0 {
		off := start + publishIDOffset(enc)
		dst[off] = byte(id >> 8)
		dst[off+1] = byte(id)
	}
	return dst
}

// appendAck appends a two-byte-body acknowledgement: PUBACK, PUBREC,
// PUBREL (flags 0010 [MQTT-3.6.1-1]), PUBCOMP or UNSUBACK.
func appendAck(dst []byte, t packets.Type, id uint16) []byte {
	first := byte(t) << 4
	if t == packets.TypePubrel {
		first |= 0x02
	}
	return append(dst, first, 2, byte(id>>8), byte(id))
}

// publishIDOffset returns where the packet identifier sits in an encoded
// PUBLISH of QoS 1 or 2: after the fixed header and the topic name.
func publishIDOffset(enc []byte) int {
	i := 1
	for enc[i]&0x80 != 0 {
		i++
	}
	i++
	return i + 2 + (int(enc[i])<<8 | int(enc[i+1]))
}
