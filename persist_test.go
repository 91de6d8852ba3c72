package tern_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/storage/bolt"
	bbolt "go.etcd.io/bbolt"
)

// Tests of persistence through restarts: every state a Store holds is
// built over the wire, the broker is closed and a new one started on the
// same data, and what the clients see then is checked, as is what the store
// holds. Each runs with the in-memory store (a restart reopens its data) and
// with the bbolt file (a restart closes and reopens the file).

// psBackend is a Store that outlives a broker. open returns the first handle
// and a function that closes the current handle and returns a new one on
// the same data, as a restarted process would open its files again.
type psBackend struct {
	name string
	open func(t *testing.T) (storage.Store, func() storage.Store)
}

func psBackends() []psBackend {
	return []psBackend{
		{"memory", func(t *testing.T) (storage.Store, func() storage.Store) {
			m := storage.NewMemory()
			cur := m
			return m, func() storage.Store {
				cur.Close()
				cur = m.Reopen()
				return cur
			}
		}},
		{"bolt", func(t *testing.T) (storage.Store, func() storage.Store) {
			path := filepath.Join(t.TempDir(), "tern.db")
			cur := psOpenBolt(t, path)
			return cur, func() storage.Store {
				if err := cur.Close(); err != nil {
					t.Errorf("closing the store: %v", err)
				}
				cur = psOpenBolt(t, path)
				return cur
			}
		}},
	}
}

func psOpenBolt(t testing.TB, path string) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{Durability: bolt.Sync})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	return st
}

// psEach runs f with each backend, and checks at the end that no goroutine
// was left behind.
func psEach(t *testing.T, f func(t *testing.T, be psBackend)) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, before) })
	for _, be := range psBackends() {
		t.Run(be.name, func(t *testing.T) { f(t, be) })
	}
}

// psEnv is a broker on a restartable store, served on TCP loopback.
type psEnv struct {
	t      *testing.T
	opts   tern.Options
	store  storage.Store
	reopen func() storage.Store
	b      *tern.Broker // nil while stopped
	addr   string
	served chan error
}

// psStart opens the backend and starts a broker on it; cleanup closes both.
func psStart(t *testing.T, be psBackend, opts tern.Options) *psEnv {
	t.Helper()
	e := &psEnv{t: t, opts: opts}
	e.store, e.reopen = be.open(t)
	t.Cleanup(func() {
		e.down()
		e.store.Close()
	})
	e.up()
	return e
}

// up starts a broker on the current store handle.
func (e *psEnv) up() {
	e.t.Helper()
	opts := e.opts
	opts.Store = e.store
	if opts.SysInterval == 0 {
		opts.SysInterval = -1
	}
	b, err := tern.New(opts)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.served = make(chan error, 1)
	go func() { e.served <- b.Serve(l) }()
	e.b, e.addr = b, l.Addr().String()
}

// down closes the broker, which writes what is pending to the store.
func (e *psEnv) down() {
	e.t.Helper()
	if e.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.b.Close(ctx); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	if err := <-e.served; !errors.Is(err, tern.ErrClosed) {
		e.t.Errorf("Serve returned %v, want ErrClosed", err)
	}
	e.b = nil
}

// restart closes the broker and the store handle, reopens the store and
// starts a new broker on it.
func (e *psEnv) restart() {
	e.t.Helper()
	e.down()
	e.store = e.reopen()
	e.up()
}

// stored closes the broker and returns what its store holds.
func (e *psEnv) stored() *storage.Snapshot {
	e.t.Helper()
	e.down()
	snap, err := e.store.Load(context.Background())
	if err != nil {
		e.t.Fatalf("Load: %v", err)
	}
	return snap
}

// client finds id in Clients.
func (e *psEnv) client(id string) (tern.ClientInfo, bool) {
	for _, ci := range e.b.Clients() {
		if ci.ID == id {
			return ci, true
		}
	}
	return tern.ClientInfo{}, false
}

// psResume connects id with clean session 0 and requires session present.
func psResume(t testing.TB, addr, id string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	// [MQTT-3.2.2-2] a resumed session is announced with session present 1.
	if ack := c.connect(id, false); ack.ReturnCode != 0 || !ack.SessionPresent {
		t.Fatalf("CONNACK %+v for %s, want accepted with session present", ack, id)
	}
	return c
}

// psLeave disconnects c with DISCONNECT and waits for the broker to close.
func psLeave(c *rawClient) {
	c.t.Helper()
	c.send(&packets.Disconnect{})
	c.expectClosed()
}

// psSync makes sure the broker has handled every packet c sent before: it
// answers PINGREQ only after them.
func psSync(c *rawClient) {
	c.t.Helper()
	c.send(&packets.Pingreq{})
	if p := c.recv(); p.Type() != packets.TypePingresp {
		c.t.Fatalf("expected PINGRESP, got %v %+v", p.Type(), p)
	}
}

// psReceiver is the receiving side of a client that acknowledges as MQTT
// requires and delivers each QoS 2 message once: a PUBLISH whose packet
// identifier it acknowledged with PUBREC, and for which no PUBREL came yet,
// is the same message again, acknowledged and not delivered a second time
// [MQTT-4.3.3-2]. Its state lives as long as the client, across
// connections.
type psReceiver struct {
	awaitingRel map[uint16]bool
}

