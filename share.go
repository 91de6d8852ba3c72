package tern

import (
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/topics"
)

// Subscription options, packed into the 32-bit value the subscription
// index and the session keep per filter: the granted QoS in the low two
// bits, the MQTT 5 options, and the Subscription Identifier (at most
// 268435455, 28 bits) above them.
const (
	optNoLocal  = 1 << 2 // [v5 MQTT-3.8.3-3] not to the publishing client
	optRAP      = 1 << 3 // Retain As Published [v5 MQTT-3.3.1-12, MQTT-3.3.1-13]
	optIDShift  = 4
	optQoSMask  = 3
	maxSubIDBit = 28
)

// packOpts packs a subscription's options.
func packOpts(sub *packets.Subscription, id uint32) uint32 {
	o := uint32(sub.QoS) | id<<optIDShift
	if sub.NoLocal {
		o |= optNoLocal
	}
	if sub.RetainAsPublished {
		o |= optRAP
	}
	return o
}

func optQoS(o uint32) byte        { return byte(o & optQoSMask) }
func optSubID(o uint32) uint32    { return o >> optIDShift }
func optNoLocalSet(o uint32) bool { return o&optNoLocal != 0 }
func optRAPSet(o uint32) bool     { return o&optRAP != 0 }

// sharePrefix starts the filter of a shared subscription (section 4.8.2).
const sharePrefix = "$share/"

// parseShare splits a shared subscription's filter "$share/NAME/FILTER"
// into its name and filter; ok is false for any other filter. The name
// is at least one character without '/', '+' or '#', and the filter a
// valid topic filter [v5 MQTT-4.8.2-1, MQTT-4.8.2-2]; err says which rule
// a "$share/" filter breaks.
func parseShare(full string) (name, filter string, ok bool, err error) {
	rest, found := strings.CutPrefix(full, sharePrefix)
	if !found {
		return "", "", false, nil
	}
	name, filter, found = strings.Cut(rest, "/")
	switch {
	case !found || name == "":
		return "", "", true, errShareName
	case strings.ContainsAny(name, "+#"):
		return "", "", true, errShareName
	}
	if err := topics.ValidFilter(filter); err != nil {
		return "", "", true, err
	}
	return name, filter, true, nil
}

// errShareName is an invalid shared subscription filter.
var errShareName = errInvalidShare("a shared subscription is $share/NAME/FILTER, NAME at least one character without '/', '+' or '#' [v5 MQTT-4.8.2-1, MQTT-4.8.2-2]")

type errInvalidShare string

func (e errInvalidShare) Error() string { return string(e) }

// shareGroup is a shared subscription: one entry in the subscription index
// whose members take turns [v5 section 4.8.2]. Each message goes to one
// member, at that member's granted QoS [v5 MQTT-4.8.2-3].
type shareGroup struct {
	b      *Broker
	full   string // "$share/NAME/FILTER"
	filter string

	mu      sync.Mutex // serialises joins and leaves
	members atomic.Pointer[[]shareMember]
	next    atomic.Uint32 // round-robin position
}

// shareMember is a member of a group, with its subscription's options.
type shareMember struct {
	s    shareTarget
	opts uint32
}

// shareTarget is what can be a member of a shared subscription: a client
// session or an in-process handler.
type shareTarget interface {
	deliverOpts(opts uint32, ids []uint32, f *fanout, share string)
	identity() Client
	// ready reports whether the member can take a message now (a
	// connected client with room in its write buffer).
	ready() bool
}

func (g *shareGroup) identity() Client { return Client{ID: g.full, Internal: true} }

// join adds s with opts, or updates its options; it reports whether s is
// new to the group.
func (g *shareGroup) join(s shareTarget, opts uint32) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	var old []shareMember
	if p := g.members.Load(); p != nil {
		old = *p
	}
	ms := make([]shareMember, 0, len(old)+1)
	found := false
	for _, m := range old {
		if m.s == s {
			m.opts, found = opts, true
		}
		ms = append(ms, m)
	}
	if !found {
		ms = append(ms, shareMember{s, opts})
	}
	g.members.Store(&ms)
	return !found
}

// leave removes s and reports how many members remain.
func (g *shareGroup) leave(s shareTarget) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var old []shareMember
	if p := g.members.Load(); p != nil {
		old = *p
	}
	ms := make([]shareMember, 0, len(old))
	for _, m := range old {
		if m.s != s {
			ms = append(ms, m)
		}
	}
	g.members.Store(&ms)
	return len(ms)
}

