package tern_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
)

// waitOffline waits until the broker has detached client id from its
// connection.
func waitOffline(t testing.TB, b *tern.Broker, id string) {
	t.Helper()
	eventually(t, id+" offline", func() bool {
		for _, ci := range b.Clients() {
			if ci.ID == id {
				return !ci.Connected
			}
		}
		return false
	})
}

// dropConnection ends c's network connection without DISCONNECT, as a
// network failure would, and waits until the broker has noticed.
func dropConnection(t testing.TB, b *tern.Broker, c *rawClient, id string) {
	t.Helper()
	c.conn.Close()
	waitOffline(t, b, id)
}

// reconnect opens a new connection for a persistent session and requires
// CONNACK 0 with session present 1.
func reconnect(t testing.TB, addr, id string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	ack := c.connect(id, false)
	if ack.ReturnCode != 0 || !ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want accepted with session present", ack)
	}
	return c
}

// TestPersistentSessionQueuesQoS1And2WhileOfflineInOrder: a persistent
// session keeps its subscriptions; QoS 1 and 2 messages published while it
// is offline are delivered on reconnect in order, as first deliveries
// (DUP 0), through the inflight window; QoS 0 ones are dropped and counted.
// [MQTT-4.5.0-1] [MQTT-4.6.0-6] [MQTT-3.3.1-1] [MQTT-4.3.2-1] [MQTT-4.3.3-1]
func TestPersistentSessionQueuesQoS1And2WhileOfflineInOrder(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxInflight: 3})
	sub := mustConnect(t, addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "off/#", QoS: 2})
	dropConnection(t, b, sub, "sub")

	pub := mustConnect(t, addr, "pub", true)
	before := b.Stats().PublishDropped
	var want []string
	for i := 0; i < 20; i++ {
		qos := byte(i % 3)
		payload := fmt.Sprintf("m%02d", i)
		pub.publishQoS(uint16(i+1), "off/t", payload, qos, false)
		if qos > 0 {
			want = append(want, payload)
		}
	}
	expectQuiet(pub)
	if q := clientInfo(t, b, "sub").Queued; q != len(want) {
		t.Fatalf("%d queued for the offline session, want %d", q, len(want))
	}
	if d := b.Stats().PublishDropped - before; d != 7 {
		t.Errorf("PublishDropped grew by %d, want 7 (the QoS 0 messages)", d)
	}

	sub = reconnect(t, addr, "sub")
	for i, p := range receiveAll(sub, len(want)) {
		if string(p.Payload) != want[i] || p.Dup || p.QoS == 0 {
			t.Fatalf("delivery %d: got %s, want %s at QoS 1 or 2 with DUP 0", i, describePackets(p), want[i])
		}
	}
	expectQuiet(sub)
	pub.publishQoS(1, "off/live", "live", 1, false) // the subscription survived
	ackDelivery(sub, expectPublish(sub, "off/live", "live", 1))
}

// TestOfflineQoS0QueuedWithQueueQoS0: with Options.QueueQoS0, QoS 0
// messages for an offline persistent session are queued too, in order.
// [MQTT-4.5.0-1] [MQTT-4.6.0-6] [MQTT-3.3.1-2]
func TestOfflineQoS0QueuedWithQueueQoS0(t *testing.T) {
	b, addr := startBroker(t, tern.Options{QueueQoS0: true})
	sub := mustConnect(t, addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "z", QoS: 2})
	dropConnection(t, b, sub, "sub")
	pub := mustConnect(t, addr, "pub", true)
	qos := []byte{0, 1, 0, 2, 0}
	for i, q := range qos {
		pub.publishQoS(uint16(i+1), "z", fmt.Sprint(i), q, false)
	}
	sub = reconnect(t, addr, "sub")
	for i, p := range receiveAll(sub, len(qos)) {
		if p.Topic != "z" || string(p.Payload) != fmt.Sprint(i) || p.QoS != qos[i] || p.Dup {
			t.Errorf("delivery %d: got %s, want payload %d at QoS %d with DUP 0", i, describePackets(p), i, qos[i])
		}
	}
	expectQuiet(sub)
}

