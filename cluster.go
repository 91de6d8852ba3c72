package tern

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/topics"
)

// Cluster joins several brokers into one that clients see as a single
// broker: a client on any node receives what a client on any other node
// publishes, retained messages and persistent sessions are shared, and a
// client identifier is held by one connection in the whole cluster.
// Package cluster/nats (its own module) implements it on NATS JetStream;
// a broker without Options.Cluster pays nothing for it.
//
// The broker calls the Cluster from connection goroutines; every method
// must be safe for concurrent use. The Cluster calls back into the node
// it was started with (ClusterNode) from its own goroutines.
type Cluster interface {
	// Start joins the cluster as node. New calls it last and fails if it
	// does.
	Start(ctx context.Context, node *ClusterNode) error
	// Stop leaves the cluster. Close calls it once every connection has
	// ended (and released its client identifier).
	Stop(ctx context.Context) error

	// Forward hands a message published on this node to the other nodes
	// whose clients subscribed to its topic, and, with m.Retain, stores it
	// as the cluster's retained message of the topic (an empty payload
	// clears it). For QoS 1 and 2 it returns once the message is durable
	// in the cluster: an error means it is not, and the publisher is not
	// acknowledged. QoS 0 may be sent asynchronously. m's Payload and
	// Props may alias the publisher's read buffer, which its next packet
	// overwrites: they are valid only until Forward returns, so an
	// implementation that keeps them copies them (or encodes m) first.
	Forward(ctx context.Context, m *ClusterMessage) error
	// Interest says that this node has its first subscription to filter
	// (on) or no longer any (off). group is "" for ordinary subscriptions
	// and "$share/NAME/FILTER" for a shared subscription: each message of
	// a shared subscription goes to one node of those with members, which
	// gives it to one of its members (ClusterNode.DeliverShared).
	Interest(filter, group string, on bool)

	// Claim takes client identifier c.ClientID for a connection this node
	// is about to accept. It calls c.Allow with the identity that owns the
	// client identifier's session, if another does, before anything
	// changes; a node that holds a connection for the identifier closes
	// it (ClusterNode.Kick) before Claim returns. It returns the session
	// the cluster keeps for the identifier (nil for none), with the
	// messages published for it since it was last saved (Pending).
	Claim(ctx context.Context, c *ClusterClaim) (*ClusterSession, error)
	// Save stores the state of a persistent session this node holds.
	Save(ctx context.Context, s *ClusterSession) error
	// Release gives up the client identifier when its connection ends,
	// unless another node claimed it meanwhile. s is the session to keep
	// (persistent sessions), nil when the session ended: a clean session,
	// or an offline session whose expiry this node ran. A Cluster expires
	// the sessions of nodes that left without releasing them, and
	// publishes their wills (ClusterNode.Publish).
	Release(ctx context.Context, clientID string, s *ClusterSession) error
}

// ClusterMessage is a message crossing the cluster.
type ClusterMessage struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// MQTT 5 properties: the Payload Format Indicator, the other
	// properties forwarded as they are (encoded as on the wire:
	// packets.PublishProps.Raw), and when the message expires (Unix
	// nanoseconds, 0 never).
	HasFormat bool
	Format    byte
	Props     []byte
	Expires   int64
	// From is the client identifier of the publisher, "" for the
	// application (for No Local).
	From string
	// Published is when the publishing node took the message, Unix
	// nanoseconds: sessions resume from a time (ClusterSession.Since).
	Published int64
}

// ClusterClaim is what a node asks of the cluster when it accepts a
// CONNECT.
type ClusterClaim struct {
	ClientID string
	Username string
	// Clean is the Clean Session (Clean Start) flag: the session, if any,
	// is discarded rather than returned.
	Clean bool
	// Allow applies the broker's session ownership rule to the identity
	// that owns the session (SessionAuthorizer hooks); an error refuses
	// the claim.
	Allow func(ctx context.Context, owner string) error
	// Will is the will of the connection (nil: none), with its delay:
	// the cluster keeps it while the connection lasts, so that another
	// node publishes it should this node fail, clean sessions included.
	Will *storage.Will
}

