// Package session holds the state the MQTT 3.1.1 specification attaches to a
// client's session (section 3.1.2.4): its subscriptions, the outbound QoS 1
// and QoS 2 messages in flight with their packet identifiers, the messages
// queued behind them, and the inbound QoS 2 packet identifiers awaiting
// PUBREL.
//
// A Session does no I/O and takes no locks: the broker serialises access to
// each Session and decides what to write to the network from the values its
// methods return.
package session

// Message is one application message as the broker stores it. It is shared,
// read-only, by every session it is delivered to.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte // the QoS it was published with
	Retain  bool // the RETAIN flag it was published with

	// MQTT 5 properties; all zero for a message without them (a 3.1.1
	// publisher's). They reach MQTT 5 subscribers unchanged.

	// HasFormat says whether the Payload Format Indicator is present;
	// Format is its value (1: UTF-8).
	HasFormat bool
	Format    byte
	// Props holds the other properties forwarded as they are: Content
	// Type, Response Topic, Correlation Data and User Properties, encoded
	// as on the wire (packets.PublishProps.Raw).
	Props []byte
	// Expires is when the message expires (Message Expiry Interval), in
	// Unix nanoseconds; 0: never.
	Expires int64
	// Published is when the broker took the message, Unix nanoseconds (a
	// clustered broker resumes sessions from a time).
	Published int64
}

// Expired reports whether m has expired at now (Unix nanoseconds).
func (m *Message) Expired(now int64) bool { return m.Expires != 0 && now >= m.Expires }

// Delivery is one message on its way to one session.
type Delivery struct {
	Msg *Message
	// QoS is the delivered QoS: the minimum of the published QoS and the
	// subscription's granted QoS [MQTT-3.3.5-1].
	QoS byte
	// Retain is the RETAIN flag on the wire: set only for a retained
	// message sent because of a new subscription [MQTT-3.3.1-8, MQTT-3.3.1-9].
	Retain bool
	// PacketID is assigned when a QoS 1 or 2 delivery enters the inflight
	// window; 0 while queued.
	PacketID uint16
	// Released is set when PUBREC has been received for a QoS 2 delivery:
	// the PUBLISH is done and PUBREL is what remains to be acknowledged.
	Released bool
	// Unsent marks a delivery in flight, with its packet identifier, that
	// waits to be sent again on the current connection: more were in
	// flight than the new connection's window (see Resend).
	Unsent bool
	// Dup marks a delivery that may have reached the client already,
	// under another packet identifier (a session resumed from a cluster
	// after a node's failure): even its first PUBLISH has DUP set, "this
	// might be re-delivery of an earlier attempt" (section 3.3.1.1).
	Dup bool
	// Seq orders deliveries for storage; the broker assigns it.
	Seq uint64
	// Route says how the message reached the session when that shows on
	// the wire or matters later; nil for most deliveries, which keeps a
	// queued delivery small (see RouteOf).
	Route *Route
}

// Route is what a delivery carries of the subscriptions it came through.
type Route struct {
	// SubIDs are the MQTT 5 Subscription Identifiers of the subscriptions
	// that matched, sent with the PUBLISH [v5 MQTT-3.3.4-3].
	SubIDs []uint32
	// Share is the shared subscription ("$share/NAME/FILTER") the
	// delivery came through, "" for any other subscription.
	Share string
}

// RouteOf returns the Route for a delivery, nil when it has neither
// Subscription Identifiers nor a shared subscription.
func RouteOf(subIDs []uint32, share string) *Route {
	if len(subIDs) == 0 && share == "" {
		return nil
	}
	return &Route{SubIDs: subIDs, Share: share}
}

// SubIDs returns the delivery's Subscription Identifiers, nil if none.
func (d *Delivery) SubIDs() []uint32 {
	if d.Route == nil {
		return nil
	}
	return d.Route.SubIDs
}

// Share returns the shared subscription the delivery came through, "" if
// none.
func (d *Delivery) Share() string {
	if d.Route == nil {
		return ""
	}
	return d.Route.Share
}

