package tern

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/storage"
)

// persister feeds a storage.Store: every change of persistent state is
// appended to one pending batch and numbered (its LSN); one goroutine writes
// whatever is pending in a single Store.Write (group commit). A connection's
// writer waits until the LSN of the last change its bytes depend on is
// written before it puts them on the wire, so an acknowledgement never
// precedes the state it promises.
type persister struct {
	store storage.Store
	stats *counters
	log   interface {
		Error(string, ...any)
		Info(string, ...any)
	}

	mu       sync.Mutex
	cond     *sync.Cond
	pending  []storage.Op
	fresh    map[deliveryKey][]int // pending Puts of deliveries created in this batch
	lsn      uint64                // LSN of the last op added
	durable  uint64                // LSN of the last op written
	err      error                 // the last write error; writes are retried
	logged   time.Time             // when a failed write was last logged
	failures int                   // failed writes since then
	stopped  bool
	// abandoned: every connection is dead (Broker.Close), so a writer
	// waiting for a failing store has nothing left to write to and stops
	// waiting; otherwise Close would wait for the disk forever.
	abandoned bool
	done      chan struct{}
}

func newPersister(st storage.Store, b *Broker) *persister {
	p := &persister{store: st, stats: &b.stats, log: b.log, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.loop()
	return p
}

// add appends ops and returns the LSN of the last one.
func (p *persister) add(ops ...storage.Op) uint64 {
	p.mu.Lock()
	for _, op := range ops {
		p.lsn++
		if op.Kind == storage.DeleteDelivery {
			k := deliveryKey{op.Delivery.ClientID, op.Delivery.Seq}
			if idx, ok := p.fresh[k]; ok {
				// Created and completed within one batch: neither the
				// delivery nor its deletion needs to reach the disk.
				for _, j := range idx {
					p.pending[j].Kind = 0
				}
				delete(p.fresh, k)
				continue
			}
		}
		p.pending = append(p.pending, op)
	}
	n := p.lsn
	p.cond.Broadcast()
	p.mu.Unlock()
	return n
}

// deliveryKey identifies a stored delivery.
type deliveryKey struct {
	client string
	seq    uint64
}

// addDelivery appends a PutDelivery; created is true for the first Put of a
// new delivery, which a DeleteDelivery in the same batch cancels.
func (p *persister) addDelivery(op storage.Op, created bool) uint64 {
	p.mu.Lock()
	k := deliveryKey{op.Delivery.ClientID, op.Delivery.Seq}
	i := len(p.pending)
	if created {
		if p.fresh == nil {
			p.fresh = make(map[deliveryKey][]int)
		}
		p.fresh[k] = []int{i}
	} else if idx, ok := p.fresh[k]; ok {
		p.fresh[k] = append(idx, i)
	}
	p.pending = append(p.pending, op)
	p.lsn++
	n := p.lsn
	p.cond.Broadcast()
	p.mu.Unlock()
	return n
}

// takeBatch returns the pending ops without the cancelled ones; p.mu is
// held.
func (p *persister) takeBatch() []storage.Op {
	batch := p.pending[:0:0]
	for _, op := range p.pending {
		if op.Kind != 0 {
			batch = append(batch, op)
		}
	}
	p.pending = nil
	clear(p.fresh)
	return batch
}

// waitCtx blocks until every op up to lsn is written, or gives up when ctx
// is done. It returns nil once
// the ops are written, and otherwise why they are not: ctx's error, or
// ErrClosed (with the store's last error) when the broker closed first.
func (p *persister) waitCtx(ctx context.Context, lsn uint64) error {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			p.mu.Lock()
			p.cond.Broadcast()
			p.mu.Unlock()
		})
		defer stop()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.durable < lsn && !p.stopped && !(p.abandoned && p.err != nil) && ctx.Err() == nil {
		p.cond.Wait()
	}
	switch {
	case p.durable >= lsn:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case p.err != nil:
		return fmt.Errorf("%w: not stored: %w", ErrClosed, p.err)
	}
	return fmt.Errorf("%w: not stored", ErrClosed)
}

// waitUnless is wait that gives up when stop is set (wake then makes it
// look); it reports whether the ops were written.
func (p *persister) waitUnless(lsn uint64, stop *atomic.Bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.durable < lsn && !p.stopped && !(p.abandoned && p.err != nil) && !stop.Load() {
		p.cond.Wait()
	}
	return p.durable >= lsn
}

// wake makes the waiters look again at what they wait for.
func (p *persister) wake() {
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
}

// failing reports whether the store's last write failed (it is being
// retried).
func (p *persister) failing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err != nil
}

