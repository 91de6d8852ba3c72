package tern

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/topics"
)

// subscriber is what the subscription index points at: a client session or
// an in-process handler.
type subscriber interface {
	// deliver offers f's message through the matching subscription sub.
	deliver(sub topics.Sub[subscriber], f *fanout)
	identity() Client
}

// sess is a client session as the broker holds it: the protocol state
// (session.Session) plus the connection currently bound to it.
//
// There is one per connected client, most of them idle: what only some
// sessions need (an offline session's client, timers and will, delivery
// events, a cluster revision) is in extra, allocated on first use.
type sess struct {
	b *Broker

	conn atomic.Pointer[conn] // the bound connection, nil while offline

	// identGen counts the changes of client (attach): a read check made
	// for an older identity is made again before the message goes out
	// (see readUnchanged).
	identGen atomic.Uint32

	// expiry is the Session Expiry Interval in seconds (neverExpires:
	// never). Guarded by mu; declared here, next to identGen, where it
	// takes no room of its own.
	expiry uint32

	mu sync.Mutex      // guards everything below, and expiry
	s  session.Session // in sess: one allocation for both
	// who is the session's client, the identity of its last connection
	// (nil: none yet): the connection's own while connected, a copy in
	// extra once offline, so that a session does not keep its ended
	// connection.
	who   *Client
	seq   uint64 // last delivery sequence number (stored sessions)
	gone  bool   // discarded: deliveries are ignored
	extra *sessExtra
}

// sessExtra is the part of a session that only some sessions need, held
// apart so that the many idle connected ones stay small; sess.mu guards
// it.
type sessExtra struct {
	lastSeen time.Time // when the client went offline
	client   Client    // the client of an offline session (sess.who)

	// expiryTimer removes the session when its expiry runs out offline.
	expiryTimer *time.Timer
	// will is a will waiting for its Will Delay Interval (willTimer) while
	// the client is offline.
	will      *session.Message
	willAt    time.Time
	willTimer *time.Timer

	// events are deliveries for the DeliveryObserver hooks, told once
	// s.mu is released (fireEvents).
	events []Message

	// revision is the cluster's version of the session's record (see
	// ClusterSession.Revision).
	revision uint64
}

// x returns s's extra part, allocating it if need be; s.mu is held (or s
// is not shared yet).
func (s *sess) x() *sessExtra {
	if s.extra == nil {
		s.extra = new(sessExtra)
	}
	return s.extra
}

// trimExtra lets go of s's extra part when it holds nothing a connected
// session needs: its client is its connection's, its timers and will are
// cancelled (cancelTimers), and when it was last seen matters only
// offline. s.mu is held.
func (s *sess) trimExtra() {
	if x := s.extra; x != nil && s.who != &x.client && x.revision == 0 && len(x.events) == 0 && x.expiryTimer == nil && x.willTimer == nil && x.will == nil {
		s.extra = nil
	}
}

// Readers of the extra part, zero values when it was never allocated; s.mu
// is held.

func (s *sess) lastSeen() time.Time {
	if s.extra == nil {
		return time.Time{}
	}
	return s.extra.lastSeen
}

func (s *sess) will() *session.Message {
	if s.extra == nil {
		return nil
	}
	return s.extra.will
}

func (s *sess) revision() uint64 {
	if s.extra == nil {
		return 0
	}
	return s.extra.revision
}

// client is the identity of the session's last connection; s.mu is held.
func (s *sess) client() Client {
	if s.who == nil {
		return Client{ID: s.s.ID}
	}
	return *s.who
}

// username is the user name of the session's client; s.mu is held.
func (s *sess) username() string {
	if s.who == nil {
		return ""
	}
	return s.who.Username
}

// keepClient makes the session's client a copy of its own, before the
// connection it was taken from goes (or for a session restored without
// one); s.mu is held.
func (s *sess) keepClient(c Client) {
	x := s.x()
	x.client = c
	s.who = &x.client
}