// Session is the state of one client session. The zero value is not usable;
// create one with New.
//
// A broker holds one per connected client, most of them idle: the
// deliveries in flight and queued are in a part of their own, allocated
// with the first of them, so that a session that never had any stays
// small.
type Session struct {
	ID string
	// Subs maps each subscribed topic filter to its options: the granted
	// QoS in the low two bits, the rest the broker's (MQTT 5 subscription
	// options and Subscription Identifier).
	Subs map[string]uint32

	// f holds the deliveries in flight and queued; nil until the first.
	f *flight

	// inbound holds the packet identifiers of QoS 2 PUBLISH packets received
	// and acknowledged with PUBREC, awaiting PUBREL [MQTT-4.3.3-2].
	inbound map[uint16]struct{}

	maxQueued   int
	maxInflight uint16 // 1 to 65535
	Clean       bool
}

// flight is the outbound part of a session: the deliveries in flight and
// those queued behind them.
type flight struct {
	// inflight holds the QoS 1/2 deliveries sent and not yet completed, in
	// the order they were sent; nil entries are completed ones not yet
	// trimmed from the front.
	inflight []*Delivery
	byID     map[uint16]*Delivery

	queue queue
	// unsent counts the deliveries in flight marked Unsent (at most the
	// 65535 in flight).
	unsent int32
	nextID uint16
}

// flight returns s's outbound part, allocating it if need be.
func (s *Session) flight() *flight {
	if s.f == nil {
		s.f = new(flight)
	}
	return s.f
}

// New returns an empty session. maxInflight bounds the QoS 1/2 deliveries
// sent and not yet acknowledged (1 to 65535); maxQueued bounds the
// deliveries waiting behind them (0 for none).
func New(id string, clean bool, maxInflight, maxQueued int) *Session {
	s := Make(id, clean, maxInflight, maxQueued)
	return &s
}

// Make is New returning the Session itself, for a holder that keeps it
// inside its own struct: one allocation for both. The Session must not be
// copied once used.
func Make(id string, clean bool, maxInflight, maxQueued int) Session {
	return Session{ID: id, Clean: clean, maxInflight: uint16(min(max(maxInflight, 1), 65535)), maxQueued: maxQueued}
}

// SetLimits changes the window and queue bounds (used when a broker restores
// a session with different options).
func (s *Session) SetLimits(maxInflight, maxQueued int) {
	if maxInflight >= 1 && maxInflight <= 65535 {
		s.maxInflight = uint16(maxInflight)
	}
	s.maxQueued = maxQueued
}

// Subscribe records filter with opts and reports whether it is new.
func (s *Session) Subscribe(filter string, opts uint32) bool {
	if s.Subs == nil {
		s.Subs = make(map[string]uint32)
	}
	_, had := s.Subs[filter]
	s.Subs[filter] = opts
	return !had
}

// Unsubscribe removes filter and reports whether it was there.
func (s *Session) Unsubscribe(filter string) bool {
	_, had := s.Subs[filter]
	delete(s.Subs, filter)
	return had
}

// Push offers a delivery of QoS 1 or 2. When the session is online, the
// window has room and nothing is queued before it, Push assigns a packet
// identifier, records the delivery in flight and returns it to be sent now.
// Otherwise the delivery is queued behind the others (nil, true), or, when
// the queue is full, refused (nil, false) for the caller to count as dropped.
// QoS 0 deliveries are queued only (they have no window); online QoS 0 is
// written by the caller without calling Push.
func (s *Session) Push(d Delivery, online bool) (send *Delivery, ok bool) {
	f := s.flight()
	if online && d.QoS > 0 && f.queue.len() == 0 && f.unsent == 0 && len(f.byID) < int(s.maxInflight) {
		return f.admit(d), true
	}
	if f.queue.len() >= s.maxQueued {
		return nil, false
	}
	f.queue.push(d)
	return nil, true
}

// Next returns the next delivery to send, if the window has room: first a
// delivery in flight that waits to be sent again (resend is then true: it
// goes with its packet identifier and DUP set), then the next queued one,
// which moves into flight. A queued QoS 0 delivery is returned without
// entering the window. It returns nil when nothing can be sent.
func (s *Session) Next() (d *Delivery, resend bool) { return s.NextInto(nil) }