// receive handles one packet from the broker: it returns the
// acknowledgement to send (nil for none) and the message to deliver (nil
// when the packet delivers nothing new).
func (r *psReceiver) receive(p packets.Packet) (ack packets.Packet, deliver *packets.Publish) {
	switch p := p.(type) {
	case *packets.Publish:
		switch p.QoS {
		case 1:
			return &packets.Puback{PacketID: p.PacketID}, p
		case 2:
			if r.awaitingRel == nil {
				r.awaitingRel = make(map[uint16]bool)
			}
			if r.awaitingRel[p.PacketID] {
				return &packets.Pubrec{PacketID: p.PacketID}, nil
			}
			r.awaitingRel[p.PacketID] = true
			return &packets.Pubrec{PacketID: p.PacketID}, p
		}
		return nil, p
	case *packets.Pubrel:
		delete(r.awaitingRel, p.PacketID)
		return &packets.Pubcomp{PacketID: p.PacketID}, nil
	}
	return nil, nil
}

// next returns the next message delivered on c, acknowledging everything.
func (r *psReceiver) next(c *rawClient) *packets.Publish {
	c.t.Helper()
	for {
		p := c.recv()
		ack, msg := r.receive(p)
		if ack == nil && msg == nil {
			c.t.Fatalf("unexpected %v %+v", p.Type(), p)
		}
		if ack != nil {
			c.send(ack)
		}
		if msg != nil {
			return msg
		}
	}
}

// settle completes the QoS 2 flows still open on c: it answers the
// PUBRELs still to come, and fails on a new message.
func (r *psReceiver) settle(c *rawClient) {
	c.t.Helper()
	for len(r.awaitingRel) > 0 {
		p := c.recv()
		ack, msg := r.receive(p)
		if ack == nil || msg != nil {
			c.t.Fatalf("expected PUBREL, got %v %+v", p.Type(), p)
		}
		c.send(ack)
	}
}

// psExpectNoSessions fails unless snap holds nothing but the retained messages.
func psExpectNoSessions(t testing.TB, snap *storage.Snapshot) {
	t.Helper()
	if len(snap.Sessions)+len(snap.Subscriptions)+len(snap.Deliveries)+len(snap.Inbound) != 0 {
		t.Fatalf("store holds session state: sessions %+v, subscriptions %+v, deliveries %+v, inbound %+v",
			snap.Sessions, snap.Subscriptions, snap.Deliveries, snap.Inbound)
	}
}

func psTopics(ms []storage.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Topic
	}
	return out
}

// TestPersistSubscriptionsSurviveRestart: a persistent session's
// subscriptions, with their granted QoS, are restored after a restart and
// deliver as before.
// [MQTT-3.1.2-4] [MQTT-3.2.2-2] [MQTT-3.3.5-1]
func TestPersistSubscriptionsSurviveRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		sub := mustConnect(t, e.addr, "keeper", false)
		sub.subscribe(1, packets.Subscription{Filter: "alarm/#", QoS: 1}, packets.Subscription{Filter: "temp", QoS: 2})
		psLeave(sub)

		e.restart()
		if ci, ok := e.client("keeper"); !ok || ci.Subscriptions != 2 || ci.Connected {
			t.Fatalf("restored client %+v (found %v), want offline with 2 subscriptions", ci, ok)
		}
		sub = psResume(t, e.addr, "keeper")
		pub := mustConnect(t, e.addr, "pub", true)
		pub.publishQoS(1, "alarm/door", "open", 2, false)
		pub.publishQoS(2, "temp", "21", 2, false)
		var r psReceiver
		for _, want := range []struct {
			topic string
			qos   byte
		}{{"alarm/door", 1}, {"temp", 2}} {
			p := r.next(sub)
			if p.Topic != want.topic || p.QoS != want.qos {
				t.Fatalf("got %s at QoS %d, want %s at QoS %d", p.Topic, p.QoS, want.topic, want.qos)
			}
		}
	})
}

// TestPersistQueuedMessagesSurviveRestartInOrder: QoS 1 and 2 messages
// queued for an offline persistent session are stored, delivered in order
// after a restart, and deleted from the store once acknowledged.
// [MQTT-3.1.2-5] [MQTT-4.6.0-6] [MQTT-4.3.2-1] [MQTT-4.3.3-1]
func TestPersistQueuedMessagesSurviveRestartInOrder(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{MaxInflight: 4})
		sub := mustConnect(t, e.addr, "queue", false)
		sub.subscribe(1, packets.Subscription{Filter: "q/#", QoS: 2})
		psLeave(sub)

		pub := mustConnect(t, e.addr, "pub", true)
		const n = 20
		for i := range n {
			pub.publishQoS(uint16(i+1), "q/t", fmtSeq(i), byte(1+i%2), false)
		}
		e.restart()
		if ci, _ := e.client("queue"); ci.Queued != n {
			t.Fatalf("restored %d queued messages, want %d", ci.Queued, n)
		}

		sub = psResume(t, e.addr, "queue")
		var r psReceiver
		for i := range n {
			p := r.next(sub)
			if string(p.Payload) != fmtSeq(i) || p.QoS != byte(1+i%2) || p.Dup {
				t.Fatalf("message %d: %q QoS %d DUP %v, want %q QoS %d DUP false", i, p.Payload, p.QoS, p.Dup, fmtSeq(i), 1+i%2)
			}
		}
		r.settle(sub)
		psSync(sub)
		snap := e.stored()
		if len(snap.Deliveries) != 0 {
			t.Fatalf("store holds %d deliveries after every acknowledgement, want none: %+v", len(snap.Deliveries), snap.Deliveries)
		}
		if len(snap.Sessions) != 1 || len(snap.Subscriptions) != 1 {
			t.Fatalf("store holds sessions %+v, subscriptions %+v; want queue's", snap.Sessions, snap.Subscriptions)
		}
	})
}

