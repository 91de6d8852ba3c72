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
	version  byte      // protocol level of the session's last connection

	// expiry is the Session Expiry Interval in seconds (neverExpires:
	// never); expiryTimer removes the session when it runs out offline.
	expiry      uint32
	expiryTimer *time.Timer
	// will is a will waiting for its Will Delay Interval (willTimer) while
	// the client is offline.
	will      *session.Message
	willAt    time.Time
	willTimer *time.Timer
}

func (s *sess) identity() Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
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
		enc := f.encoded(c.proto.v5(), qos, false)
		if !c.proto.fits(len(enc)) {
			// [v5 MQTT-3.1.2-25] too large for the client: discarded as
			// if it had been sent.
			s.s.Drop(d)
			if stored {
				b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq))
			}
			f.drop(b, s.client, errTooLarge)
			return
		}
		c.mu.Lock()
		if !c.dead {
			c.out = appendDeliveryShared(c.buffer(), enc, d.PacketID)
			f.sent++
			if c.touchLocked() {
				f.touched(c)
			}
		}
		c.mu.Unlock()
	}
}

// errTooLarge is why a message was not sent to an MQTT 5 client: it is
// larger than the client's Maximum Packet Size.
var errTooLarge = errors.New("tern: the message is larger than the client's Maximum Packet Size")

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
		enc := f.encoded(c.proto.v5(), 0, false)
		if !c.proto.fits(len(enc)) {
			f.drop(s.b, c.client, errTooLarge) // [v5 MQTT-3.1.2-25]
			break
		}
		c.out = append(c.buffer(), enc...)
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
	now := time.Now().UnixNano()
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
		if d.Msg.Expired(now) {
			// [v5 MQTT-3.3.2-5] expired before onward delivery started.
			s.dropDelivery(d, errExpired)
			continue
		}
		if readCheck && !b.hooks.authorizeRead(b, s.client, d.Msg.Topic) {
			s.dropDelivery(d, errNotReadable)
			continue
		}
		c.mu.Lock()
		start := len(c.out)
		c.out = c.appendDelivery(c.buffer(), d, false, now)
		if !c.proto.fits(len(c.out) - start) {
			c.out = c.out[:start]
			c.mu.Unlock()
			s.dropDelivery(d, errTooLarge) // [v5 MQTT-3.1.2-25]
			continue
		}
		if stored {
			if d.QoS == 0 {
				b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq)) // done once written
			} else if lsn, wait := b.recordDelivery(s.s.ID, d, false); wait {
				c.needLSN = max(c.needLSN, lsn)
			}
		}
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

// Why a queued, in-flight or restored message was dropped instead of sent.
var (
	// errNotReadable: the client's identity may not read its topic.
	errNotReadable = errors.New("tern: the client may not read the message's topic")
	// errExpired: its Message Expiry Interval passed while it waited.
	errExpired = errors.New("tern: the message expired before it could be sent")
)

// dropDelivery drops a delivery that will not be sent, queued or in
// flight, with its stored record, and counts it; s.mu is held.
func (s *sess) dropDelivery(d *session.Delivery, why error) {
	b := s.b
	s.s.Drop(d)
	if b.persistent(s) {
		b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq))
	}
	b.stats.dropped.Add(1)
	b.log.Debug("message dropped", "client", s.s.ID, "user", s.client.Username, "topic", d.Msg.Topic, "reason", why)
	b.hooks.onDrop(b, s.client, d.Msg, why)
}

// appendDelivery encodes a delivery's PUBLISH in c's protocol level.
func (c *conn) appendDelivery(dst []byte, d *session.Delivery, dup bool, now int64) []byte {
	return appendPublish(dst, d.Msg, c.proto.v5(), d.QoS, d.Retain, dup, d.PacketID, d.SubIDs, now)
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
