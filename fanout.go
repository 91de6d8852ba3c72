package tern

import (
	"errors"
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
	now    int64 // when it was routed, Unix nanoseconds
	// enc holds the PUBLISH encoded once per shape: MQTT 3.1.1 or 5, the
	// delivered QoS, the RETAIN flag; DUP 0, packet id 1 (patched per
	// delivery), no Subscription Identifier.
	enc     [2][3][2][]byte
	buf     []byte   // backs enc, reused
	kick    *[]*conn // nil: start writers at once
	later   []*conn  // writers to start when kick is nil
	sent    [3]int64 // by QoS
	drops   dropCounts
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
	f.kept, f.from, f.fromClient, f.remote = nil, "", Client{}, false
	f.enc = [2][3][2][]byte{}
	f.kick = kick
	f.later = f.later[:0]
	f.sent, f.drops, f.lsn = [3]int64{}, dropCounts{}, 0
	f.dropFor = f.dropFor[:0]
	f.deliveredTo = f.deliveredTo[:0]
}

// keep returns the message as a value the broker may keep: its own copy of
// the payload, made at most once per message.
func (f *fanout) keep() *session.Message {
	if f.kept == nil {
		m := f.msg
		if m.Published == 0 {
			// A message from the cluster keeps the time its node took it.
			m.Published = f.now
		}
		m.Payload = append([]byte(nil), m.Payload...)
		if m.Props != nil {
			m.Props = append([]byte(nil), m.Props...)
		}
		f.kept = &m
	}
	return f.kept
}

// encoded returns the PUBLISH for the message in one shape, encoding it
// the first time it is asked for.
func (f *fanout) encoded(v5 bool, qos byte, retain bool) []byte {
	v, r := 0, 0
	if v5 {
		v = 1
	}
	if retain {
		r = 1
	}
	if f.enc[v][qos][r] == nil {
		start := len(f.buf)
		f.buf = appendPublish(f.buf, &f.msg, v5, qos, retain, false, 1, nil, f.now)
		f.enc[v][qos][r] = f.buf[start:len(f.buf):len(f.buf)]
	}
	return f.enc[v][qos][r]
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
	b.stats.addDrops(&f.drops)
	for _, d := range f.dropFor {
		b.hooks.onDrop(b, d.c, f.keep(), d.why)
	}
	for _, d := range f.deliveredTo {
		m := publicMessage(f.keep(), f.now)
		m.QoS, m.Retain, m.SubscriptionIDs = 0, d.retain, d.ids
		b.hooks.onDelivered(b, d.c, m)
	}
}

// nowNano is the current time in Unix nanoseconds, as message expiry
// counts it.
func nowNano() int64 { return time.Now().UnixNano() }