func fmtSeq(i int) string { return fmt.Sprintf("m%04d", i) }

// TestPersistInflightQoS1ResentWithDupAndSameIDAfterRestart: a QoS 1
// delivery sent and not acknowledged before a restart is resent after it
// with DUP 1 and its packet identifier, before the messages queued behind
// it, in the original order.
// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-2.3.1-4] [MQTT-4.6.0-1]
func TestPersistInflightQoS1ResentWithDupAndSameIDAfterRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{MaxInflight: 2})
		sub := mustConnect(t, e.addr, "slow", false)
		sub.subscribe(1, packets.Subscription{Filter: "f", QoS: 1})
		pub := mustConnect(t, e.addr, "pub", true)
		for i := range 3 {
			pub.publishQoS(uint16(i+1), "f", fmtSeq(i), 1, false)
		}
		var first []*packets.Publish
		for i := range 2 { // the window: the third waits in the queue
			p := sub.recvPublish()
			if p.Dup || string(p.Payload) != fmtSeq(i) {
				t.Fatalf("first delivery %d: %+v", i, p)
			}
			first = append(first, p)
		}

		e.restart()
		sub = psResume(t, e.addr, "slow")
		for i, was := range first {
			p := sub.recvPublish()
			if !p.Dup || p.PacketID != was.PacketID || p.QoS != 1 || string(p.Payload) != string(was.Payload) {
				t.Fatalf("resend %d: %+v, want DUP 1, packet id %d, payload %q", i, p, was.PacketID, was.Payload)
			}
			sub.send(&packets.Puback{PacketID: p.PacketID})
		}
		p := sub.recvPublish()
		if p.Dup || string(p.Payload) != fmtSeq(2) {
			t.Fatalf("queued message after the resends: %+v, want %q with DUP 0", p, fmtSeq(2))
		}
		sub.send(&packets.Puback{PacketID: p.PacketID})
		psSync(sub)
		if snap := e.stored(); len(snap.Deliveries) != 0 {
			t.Fatalf("store holds deliveries after every PUBACK: %+v", snap.Deliveries)
		}
	})
}

// TestPersistQoS2PastPubrecGetsPubrelAfterRestart: after a restart, a QoS
// 2 delivery whose PUBREC the broker had received is resumed with PUBREL,
// never its PUBLISH; one not yet acknowledged is resent as PUBLISH with DUP
// 1; both in their original order.
// [MQTT-4.4.0-1] [MQTT-4.3.3-1] [MQTT-4.6.0-1] [MQTT-3.3.1-1]
func TestPersistQoS2PastPubrecGetsPubrelAfterRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		sub := mustConnect(t, e.addr, "exact", false)
		sub.subscribe(1, packets.Subscription{Filter: "x", QoS: 2})
		pub := mustConnect(t, e.addr, "pub", true)
		pub.publishQoS(1, "x", "released", 2, false)
		pub.publishQoS(2, "x", "published", 2, false)
		rel := sub.recvPublish()
		pending := sub.recvPublish()
		sub.send(&packets.Pubrec{PacketID: rel.PacketID})
		if p, ok := sub.recv().(*packets.Pubrel); !ok || p.PacketID != rel.PacketID {
			t.Fatalf("expected PUBREL %d, got %+v", rel.PacketID, p)
		}

		e.restart()
		sub = psResume(t, e.addr, "exact")
		if p, ok := sub.recv().(*packets.Pubrel); !ok || p.PacketID != rel.PacketID {
			t.Fatalf("expected PUBREL %d first after the restart, got %+v", rel.PacketID, p)
		}
		p := sub.recvPublish()
		if !p.Dup || p.PacketID != pending.PacketID || string(p.Payload) != "published" {
			t.Fatalf("resend %+v, want DUP 1, packet id %d, payload \"published\"", p, pending.PacketID)
		}
		sub.send(&packets.Pubcomp{PacketID: rel.PacketID})
		sub.send(&packets.Pubrec{PacketID: p.PacketID})
		if q, ok := sub.recv().(*packets.Pubrel); !ok || q.PacketID != p.PacketID {
			t.Fatalf("expected PUBREL %d, got %+v", p.PacketID, q)
		}
		sub.send(&packets.Pubcomp{PacketID: p.PacketID})
		psSync(sub)
		if snap := e.stored(); len(snap.Deliveries) != 0 {
			t.Fatalf("store holds deliveries after every PUBCOMP: %+v", snap.Deliveries)
		}
	})
}

