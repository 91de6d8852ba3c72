package tern_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
)

// waitOffline waits until the broker has detached client id from its
// connection.
func waitOffline(t testing.TB, b *tern.Broker, id string) {
	t.Helper()
	eventually(t, id+" offline", func() bool {
		ci, ok := findClient(b, id)
		return ok && !ci.Connected
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
	require.Zero(t, ack.ReturnCode, "CONNACK of %s: want accepted with session present", id)
	require.True(t, ack.SessionPresent, "CONNACK of %s: want accepted with session present", id)
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
	require.Equal(t, len(want), clientInfo(t, b, "sub").Queued, "queued for the offline session")
	assert.EqualValues(t, 7, b.Stats().PublishDropped-before, "PublishDropped growth: want 7 (the QoS 0 messages)")

	sub = reconnect(t, addr, "sub")
	for i, p := range receiveAll(sub, len(want)) {
		require.Equal(t, want[i], string(p.Payload), "delivery %d: got %s", i, describePackets(p))
		require.False(t, p.Dup, "delivery %d: got %s, want DUP 0", i, describePackets(p))
		require.NotZero(t, p.QoS, "delivery %d: got %s, want QoS 1 or 2", i, describePackets(p))
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
		assert.Equal(t, "z", p.Topic, "delivery %d: got %s", i, describePackets(p))
		assert.Equal(t, fmt.Sprint(i), string(p.Payload), "delivery %d: got %s", i, describePackets(p))
		assert.Equal(t, qos[i], p.QoS, "delivery %d: got %s", i, describePackets(p))
		assert.False(t, p.Dup, "delivery %d: got %s, want DUP 0", i, describePackets(p))
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
			require.Equal(t, 2, clientInfo(t, b, "sub").Queued, "queued behind the window")
			dropConnection(t, b, sub, "sub")

			sub = reconnect(t, addr, "sub")
			p := expectPublish(sub, "live", "unacked", 1)
			require.True(t, p.Dup, "resend: want DUP 1")
			require.Equal(t, first.PacketID, p.PacketID, "resend: packet identifier")
			sub.send(&packets.Puback{PacketID: first.PacketID})
			ackDelivery(sub, expectPublish(sub, "r1", "retained QoS 1", 1))
			if keep {
				require.True(t, expectPublish(sub, "r0", "retained QoS 0", 0).Retain, "queued retained message lost its RETAIN flag")
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
			require.True(t, p.Dup, "round %d, resend of %d: want DUP 1", round, i)
			require.Equal(t, first[i].PacketID, p.PacketID, "round %d, resend of %d: packet identifier", round, i)
		}
		if round == 0 {
			p := expectPublish(sub, "un", "queued", 1)
			require.False(t, p.Dup, "queued message: DUP")
			for _, f := range first {
				if f != first[1] {
					require.NotEqual(t, f.PacketID, p.PacketID, "queued message: ids in flight are %d, %d, %d",
						first[0].PacketID, first[2].PacketID, first[3].PacketID)
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
	require.Equal(t, a.PacketID, recvAs[*packets.Pubrel](sub).PacketID, "PUBREL packet identifier")
	p := expectPublish(sub, "two", "b", 2)
	require.True(t, p.Dup, "resend of b: want DUP 1")
	require.Equal(t, bb.PacketID, p.PacketID, "resend of b: packet identifier")
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
	require.Equal(t, uint16(9), recvAs[*packets.Pubrec](pub).PacketID, "PUBREC packet identifier")
	pub.send(&packets.Pubrel{PacketID: 9})
	require.Equal(t, uint16(9), recvAs[*packets.Pubcomp](pub).PacketID, "PUBCOMP packet identifier")
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
			require.NoError(t, b.AddHook(drops))
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
			assert.EqualValues(t, 7-kept, b.Stats().PublishDropped-before, "PublishDropped growth")
			for i := 0; i < 7-kept; i++ {
				assert.Equal(t, "sub", <-drops, "client a drop was reported for")
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
	require.NoError(t, b.Publish(context.Background(), "n", []byte("x"), 2, false))
	assert.EqualValues(t, 1, b.Stats().PublishDropped-before, "PublishDropped growth")
	sub = reconnect(t, addr, "sub")
	expectQuiet(sub)
}

// publishes returns the PUBLISH packets among ps, failing on anything else.
func publishes(t testing.TB, ps []packets.Packet) []*packets.Publish {
	t.Helper()
	out := make([]*packets.Publish, 0, len(ps))
	for _, p := range ps {
		pp, ok := p.(*packets.Publish)
		require.True(t, ok, "expected only PUBLISH packets, got %s", describePackets(ps...))
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
	require.Equal(t, []string{"0", "1"}, payloads(got), "before any PUBACK")
	ci := clientInfo(t, b, "sub")
	require.Equal(t, 2, ci.Inflight, "inflight")
	require.Equal(t, 3, ci.Queued, "queued")
	sub.send(&packets.Puback{PacketID: got[0].PacketID})
	next := publishes(t, pingSync(sub))
	require.Equal(t, []string{"2"}, payloads(next), "after one PUBACK")
	sub.send(&packets.Puback{PacketID: got[1].PacketID})
	sub.send(&packets.Puback{PacketID: next[0].PacketID})
	last := publishes(t, pingSync(sub))
	require.Equal(t, []string{"3", "4"}, payloads(last), "after three PUBACKs")
	for _, p := range last {
		sub.send(&packets.Puback{PacketID: p.PacketID})
	}
	expectQuiet(sub)

	for i := 0; i < 3; i++ {
		pub.publishQoS(uint16(i+1), "win", fmt.Sprint("q2-", i), 2, false)
	}
	got = publishes(t, pingSync(sub))
	require.Len(t, got, 2, "QoS 2 messages")
	for _, p := range got {
		sub.send(&packets.Pubrec{PacketID: p.PacketID})
		recvAs[*packets.Pubrel](sub)
	}
	expectQuiet(sub) // PUBREC does not free a place in the window
	sub.send(&packets.Pubcomp{PacketID: got[0].PacketID})
	third := publishes(t, pingSync(sub))
	require.Equal(t, []string{"q2-2"}, payloads(third), "after PUBCOMP")
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
		require.NoError(t, b.Publish(context.Background(), "ids", []byte(fmt.Sprint(i)), byte(1+i%2), false))
	}
	var inflight []*packets.Publish
	received := 0
	for step := 0; received < total || len(inflight) > 0; step++ {
		for _, p := range publishes(t, pingSync(sub)) {
			require.NotZero(t, p.PacketID, "PUBLISH %q with packet id 0", p.Payload)
			for _, q := range inflight {
				require.NotEqual(t, q.PacketID, p.PacketID, "PUBLISH %q reuses the id of %q, still in flight", p.Payload, q.Payload)
			}
			inflight = append(inflight, p)
			received++
		}
		require.LessOrEqual(t, len(inflight), 4, "messages in flight, window is 4")
		require.NotEmpty(t, inflight, "nothing in flight after %d of %d messages", received, total)
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
		require.NoError(t, b.Publish(context.Background(), "wrap", nil, 1, false))
	}
	held := recvAs[*packets.Publish](sub).PacketID // never acknowledged until the end
	// Read the stream raw, with one deadline: decoding 66000 packets one
	// by one through recv would make this test slow under the race detector.
	sub.conn.SetReadDeadline(time.Now().Add(4 * waitTimeout))
	var acks []byte
	unacked, prev, wrapped := 0, held, false
	for n := 1; n < total; n++ {
		fh, body, err := sub.r.ReadRaw()
		require.NoError(t, err, "delivery %d", n)
		require.True(t, fh.Type == packets.TypePublish && len(body) == len(wireString("wrap"))+2, "delivery %d: %v %x", n, fh.Type, body)
		id := uint16(body[len(body)-2])<<8 | uint16(body[len(body)-1])
		switch {
		case id == 0 || id == held:
			require.FailNow(t, "an identifier that is not free", "delivery %d got id %d (held id %d)", n, id, held)
		case id < prev:
			wrapped = true
			if held == 1 {
				require.Equal(t, held+1, id, "after wrapping around (id %d is in flight)", held)
			}
		}
		prev = id
		acks = append(acks, 0x40, 2, byte(id>>8), byte(id))
		if unacked++; unacked == window-1 || n == total-1 {
			sub.sendRaw(acks)
			acks, unacked = acks[:0], 0
		}
	}
	require.True(t, wrapped, "identifiers never wrapped around")
	sub.send(&packets.Puback{PacketID: held})
	expectQuiet(sub)
	ci := clientInfo(t, b, "sub")
	assert.Zero(t, ci.Inflight, "inflight at the end")
	assert.Zero(t, ci.Queued, "queued at the end")
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
				_, err := fmt.Sscanf(string(p.Payload), "%c%04d", &who, &seq)
				require.True(t, err == nil && p.QoS == qos && !p.Dup, "unexpected delivery %s", describePackets(p))
				require.Equal(t, next[who], seq, "publisher %c: message arrived out of order", who)
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
					require.Equal(t, id, got, "acknowledgement packet identifier")
				}
				if qos == 2 {
					pub.sendRaw(rels)
					for id := uint16(1); id <= n; id++ {
						require.Equal(t, id, recvAs[*packets.Pubcomp](pub).PacketID, "PUBCOMP packet identifier")
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
		p := c.recv()
		require.Equal(t, packets.TypeConnack, p.Type(), "reconnection %d: first packet %s, want CONNACK", i, describePackets(p))
		c.conn.Close()
	}
}