// TestQoS0QueuedAtDisconnectKeptOnlyWithQueueQoS0: a QoS 0 message still
// queued when the connection ends (a retained one behind a full window) is
// dropped, unless Options.QueueQoS0 keeps QoS 0 for offline sessions.
func TestQoS0QueuedAtDisconnectKeptOnlyWithQueueQoS0(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("QueueQoS0=", keep), func(t *testing.T) {
			b, addr := startBroker(t, tern.Options{MaxInflight: 1, QueueQoS0: keep})
			pub := mustConnect(t, addr, "pub", true)
			pub.publishQoS(1, "r1", "retained QoS 1", 1, true)
			pub.publishQoS(0, "r0", "retained QoS 0", 0, true)
			sub := mustConnect(t, addr, "sub", false)
			sub.subscribe(1, packets.Subscription{Filter: "live", QoS: 1})
			pub.publishQoS(2, "live", "unacked", 1, false)
			first := expectPublish(sub, "live", "unacked", 1) // fills the window
			sub.subscribe(2, packets.Subscription{Filter: "r1", QoS: 1})
			sub.subscribe(3, packets.Subscription{Filter: "r0", QoS: 0})
			expectQuiet(sub)
			if q := clientInfo(t, b, "sub").Queued; q != 2 {
				t.Fatalf("%d queued behind the window, want 2", q)
			}
			dropConnection(t, b, sub, "sub")

			sub = reconnect(t, addr, "sub")
			if p := expectPublish(sub, "live", "unacked", 1); !p.Dup || p.PacketID != first.PacketID {
				t.Fatalf("resend: DUP %v id %d, want DUP 1 id %d", p.Dup, p.PacketID, first.PacketID)
			}
			sub.send(&packets.Puback{PacketID: first.PacketID})
			ackDelivery(sub, expectPublish(sub, "r1", "retained QoS 1", 1))
			if keep {
				if p := expectPublish(sub, "r0", "retained QoS 0", 0); !p.Retain {
					t.Fatal("queued retained message lost its RETAIN flag")
				}
			}
			expectQuiet(sub)
		})
	}
}

// TestUnacknowledgedQoS1ResentWithDupAndSameIDOnReconnect: on reconnect of
// a persistent session the unacknowledged PUBLISH packets are resent first,
// in their original order, with DUP 1 and their original identifiers; then
// messages queued meanwhile follow with DUP 0 and identifiers not in use.
// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.6.0-1] [MQTT-2.3.1-3] [MQTT-2.3.1-4]
func TestUnacknowledgedQoS1ResentWithDupAndSameIDOnReconnect(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "un", QoS: 1})
	pub := mustConnect(t, addr, "pub", true)
	var first []*packets.Publish
	for i := 0; i < 4; i++ {
		pub.publishQoS(1, "un", fmt.Sprint(i), 1, false)
		first = append(first, expectPublish(sub, "un", fmt.Sprint(i), 1))
	}
	sub.send(&packets.Puback{PacketID: first[1].PacketID})
	expectQuiet(sub)
	dropConnection(t, b, sub, "sub")
	pub.publishQoS(2, "un", "queued", 1, false)

	for round := 0; round < 2; round++ { // unacknowledged again: resent again
		sub = reconnect(t, addr, "sub")
		for _, i := range []int{0, 2, 3} {
			p := expectPublish(sub, "un", fmt.Sprint(i), 1)
			if !p.Dup || p.PacketID != first[i].PacketID {
				t.Fatalf("round %d, resend of %d: DUP %v id %d, want DUP 1 id %d", round, i, p.Dup, p.PacketID, first[i].PacketID)
			}
		}
		if round == 0 {
			p := expectPublish(sub, "un", "queued", 1)
			for _, f := range first {
				if p.Dup || p.PacketID == f.PacketID && f != first[1] {
					t.Fatalf("queued message: DUP %v id %d; ids in flight are %d, %d, %d",
						p.Dup, p.PacketID, first[0].PacketID, first[2].PacketID, first[3].PacketID)
				}
			}
			ackDelivery(sub, p)
		}
		expectQuiet(sub)
		dropConnection(t, b, sub, "sub")
	}
	sub = reconnect(t, addr, "sub")
	for _, i := range []int{0, 2, 3} {
		ackDelivery(sub, expectPublish(sub, "un", fmt.Sprint(i), 1))
	}
	expectQuiet(sub)
	dropConnection(t, b, sub, "sub")
	sub = reconnect(t, addr, "sub")
	expectQuiet(sub) // everything acknowledged: nothing to resend
}