func (p *persister) loop() {
	defer close(p.done)
	p.mu.Lock()
	for {
		for len(p.pending) == 0 && !p.stopped {
			p.cond.Wait()
		}
		if len(p.pending) == 0 && p.stopped {
			p.mu.Unlock()
			return
		}
		batch, upto := p.takeBatch(), p.lsn
		p.mu.Unlock()
		var err error
		if len(batch) > 0 {
			start := time.Now()
			err = p.store.Write(context.Background(), batch)
			p.stats.commit(len(batch), time.Since(start), err)
		}
		p.mu.Lock()
		if err != nil {
			// Keep the batch and retry: acknowledgements wait meanwhile,
			// which is the only safe answer to a failing disk. Logged at
			// most once a second.
			p.failures++
			if now := time.Now(); now.Sub(p.logged) >= time.Second {
				p.log.Error("storage write failed; retrying", "error", err, "failures", p.failures)
				p.logged, p.failures = now, 0
			}
			p.err = err
			p.cond.Broadcast() // waiters of a closed broker give up
			p.pending = append(batch, p.pending...)
			// That moved the ops added meanwhile: forget where the
			// deliveries they created are, so that their deletions are
			// written rather than cancel whatever op now sits there.
			clear(p.fresh)
			p.mu.Unlock()
			time.Sleep(100 * time.Millisecond) // back-off before retrying the disk
			p.mu.Lock()
			if p.stopped {
				p.mu.Unlock()
				return
			}
			continue
		}
		if p.err != nil {
			p.log.Info("storage write succeeded again")
		}
		p.err = nil
		p.durable = upto
		p.cond.Broadcast()
	}
}

// abandon lets waiters give up while the store fails; Close calls it once
// every connection is shut down, so nothing they held can reach a client.
func (p *persister) abandon() {
	p.mu.Lock()
	p.abandoned = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// stop writes what is pending and ends the loop.
func (p *persister) stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
	<-p.done
}

// persistent reports whether s's changes are stored.
func (b *Broker) persistent(s *sess) bool { return b.persist != nil && !s.s.Clean }

// record appends ops for a change of state, makes c's next write wait for
// them (c may be nil), and returns their LSN.
func (b *Broker) record(c *conn, ops ...storage.Op) uint64 {
	lsn := b.persist.add(ops...)
	c.waitFor(lsn)
	return lsn
}

// waitFor makes c's next write wait until storage LSN lsn is written.
func (c *conn) waitFor(lsn uint64) {
	if c == nil || lsn == 0 {
		return
	}
	c.mu.Lock()
	c.needLSN = max(c.needLSN, lsn)
	c.mu.Unlock()
}

// pendingAt reports whether the op with LSN lsn is not written yet.
func (p *persister) pendingAt(lsn uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.durable < lsn && !p.stopped
}

// waitsForStore reports whether c's pending bytes wait for a storage write
// that has not completed.
func (c *conn) waitsForStore() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waitsForStoreLocked()
}

// waitsForStoreLocked is waitsForStore with c.mu held. needLSN is set only
// when the broker has a store.
func (c *conn) waitsForStoreLocked() bool {
	return c.needLSN > 0 && c.b.persist.pendingAt(c.needLSN)
}

// recordDelivery stores a delivery of client id (created: its first
// record) and returns its LSN, and whether the PUBLISH must wait for it.
// A QoS 2 delivery waits: exactly once needs its packet identifier stored
// before the PUBLISH leaves. So does a QoS 1 delivery already stored
// without its packet identifier (queued, now moved into flight): after a
// crash it is resent with the identifier and DUP set, as before the crash
// [MQTT-4.4.0-1]. A QoS 1 delivery created in flight does not wait: its
// sender's acknowledgement waits for the same batch, so a crash before it
// loses a message its sender will publish again, and a delivery
// acknowledged before its batch is written never reaches the disk.
func (b *Broker) recordDelivery(id string, d *session.Delivery, created bool) (lsn uint64, wait bool) {
	return b.persist.addDelivery(deliveryOp(id, d), created), d.QoS == 2 || (!created && d.PacketID != 0)
}

func deliveryOp(id string, d *session.Delivery) storage.Op {
	return storage.Op{Kind: storage.PutDelivery, Delivery: storage.Delivery{
		ClientID: id, Seq: d.Seq, PacketID: d.PacketID, QoS: d.QoS, Retain: d.Retain, Released: d.Released,
		Msg: storedMessage(d.Msg), SubIDs: d.SubIDs(), Share: d.Share(),
	}}
}

func deleteDeliveryOp(id string, seq uint64) storage.Op {
	return storage.Op{Kind: storage.DeleteDelivery, Delivery: storage.Delivery{ClientID: id, Seq: seq}}
}