// TestPersistInboundQoS2IDSurvivesRestart: a QoS 2 packet identifier
// acknowledged with PUBREC and not yet released survives a restart: the
// client's resent PUBLISH is acknowledged and not forwarded again, PUBREL
// gets PUBCOMP, and after PUBCOMP the identifier starts a new publication.
// [MQTT-4.3.3-2] [MQTT-4.4.0-1] [MQTT-3.1.2-4]
func TestPersistInboundQoS2IDSurvivesRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		sub := mustConnect(t, e.addr, "reader", false)
		sub.subscribe(1, packets.Subscription{Filter: "in", QoS: 1})
		pub := mustConnect(t, e.addr, "writer", false)
		pub.send(&packets.Publish{Topic: "in", Payload: []byte("first"), QoS: 2, PacketID: 7})
		if p, ok := pub.recv().(*packets.Pubrec); !ok || p.PacketID != 7 {
			t.Fatalf("expected PUBREC 7, got %+v", p)
		}
		if p := sub.recvPublish(); string(p.Payload) != "first" {
			t.Fatalf("got %q, want \"first\"", p.Payload)
		} else {
			sub.send(&packets.Puback{PacketID: p.PacketID})
		}
		psSync(sub)

		e.restart()
		sub = psResume(t, e.addr, "reader")
		pub = psResume(t, e.addr, "writer")
		pub.send(&packets.Publish{Topic: "in", Payload: []byte("first"), QoS: 2, PacketID: 7, Dup: true})
		if p, ok := pub.recv().(*packets.Pubrec); !ok || p.PacketID != 7 {
			t.Fatalf("expected PUBREC 7 for the resent PUBLISH, got %+v", p)
		}
		pub.send(&packets.Pubrel{PacketID: 7})
		if p, ok := pub.recv().(*packets.Pubcomp); !ok || p.PacketID != 7 {
			t.Fatalf("expected PUBCOMP 7, got %+v", p)
		}
		// The next message the reader gets is a new one, not "first" again.
		pub.publishQoS(7, "in", "second", 2, false)
		if p := sub.recvPublish(); string(p.Payload) != "second" {
			t.Fatalf("reader got %q, want \"second\" (the resent PUBLISH must not be forwarded)", p.Payload)
		} else {
			sub.send(&packets.Puback{PacketID: p.PacketID})
		}
		psSync(sub)
		snap := e.stored()
		if len(snap.Inbound) != 0 || len(snap.Deliveries) != 0 {
			t.Fatalf("store holds inbound %+v, deliveries %+v; want none", snap.Inbound, snap.Deliveries)
		}
	})
}

// TestPersistRetainedSurviveRestartAndClearedStayCleared: retained
// messages, QoS 0 ones included, are restored after a restart and sent to a
// new subscription with RETAIN 1; a topic cleared by a zero-length retained
// message stays cleared.
// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7] [MQTT-3.3.1-8] [MQTT-3.3.1-10] [MQTT-3.3.1-11]
func TestPersistRetainedSurviveRestartAndClearedStayCleared(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		pub := mustConnect(t, e.addr, "pub", true)
		pub.publishQoS(1, "r/keep", "kept", 1, true)
		pub.publishQoS(2, "r/gone", "soon cleared", 2, true)
		pub.publishQoS(3, "r/gone", "", 1, true)
		pub.publishQoS(0, "r/zero", "qos0", 0, true)
		psSync(pub)

		e.restart()
		sub := mustConnect(t, e.addr, "late", true)
		sub.subscribe(1, packets.Subscription{Filter: "r/#", QoS: 1})
		got := map[string]string{}
		for range 2 {
			p := sub.recvPublish()
			if !p.Retain {
				t.Fatalf("retained message %s sent with RETAIN 0", p.Topic)
			}
			got[p.Topic] = string(p.Payload)
			if p.QoS > 0 {
				sub.send(&packets.Puback{PacketID: p.PacketID})
			}
		}
		if got["r/keep"] != "kept" || got["r/zero"] != "qos0" {
			t.Fatalf("retained after the restart: %v, want r/keep and r/zero", got)
		}
		psSync(sub) // and nothing for r/gone came before the PINGRESP
		snap := e.stored()
		if ts := psTopics(snap.Retained); len(ts) != 2 || ts[0] != "r/keep" || ts[1] != "r/zero" {
			t.Fatalf("store holds retained %v, want [r/keep r/zero]", ts)
		}
	})
}

// TestPersistSysTopicsAreNotStored: the $SYS topics the broker publishes
// are retained in memory but not written to the store (the broker rebuilds
// them); other retained messages are.
func TestPersistSysTopicsAreNotStored(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{SysInterval: time.Hour}) // published once, at start
		c := mustConnect(t, e.addr, "watcher", true)
		c.subscribe(1, packets.Subscription{Filter: "$SYS/broker/version", QoS: 0})
		if p := c.recvPublish(); p.Topic != "$SYS/broker/version" || !p.Retain {
			t.Fatalf("expected the retained $SYS/broker/version, got %+v", p)
		}
		c.publishQoS(1, "plain", "stored", 1, true)
		if ts := psTopics(e.stored().Retained); len(ts) != 1 || ts[0] != "plain" {
			t.Fatalf("store holds retained %v, want only [plain]", ts)
		}
	})
}