// TestQoS2ResendOnReconnectIsPubrelPastPubrec: on reconnect, a QoS 2
// delivery that got PUBREC is resumed with PUBREL (never the PUBLISH
// again), one that did not is resent as PUBLISH with DUP 1, in the original
// order and with the original identifiers.
// [MQTT-4.4.0-1] [MQTT-4.3.3-1] [MQTT-4.6.0-1] [MQTT-3.3.1-1]
func TestQoS2ResendOnReconnectIsPubrelPastPubrec(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "two", QoS: 2})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "two", "a", 2, false)
	pub.publishQoS(2, "two", "b", 2, false)
	a := expectPublish(sub, "two", "a", 2)
	bb := expectPublish(sub, "two", "b", 2)
	sub.send(&packets.Pubrec{PacketID: a.PacketID})
	recvAs[*packets.Pubrel](sub)
	dropConnection(t, b, sub, "sub")

	sub = reconnect(t, addr, "sub")
	if rel := recvAs[*packets.Pubrel](sub); rel.PacketID != a.PacketID {
		t.Fatalf("PUBREL id %d, want %d", rel.PacketID, a.PacketID)
	}
	p := expectPublish(sub, "two", "b", 2)
	if !p.Dup || p.PacketID != bb.PacketID {
		t.Fatalf("resend of b: DUP %v id %d, want DUP 1 id %d", p.Dup, p.PacketID, bb.PacketID)
	}
	expectQuiet(sub)
	sub.send(&packets.Pubcomp{PacketID: a.PacketID})
	ackDelivery(sub, p)
	expectQuiet(sub)
	dropConnection(t, b, sub, "sub")
	sub = reconnect(t, addr, "sub")
	expectQuiet(sub)
}

// TestInboundQoS2StateSurvivesReconnect: a publisher's QoS 2 PUBLISH
// acknowledged with PUBREC and resent with DUP 1 after a reconnect is
// acknowledged again but not delivered twice; PUBREL then completes it.
// [MQTT-4.3.3-2] [MQTT-4.4.0-1]
func TestInboundQoS2StateSurvivesReconnect(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "in", QoS: 2})
	pub := mustConnect(t, addr, "pub", false)
	pub.send(&packets.Publish{Topic: "in", Payload: []byte("x"), QoS: 2, PacketID: 9})
	recvAs[*packets.Pubrec](pub)
	ackDelivery(sub, expectPublish(sub, "in", "x", 2))
	dropConnection(t, b, pub, "pub")

	pub = reconnect(t, addr, "pub")
	pub.send(&packets.Publish{Topic: "in", Payload: []byte("x"), QoS: 2, PacketID: 9, Dup: true})
	if rec := recvAs[*packets.Pubrec](pub); rec.PacketID != 9 {
		t.Fatalf("PUBREC id %d, want 9", rec.PacketID)
	}
	pub.send(&packets.Pubrel{PacketID: 9})
	if comp := recvAs[*packets.Pubcomp](pub); comp.PacketID != 9 {
		t.Fatalf("PUBCOMP id %d, want 9", comp.PacketID)
	}
	expectQuiet(sub)
}

// dropLog records the clients DropObserver hooks are told about.
type dropLog chan string

func (d dropLog) OnDrop(c tern.Client, _ tern.Message, _ error) {
	select {
	case d <- c.ID:
	default:
	}
}

// TestMaxQueuedDropsAndCounts: past Options.MaxQueued, messages for a
// client are dropped, counted in Stats().PublishDropped and reported to
// DropObserver hooks; the queued ones are delivered in order.
func TestMaxQueuedDropsAndCounts(t *testing.T) {
	for _, online := range []bool{false, true} {
		t.Run(fmt.Sprint("online=", online), func(t *testing.T) {
			b, addr := startBroker(t, tern.Options{MaxQueued: 3, MaxInflight: 1})
			drops := make(dropLog, 16)
			if err := b.AddHook(drops); err != nil {
				t.Fatal(err)
			}
			sub := mustConnect(t, addr, "sub", false)
			sub.subscribe(1, packets.Subscription{Filter: "mq", QoS: 1})
			if !online {
				dropConnection(t, b, sub, "sub")
			}
			pub := mustConnect(t, addr, "pub", true)
			before := b.Stats().PublishDropped
			for i := 0; i < 7; i++ {
				pub.publishQoS(uint16(i+1), "mq", fmt.Sprint(i), 1, false)
			}
			kept := 3 // the queue
			if online {
				kept = 4 // one in flight, three queued
			}
			if d := b.Stats().PublishDropped - before; d != int64(7-kept) {
				t.Errorf("PublishDropped grew by %d, want %d", d, 7-kept)
			}
			for i := 0; i < 7-kept; i++ {
				if id := <-drops; id != "sub" {
					t.Errorf("drop reported for %q, want sub", id)
				}
			}
			if !online {
				sub = reconnect(t, addr, "sub")
			}
			for i := 0; i < kept; i++ {
				ackDelivery(sub, expectPublish(sub, "mq", fmt.Sprint(i), 1))
			}
			expectQuiet(sub)
		})
	}
}