// NextInto is Next, storing a queued QoS 0 delivery in *q0, when q0 is not
// nil, instead of a new allocation: d is then q0, valid until the caller
// reuses it. A broker sending a queue of QoS 0 messages allocates nothing
// per message this way.
func (s *Session) NextInto(q0 *Delivery) (d *Delivery, resend bool) {
	f := s.f
	if f == nil {
		return nil, false
	}
	if f.unsent > 0 {
		if len(f.byID)-int(f.unsent) >= int(s.maxInflight) {
			return nil, false
		}
		for _, p := range f.inflight {
			if p != nil && p.Unsent {
				p.Unsent = false
				f.unsent--
				return p, true
			}
		}
	}
	if f.queue.len() == 0 {
		return nil, false
	}
	if f.queue.peek().QoS > 0 && len(f.byID) >= int(s.maxInflight) {
		return nil, false
	}
	q := f.queue.pop()
	if q.QoS == 0 {
		if q0 == nil {
			// Allocated here only: q itself stays on the stack for admit.
			q0 = new(Delivery)
		}
		*q0 = q
		return q0, false
	}
	return f.admit(q), false
}

// Resend returns, in their original order, what a new connection must be
// sent again of the deliveries in flight [MQTT-4.4.0-1]: every delivery
// released by PUBREC (its PUBREL goes again) and at most window of the
// others (their PUBLISH goes again, DUP set); the rest are marked Unsent
// and go as acknowledgements free the window (Next), so that a client's
// Receive Maximum holds from the start of its connection [v5 MQTT-3.3.4-9].
func (s *Session) Resend(window int) []*Delivery {
	f := s.f
	if f == nil {
		return []*Delivery{}
	}
	out := make([]*Delivery, 0, len(f.byID))
	sent := 0
	for _, d := range f.inflight {
		if d == nil {
			continue
		}
		switch {
		case d.Released:
			out = append(out, d)
		case sent < window:
			if d.Unsent {
				d.Unsent = false
				f.unsent--
			}
			out = append(out, d)
			sent++
		case !d.Unsent:
			d.Unsent = true
			f.unsent++
		}
	}
	return out
}

func (f *flight) admit(d Delivery) *Delivery {
	if f.byID == nil {
		f.byID = make(map[uint16]*Delivery)
	}
	// Packet identifiers are unique among the deliveries in flight
	// [MQTT-2.3.1-2]; the window is at most 65535, so a free one exists.
	for {
		f.nextID++
		if f.nextID == 0 {
			f.nextID = 1
		}
		if _, used := f.byID[f.nextID]; !used {
			break
		}
	}
	p := new(Delivery)
	*p = d
	p.PacketID = f.nextID
	p.Released = false
	f.byID[p.PacketID] = p
	f.inflight = append(f.inflight, p)
	return p
}

// Restore puts a delivery that was in flight back in flight with its packet
// identifier and state (used when a broker restores sessions from storage).
// It reports false if the identifier is already in use.
func (s *Session) Restore(d Delivery) bool {
	if d.PacketID == 0 {
		return false
	}
	f := s.flight()
	if f.byID == nil {
		f.byID = make(map[uint16]*Delivery)
	}
	if _, used := f.byID[d.PacketID]; used {
		return false
	}
	p := new(Delivery)
	*p = d
	f.byID[p.PacketID] = p
	f.inflight = append(f.inflight, p)
	if d.PacketID > f.nextID {
		f.nextID = d.PacketID
	}
	return true
}

// Enqueue appends a delivery to the queue regardless of the window and the
// bound (used when restoring from storage).
func (s *Session) Enqueue(d Delivery) { s.flight().queue.push(d) }

// inflightID returns the delivery in flight with packet identifier id, nil
// if there is none.
func (s *Session) inflightID(id uint16) *Delivery {
	if s.f == nil {
		return nil
	}
	return s.f.byID[id]
}

// Puback completes the QoS 1 delivery with packet identifier id and returns
// it, or nil if no QoS 1 delivery with that identifier is in flight.
func (s *Session) Puback(id uint16) *Delivery {
	d := s.inflightID(id)
	if d == nil || d.QoS != 1 {
		return nil
	}
	s.f.complete(d)
	return d
}

// Pubrec records PUBREC for the QoS 2 delivery with packet identifier id:
// from now on PUBREL, not the PUBLISH, is resent [MQTT-4.3.3-1]. It returns
// the delivery, or nil if no QoS 2 delivery with that identifier is in
// flight.
func (s *Session) Pubrec(id uint16) *Delivery {
	d := s.inflightID(id)
	if d == nil || d.QoS != 2 {
		return nil
	}
	d.Released = true
	return d
}