// TestPersistCleanSessionLeavesNothingInStore: a clean session, however
// busy, writes nothing to the store: its subscriptions, deliveries in
// flight and inbound QoS 2 identifiers end with its connection. A
// persistent session beside it is stored, with the same traffic.
// [MQTT-3.1.2-6]
func TestPersistCleanSessionLeavesNothingInStore(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		durable := mustConnect(t, e.addr, "durable", false)
		durable.subscribe(1, packets.Subscription{Filter: "t/#", QoS: 1})
		psLeave(durable)

		c := mustConnect(t, e.addr, "transient", true)
		c.subscribe(1, packets.Subscription{Filter: "t/#", QoS: 2})
		c.send(&packets.Publish{Topic: "t/a", Payload: []byte("a"), QoS: 1, PacketID: 1})
		c.send(&packets.Publish{Topic: "t/b", Payload: []byte("b"), QoS: 2, PacketID: 2}) // never released
		var acks, pubs int
		for acks+pubs < 4 { // PUBACK, PUBREC, and both messages, left unacknowledged
			switch c.recv().(type) {
			case *packets.Puback, *packets.Pubrec:
				acks++
			case *packets.Publish:
				pubs++
			}
		}
		if ci, _ := e.client("transient"); ci.Inflight != 2 {
			t.Fatalf("transient has %d deliveries in flight, want 2", ci.Inflight)
		}
		psLeave(c)

		snap := e.stored()
		if len(snap.Sessions) != 1 || snap.Sessions[0].ClientID != "durable" || len(snap.Subscriptions) != 1 || len(snap.Deliveries) != 2 {
			t.Fatalf("store holds sessions %+v, subscriptions %+v, deliveries %+v; want only durable's, with 2 deliveries",
				snap.Sessions, snap.Subscriptions, snap.Deliveries)
		}
		for _, d := range snap.Deliveries {
			if d.ClientID != "durable" {
				t.Fatalf("delivery stored for %s: %+v", d.ClientID, d)
			}
		}
		if len(snap.Inbound) != 0 {
			t.Fatalf("store holds inbound identifiers of a clean session: %+v", snap.Inbound)
		}
	})
}

// TestPersistSessionEndedByCleanReconnectIsDeleted: a persistent session,
// restored from the store, is deleted from it with everything it owned
// when its client connects with clean session 1.
// [MQTT-3.1.2-6] [MQTT-3.2.2-1]
func TestPersistSessionEndedByCleanReconnectIsDeleted(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		c := mustConnect(t, e.addr, "ender", false)
		c.subscribe(1, packets.Subscription{Filter: "e/#", QoS: 1})
		c.send(&packets.Publish{Topic: "elsewhere", Payload: []byte("x"), QoS: 2, PacketID: 3}) // never released
		if p, ok := c.recv().(*packets.Pubrec); !ok || p.PacketID != 3 {
			t.Fatalf("expected PUBREC 3, got %+v", p)
		}
		psLeave(c)
		pub := mustConnect(t, e.addr, "pub", true)
		pub.publishQoS(1, "e/1", "queued", 1, false)
		pub.publishQoS(2, "keep", "retained", 1, true)

		e.restart()
		if ci, ok := e.client("ender"); !ok || ci.Subscriptions != 1 || ci.Queued != 1 {
			t.Fatalf("restored %+v (found %v), want 1 subscription and 1 queued message", ci, ok)
		}
		c = dialRaw(t, e.addr)
		if ack := c.connect("ender", true); ack.ReturnCode != 0 || ack.SessionPresent {
			t.Fatalf("CONNACK %+v, want accepted without session present", ack)
		}
		psLeave(c)
		snap := e.stored()
		psExpectNoSessions(t, snap)
		if ts := psTopics(snap.Retained); len(ts) != 1 || ts[0] != "keep" {
			t.Fatalf("retained %v, want [keep]: retained messages outlive sessions", ts)
		}
	})
}

// TestPersistSessionExpiry: with Options.SessionExpiry, a persistent
// session offline that long is removed, from the broker and from the store,
// and a restart does not bring it back. Its last-seen time is stored, so a
// session restored offline expires too. The backends run side by side: each
// waits about two seconds.
func TestPersistSessionExpiry(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, before) })
	const expiry = time.Second
	var wg sync.WaitGroup
	for _, be := range psBackends() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(be.name, func(t *testing.T) {
				e := psStart(t, be, tern.Options{SessionExpiry: expiry})
				c := mustConnect(t, e.addr, "fleeting", false)
				c.subscribe(1, packets.Subscription{Filter: "exp", QoS: 1})
				left := time.Now()
				psLeave(c)
				pub := mustConnect(t, e.addr, "pub", true)
				pub.publishQoS(1, "exp", "queued", 1, false)

				snap := e.stored()
				if len(snap.Sessions) != 1 || snap.Sessions[0].LastSeen.Before(left) || snap.Sessions[0].LastSeen.After(time.Now()) {
					t.Fatalf("stored sessions %+v, want fleeting last seen after %v", snap.Sessions, left)
				}
				e.store = e.reopen()
				e.up()
				if _, ok := e.client("fleeting"); !ok {
					t.Fatal("fleeting not restored")
				}
				eventually(t, "fleeting to expire", func() bool { _, ok := e.client("fleeting"); return !ok })
				if d := time.Since(left); d < expiry {
					t.Fatalf("expired %v after its client left, before the expiry %v", d, expiry)
				}
				psExpectNoSessions(t, e.stored())

				e.up()
				c = dialRaw(t, e.addr)
				if ack := c.connect("fleeting", false); ack.ReturnCode != 0 || ack.SessionPresent {
					t.Fatalf("CONNACK %+v after expiry, want accepted without session present", ack)
				}
				c.expectNothing(100 * time.Millisecond) // the queued message went with the session
			})
		}()
	}
	wg.Wait()
}