// ClusterSession is the state of a persistent session the cluster keeps.
type ClusterSession struct {
	ClientID string
	Username string
	// Expiry is the Session Expiry Interval in seconds
	// (storage.NeverExpires: never); LastSeen when its client went offline
	// (zero while connected).
	Expiry   uint32
	LastSeen time.Time
	// Subscriptions, with their options.
	Subscriptions []storage.Subscription
	// Inbound are the QoS 2 packet identifiers received and not yet
	// released: exactly once holds when the client moves to another node.
	Inbound []uint16
	// Will is the will of the session's client, kept until published or
	// deleted (with its delay and when it is due while the client is
	// offline).
	Will *storage.Will
	// Since is the publication time from which the session needs the
	// messages matching its subscriptions: nothing before it is owed.
	Since int64
	// Pending are, from Claim, the messages published since Since that
	// match the subscriptions. Some may have reached the client before
	// (at least once across a node's failure): the node that resumes the
	// session delivers each with a packet identifier of its own and DUP
	// set, as a possible re-delivery.
	Pending []ClusterMessage
	// Revision is the cluster's version of the record; a node that still
	// holds the session at the same revision keeps its own state.
	Revision uint64
}

// ErrClusterUnavailable is returned by a Cluster that cannot make a
// change durable now (no quorum): the broker refuses what depends on it.
var ErrClusterUnavailable = errors.New("tern: cluster unavailable")

// ClusterNode is the broker as its Cluster sees it.
type ClusterNode struct {
	b *Broker
}

// Deliver routes a message another node published to this node's
// subscribers (not to shared subscriptions, which get theirs through
// DeliverShared).
func (n *ClusterNode) Deliver(m *ClusterMessage) {
	b := n.b
	sm := sessionMessageOf(m)
	f := new(fanout)
	f.msg = sm
	f.from = m.From
	f.fromClient = Client{ID: m.From, Internal: m.From == ""}
	f.now = nowNano()
	f.remote = true
	b.route(nil, f)
}

// DeliverShared gives a message of the shared subscription group (its
// "$share/NAME/FILTER") to one of this node's members.
func (n *ClusterNode) DeliverShared(group string, m *ClusterMessage) {
	b := n.b
	b.sharesMu.Lock()
	g := b.shares[group]
	b.sharesMu.Unlock()
	if g == nil {
		return
	}
	f := new(fanout)
	f.msg = sessionMessageOf(m)
	f.from = m.From
	f.fromClient = Client{ID: m.From, Internal: m.From == ""}
	f.now = nowNano()
	f.remote = true
	g.deliver(topics.Sub[subscriber]{}, f)
	f.finish(b)
}

// Retained sets (or, with an empty payload, clears) this node's copy of the
// cluster's retained message of m.Topic.
func (n *ClusterNode) Retained(m *ClusterMessage) {
	b := n.b
	if len(m.Payload) == 0 {
		b.retained.Delete(m.Topic)
		return
	}
	sm := sessionMessageOf(m)
	sm.Retain = true
	b.retained.Set(m.Topic, &sm)
}