// persistRetained records a retained-store change, except for $SYS topics,
// which the broker rebuilds itself.
func (b *Broker) persistRetained(topic string, m *session.Message) uint64 {
	if b.persist == nil || strings.HasPrefix(topic, "$SYS/") {
		return 0
	}
	if m == nil {
		return b.persist.add(storage.Op{Kind: storage.DeleteRetained, Retained: storage.Message{Topic: topic}})
	}
	r := storedMessage(m)
	r.Retain = true
	return b.persist.add(storage.Op{Kind: storage.PutRetained, Retained: r})
}

// restore rebuilds sessions, subscriptions, deliveries, inbound QoS 2 ids
// and retained messages from the store, before the broker serves anyone.
// A will whose client was connected when the broker stopped is due its
// delay after now: its connection ended without DISCONNECT.
func (b *Broker) restore(ctx context.Context) error {
	snap, err := b.opts.Store.Load(ctx)
	if err != nil {
		return fmt.Errorf("tern: restoring state: %w", err)
	}
	now := time.Now()
	var gone []storage.Op
	for i := range snap.Retained {
		r := &snap.Retained[i]
		if r.Expires != 0 && now.UnixNano() > r.Expires {
			// [v5 MQTT-3.3.2-5] expired while the broker was down: not
			// restored, and removed from the store.
			gone = append(gone, storage.Op{Kind: storage.DeleteRetained, Retained: storage.Message{Topic: r.Topic}})
			continue
		}
		m := restoredMessage(r)
		m.Retain = true
		b.retained.Set(r.Topic, m)
	}
	get := func(id string) *sess {
		s := b.sessions[id]
		if s == nil {
			s = &sess{b: b, s: session.Make(id, false, b.opts.MaxInflight, b.opts.MaxQueued), expiry: neverExpires}
			s.keepClient(Client{ID: id})
			s.extra.lastSeen = now
			b.sessions[id] = s
		}
		return s
	}
	var wills []*sess
	for _, r := range snap.Sessions {
		s := get(r.ClientID)
		s.extra.client.Username = r.Username // restored offline: kept in extra
		expiry := r.Expiry
		if expiry == 0 {
			expiry = neverExpires // stored before the field existed
		}
		s.expiry = b.capExpiry(expiry)
		if !r.LastSeen.IsZero() {
			s.x().lastSeen = r.LastSeen
		}
		if w := r.Will; w != nil {
			x := s.x()
			x.will = restoredMessage(&w.Msg)
			x.willAt = w.PublishAt
			if x.willAt.IsZero() {
				x.willAt = now.Add(time.Duration(w.Delay) * time.Second)
			}
			wills = append(wills, s)
		}
	}
	for _, r := range snap.Subscriptions {
		s := get(r.ClientID)
		sub := packets.Subscription{Filter: r.Filter, QoS: r.QoS, NoLocal: r.NoLocal, RetainAsPublished: r.RetainAsPublished}
		b.subscribe(s, &sub, r.ID)
	}
	for _, r := range snap.Deliveries {
		s := get(r.ClientID)
		d := session.Delivery{Msg: restoredMessage(&r.Msg), QoS: r.QoS, Retain: r.Retain, PacketID: r.PacketID, Released: r.Released, Seq: r.Seq, Route: session.RouteOf(r.SubIDs, r.Share)}
		if r.PacketID != 0 {
			if !s.s.Restore(d) {
				b.log.Warn("stored delivery with a duplicate packet identifier queued again", "client", r.ClientID, "packet_id", r.PacketID)
				d.PacketID = 0
				s.s.Enqueue(d)
			}
		} else {
			s.s.Enqueue(d)
		}
		s.seq = max(s.seq, r.Seq)
	}
	for _, r := range snap.Inbound {
		get(r.ClientID).s.AddInbound(r.PacketID)
	}
	if len(gone) > 0 {
		if err := b.opts.Store.Write(ctx, gone); err != nil {
			b.log.Warn("expired retained messages not removed from the store", "error", err)
		}
	}
	b.log.Info("state restored", "sessions", len(b.sessions), "retained", len(snap.Retained)-len(gone), "deliveries", len(snap.Deliveries), "wills", len(wills))
	return nil
}

// startTimers starts the expiry timers of the restored sessions and the
// timers of their delayed wills, once the broker can run them.
func (b *Broker) startTimers() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.sessions {
		s.mu.Lock()
		b.scheduleExpiry(s)
		if x := s.extra; x != nil && x.will != nil {
			x.willTimer = b.afterFunc(time.Until(x.willAt), func() { b.dueWill(s) })
		}
		s.mu.Unlock()
	}
}