// Pubcomp completes the QoS 2 delivery with packet identifier id once its
// PUBREL was acknowledged, and returns it, or nil if there is none.
func (s *Session) Pubcomp(id uint16) *Delivery {
	d := s.inflightID(id)
	if d == nil || d.QoS != 2 || !d.Released {
		return nil
	}
	s.f.complete(d)
	return d
}

// Drop removes d from flight without an acknowledgement (the broker
// decided not to send it, or not to send it again) and reports whether d
// was in flight.
func (s *Session) Drop(d *Delivery) bool {
	if d.PacketID == 0 || s.inflightID(d.PacketID) != d {
		return false
	}
	s.f.complete(d)
	return true
}

func (f *flight) complete(d *Delivery) {
	delete(f.byID, d.PacketID)
	if d.Unsent {
		d.Unsent = false
		f.unsent--
	}
	for i, p := range f.inflight {
		if p == d {
			f.inflight[i] = nil
			break
		}
	}
	// Trim completed entries from the front; acknowledgements usually come
	// in order, so this keeps the slice short without copying.
	n := 0
	for n < len(f.inflight) && f.inflight[n] == nil {
		n++
	}
	if n == len(f.inflight) {
		f.inflight = f.inflight[:0]
	} else if n > 0 {
		f.inflight = f.inflight[n:]
	}
	// Completed entries behind one that stays in flight are not trimmed
	// above: compact once they outnumber the live ones, so that a message
	// never acknowledged does not make the slice, and the scan above, grow
	// with every later delivery.
	if len(f.inflight) > 2*len(f.byID)+16 {
		live := f.inflight[:0]
		for _, p := range f.inflight {
			if p != nil {
				live = append(live, p)
			}
		}
		clear(f.inflight[len(live):])
		f.inflight = live
	}
	if len(f.byID) == 0 && cap(f.inflight) > 64 {
		f.inflight = nil
	}
}

// InflightLen reports how many deliveries are in flight.
func (s *Session) InflightLen() int {
	if s.f == nil {
		return 0
	}
	return len(s.f.byID)
}

// Waiting reports whether deliveries wait to be sent: queued, or in flight
// and marked Unsent.
func (s *Session) Waiting() bool { return s.f != nil && (s.f.queue.len() > 0 || s.f.unsent > 0) }

// QueueLen reports how many deliveries are queued.
func (s *Session) QueueLen() int {
	if s.f == nil {
		return 0
	}
	return s.f.queue.len()
}

// Inflight returns the deliveries in flight in the order they were sent:
// on reconnect they are resent, PUBLISH with DUP set or PUBREL for those
// already released [MQTT-4.4.0-1].
func (s *Session) Inflight() []*Delivery {
	if s.f == nil {
		return []*Delivery{}
	}
	out := make([]*Delivery, 0, len(s.f.byID))
	for _, d := range s.f.inflight {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// Queued returns a copy of the queued deliveries in order.
func (s *Session) Queued() []Delivery {
	if s.f == nil {
		return []Delivery{}
	}
	return s.f.queue.slice()
}

// DropQueuedQoS0 removes queued QoS 0 deliveries and returns them (they are
// not kept for an offline client unless the broker queues QoS 0 for offline
// clients).
func (s *Session) DropQueuedQoS0() []Delivery {
	if s.f == nil {
		return nil
	}
	return s.f.queue.filter(func(d *Delivery) bool { return d.QoS > 0 })
}

// Inbound reports whether a QoS 2 PUBLISH with packet identifier id was
// received and not yet released by PUBREL.
func (s *Session) Inbound(id uint16) bool {
	_, ok := s.inbound[id]
	return ok
}

// AddInbound records a QoS 2 packet identifier awaiting PUBREL.
func (s *Session) AddInbound(id uint16) {
	if s.inbound == nil {
		s.inbound = make(map[uint16]struct{})
	}
	s.inbound[id] = struct{}{}
}

// ReleaseInbound forgets a QoS 2 packet identifier on PUBREL and reports
// whether it was recorded.
func (s *Session) ReleaseInbound(id uint16) bool {
	_, ok := s.inbound[id]
	delete(s.inbound, id)
	if len(s.inbound) == 0 {
		s.inbound = nil
	}
	return ok
}

// InboundIDs returns the QoS 2 packet identifiers awaiting PUBREL.
func (s *Session) InboundIDs() []uint16 {
	out := make([]uint16, 0, len(s.inbound))
	for id := range s.inbound {
		out = append(out, id)
	}
	return out
}