// Kick closes this node's connection for client identifier id: another
// node took it over (DISCONNECT 0x8E to an MQTT 5 client); clean is the
// new connection's Clean Session (Clean Start) flag, which decides the
// will. It returns once the connection has ended and released the
// identifier (saving the session), or ctx is done.
func (n *ClusterNode) Kick(ctx context.Context, id string, clean bool) error {
	b := n.b
	// A CONNECT for id in progress here ends first: the connection it
	// binds is the one to close.
	if err := b.ids.waitConnect(ctx, id); err != nil {
		return err
	}
	// A connection that just ended here releases the identifier first
	// (saving the session): the session must not be forgotten before.
	if err := b.ids.released(ctx, id); err != nil {
		return err
	}
	b.mu.Lock()
	s := b.sessions[id]
	b.mu.Unlock()
	if s == nil {
		return nil
	}
	c := s.conn.Load()
	if c == nil {
		// Offline here: forget the local copy; the cluster has it.
		b.forgetSession(s)
		return nil
	}
	s.mu.Lock()
	keep := !clean && !s.s.Clean
	s.mu.Unlock()
	c.markTakenOver(keep)
	c.closeWith(ErrTakenOver)
	select {
	case <-c.doneChan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Publish publishes m, the will of a client whose node died, as its node
// would have: will hooks, this node's subscribers, and the other nodes'.
// m.Expires, as in storage.Will, is minus the Message Expiry Interval in
// seconds (it starts now), or 0.
func (n *ClusterNode) Publish(ctx context.Context, from Client, m *ClusterMessage) error {
	sm := sessionMessageOf(m)
	return n.b.publishWill(from, &sm)
}

// sessionMessageOf is a cluster message as the broker holds it.
func sessionMessageOf(m *ClusterMessage) session.Message {
	return session.Message{
		Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		HasFormat: m.HasFormat, Format: m.Format, Props: m.Props, Expires: m.Expires,
		Published: m.Published,
	}
}

// clusterMessageOf is a message as it crosses the cluster.
func clusterMessageOf(m *session.Message, from Client) *ClusterMessage {
	cm := &ClusterMessage{
		Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		HasFormat: m.HasFormat, Format: m.Format, Props: m.Props, Expires: m.Expires,
		Published: m.Published,
	}
	if !from.Internal {
		cm.From = from.ID
	}
	return cm
}

// interestKey is a subscription of this node the cluster routes for.
type interestKey struct{ filter, group string }

// addInterest counts a local subscription to filter (of shared group, if
// not ""), telling the cluster of the first.
func (b *Broker) addInterest(filter, group string) {
	if b.cluster == nil {
		return
	}
	b.intMu.Lock()
	defer b.intMu.Unlock()
	k := interestKey{filter, group}
	b.interest[k]++
	if b.interest[k] == 1 {
		b.cluster.Interest(filter, group, true)
	}
}

// dropInterest counts a local subscription gone, telling the cluster of
// the last.
func (b *Broker) dropInterest(filter, group string) {
	if b.cluster == nil {
		return
	}
	b.intMu.Lock()
	defer b.intMu.Unlock()
	k := interestKey{filter, group}
	if b.interest[k]--; b.interest[k] <= 0 {
		delete(b.interest, k)
		b.cluster.Interest(filter, group, false)
	}
}

// forgetSession drops this node's copy of an offline session another
// node took: the cluster has it.
func (b *Broker) forgetSession(s *sess) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn.Load() != nil || b.sessions[s.s.ID] != s {
		return
	}
	s.gone = true
	b.dropSubscriptions(s)
	s.cancelTimers()
	delete(b.sessions, s.s.ID)
}

// clusterRecord is s as the cluster keeps it; s.mu is held. Since is the
// publication time of the oldest message s still owes its client, or now.
func (s *sess) clusterRecord() *ClusterSession {
	r := &ClusterSession{ClientID: s.s.ID, Username: s.username(), Expiry: s.expiry, Revision: s.revision()}
	if s.conn.Load() == nil {
		r.LastSeen = s.lastSeen()
	}
	for f, o := range s.s.Subs {
		r.Subscriptions = append(r.Subscriptions, storage.Subscription{
			ClientID: s.s.ID, Filter: f, QoS: optQoS(o), NoLocal: optNoLocalSet(o), RetainAsPublished: optRAPSet(o), ID: optSubID(o),
		})
	}
	r.Inbound = s.s.InboundIDs()
	if c := s.conn.Load(); c != nil && c.will != nil && !c.willDone.Load() {
		// The connection's will, for a node to publish should this one
		// fail while the client is connected.
		r.Will = &storage.Will{Msg: storedMessage(c.will), Delay: c.willDelay}
	} else if s.will() != nil {
		r.Will = &storage.Will{Msg: storedMessage(s.extra.will), PublishAt: s.extra.willAt}
	}
	since := nowNano()
	for _, d := range s.s.Inflight() {
		if d.Msg.Published > 0 && !d.Released {
			since = min(since, d.Msg.Published)
		}
	}
	for _, d := range s.s.Queued() {
		if d.Msg.Published > 0 {
			since = min(since, d.Msg.Published)
		}
	}
	r.Since = since
	return r
}

// sessionFromCluster builds the session the cluster kept for a client
// that connects to this node: its subscriptions, its QoS 2 identifiers
// awaiting PUBREL, and the messages published for it meanwhile, queued
// (as resumed deliveries they may be duplicates). b.mu is held.
func (b *Broker) sessionFromCluster(cs *ClusterSession, window int) *sess {
	s := &sess{b: b, s: session.Make(cs.ClientID, false, window, b.opts.MaxQueued), expiry: cs.Expiry}
	s.keepClient(Client{ID: cs.ClientID, Username: cs.Username})
	x := s.x()
	x.revision = cs.Revision
	x.lastSeen = cs.LastSeen
	for i := range cs.Subscriptions {
		r := &cs.Subscriptions[i]
		sub := packets.Subscription{Filter: r.Filter, QoS: r.QoS, NoLocal: r.NoLocal, RetainAsPublished: r.RetainAsPublished}
		b.subscribe(s, &sub, r.ID)
	}
	for _, id := range cs.Inbound {
		s.s.AddInbound(id)
	}
	s.queueClusterLocked(cs.Pending)
	return s
}

// queueClusterLocked queues, as resumed deliveries, the messages of msgs
// that s's subscriptions match; s.mu is held.
func (s *sess) queueClusterLocked(msgs []ClusterMessage) {
	now := nowNano()
	for i := range msgs {
		m := sessionMessageOf(&msgs[i])
		if m.Expired(now) {
			continue
		}
		f := &fanout{msg: m, from: msgs[i].From, now: now}
		opts, ids, ok := s.overlappingLocked(f)
		if !ok {
			continue
		}
		kept := m
		// Replayed from the cluster: it may have reached the client
		// before, from the node that held the session [MQTT-3.3.1-1].
		d := session.Delivery{Msg: &kept, QoS: min(m.QoS, optQoS(opts)), Retain: m.Retain && optRAPSet(opts), Route: session.RouteOf(ids, ""), Dup: true}
		s.s.Enqueue(d)
	}
}

// DeliverTo queues msgs for the session of client identifier id, if this
// node holds it, as the Pending messages of a claim: the messages a
// session resumed here was published between the cluster's reading of
// them for the claim and its subscriptions taking effect here (which may
// repeat some it received).
func (n *ClusterNode) DeliverTo(id string, msgs []ClusterMessage) {
	b := n.b
	b.mu.Lock()
	s := b.sessions[id]
	b.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	if !s.gone {
		s.queueClusterLocked(msgs)
		if c := s.conn.Load(); c != nil {
			s.pumpLocked(c)
		}
	}
	s.mu.Unlock()
	s.fireEvents()
}

// clusterTimeout bounds a call the broker makes into its Cluster.
const clusterTimeout = 10 * time.Second

// clusterCtx is the context of a call into the Cluster: not cancelled by
// Close, which waits for connections to release their identifiers.
func (b *Broker) clusterCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(b.ctx), clusterTimeout)
}