// noteDelivered records, with s.mu held, a delivery for the
// DeliveryObserver hooks.
func (s *sess) noteDelivered(d *session.Delivery) {
	if s.b.hooks.hasDeliveryObservers() {
		m := publicMessage(d.Msg, 0)
		m.QoS, m.Retain, m.SubscriptionIDs = d.QoS, d.Retain, d.SubIDs()
		x := s.x()
		x.events = append(x.events, m)
	}
}

// fireEvents tells the DeliveryObserver hooks of the deliveries recorded;
// s.mu is not held.
func (s *sess) fireEvents() {
	if !s.b.hooks.hasDeliveryObservers() {
		return
	}
	s.mu.Lock()
	var ev []Message
	if s.extra != nil {
		ev, s.extra.events = s.extra.events, nil
	}
	c := s.client()
	s.mu.Unlock()
	for _, m := range ev {
		s.b.hooks.onDelivered(s.b, c, m)
	}
}

// ready reports whether the session's client is connected with room in
// its write buffer.
func (s *sess) ready() bool {
	c := s.conn.Load()
	return c != nil && c.roomFor()
}

func (s *sess) identity() Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client()
}

// identityGen is identity with the generation of that identity.
func (s *sess) identityGen() (Client, uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client(), s.identGen.Load()
}

// mayReadAs runs the read check for s, as routing does before it hands a
// message over, and notes in f for which generation of s's identity the
// check was made.
func (s *sess) mayReadAs(f *fanout) bool {
	id, gen := s.identityGen()
	f.readGen = gen
	return id.Internal || s.b.hooks.authorizeRead(s.b, id, f.msg.Topic)
}

// readUnchanged and readAgain repeat the read check, for the identity the
// message now goes to, when s's identity changed since the check routing
// made (a takeover by another identity between the check and the
// delivery): a delivery goes on when readUnchanged(f) || readAgain(f,
// to). readUnchanged is the common case, small enough to be inlined in
// the delivery path: no read check to repeat.
func (s *sess) readUnchanged(f *fanout) bool {
	return !s.b.hooks.hasReadChecks() || s.identGen.Load() == f.readGen
}

// readAgain is the read check for to, an identity that changed; the
// message that may not be read is dropped and counted.
func (s *sess) readAgain(f *fanout, to *Client) bool {
	b := s.b
	if to.Internal || b.hooks.authorizeRead(b, *to, f.msg.Topic) {
		return true
	}
	f.drop(b, *to, errNotReadable)
	return false
}

// deliver hands f's message to the session through the subscription sub
// matched: at the minimum of the published and granted QoS [MQTT-3.3.5-1]
// [v5 MQTT-3.8.4-8], with RETAIN 0 [MQTT-3.3.1-9] unless the subscription
// asks for Retain As Published [v5 MQTT-3.3.1-12, MQTT-3.3.1-13], not to
// the publisher itself with No Local [v5 MQTT-3.8.3-3], with the
// subscription's identifier [v5 MQTT-3.3.4-3]. When several of the
// session's subscriptions match, one copy goes at the highest of their QoS
// with every identifier [v5 MQTT-3.3.4-2, MQTT-3.3.4-4].
func (s *sess) deliver(sub topics.Sub[subscriber], f *fanout) {
	opts := sub.Opts
	var ids []uint32
	if sub.Multi {
		var ok bool
		if opts, ids, ok = s.overlapping(f); !ok {
			return
		}
	} else if optNoLocalSet(opts) && f.from == s.s.ID {
		return
	}
	s.deliverOpts(opts, ids, f, "")
}

// overlapping combines the session's non-shared subscriptions that match
// f's message: the highest QoS, Retain As Published if any asks for it,
// every Subscription Identifier; ok is false when No Local excludes them
// all.
func (s *sess) overlapping(f *fanout) (opts uint32, ids []uint32, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overlappingLocked(f)
}