// TestPersistCorruptBoltFileIsRefusedNamingTheFile: a data file that is
// not a bbolt file fails bolt.Open; a Tern store holding a malformed record
// fails New. Both errors name the file and wrap bolt.ErrCorrupt, so the
// broker never starts with part of its state silently missing.
func TestPersistCorruptBoltFileIsRefusedNamingTheFile(t *testing.T) {
	t.Run("garbage", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tern.db")
		if err := os.WriteFile(path, bytes.Repeat([]byte("not a bbolt file "), 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := bolt.Open(path, bolt.Options{})
		if err == nil {
			st.Close()
			t.Fatal("bolt.Open accepted garbage")
		}
		if !strings.Contains(err.Error(), path) || !errors.Is(err, bolt.ErrCorrupt) {
			t.Fatalf("error %q does not name %s or wrap ErrCorrupt", err, path)
		}
	})
	t.Run("malformed record", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tern.db")
		st := psOpenBolt(t, path)
		b, err := tern.New(tern.Options{Store: st, SysInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go b.Serve(l)
		c := mustConnect(t, l.Addr().String(), "victim", false)
		psLeave(c)
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		// Damage the session record.
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bbolt.Tx) error {
			bk := tx.Bucket([]byte("sessions"))
			if bk == nil {
				return errors.New("no sessions bucket")
			}
			k, _ := bk.Cursor().First()
			if k == nil {
				return errors.New("no session stored")
			}
			return bk.Put(k, []byte{0xff, 0xff, 0xff})
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}

		st = psOpenBolt(t, path)
		defer st.Close()
		b, err = tern.New(tern.Options{Store: st, SysInterval: -1})
		if err == nil {
			b.Close(context.Background())
			t.Fatal("New started on a store with a malformed record")
		}
		if !strings.Contains(err.Error(), path) || !errors.Is(err, bolt.ErrCorrupt) {
			t.Fatalf("New: %q does not name %s or wrap ErrCorrupt", err, path)
		}
	})
}

// psGate is a Store whose Writes can be held: while held, a Write blocks
// (and says so on entered) until release.
type psGate struct {
	storage.Store
	mu      sync.Mutex
	gate    chan struct{} // nil: writes pass
	entered chan struct{}
}

func (g *psGate) hold() {
	g.mu.Lock()
	g.gate, g.entered = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
}

func (g *psGate) release() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

// psStartGated starts a broker on a gated in-memory store; cleanup releases
// the gate before the broker closes and checks that no goroutine was left.
func psStartGated(t *testing.T, opts tern.Options) (*psEnv, *psGate) {
	t.Helper()
	g := &psGate{}
	be := psBackend{"gated memory", func(*testing.T) (storage.Store, func() storage.Store) {
		g.Store = storage.NewMemory()
		return g, nil
	}}
	before := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, before) })
	e := psStart(t, be, opts)
	t.Cleanup(g.release) // runs before the broker closes
	return e, g
}

// waitEntered waits until a Write is held.
func (g *psGate) waitEntered(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	entered := g.entered
	g.mu.Unlock()
	select {
	case <-entered:
	case <-time.After(waitTimeout):
		t.Fatal("no Write reached the store")
	}
}

func (g *psGate) Write(ctx context.Context, ops []storage.Op) error {
	g.mu.Lock()
	gate, entered := g.gate, g.entered
	g.mu.Unlock()
	if gate != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
	}
	return g.Store.Write(ctx, ops)
}

