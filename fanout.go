package tern

import (
	"errors"
	"math/bits"
	"time"

	"github.com/ternmq/tern/session"
)

// fanout carries one message through its deliveries: the encoded PUBLISH
// shared by every subscriber that gets the same shape, the connections whose
// writers must be started, and counters added once at the end. A reader
// goroutine reuses one fanout for all its publishes.
type fanout struct {
	// msg is the message; its Payload may alias the publisher's read
	// buffer, so whatever keeps the message takes keep() instead.
	msg  session.Message
	kept *session.Message
	from string // the publishing client's identifier, "" for the application
	// fromClient is the publishing client, for in-process handlers.
	fromClient Client
	// remote: the message came from another node of the cluster.
	remote bool
	// readGen is the generation of the identity of the session the read
	// check was last made for (sess.mayReadAs), set just before the
	// message is handed to it.
	readGen uint32
	// now is when it was routed, Unix nanoseconds, read once and only
	// when needed (see clock); 0 until then.
	now int64
	// enc holds the PUBLISH encoded once per shape (shapeOf): MQTT 3.1.1
	// or 5, the delivered QoS, the RETAIN flag; DUP 0, packet id 1
	// (patched per delivery), no Subscription Identifier.
	enc     [16][]byte
	encUsed uint16   // the entries of enc set (a bit each), cleared by reset
	buf     []byte   // backs enc, reused
	kick    *[]*conn // nil: start writers at once
	later   []*conn  // writers to start when kick is nil
	sent    [3]int64 // by QoS
	drops   dropCounts
	dropped bool      // drops holds a count
	lsn     uint64    // storage LSN of the last change this message caused
	dropFor []dropped // for DropObserver hooks, only when there are some
	// deliveredTo are the QoS 0 deliveries, for DeliveryObserver hooks,
	// only when there are some.
	deliveredTo []delivered
}

// delivered is a QoS 0 delivery, for the DeliveryObserver hooks.
type delivered struct {
	c      Client
	retain bool
	ids    []uint32
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
	f.drops[dropReasonOf(why)]++
	f.dropped = true
	if b.hooks.hasDropObservers() {
		f.dropFor = append(f.dropFor, dropped{c, why})
	}
}

// reset prepares a reused fanout for the next message. What store sets
// for every message (msg, from, fromClient) is left to it.
func (f *fanout) reset(kick *[]*conn) {
	f.buf = f.buf[:0]
	if cap(f.buf) > 256<<10 {
		f.buf = nil
	}
	f.kept, f.remote, f.now = nil, false, 0
	// Most messages go out in one or two shapes: clearing only those
	// keeps reset cheap.
	for m := f.encUsed; m != 0; m &= m - 1 {
		f.enc[bits.TrailingZeros16(m)] = nil
	}
	f.encUsed = 0
	f.kick = kick
	f.later = f.later[:0]
	f.sent, f.lsn = [3]int64{}, 0
	if f.dropped {
		f.drops, f.dropped = dropCounts{}, false
	}
	f.dropFor = f.dropFor[:0]
	f.deliveredTo = f.deliveredTo[:0]
}

// clock returns when the message is routed. The clock is read at most once
// per message, and only when something needs the time (a message kept, or
// one with an expiry): reading it costs as much as a tenth of a QoS 0
// delivery on some machines.
func (f *fanout) clock() int64 {
	if f.now == 0 {
		f.now = nowNano()
	}
	return f.now
}

// expiryClock is clock for what needs the time only to count down a
// Message Expiry Interval: 0 when the message has none.
func (f *fanout) expiryClock() int64 {
	if f.msg.Expires <= 0 {
		return 0
	}
	return f.clock()
}

// keep returns the message as a value the broker may keep: its own copy of
// the payload, made at most once per message.
func (f *fanout) keep() *session.Message {
	if f.kept == nil {
		// Published stays as it came: only a clustered broker reads it,
		// and publish sets it there.
		m := f.msg
		m.Payload = append([]byte(nil), m.Payload...)
		if m.Props != nil {
			m.Props = append([]byte(nil), m.Props...)
		}
		f.kept = &m
	}
	return f.kept
}

// shapeOf is the index in fanout.enc of a shape: 8 for MQTT 5, twice the
// QoS, 1 for RETAIN.
func shapeOf(v5 bool, qos byte, retain bool) int {
	i := int(qos&3) << 1
	if v5 {
		i |= 8
	}
	if retain {
		i |= 1
	}
	return i
}

// encoded returns the PUBLISH for the message in one shape, encoding it
// the first time it is asked for. The lookup is inlined in the delivery
// path; the encoding is not.
func (f *fanout) encoded(v5 bool, qos byte, retain bool) []byte {
	i := shapeOf(v5, qos, retain)
	if e := f.enc[i]; e != nil {
		return e
	}
	return f.encode(i)
}

// encode is encoded's first time for shape i.
func (f *fanout) encode(i int) []byte {
	start := len(f.buf)
	f.buf = appendPublish(f.buf, &f.msg, i&8 != 0, byte(i>>1&3), i&1 != 0, false, 1, nil, f.expiryClock())
	f.enc[i] = f.buf[start:len(f.buf):len(f.buf)]
	f.encUsed |= 1 << i
	return f.enc[i]
}

// touched records that c has bytes to write.
func (f *fanout) touched(c *conn) {
	if f.kick != nil {
		*f.kick = append(*f.kick, c)
	} else {
		f.later = append(f.later, c)
	}
}

// finish starts the writers a fanout touched (when it had no kick list) and
// adds its counters.
func (f *fanout) finish(b *Broker) {
	for _, c := range f.later {
		c.startWriter()
	}
	b.stats.addSent(&f.sent)
	if f.dropped {
		b.stats.addDrops(&f.drops)
	}
	for _, d := range f.dropFor {
		b.hooks.onDrop(b, d.c, f.keep(), d.why)
	}
	for _, d := range f.deliveredTo {
		m := publicMessage(f.keep(), f.expiryClock())
		m.QoS, m.Retain, m.SubscriptionIDs = 0, d.retain, d.ids
		b.hooks.onDelivered(b, d.c, m)
	}
}

// nowNano is the current time in Unix nanoseconds, as message expiry
// counts it.
func nowNano() int64 { return time.Now().UnixNano() }