// TestMaxQueuedMinusOneQueuesNothingForOfflineSessions: MaxQueued -1 keeps
// no queue: an offline session loses every message, counted.
func TestMaxQueuedMinusOneQueuesNothingForOfflineSessions(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxQueued: -1})
	sub := mustConnect(t, addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "n", QoS: 2})
	dropConnection(t, b, sub, "sub")
	before := b.Stats().PublishDropped
	if err := b.Publish(context.Background(), "n", []byte("x"), 2, false); err != nil {
		t.Fatal(err)
	}
	if d := b.Stats().PublishDropped - before; d != 1 {
		t.Errorf("PublishDropped grew by %d, want 1", d)
	}
	sub = reconnect(t, addr, "sub")
	expectQuiet(sub)
}

// publishes returns the PUBLISH packets among ps, failing on anything else.
func publishes(t testing.TB, ps []packets.Packet) []*packets.Publish {
	t.Helper()
	out := make([]*packets.Publish, 0, len(ps))
	for _, p := range ps {
		pp, ok := p.(*packets.Publish)
		if !ok {
			t.Fatalf("expected only PUBLISH packets, got %s", describePackets(ps...))
		}
		out = append(out, pp)
	}
	return out
}

// payloads lists the payloads of ps.
func payloads(ps []*packets.Publish) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Payload)
	}
	return out
}

// TestInflightWindowLimitsUnacknowledgedDeliveries: with MaxInflight 2 a
// subscriber that does not acknowledge gets two messages, and one more for
// each completed delivery; a QoS 2 delivery holds its place until PUBCOMP.
// [MQTT-4.3.2-1] [MQTT-4.3.3-1]
func TestInflightWindowLimitsUnacknowledgedDeliveries(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxInflight: 2})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "win", QoS: 2})
	pub := mustConnect(t, addr, "pub", true)
	for i := 0; i < 5; i++ {
		pub.publishQoS(uint16(i+1), "win", fmt.Sprint(i), 1, false)
	}
	got := publishes(t, pingSync(sub))
	if fmt.Sprint(payloads(got)) != "[0 1]" {
		t.Fatalf("got %v before any PUBACK, want [0 1]", payloads(got))
	}
	if ci := clientInfo(t, b, "sub"); ci.Inflight != 2 || ci.Queued != 3 {
		t.Fatalf("inflight %d queued %d, want 2 and 3", ci.Inflight, ci.Queued)
	}
	sub.send(&packets.Puback{PacketID: got[0].PacketID})
	next := publishes(t, pingSync(sub))
	if fmt.Sprint(payloads(next)) != "[2]" {
		t.Fatalf("got %v after one PUBACK, want [2]", payloads(next))
	}
	sub.send(&packets.Puback{PacketID: got[1].PacketID})
	sub.send(&packets.Puback{PacketID: next[0].PacketID})
	last := publishes(t, pingSync(sub))
	if fmt.Sprint(payloads(last)) != "[3 4]" {
		t.Fatalf("got %v after three PUBACKs, want [3 4]", payloads(last))
	}
	for _, p := range last {
		sub.send(&packets.Puback{PacketID: p.PacketID})
	}
	expectQuiet(sub)

	for i := 0; i < 3; i++ {
		pub.publishQoS(uint16(i+1), "win", fmt.Sprint("q2-", i), 2, false)
	}
	got = publishes(t, pingSync(sub))
	if len(got) != 2 {
		t.Fatalf("got %d QoS 2 messages, want 2", len(got))
	}
	for _, p := range got {
		sub.send(&packets.Pubrec{PacketID: p.PacketID})
		recvAs[*packets.Pubrel](sub)
	}
	expectQuiet(sub) // PUBREC does not free a place in the window
	sub.send(&packets.Pubcomp{PacketID: got[0].PacketID})
	third := publishes(t, pingSync(sub))
	if fmt.Sprint(payloads(third)) != "[q2-2]" {
		t.Fatalf("got %v after PUBCOMP, want [q2-2]", payloads(third))
	}
	sub.send(&packets.Pubcomp{PacketID: got[1].PacketID})
	ackDelivery(sub, third[0])
	expectQuiet(sub)
}