// saveSession stores s, a persistent session this node holds, in the
// cluster, after a change another node would need should this one fail.
func (b *Broker) saveSession(s *sess) {
	if b.cluster == nil {
		return
	}
	s.mu.Lock()
	if s.s.Clean || s.gone {
		s.mu.Unlock()
		return
	}
	r := s.clusterRecord()
	s.mu.Unlock()
	ctx, cancel := b.clusterCtx()
	defer cancel()
	if err := b.cluster.Save(ctx, r); err != nil {
		b.log.Warn("cluster: saving a session", "client", r.ClientID, "error", err)
		return
	}
	s.mu.Lock()
	s.x().revision = max(s.revision(), r.Revision)
	s.mu.Unlock()
}

// releaseSession gives up s's client identifier in the cluster once its
// connection ended or its session expired (ids.releasing was called): the
// session is kept unless it ended.
func (b *Broker) releaseSession(s *sess) {
	defer b.ids.done(s.s.ID)
	var r *ClusterSession
	s.mu.Lock()
	if !s.gone && !s.s.Clean {
		r = s.clusterRecord()
	}
	s.mu.Unlock()
	ctx, cancel := b.clusterCtx()
	defer cancel()
	if err := b.cluster.Release(ctx, s.s.ID, r); err != nil {
		b.log.Warn("cluster: releasing a client identifier", "client", s.s.ID, "error", err)
		return
	}
	if r != nil {
		s.mu.Lock()
		s.x().revision = max(s.revision(), r.Revision)
		s.mu.Unlock()
	}
}