// TestPersistAcknowledgementsWaitForTheStore: nothing that promises stored
// state leaves the broker before the store's Write returned: CONNACK of a
// persistent session, SUBACK of its subscriptions, PUBACK and PUBREC of a
// message routed to it, a QoS 2 PUBLISH to it (its packet identifier is
// stored first; QoS 0 and QoS 1 deliveries do not wait), PUBREL after its
// PUBREC, PUBCOMP after its PUBREL (a forgotten release would later swallow
// a new message). Each case holds the store's Writes, checks that nothing
// arrives, releases, and checks that the answer then comes.
// [MQTT-4.3.2-2] [MQTT-4.3.3-2] [MQTT-4.3.3-1] [MQTT-3.1.2-4] [MQTT-4.1.0-1]
func TestPersistAcknowledgementsWaitForTheStore(t *testing.T) {
	type env struct {
		e    *psEnv
		g    *psGate
		sub  *rawClient // "sub": persistent, QoS 2 on w/#; connected
		pub  *rawClient // "pub": persistent; connected
		addr string
	}
	cases := []struct {
		name string
		// act runs with the store held and returns the client that waits
		// and what it must then receive.
		act func(t *testing.T, v env) (*rawClient, func(packets.Packet) bool)
	}{
		{"CONNACK of a persistent session", func(t *testing.T, v env) (*rawClient, func(packets.Packet) bool) {
			c := dialRaw(t, v.addr)
			c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "newcomer", KeepAlive: 60})
			return c, func(p packets.Packet) bool { a, ok := p.(*packets.Connack); return ok && a.ReturnCode == 0 }
		}},
		{"SUBACK of a persistent subscription", func(t *testing.T, v env) (*rawClient, func(packets.Packet) bool) {
			v.pub.send(&packets.Subscribe{PacketID: 5, Subscriptions: []packets.Subscription{{Filter: "other", QoS: 1}}})
			return v.pub, func(p packets.Packet) bool { a, ok := p.(*packets.Suback); return ok && a.PacketID == 5 }
		}},
		{"PUBACK of a message routed to a persistent session", func(t *testing.T, v env) (*rawClient, func(packets.Packet) bool) {
			v.pub.send(&packets.Publish{Topic: "w/1", Payload: []byte("1"), QoS: 1, PacketID: 11})
			return v.pub, func(p packets.Packet) bool { a, ok := p.(*packets.Puback); return ok && a.PacketID == 11 }
		}},
		{"PUBREC of a message routed to a persistent session", func(t *testing.T, v env) (*rawClient, func(packets.Packet) bool) {
			v.pub.send(&packets.Publish{Topic: "w/2", Payload: []byte("2"), QoS: 2, PacketID: 12})
			return v.pub, func(p packets.Packet) bool { a, ok := p.(*packets.Pubrec); return ok && a.PacketID == 12 }
		}},
		{"QoS 2 PUBLISH with a packet identifier to a persistent session", func(t *testing.T, v env) (*rawClient, func(packets.Packet) bool) {
			if err := v.e.b.Publish(context.Background(), "w/3", []byte("3"), 0, false); err != nil {
				t.Fatal(err)
			}
			// A QoS 0 delivery needs no stored state: it is not held.
			if p := v.sub.recvPublish(); string(p.Payload) != "3" || p.QoS != 0 {
				t.Fatalf("got %+v, want the QoS 0 message while the store is held", p)
			}
			// Nor does a QoS 1 delivery: lost in a crash, it is only sent
			// again, which QoS 1 allows.
			go v.e.b.Publish(context.Background(), "w/4", []byte("q1"), 1, false)
			if p := v.sub.recvPublish(); string(p.Payload) != "q1" || p.QoS != 1 {
				t.Fatalf("got %+v, want the QoS 1 message while the store is held", p)
			}
			// A QoS 2 delivery's packet identifier is stored first: exactly
			// once survives a crash.
			go v.e.b.Publish(context.Background(), "w/4", []byte("4"), 2, false)
			return v.sub, func(p packets.Packet) bool {
				m, ok := p.(*packets.Publish)
				return ok && string(m.Payload) == "4" && m.PacketID != 0
			}
		}},
		{"PUBREL after PUBREC from a persistent session", func(t *testing.T, v env) (*rawClient, func(packets.Packet) bool) {
			v.g.release()
			v.pub.publishQoS(21, "w/5", "5", 2, false)
			m := v.sub.recvPublish()
			v.g.hold()
			v.sub.send(&packets.Pubrec{PacketID: m.PacketID})
			return v.sub, func(p packets.Packet) bool { a, ok := p.(*packets.Pubrel); return ok && a.PacketID == m.PacketID }
		}},
		{"PUBCOMP after PUBREL from a persistent session", func(t *testing.T, v env) (*rawClient, func(packets.Packet) bool) {
			v.g.release()
			v.pub.send(&packets.Publish{Topic: "elsewhere", Payload: []byte("6"), QoS: 2, PacketID: 31})
			if a, ok := v.pub.recv().(*packets.Pubrec); !ok || a.PacketID != 31 {
				t.Fatalf("expected PUBREC 31, got %+v", a)
			}
			v.g.hold()
			v.pub.send(&packets.Pubrel{PacketID: 31})
			return v.pub, func(p packets.Packet) bool { a, ok := p.(*packets.Pubcomp); return ok && a.PacketID == 31 }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, g := psStartGated(t, tern.Options{})
			v := env{e: e, g: g, addr: e.addr}
			v.sub = mustConnect(t, e.addr, "sub", false)
			v.sub.subscribe(1, packets.Subscription{Filter: "w/#", QoS: 2})
			v.pub = mustConnect(t, e.addr, "pub", false)

			g.hold()
			c, want := tc.act(t, v)
			g.waitEntered(t)
			c.expectNothing(200 * time.Millisecond)
			g.release()
			if p := c.recv(); !want(p) {
				t.Fatalf("after the store wrote: got %v %+v", p.Type(), p)
			}
		})
	}
}

// TestPersistBrokerPublishReturnsOnceStored: Broker.Publish of a QoS 1
// message routed to a persistent session returns only once its delivery is
// stored.
func TestPersistBrokerPublishReturnsOnceStored(t *testing.T) {
	e, g := psStartGated(t, tern.Options{})
	sub := mustConnect(t, e.addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "app", QoS: 1})
	psLeave(sub)

	g.hold()
	done := make(chan error, 1)
	go func() { done <- e.b.Publish(context.Background(), "app", []byte("x"), 1, false) }()
	g.waitEntered(t)
	select {
	case err := <-done:
		t.Fatalf("Publish returned (%v) before the store wrote", err)
	case <-time.After(200 * time.Millisecond):
	}
	g.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Publish did not return after the store wrote")
	}
}

// psFailing is a Store whose Writes fail while failing is set.
type psFailing struct {
	storage.Store
	failing atomic.Bool
	failed  atomic.Int64
}

var errPsDisk = errors.New("disk on fire")

func (f *psFailing) Write(ctx context.Context, ops []storage.Op) error {
	if f.failing.Load() {
		f.failed.Add(1)
		return errPsDisk
	}
	return f.Store.Write(ctx, ops)
}