// TestPacketIDsNonZeroAndUniqueAmongInflight: with a small window and
// acknowledgements in shuffled order, every PUBLISH the broker sends at
// QoS 1 or 2 has a non-zero identifier that no other message in flight
// holds, QoS 1 and QoS 2 sharing one identifier space.
// [MQTT-2.3.1-1] [MQTT-2.3.1-2] [MQTT-2.3.1-3] [MQTT-2.3.1-4]
func TestPacketIDsNonZeroAndUniqueAmongInflight(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxInflight: 4})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "ids", QoS: 2})
	const total = 40
	for i := 0; i < total; i++ {
		if err := b.Publish(context.Background(), "ids", []byte(fmt.Sprint(i)), byte(1+i%2), false); err != nil {
			t.Fatal(err)
		}
	}
	var inflight []*packets.Publish
	received := 0
	for step := 0; received < total || len(inflight) > 0; step++ {
		for _, p := range publishes(t, pingSync(sub)) {
			if p.PacketID == 0 {
				t.Fatalf("PUBLISH %q with packet id 0", p.Payload)
			}
			for _, q := range inflight {
				if q.PacketID == p.PacketID {
					t.Fatalf("PUBLISH %q reuses id %d of %q, still in flight", p.Payload, p.PacketID, q.Payload)
				}
			}
			inflight = append(inflight, p)
			received++
		}
		if len(inflight) > 4 {
			t.Fatalf("%d messages in flight, window is 4", len(inflight))
		}
		if len(inflight) == 0 {
			t.Fatalf("nothing in flight after %d of %d messages", received, total)
		}
		i := (step * 7) % len(inflight) // acknowledge in a shuffled order
		ackDelivery(sub, inflight[i])
		inflight = append(inflight[:i], inflight[i+1:]...)
	}
}

// TestPacketIDsWrapAroundSkippingIDsInFlight: over more than 65535
// deliveries the broker reuses identifiers once acknowledged, never uses 0,
// and skips an identifier still in flight when it wraps around.
// [MQTT-2.3.1-1] [MQTT-2.3.1-2] [MQTT-2.3.1-3] [MQTT-2.3.1-4]
func TestPacketIDsWrapAroundSkippingIDsInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 66000 messages to wrap the identifiers around; skipped in -short mode")
	}
	const window, total = 128, 66000
	b, addr := startBroker(t, tern.Options{MaxInflight: window, MaxQueued: total})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "wrap", QoS: 1})
	for i := 0; i < total; i++ {
		if err := b.Publish(context.Background(), "wrap", nil, 1, false); err != nil {
			t.Fatal(err)
		}
	}
	held := recvAs[*packets.Publish](sub).PacketID // never acknowledged until the end
	// Read the stream raw, with one deadline: decoding 66000 packets one
	// by one through recv would make this test slow under the race detector.
	sub.conn.SetReadDeadline(time.Now().Add(4 * waitTimeout))
	var acks []byte
	unacked, prev, wrapped := 0, held, false
	for n := 1; n < total; n++ {
		fh, body, err := sub.r.ReadRaw()
		if err != nil || fh.Type != packets.TypePublish || len(body) != len(wireString("wrap"))+2 {
			t.Fatalf("delivery %d: %v %v %x", n, err, fh.Type, body)
		}
		id := uint16(body[len(body)-2])<<8 | uint16(body[len(body)-1])
		switch {
		case id == 0 || id == held:
			t.Fatalf("delivery %d got id %d (held id %d)", n, id, held)
		case id < prev:
			wrapped = true
			if want := held + 1; held == 1 && id != want {
				t.Fatalf("after wrapping around, id %d, want %d (id %d is in flight)", id, want, held)
			}
		}
		prev = id
		acks = append(acks, 0x40, 2, byte(id>>8), byte(id))
		if unacked++; unacked == window-1 || n == total-1 {
			sub.sendRaw(acks)
			acks, unacked = acks[:0], 0
		}
	}
	if !wrapped {
		t.Fatal("identifiers never wrapped around")
	}
	sub.send(&packets.Puback{PacketID: held})
	expectQuiet(sub)
	if ci := clientInfo(t, b, "sub"); ci.Inflight != 0 || ci.Queued != 0 {
		t.Fatalf("inflight %d queued %d at the end", ci.Inflight, ci.Queued)
	}
}