// overlappingLocked is overlapping with s.mu held.
func (s *sess) overlappingLocked(f *fanout) (opts uint32, ids []uint32, ok bool) {
	var qos byte
	rap := false
	for filter, o := range s.s.Subs {
		if strings.HasPrefix(filter, sharePrefix) || !topics.Matches(filter, f.msg.Topic) {
			continue
		}
		if optNoLocalSet(o) && f.from == s.s.ID {
			continue
		}
		ok = true
		qos = max(qos, optQoS(o))
		rap = rap || optRAPSet(o)
		if id := optSubID(o); id != 0 {
			ids = append(ids, id)
		}
	}
	opts = uint32(qos)
	if rap {
		opts |= optRAP
	}
	return opts, ids, ok
}

// deliverOpts delivers f's message under the subscription options opts;
// ids, if not nil, replaces the options' Subscription Identifier; share
// names the shared subscription it comes through.
func (s *sess) deliverOpts(opts uint32, ids []uint32, f *fanout, share string) {
	b := s.b
	qos := min(f.msg.QoS, optQoS(opts))
	retain := f.msg.Retain && optRAPSet(opts)
	if ids == nil {
		if id := optSubID(opts); id != 0 {
			ids = []uint32{id}
		}
	}
	if qos == 0 {
		// Fast path: QoS 0 to a connected client needs no session state.
		if c := s.conn.Load(); c != nil {
			if s.readUnchanged(f) || s.readAgain(f, &c.client) {
				s.sendQoS0(c, f, retain, ids)
			}
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return
	}
	c := s.conn.Load()
	if !s.readUnchanged(f) {
		if to := s.client(); !s.readAgain(f, &to) {
			return
		}
	}
	if c == nil && qos == 0 && !b.opts.QueueQoS0 {
		f.drop(b, s.client(), errOfflineQoS0)
		return
	}
	if c != nil && qos == 0 {
		s.sendQoS0(c, f, retain, ids) // connected again since the fast path looked
		return
	}
	online := c != nil && c.roomFor()
	dl := session.Delivery{Msg: f.keep(), QoS: qos, Retain: retain, Route: session.RouteOf(ids, share)}
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
		f.drop(b, s.client(), errQueueFull)
		return
	}
	if d != nil {
		c.mu.Lock()
		start := len(c.out)
		if c.dead {
			c.mu.Unlock()
			return
		}
		if ids != nil && c.proto.v5() {
			c.out = c.appendDelivery(c.buffer(), d, false, f.expiryClock())
		} else {
			c.out = appendDeliveryShared(c.buffer(), f.encoded(c.proto.v5(), qos, retain), d.PacketID)
		}
		if !c.keepPublish(start, f.msg.Topic) {
			// [v5 MQTT-3.1.2-25] too large for the client: discarded as
			// if it had been sent.
			c.mu.Unlock()
			s.s.Drop(d)
			if stored {
				b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq))
			}
			f.drop(b, s.client(), errTooLarge)
			return
		}
		f.sent[qos]++
		if c.touchLocked() {
			f.touched(c)
		}
		c.mu.Unlock()
	}
}

// errTooLarge is why a message was not sent to an MQTT 5 client: it is
// larger than the client's Maximum Packet Size.
var errTooLarge = errors.New("tern: the message is larger than the client's Maximum Packet Size")

