package tern_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/topics"
)

// memHub is an in-memory cluster: the test double of tern.Cluster that
// the core's tests join brokers with. It keeps what a real cluster keeps
// (retained messages, session records, the log of QoS 1 and 2 messages,
// who holds each client identifier) in maps, and calls the other nodes
// directly.
type memHub struct {
	mu       sync.Mutex
	nodes    []*memNode
	retained map[string]tern.ClusterMessage
	sessions map[string]*memRecord
	log      []tern.ClusterMessage
	rev      uint64
	next     int // round robin over nodes for shared subscriptions
	// down makes every durable change fail, as a cluster without quorum.
	down atomic.Bool
}

type memRecord struct {
	s     tern.ClusterSession
	owner *memNode // the node holding a connection for it, nil for none
}

// memNode is one broker's view of the hub.
type memNode struct {
	hub      *memHub
	node     *tern.ClusterNode
	interest map[[2]string]bool // {filter, group}
	claims   atomic.Int64
}

func newMemHub() *memHub {
	return &memHub{retained: map[string]tern.ClusterMessage{}, sessions: map[string]*memRecord{}}
}

// join returns the Cluster for one more node.
func (h *memHub) join() *memNode {
	return &memNode{hub: h, interest: map[[2]string]bool{}}
}

func (n *memNode) Start(_ context.Context, node *tern.ClusterNode) error {
	h := n.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	n.node = node
	h.nodes = append(h.nodes, n)
	for _, m := range h.retained {
		node.Retained(&m)
	}
	return nil
}

func (n *memNode) Stop(context.Context) error {
	h := n.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nodes = slices.DeleteFunc(h.nodes, func(o *memNode) bool { return o == n })
	return nil
}

func (n *memNode) Forward(_ context.Context, m *tern.ClusterMessage) error {
	// Payload and Props are valid only during the call: the hub keeps
	// copies.
	own := *m
	own.Payload, own.Props = bytes.Clone(m.Payload), bytes.Clone(m.Props)
	m = &own
	h := n.hub
	if m.QoS > 0 && h.down.Load() {
		return fmt.Errorf("no quorum: %w", tern.ErrClusterUnavailable)
	}
	h.mu.Lock()
	if m.Retain {
		if len(m.Payload) == 0 {
			delete(h.retained, m.Topic)
		} else {
			h.retained[m.Topic] = *m
		}
	}
	if m.QoS > 0 {
		h.log = append(h.log, *m)
	}
	type target struct {
		n     *memNode
		group string
	}
	var targets []target
	groups := map[string][]*memNode{}
	for _, o := range h.nodes {
		ordinary := false
		for k := range o.interest {
			if !topics.Matches(k[0], m.Topic) {
				continue
			}
			if k[1] == "" {
				ordinary = true
			} else {
				groups[k[1]] = append(groups[k[1]], o)
			}
		}
		if ordinary && o != n {
			targets = append(targets, target{n: o})
		}
		if m.Retain && o != n {
			targets = append(targets, target{n: o, group: "\x00retained"})
		}
	}
	for g, members := range groups {
		h.next++
		targets = append(targets, target{n: members[h.next%len(members)], group: g})
	}
	h.mu.Unlock()
	for _, t := range targets {
		switch t.group {
		case "":
			t.n.node.Deliver(m)
		case "\x00retained":
			t.n.node.Retained(m)
		default:
			t.n.node.DeliverShared(t.group, m)
		}
	}
	return nil
}

func (n *memNode) Interest(filter, group string, on bool) {
	n.hub.mu.Lock()
	defer n.hub.mu.Unlock()
	if on {
		n.interest[[2]string{filter, group}] = true
	} else {
		delete(n.interest, [2]string{filter, group})
	}
}