// TestPersistFailingStoreWithholdsAcknowledgements: while the store's
// Writes fail, the broker retries them and acknowledges nothing that
// depends on them; once the store recovers, the acknowledgement goes out
// and the state is stored. Close returns even while the store still fails.
// [MQTT-4.3.2-2]
func TestPersistFailingStoreWithholdsAcknowledgements(t *testing.T) {
	t.Run("recovers", func(t *testing.T) {
		f := &psFailing{Store: storage.NewMemory()}
		e := psStart(t, psBackend{"failing memory", func(*testing.T) (storage.Store, func() storage.Store) { return f, nil }}, tern.Options{})
		sub := mustConnect(t, e.addr, "sub", false)
		sub.subscribe(1, packets.Subscription{Filter: "d", QoS: 1})
		psLeave(sub)
		pub := mustConnect(t, e.addr, "pub", true)

		f.failing.Store(true)
		pub.send(&packets.Publish{Topic: "d", Payload: []byte("x"), QoS: 1, PacketID: 1})
		eventually(t, "a failed write", func() bool { return f.failed.Load() > 0 })
		pub.expectNothing(200 * time.Millisecond)
		if f.failed.Load() < 2 {
			t.Fatalf("%d failed writes: the broker does not retry", f.failed.Load())
		}
		f.failing.Store(false)
		if a, ok := pub.recv().(*packets.Puback); !ok || a.PacketID != 1 {
			t.Fatalf("expected PUBACK 1 once the store recovered, got %+v", a)
		}
		if snap := e.stored(); len(snap.Deliveries) != 1 {
			t.Fatalf("store holds deliveries %+v, want the message for sub", snap.Deliveries)
		}
	})
	t.Run("Close while failing", func(t *testing.T) {
		before := runtime.NumGoroutine()
		f := &psFailing{Store: storage.NewMemory()}
		b, err := tern.New(tern.Options{Store: f, SysInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- b.Serve(l) }()
		pub := mustConnect(t, l.Addr().String(), "pub", true)
		sub := mustConnect(t, l.Addr().String(), "sub", false)
		sub.subscribe(1, packets.Subscription{Filter: "d", QoS: 1})
		f.failing.Store(true)
		pub.send(&packets.Publish{Topic: "d", Payload: []byte("x"), QoS: 1, PacketID: 1})
		eventually(t, "a failed write", func() bool { return f.failed.Load() > 0 })

		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Fatalf("Close with a failing store: %v", err)
		}
		if err := <-served; !errors.Is(err, tern.ErrClosed) {
			t.Fatalf("Serve returned %v", err)
		}
		pub.conn.Close()
		sub.conn.Close()
		waitGoroutines(t, before)
	})
}

// TestPersistFailedWriteKeepsLaterOpsIntact: ops added while a Write fails
// are kept, in order, behind the batch that is retried; a delivery created
// meanwhile and acknowledged before the retry is deleted, and no other op
// is lost in its place. Here the retried batch holds a publisher's inbound
// QoS 2 identifier, which must survive (a resent PUBLISH would otherwise be
// forwarded twice), and a QoS 1 delivery to a persistent subscriber is
// created and acknowledged while the Write fails.
// [MQTT-4.3.3-2]
func TestPersistFailedWriteKeepsLaterOpsIntact(t *testing.T) {
	f := &psFailing{Store: storage.NewMemory()}
	g := &psGate{Store: f}
	e := psStart(t, psBackend{"gated failing memory", func(*testing.T) (storage.Store, func() storage.Store) { return g, nil }}, tern.Options{})
	t.Cleanup(g.release)
	sub := mustConnect(t, e.addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "x", QoS: 1})
	pub := mustConnect(t, e.addr, "pub", false)

	g.hold()
	f.failing.Store(true)
	pub.send(&packets.Publish{Topic: "y", Payload: []byte("exactly once"), QoS: 2, PacketID: 9})
	g.waitEntered(t) // the batch holding pub's inbound identifier 9 is being written
	pub.send(&packets.Publish{Topic: "x", Payload: []byte("at least once"), QoS: 1, PacketID: 10})
	eventually(t, "the delivery to sub to be recorded", func() bool { ci, _ := e.client("sub"); return ci.Inflight+ci.Queued == 1 })
	g.release()
	eventually(t, "the write to fail", func() bool { return f.failed.Load() > 0 })
	// The delivery is acknowledged while the failed batch waits for its retry.
	var r psReceiver
	if m := r.next(sub); string(m.Payload) != "at least once" {
		t.Fatalf("sub got %q", m.Payload)
	}
	psSync(sub)
	f.failing.Store(false)
	want := map[packets.Type]uint16{packets.TypePubrec: 9, packets.TypePuback: 10}
	for range 2 {
		p := pub.recv()
		var id uint16
		switch a := p.(type) {
		case *packets.Pubrec:
			id = a.PacketID
		case *packets.Puback:
			id = a.PacketID
		}
		if want[p.Type()] != id || id == 0 {
			t.Fatalf("pub got %v %+v, want PUBREC 9 and PUBACK 10", p.Type(), p)
		}
	}
	snap := e.stored()
	if len(snap.Inbound) != 1 || snap.Inbound[0] != (storage.Inbound{ClientID: "pub", PacketID: 9}) {
		t.Errorf("store holds inbound %+v, want pub's identifier 9", snap.Inbound)
	}
	if len(snap.Deliveries) != 0 {
		t.Errorf("store holds deliveries %+v, want none: sub acknowledged its message", snap.Deliveries)
	}
}