// sendQoS0 appends the message at QoS 0 to c's write buffer: the shared
// encoding, or its own when it carries Subscription Identifiers.
func (s *sess) sendQoS0(c *conn, f *fanout, retain bool, ids []uint32) {
	c.mu.Lock()
	switch {
	case c.dead:
		f.drop(s.b, c.client, errConnClosed)
	case c.pendingLocked() >= s.b.opts.MaxPending:
		// A client that does not read loses QoS 0 messages, not the
		// broker's memory.
		f.drop(s.b, c.client, errPendingFull)
	default:
		start := len(c.out)
		if ids != nil && c.proto.v5() {
			c.out = appendPublish(c.buffer(), &f.msg, true, 0, retain, false, 0, ids, f.expiryClock())
		} else {
			c.out = append(c.buffer(), f.encoded(c.proto.v5(), 0, retain)...)
		}
		if !c.keepPublish(start, f.msg.Topic) {
			f.drop(s.b, c.client, errTooLarge) // [v5 MQTT-3.1.2-25]
			break
		}
		f.sent[0]++
		if c.touchLocked() {
			f.touched(c)
		}
		if s.b.hooks.hasDeliveryObservers() {
			f.deliveredTo = append(f.deliveredTo, delivered{c.client, retain, ids})
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
	// Checked here too, not only in pumpLocked: a writer goroutine, new
	// with a small stack, calls pump after every write, and pumpLocked's
	// frame would grow (copy) that stack even when nothing is queued.
	if s.s.Waiting() && s.conn.Load() == c {
		s.pumpLocked(c)
	}
	s.mu.Unlock()
	s.fireEvents()
}

// pumpLocked is pump with s.mu held. Each delivery is checked against
// the connection's current identity first: a message the client may not
// read (any more) is dropped, never sent.
//
// c.mu is held across the batch, as the write buffer fills, and let go
// only around what may call a hook (a read check, a drop): a queue of
// retained messages or of a reconnecting session drains with one lock
// and one count per batch, not per message.
func (s *sess) pumpLocked(c *conn) {
	if !s.s.Waiting() || s.conn.Load() != c {
		return
	}
	b := s.b
	stored := b.persistent(s)
	readCheck := b.hooks.hasReadChecks()
	var now int64 // read once, when a message with an expiry needs it
	var sent [3]int64
	var q0 session.Delivery // holds each QoS 0 delivery in turn
	c.mu.Lock()
	for !c.dead && c.pendingLocked() < b.opts.MaxPending {
		d, resend := s.s.NextInto(&q0)
		if d == nil {
			break
		}
		if d.Msg.Expires > 0 && now == 0 {
			now = nowNano()
		}
		if !resend && d.Msg.Expired(now) {
			// [v5 MQTT-3.3.2-5] expired before onward delivery started.
			c.mu.Unlock()
			s.dropDelivery(d, errExpired)
			c.mu.Lock()
			continue
		}
		if readCheck {
			c.mu.Unlock()
			ok := b.hooks.authorizeRead(b, s.client(), d.Msg.Topic)
			if !ok {
				s.dropDelivery(d, errNotReadable)
			}
			c.mu.Lock()
			if !ok {
				continue
			}
		}
		start := len(c.out)
		c.out = c.appendDelivery(c.buffer(), d, resend, now)
		if !c.keepPublish(start, d.Msg.Topic) {
			c.mu.Unlock()
			s.dropDelivery(d, errTooLarge) // [v5 MQTT-3.1.2-25]
			c.mu.Lock()
			continue
		}
		if stored && !resend {
			if d.QoS == 0 {
				b.persist.add(deleteDeliveryOp(s.s.ID, d.Seq)) // done once written
			} else if lsn, wait := b.recordDelivery(s.s.ID, d, false); wait {
				c.needLSN = max(c.needLSN, lsn)
			}
		}
		if d.QoS == 0 {
			s.noteDelivered(d) // recorded only; the hooks are told by fireEvents
		}
		sent[min(d.QoS, 2)]++
	}
	kick := sent != [3]int64{} && c.touchLocked()
	c.mu.Unlock()
	b.stats.addSent(&sent)
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
	b.stats.drop(dropReasonOf(why))
	b.log.Debug("message dropped", "client", s.s.ID, "user", s.username(), "topic", d.Msg.Topic, "reason", why)
	b.hooks.onDrop(b, s.client(), d.Msg, why)
}

// appendDelivery encodes a delivery's PUBLISH in c's protocol level.
func (c *conn) appendDelivery(dst []byte, d *session.Delivery, dup bool, now int64) []byte {
	return appendPublish(dst, d.Msg, c.proto.v5(), d.QoS, d.Retain, dup || d.Dup, d.PacketID, d.SubIDs(), now)
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