func (n *memNode) Claim(ctx context.Context, c *tern.ClusterClaim) (*tern.ClusterSession, error) {
	h := n.hub
	if h.down.Load() {
		return nil, fmt.Errorf("no quorum: %w", tern.ErrClusterUnavailable)
	}
	n.claims.Add(1)
	h.mu.Lock()
	r := h.sessions[c.ClientID]
	var owner *memNode
	var username string
	if r != nil {
		owner, username = r.owner, r.s.Username
	}
	h.mu.Unlock()
	if r != nil && username != c.Username {
		if err := c.Allow(ctx, username); err != nil {
			return nil, err
		}
	}
	// Every node may hold an offline copy: all of them let go.
	for _, o := range h.nodesCopy() {
		if o != n || owner == n {
			if err := o.node.Kick(ctx, c.ClientID, c.Clean); err != nil {
				return nil, err
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r = h.sessions[c.ClientID]
	if r == nil || c.Clean {
		h.rev++
		h.sessions[c.ClientID] = &memRecord{owner: n, s: tern.ClusterSession{ClientID: c.ClientID, Username: c.Username, Revision: h.rev}}
		return nil, nil
	}
	r.owner = n
	s := r.s
	s.Pending = nil
	for _, m := range h.log {
		if m.Published < s.Since {
			continue
		}
		for _, sub := range s.Subscriptions {
			if topics.Matches(sub.Filter, m.Topic) {
				s.Pending = append(s.Pending, m)
				break
			}
		}
	}
	return &s, nil
}

func (h *memHub) nodesCopy() []*memNode {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.nodes)
}

func (n *memNode) Save(_ context.Context, s *tern.ClusterSession) error {
	h := n.hub
	if h.down.Load() {
		return fmt.Errorf("no quorum: %w", tern.ErrClusterUnavailable)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev++
	s.Revision = h.rev
	h.sessions[s.ClientID] = &memRecord{owner: n, s: *s}
	return nil
}

func (n *memNode) Release(_ context.Context, id string, s *tern.ClusterSession) error {
	h := n.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.sessions[id]
	if r != nil && r.owner != n {
		return nil // another node claimed it meanwhile
	}
	if s == nil {
		delete(h.sessions, id)
		return nil
	}
	h.rev++
	s.Revision = h.rev
	h.sessions[id] = &memRecord{s: *s}
	return nil
}

// record returns the hub's record of client id.
func (h *memHub) record(id string) (tern.ClusterSession, *memNode, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.sessions[id]
	if r == nil {
		return tern.ClusterSession{}, nil, false
	}
	return r.s, r.owner, true
}

// interested reports whether node n told the hub of interest in filter.
func (n *memNode) interested(filter, group string) bool {
	n.hub.mu.Lock()
	defer n.hub.mu.Unlock()
	return n.interest[[2]string{filter, group}]
}

// startNodes starts k brokers joined by one memHub. At cleanup it closes
// them all, then checks that no goroutine was left behind (a per-broker
// check cannot tell one broker's goroutines from another's).
func startNodes(t *testing.T, k int, opts tern.Options) (*memHub, []*tern.Broker, []string, []*memNode) {
	t.Helper()
	before := runtime.NumGoroutine()
	h := newMemHub()
	var bs []*tern.Broker
	var addrs []string
	var ns []*memNode
	served := make(chan error, k)
	t.Cleanup(func() {
		for _, b := range bs {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			assert.NoError(t, b.Close(ctx), "Close")
			cancel()
		}
		for range bs {
			assert.ErrorIs(t, <-served, tern.ErrClosed, "Serve's return")
		}
		waitGoroutines(t, before)
	})
	for range k {
		n := h.join()
		o := opts
		o.Cluster = n
		o.SysInterval = -1
		b, err := tern.New(o)
		require.NoError(t, err)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		go func() { served <- b.Serve(l) }()
		bs, addrs, ns = append(bs, b), append(addrs, l.Addr().String()), append(ns, n)
	}
	return h, bs, addrs, ns
}

func TestClusterOptionsRefuseAStoreBeside(t *testing.T) {
	_, err := tern.New(tern.Options{Cluster: newMemHub().join(), Store: storage.NewMemory()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Options.Cluster")
}

func TestClusterDeliversBetweenNodesOnce(t *testing.T) {
	_, _, addrs, ns := startNodes(t, 3, tern.Options{})
	sub := mustConnect(t, addrs[0], "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "room/+", QoS: 1})
	require.True(t, ns[0].interested("room/+", ""), "the node told the cluster of its subscriber")
	assert.False(t, ns[1].interested("room/+", ""))

	pubC := mustConnect(t, addrs[2], "pubC", true)
	pubC.publishQoS(1, "room/1", "from C", 1, false)
	got := sub.recvPublish()
	assert.Equal(t, "room/1", got.Topic)
	assert.Equal(t, "from C", string(got.Payload))
	assert.Equal(t, byte(1), got.QoS)
	sub.send(&packets.Puback{PacketID: got.PacketID})

	// A message published on the subscriber's own node arrives once.
	pubA := mustConnect(t, addrs[0], "pubA", true)
	pubA.publishQoS(2, "room/2", "from A", 0, false)
	got = sub.recvPublish()
	assert.Equal(t, "from A", string(got.Payload))
	sub.expectNothing(200 * time.Millisecond)

	// The last subscriber gone, the node withdraws its interest.
	sub.send(&packets.Unsubscribe{PacketID: 3, Filters: []string{"room/+"}})
	_, ok := sub.recv().(*packets.Unsuback)
	require.True(t, ok)
	assert.False(t, ns[0].interested("room/+", ""), "interest withdrawn with the last subscription")
}

func TestClusterV5PropertiesCrossNodes(t *testing.T) {
	_, _, addrs, _ := startNodes(t, 2, tern.Options{})
	sub := c5Must(t, addrs[0], "sub5")
	c5Subscribe(sub, 1, "v5/#", 1)
	pub := c5Must(t, addrs[1], "pub5")
	raw := m5RawProps(t, &packets.Properties{ContentType: "text/plain", ResponseTopic: "reply/here",
		User: []packets.UserProperty{{Key: "k", Value: "v"}}})
	pub.send(&packets.Publish{Version: packets.Level5, Topic: "v5/x", Payload: []byte("p"), QoS: 1, PacketID: 7, Props: packets.PublishProps{
		HasPayloadFormat: true, PayloadFormat: 1, Raw: raw}})
	ack, ok := pub.recv().(*packets.Puback)
	require.True(t, ok)
	assert.Equal(t, packets.Success, ack.ReasonCode, "a message the cluster took is acknowledged with Success")
	got := c5Recv(sub)
	props, err := got.Props.Properties()
	require.NoError(t, err)
	assert.Equal(t, "text/plain", props.ContentType)
	assert.Equal(t, "reply/here", props.ResponseTopic)
	assert.True(t, got.Props.HasPayloadFormat)
	assert.Equal(t, []packets.UserProperty{{Key: "k", Value: "v"}}, props.User)
}

func TestClusterRetainedMessagesAreShared(t *testing.T) {
	h, bs, addrs, _ := startNodes(t, 2, tern.Options{})
	pub := mustConnect(t, addrs[0], "pub", true)
	pub.publishQoS(1, "state/door", "open", 1, true)

	sub := mustConnect(t, addrs[1], "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "state/#", QoS: 0})
	got := sub.recvPublish()
	assert.Equal(t, "open", string(got.Payload))
	assert.True(t, got.Retain)

	// Cleared on the other node, it is gone everywhere.
	c := mustConnect(t, addrs[1], "clear", true)
	c.publishQoS(2, "state/door", "", 1, true)
	late := mustConnect(t, addrs[0], "late", true)
	late.subscribe(1, packets.Subscription{Filter: "state/#", QoS: 0})
	late.expectNothing(200 * time.Millisecond)

	// A node that joins later gets the cluster's retained messages.
	h.mu.Lock()
	h.retained["state/light"] = tern.ClusterMessage{Topic: "state/light", Payload: []byte("on"), Retain: true}
	h.mu.Unlock()
	n := h.join()
	b3, addr3 := startBroker(t, tern.Options{Cluster: n})
	_ = b3
	s3 := mustConnect(t, addr3, "s3", true)
	s3.subscribe(1, packets.Subscription{Filter: "state/light", QoS: 0})
	assert.Equal(t, "on", string(s3.recvPublish().Payload))
	_ = bs
}

func TestClusterTakeoverAcrossNodes(t *testing.T) {
	h, _, addrs, ns := startNodes(t, 2, tern.Options{})
	first, _ := c5Connect(t, addrs[0], c5Persistent("dev", true, 300))
	c5Subscribe(first, 1, "cmd/dev", 1)
	rec, owner, ok := h.record("dev")
	require.True(t, ok, "a persistent session is saved in the cluster")
	assert.Same(t, ns[0], owner)
	require.Len(t, rec.Subscriptions, 1)
	assert.Equal(t, "cmd/dev", rec.Subscriptions[0].Filter)

	// [v5 MQTT-3.1.4-3] the same client identifier on another node: the
	// first connection is closed, with DISCONNECT 0x8E.
	second, ack := c5Connect(t, addrs[1], c5Persistent("dev", false, 300))
	c5Disconnected(first, packets.SessionTakenOver)
	assert.True(t, ack.SessionPresent, "the session came from the cluster")
	_, owner, _ = h.record("dev")
	assert.Same(t, ns[1], owner)

	// The subscription moved with the session.
	pub := mustConnect(t, addrs[0], "pub", true)
	pub.publishQoS(1, "cmd/dev", "go", 1, false)
	assert.Equal(t, "go", string(c5Recv(second).Payload))
}

func TestClusterSessionResumesOnAnotherNode(t *testing.T) {
	_, bs, addrs, _ := startNodes(t, 3, tern.Options{})
	dev := mustConnect(t, addrs[0], "dev", false)
	dev.subscribe(1, packets.Subscription{Filter: "q/#", QoS: 1})
	dev.send(&packets.Disconnect{})
	dev.expectClosed()
	eventually(t, "dev offline on A", func() bool { ci, ok := findClient(bs[0], "dev"); return ok && !ci.Connected })

	pub := mustConnect(t, addrs[2], "pub", true)
	for i := range 5 {
		pub.publishQoS(uint16(i+1), "q/x", fmt.Sprint("m", i), 1, false)
	}
	// The client comes back on B: session present, every queued message.
	back := dialRaw(t, addrs[1])
	ack := back.connect("dev", false)
	require.Zero(t, ack.ReturnCode)
	assert.True(t, ack.SessionPresent, "[MQTT-3.2.2-2] the session came from the cluster")
	var got []string
	for range 5 {
		p := back.recvPublish()
		got = append(got, string(p.Payload))
		// [MQTT-3.3.1-1] replayed from the cluster, it may have reached
		// the client from A: DUP set.
		assert.True(t, p.Dup, "DUP on the replayed %q", p.Payload)
		back.send(&packets.Puback{PacketID: p.PacketID})
	}
	assert.Equal(t, []string{"m0", "m1", "m2", "m3", "m4"}, got)
	_, onA := findClient(bs[0], "dev")
	assert.False(t, onA, "the node the client left no longer holds the session")
}

func TestClusterSharedSubscriptionGivesEachMessageToOneMember(t *testing.T) {
	_, _, addrs, ns := startNodes(t, 3, tern.Options{})
	a := c5Must(t, addrs[0], "a")
	c5Subscribe(a, 1, "$share/g/jobs/#", 1)
	b := c5Must(t, addrs[1], "b")
	c5Subscribe(b, 1, "$share/g/jobs/#", 1)
	require.True(t, ns[0].interested("jobs/#", "$share/g/jobs/#"))

	pub := mustConnect(t, addrs[2], "pub", true)
	const n = 10
	for i := range n {
		pub.publishQoS(uint16(i+1), "jobs/x", fmt.Sprint(i), 1, false)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	count := func(c *rawClient, done chan<- struct{}) {
		defer close(done)
		for {
			p, err := c.tryRecv(500 * time.Millisecond)
			if err != nil {
				return
			}
			if pub, ok := p.(*packets.Publish); ok {
				mu.Lock()
				seen[string(pub.Payload)]++
				mu.Unlock()
				c.send(&packets.Puback{Version: packets.Level5, PacketID: pub.PacketID})
			}
		}
	}
	da, db := make(chan struct{}), make(chan struct{})
	go count(a, da)
	go count(b, db)
	<-da
	<-db
	require.Len(t, seen, n, "every message reached the group")
	for k, v := range seen {
		assert.Equal(t, 1, v, "message %s delivered to one member only", k)
	}
}

func TestClusterUnavailableRefusesWhatItCannotKeep(t *testing.T) {
	h, bs, addrs, _ := startNodes(t, 2, tern.Options{})
	sub := mustConnect(t, addrs[0], "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "t", QoS: 1})
	p5 := c5Must(t, addrs[0], "p5")
	p3 := mustConnect(t, addrs[0], "p3", true)
	h.down.Store(true)

	// MQTT 5: PUBACK 0x80, the message not taken.
	p5.send(&packets.Publish{Version: packets.Level5, Topic: "t", Payload: []byte("x"), QoS: 1, PacketID: 1})
	ack, ok := p5.recv().(*packets.Puback)
	require.True(t, ok)
	assert.Equal(t, packets.UnspecifiedError, ack.ReasonCode)

	// MQTT 3.1.1 has no negative acknowledgement: the connection closes
	// unacknowledged, and the client sends the message again.
	p3.send(&packets.Publish{Topic: "t", Payload: []byte("y"), QoS: 1, PacketID: 1})
	p3.expectClosed()

	// QoS 0 keeps flowing on the node.
	q0 := mustConnect(t, addrs[0], "q0", true)
	q0.publishQoS(0, "t", "zero", 0, false)
	for {
		p := sub.recvPublish()
		if p.QoS > 0 {
			sub.send(&packets.Puback{PacketID: p.PacketID})
		}
		if string(p.Payload) == "zero" {
			break
		}
	}

	// The application's QoS 1 publish says why.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := bs[0].Publish(ctx, "t", []byte("app"), 1, false)
	require.ErrorIs(t, err, tern.ErrClusterUnavailable)

	// Persistent sessions are refused (3.1.1 0x03, MQTT 5 0x88); a clean
	// session goes on on this node.
	c := dialRaw(t, addrs[1])
	assert.Equal(t, byte(packets.RefusedServerUnavailable), c.connect("persist", false).ReturnCode)
	c5 := c5Dial(t, addrs[1])
	c5.send(c5Persistent("persist5", true, 60))
	c5Refused(c5, packets.ServerUnavailable)
	mustConnect(t, addrs[1], "clean", true)
}

func TestClusterSessionOwnershipHoldsAcrossNodes(t *testing.T) {
	_, _, addrs, _ := startNodes(t, 2, tern.Options{})
	alice := dialRaw(t, addrs[0])
	cp := &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "shared-id", KeepAlive: 60, UsernameFlag: true, Username: "alice"}
	require.Zero(t, alice.connectWith(cp).ReturnCode)
	alice.send(&packets.Disconnect{})
	alice.expectClosed()

	// Another identity cannot take alice's session from another node
	// without a SessionAuthorizer that allows it.
	bob := dialRaw(t, addrs[1])
	cp.Username = "bob"
	assert.Equal(t, byte(packets.RefusedNotAuthorized), bob.connectWith(cp).ReturnCode)
}

func TestClusterRecordResumesFromTheOldestUndeliveredMessage(t *testing.T) {
	h, bs, addrs, _ := startNodes(t, 2, tern.Options{})
	dev := mustConnect(t, addrs[0], "slow", false)
	dev.subscribe(1, packets.Subscription{Filter: "s", QoS: 1})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, bs[1].Publish(ctx, "s", []byte("unacked"), 1, false))
	p := dev.recvPublish() // received, never acknowledged
	require.Equal(t, "unacked", string(p.Payload))
	dev.conn.Close()
	eventually(t, "slow released", func() bool { _, owner, ok := h.record("slow"); return ok && owner == nil })
	rec, _, _ := h.record("slow")
	h.mu.Lock()
	published := h.log[len(h.log)-1].Published
	h.mu.Unlock()
	assert.LessOrEqual(t, rec.Since, published, "the record resumes no later than the unacknowledged message")

	// On the other node the message comes again, as a resumed delivery.
	back := mustConnect(t, addrs[1], "slow", false)
	again := back.recvPublish()
	assert.Equal(t, "unacked", string(again.Payload))
	assert.True(t, strings.HasPrefix(again.Topic, "s"))
}