// seed keys the hash strategies; one per process is enough.
var seed = maphash.MakeSeed()

// deliver gives the message to one member: the one the strategy picks if
// it is connected and may read the topic, otherwise the next that is;
// with none connected, the first member that may read it (a persistent
// session queues QoS 1 and 2 messages).
func (g *shareGroup) deliver(_ topics.Sub[subscriber], f *fanout) {
	p := g.members.Load()
	if p == nil || len(*p) == 0 {
		return
	}
	ms := *p
	b := g.b
	var start int
	switch b.opts.SharedSubscriptions {
	case ShareRandom:
		start = rand.IntN(len(ms))
	case ShareHashClient:
		start = int(maphash.String(seed, f.from) % uint64(len(ms)))
	case ShareHashTopic:
		start = int(maphash.String(seed, f.msg.Topic) % uint64(len(ms)))
	default:
		start = int(g.next.Add(1) % uint32(len(ms)))
	}
	readCheck := b.hooks.hasReadChecks()
	fallback := -1
	var fallbackGen uint32 // f.readGen when the fallback was checked
	for i := range ms {
		m := ms[(start+i)%len(ms)]
		if readCheck && !b.mayRead(m.s, f) {
			continue
		}
		if m.s.ready() {
			m.s.deliverOpts(m.opts, nil, f, g.full)
			return
		}
		if fallback < 0 {
			fallback, fallbackGen = (start+i)%len(ms), f.readGen
		}
	}
	if fallback >= 0 {
		m := ms[fallback]
		f.readGen = fallbackGen
		m.s.deliverOpts(m.opts, nil, f, g.full)
	}
}

// joinShare adds s to the shared subscription full (its name and filter
// parsed), creating the group; a session's s.mu is held.
func (b *Broker) joinShare(s shareTarget, full, filter string, opts uint32) {
	b.sharesMu.Lock()
	g := b.shares[full]
	if g == nil {
		g = &shareGroup{b: b, full: full, filter: filter}
		b.shares[full] = g
		// One index entry for the whole group; its members' QoS applies.
		b.subs.Subscribe(g, filter, 2)
		b.addInterest(filter, full)
	}
	g.join(s, opts)
	b.sharesMu.Unlock()
}

// leaveShare removes s from the shared subscription full; the group ends
// with its last member.
func (b *Broker) leaveShare(s shareTarget, full string) {
	b.sharesMu.Lock()
	defer b.sharesMu.Unlock()
	g := b.shares[full]
	if g == nil {
		return
	}
	if g.leave(s) == 0 {
		delete(b.shares, full)
		b.subs.Unsubscribe(g, g.filter)
		b.dropInterest(g.filter, full)
	}
}

// orphan is a message a session that ended still held for a shared
// subscription: it goes to another member.
type orphan struct {
	share string
	msg   *session.Message
	qos   byte
}

// orphans collects what a session that ends holds for shared
// subscriptions and no member has started to receive: queued messages,
// and QoS 1 messages in flight (their client may have them; QoS 1 allows
// a duplicate). A QoS 2 message in flight is not sent to another member
// [v5 MQTT-4.8.2-5]. s.mu is held.
func orphans(s *sess) []orphan {
	var out []orphan
	for _, d := range s.s.Inflight() {
		if d.Share() != "" && d.QoS == 1 {
			out = append(out, orphan{d.Share(), d.Msg, d.QoS})
		}
	}
	for _, d := range s.s.Queued() {
		if d.Share() != "" {
			out = append(out, orphan{d.Share(), d.Msg, d.QoS})
		}
	}
	return out
}

// redistribute gives the messages of a member that left to the rest of
// its groups; none are lost while a group has members, but those whose
// Message Expiry Interval has passed: no delivery starts for them
// [v5 MQTT-3.3.2-5]. No lock is held.
func (b *Broker) redistribute(os []orphan) {
	now := nowNano()
	for _, o := range os {
		b.sharesMu.Lock()
		g := b.shares[o.share]
		b.sharesMu.Unlock()
		if g == nil {
			continue
		}
		if o.msg.Expired(now) {
			b.stats.drop(DropExpired)
			b.log.Debug("message dropped", "share", o.share, "topic", o.msg.Topic, "reason", errExpired)
			b.hooks.onDrop(b, g.identity(), o.msg, errExpired)
			continue
		}
		f := new(fanout)
		f.msg, f.kept = *o.msg, o.msg
		f.msg.QoS = o.qos
		f.now = nowNano()
		g.deliver(topics.Sub[subscriber]{}, f)
		f.finish(b)
	}
}