// clusterSaveEvery is how often the connected persistent sessions are
// saved in the cluster: what a node that takes over a session after this
// node failed replays is at most this old.
const clusterSaveEvery = 30 * time.Second

// clusterSaveLoop saves every connected persistent session now and then,
// so that the publication time a session resumes from (Since) follows
// what its client received.
func (b *Broker) clusterSaveLoop(every time.Duration) {
	defer b.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-b.closing:
			return
		}
		b.mu.Lock()
		var live []*sess
		for _, s := range b.sessions {
			if s.conn.Load() != nil {
				live = append(live, s)
			}
		}
		b.mu.Unlock()
		for _, s := range live {
			b.saveSession(s)
		}
	}
}

// clusterIDs orders what this node does with a client identifier in the
// cluster: one CONNECT at a time claims it, after the release of the
// connection (or session) that held it here, and a node asking this one
// to close its connection waits for a CONNECT in progress. Without it, a
// release that reached the cluster after a new claim from the same node
// would undo the claim.
type clusterIDs struct {
	mu         sync.Mutex
	connects   map[string]chan struct{} // closed when the CONNECT is answered
	releases   map[string]chan struct{} // closed when the release is done
	initialise sync.Once
}

func (g *clusterIDs) init() {
	g.initialise.Do(func() {
		g.connects = make(map[string]chan struct{})
		g.releases = make(map[string]chan struct{})
	})
}

// connecting waits until no other CONNECT for id is in progress on this
// node, and makes this one the CONNECT in progress until done is called.
func (g *clusterIDs) connecting(ctx context.Context, id string) (done func(), err error) {
	g.init()
	for {
		g.mu.Lock()
		ch, busy := g.connects[id]
		if !busy {
			ch = make(chan struct{})
			g.connects[id] = ch
			g.mu.Unlock()
			return func() {
				g.mu.Lock()
				delete(g.connects, id)
				g.mu.Unlock()
				close(ch)
			}, nil
		}
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("tern: waiting for another CONNECT of client %q: %w", id, ctx.Err())
		}
	}
}

// waitConnect waits until no CONNECT for id is in progress on this node.
func (g *clusterIDs) waitConnect(ctx context.Context, id string) error {
	return g.wait(ctx, id, func() map[string]chan struct{} { return g.connects })
}

// releasing records that id is about to be released in the cluster; done
// ends it.
func (g *clusterIDs) releasing(id string) {
	g.init()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.releases[id]; !ok {
		g.releases[id] = make(chan struct{})
	}
}

// done ends the release of id.
func (g *clusterIDs) done(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.releases[id]; ok {
		delete(g.releases, id)
		close(ch)
	}
}

// released waits until no release of id is in progress.
func (g *clusterIDs) released(ctx context.Context, id string) error {
	return g.wait(ctx, id, func() map[string]chan struct{} { return g.releases })
}

func (g *clusterIDs) wait(ctx context.Context, id string, m func() map[string]chan struct{}) error {
	g.init()
	for {
		g.mu.Lock()
		ch, ok := m()[id]
		g.mu.Unlock()
		if !ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("tern: waiting for client %q in the cluster: %w", id, ctx.Err())
		}
	}
}

// clusterClientID is an identifier for a client that connected without
// one [MQTT-3.1.3-6], unique in the cluster: the nodes share one
// namespace, and a node's own sequence would repeat another's.
func clusterClientID() string {
	return fmt.Sprintf("tern-%016x", rand.Uint64())
}
