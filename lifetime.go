package tern

import (
	"fmt"
	"time"

	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/topics"
)

// A session outlives its connection for its Session Expiry Interval
// [v5 MQTT-3.1.2-23] (MQTT 3.1.1: forever without clean session, capped by
// Options.SessionExpiry), then it is discarded [v5 MQTT-4.1.0-2]. A will
// with a Will Delay Interval waits that long after its connection ended,
// unless a new connection for the client identifier comes first
// [v5 MQTT-3.1.3-9], and is published at once when the session ends first
// [v5 MQTT-3.1.2-8]. Both run on timers, not on a goroutine per session.

// afterFunc runs f after d on its own goroutine, counted in the broker's
// WaitGroup, unless the broker has been closed by then.
func (b *Broker) afterFunc(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return
		}
		b.wg.Add(1)
		b.mu.Unlock()
		defer b.wg.Done()
		f()
	})
}

// cancelTimers stops the session's expiry and forgets a will waiting for
// its delay: a new connection for the client identifier arrived. s.mu is
// held.
func (s *sess) cancelTimers() {
	x := s.extra
	if x == nil {
		return
	}
	if x.expiryTimer != nil {
		x.expiryTimer.Stop()
		x.expiryTimer = nil
	}
	if x.willTimer != nil {
		x.willTimer.Stop()
		x.willTimer = nil
	}
	x.will = nil
}

// record is the session as the store keeps it, with the will of its
// connection (nil: none, or the pending one while offline).
func (s *sess) record(will *session.Message, delay uint32) storage.Session {
	r := storage.Session{ClientID: s.s.ID, Username: s.username(), Expiry: s.expiry}
	if s.conn.Load() == nil {
		r.LastSeen = s.lastSeen()
	}
	switch {
	case will != nil:
		r.Will = &storage.Will{Msg: storedMessage(will), Delay: delay}
	case s.will() != nil:
		r.Will = &storage.Will{Msg: storedMessage(s.extra.will), PublishAt: s.extra.willAt}
	}
	return r
}

// scheduleExpiry starts the expiry timer of an offline session; s.mu is
// held.
func (b *Broker) scheduleExpiry(s *sess) {
	if s.expiry == neverExpires || s.s.Clean {
		return
	}
	left := time.Duration(s.expiry)*time.Second - time.Since(s.lastSeen())
	s.x().expiryTimer = b.afterFunc(max(left, 0), func() { b.expire(s) })
}

// expire discards an offline session whose expiry has passed, and
// publishes its pending will: the session ended first [v5 MQTT-3.1.2-8].
func (b *Broker) expire(s *sess) {
	b.mu.Lock()
	s.mu.Lock()
	due := time.Duration(s.expiry)*time.Second - time.Since(s.lastSeen())
	if s.gone || s.conn.Load() != nil || b.sessions[s.s.ID] != s || due > 0 {
		s.mu.Unlock()
		b.mu.Unlock()
		return
	}
	s.gone = true
	b.stats.sessionsExpired.Add(1)
	os := b.dropSubscriptions(s)
	delete(b.sessions, s.s.ID)
	if b.persist != nil && !s.s.Clean {
		b.persist.add(storage.Op{Kind: storage.DeleteSession, ClientID: s.s.ID})
	}
	will, client := s.will(), s.client()
	s.cancelTimers()
	if b.cluster != nil {
		b.ids.releasing(s.s.ID)
	}
	s.mu.Unlock()
	b.mu.Unlock()
	b.log.Debug("session expired", "client", s.s.ID)
	if b.cluster != nil {
		b.releaseSession(s)
	}
	b.redistribute(os)
	b.hooks.onSession(b, client, SessionEvent{Kind: SessionEnded, Reason: ErrSessionExpired})
	if will != nil {
		b.publishWill(client, will)
	}
}

// deferWill keeps will until its delay has passed while the client is
// offline; s.mu is held.
func (b *Broker) deferWill(s *sess, will *session.Message, delay uint32) {
	x := s.x()
	x.will = will
	x.willAt = time.Now().Add(time.Duration(delay) * time.Second)
	x.willTimer = b.afterFunc(time.Duration(delay)*time.Second, func() { b.dueWill(s) })
	if b.persistent(s) {
		b.persist.add(storage.Op{Kind: storage.PutSession, Session: s.record(nil, 0)})
	}
}

// dueWill publishes a delayed will whose delay has passed, unless the
// client came back [v5 MQTT-3.1.3-9].
func (b *Broker) dueWill(s *sess) {
	s.mu.Lock()
	will, client := s.will(), s.client()
	if will == nil || s.conn.Load() != nil || s.gone {
		s.mu.Unlock()
		return
	}
	s.extra.will, s.extra.willTimer = nil, nil
	if b.persistent(s) {
		b.persist.add(storage.Op{Kind: storage.PutSession, Session: s.record(nil, 0)})
	}
	s.mu.Unlock()
	b.publishWill(client, will)
	// The cluster's record no longer holds the will: no node publishes
	// it again should this one fail.
	b.saveSession(s)
}

// publishWill publishes a will as its client would have published it: its
// Message Expiry Interval starts now. WillInterceptor hooks may rewrite or
// suppress it first; WillObserver hooks are told once it is routed.
func (b *Broker) publishWill(from Client, will *session.Message) error {
	m := *will
	if m.Expires < 0 {
		m.Expires = time.Now().Add(time.Duration(-m.Expires) * time.Second).UnixNano()
	}
	if b.hooks.hasWillInterceptors() {
		pm := publicMessage(&m, 0)
		if err := b.hooks.interceptWill(b.ctx, b, from, &pm); err != nil {
			b.log.Debug("will suppressed by a hook", "client", from.ID, "error", err)
			return nil
		}
		nm, err := sessionMessage(&pm, time.Now())
		if err == nil {
			err = topics.ValidName(pm.Topic)
		}
		if err == nil && pm.QoS > 2 {
			err = fmt.Errorf("QoS %d", pm.QoS)
		}
		if err != nil {
			b.log.Debug("will dropped: a hook made it invalid", "client", from.ID, "error", err)
			return nil
		}
		m = nm
	}
	_, _, err := b.publish(from, nil, &m)
	if err == nil {
		b.hooks.onWill(b, from, publicMessage(&m, 0))
	}
	return err
}

// capExpiry applies Options.SessionExpiry to a Session Expiry Interval.
func (b *Broker) capExpiry(expiry uint32) uint32 {
	if limit := b.opts.SessionExpiry; limit > 0 && expiry > 0 {
		expiry = uint32(max(1, min(int64(expiry), int64(limit/time.Second), neverExpires-1)))
	}
	return expiry
}

// setSessionExpiry applies the Session Expiry Interval of an MQTT 5
// DISCONNECT. A session created with 0 cannot be kept at the end: that is
// a protocol error (section 3.14.2.2.2). Set to 0, the session ends with
// its connection and is no longer stored.
func (b *Broker) setSessionExpiry(s *sess, expiry uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expiry == 0 && expiry != 0 {
		return fmt.Errorf("%w: DISCONNECT sets a Session Expiry Interval after CONNECT set 0", ErrProtocol)
	}
	if expiry == 0 && b.persistent(s) {
		b.persist.add(storage.Op{Kind: storage.DeleteSession, ClientID: s.s.ID})
	}
	s.expiry = b.capExpiry(expiry)
	s.s.Clean = s.expiry == 0
	return nil
}