// TestOrderedTopicStreamOf1000Messages: 1000 messages pipelined by each of
// two publishers on one topic, at QoS 1 and at QoS 2, reach a subscriber
// in the order each publisher sent them, through an inflight window
// smaller than the stream; each publisher's PUBACK, PUBREC and PUBCOMP
// packets come back in the order of its packets.
// [MQTT-4.6.0-5] [MQTT-4.6.0-6] [MQTT-4.6.0-2] [MQTT-4.6.0-3]
func TestOrderedTopicStreamOf1000Messages(t *testing.T) {
	const n = 1000
	for qos := byte(1); qos <= 2; qos++ {
		t.Run(fmt.Sprint("QoS ", qos), func(t *testing.T) {
			_, addr := startBroker(t, tern.Options{MaxInflight: 100})
			sub := mustConnect(t, addr, "sub", true)
			sub.subscribe(1, packets.Subscription{Filter: "ordered", QoS: 2})
			pubs := []*rawClient{mustConnect(t, addr, "A", true), mustConnect(t, addr, "B", true)}
			for i, pub := range pubs {
				var buf []byte
				for id := uint16(1); id <= n; id++ {
					p := packets.Publish{Topic: "ordered", Payload: []byte(fmt.Sprintf("%c%04d", 'A'+i, id)), QoS: qos, PacketID: id}
					buf, _ = p.Append(buf)
				}
				pub.sendRaw(buf) // the whole stream in one write
			}
			next := map[byte]int{'A': 1, 'B': 1}
			for _, p := range receiveAll(sub, 2*n) {
				var who byte
				var seq int
				if _, err := fmt.Sscanf(string(p.Payload), "%c%04d", &who, &seq); err != nil || p.QoS != qos || p.Dup {
					t.Fatalf("unexpected delivery %s", describePackets(p))
				}
				if seq != next[who] {
					t.Fatalf("publisher %c: message %d arrived, want %d", who, seq, next[who])
				}
				next[who]++
			}
			for _, pub := range pubs {
				var rels []byte
				for id := uint16(1); id <= n; id++ {
					var got uint16
					if qos == 1 {
						got = recvAs[*packets.Puback](pub).PacketID
					} else {
						got = recvAs[*packets.Pubrec](pub).PacketID
						rels, _ = (&packets.Pubrel{PacketID: id}).Append(rels)
					}
					if got != id {
						t.Fatalf("acknowledgement for id %d, want %d", got, id)
					}
				}
				if qos == 2 {
					pub.sendRaw(rels)
					for id := uint16(1); id <= n; id++ {
						if got := recvAs[*packets.Pubcomp](pub).PacketID; got != id {
							t.Fatalf("PUBCOMP for id %d, want %d", got, id)
						}
					}
				}
			}
			expectQuiet(sub)
		})
	}
}

// TestConnackPrecedesDeliveriesWhenResumingUnderLoad: while messages keep
// arriving for a persistent session, every reconnection gets its CONNACK
// before any PUBLISH, the QoS 0 ones included. (A store is used because
// recording the session widens the window in which the connection was
// already bound but its CONNACK not yet written.)
// [MQTT-3.2.0-1] [MQTT-4.4.0-1]
func TestConnackPrecedesDeliveriesWhenResumingUnderLoad(t *testing.T) {
	b, addr := startBroker(t, tern.Options{Store: storage.NewMemory(), MaxQueued: 100})
	sub := mustConnect(t, addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "flood", QoS: 1})
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b.Publish(context.Background(), "flood", []byte("x"), byte(i%3/2), false) // mostly QoS 0: the path that skips the session lock
		}
	}()
	defer func() { close(stop); <-done }()
	for i := 0; i < 300; i++ {
		c := dialRaw(t, addr)
		c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "sub", KeepAlive: 60})
		if p := c.recv(); p.Type() != packets.TypeConnack {
			t.Fatalf("reconnection %d: first packet %s, want CONNACK", i, describePackets(p))
		}
		c.conn.Close()
	}
}
