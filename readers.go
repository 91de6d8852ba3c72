package tern

import (
	"sync"
	"sync/atomic"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/topics"
)

// Connection readers run on long-lived goroutines: a new connection and a
// connection woken from parking are handed to a reader goroutine kept
// waiting for work, or to a new one when none waits. A new goroutine per
// connection or wake-up would start on a small stack and grow it (copying
// it twice) on its way through CONNECT or to the subscribers: for a client
// that publishes at a steady pace that is paid on every message, a
// measurable share of its latency and of the broker's CPU time.

// maxIdleReaders bounds the reader goroutines kept waiting for work.
const maxIdleReaders = 8

// readers hands connections to idle reader goroutines.
type readers struct {
	work chan readerTask // unbuffered: a send succeeds only if one waits
	idle atomic.Int32
	// scratch keeps the scratch of reader goroutines that ended, for the
	// next ones: in bursts of connections they come and go by the hundred.
	// It is the broker's own: the match cached in a scratch is valid only
	// in the broker's subscription index.
	scratch sync.Pool
}

// readerTask is a connection for a reader goroutine: a new one, or one
// woken from parking.
type readerTask struct {
	c       *conn
	resumed bool
}

// runReader runs c's reader on an idle reader goroutine, or on a new one.
// The caller holds a count of b.wg, so the group is not at zero.
func (b *Broker) runReader(c *conn, resumed bool) {
	t := readerTask{c: c, resumed: resumed}
	select {
	case b.readers.work <- t:
	default:
		b.wg.Add(1)
		go b.reader(t)
	}
}

// scratch is what a connection needs only while its reader runs: the
// decoded PUBLISH, the fan-out state, the last subscription match, the
// connections whose writers the read batch must start. Each reader
// goroutine owns one and lends it to the connection it reads, so that a
// parked connection carries none of it.
type scratch struct {
	r          packets.Reader // lent to the connection being read (conn.attach)
	kick       []*conn        // writers to start at the end of the read batch
	pub        packets.Publish
	fan        fanout
	match      []topics.Sub[subscriber] // the last match, for matchTopic
	matchTopic string
	matchGen   uint64 // subscription index generation of match
}

// reader runs connection readers until the broker closes, or until enough
// other reader goroutines wait for work.
func (b *Broker) reader(t readerTask) {
	defer b.wg.Done()
	growStack(0)
	sc, _ := b.readers.scratch.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	defer b.readers.scratch.Put(sc)
	for {
		if t.resumed {
			t.c.resume(sc)
		} else {
			t.c.serve(sc)
		}
		t = readerTask{} // an idle reader keeps no connection alive
		if b.readers.idle.Add(1) > maxIdleReaders {
			b.readers.idle.Add(-1)
			return
		}
		select {
		case t = <-b.readers.work:
			b.readers.idle.Add(-1)
		case <-b.closing:
			b.readers.idle.Add(-1)
			return
		}
	}
}

// growStack gives a new reader goroutine, in one step while its stack is
// nearly empty, the stack a reader needs: otherwise the stack grows twice
// (2 KiB to 4 KiB to 8 KiB), each time copying the frames of a reader deep
// in handling a packet. With bursts of new connections (each reader waits
// for its CONNECT), most readers are new goroutines.
//
//go:noinline
func growStack(i int) byte {
	var frame [5 << 10]byte
	frame[i] = 1
	return frame[len(frame)-1-i]
}
