package tern_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Wire helpers for the PUBLISH, SUBSCRIBE and redelivery tests.

// recvAs reads the next packet and requires it to be a T.
func recvAs[T packets.Packet](c *rawClient) T {
	c.t.Helper()
	p := c.recv()
	v, ok := p.(T)
	require.True(c.t, ok, "expected %T, got %s", v, describePackets(p))
	return v
}

// pingSync sends PINGREQ and returns the packets that arrive before the
// PINGRESP. The broker handles one connection's packets in order and
// writes deliveries and answers through the same buffer, so the result is
// exactly what was sent to this client before its PINGREQ was handled.
func pingSync(c *rawClient) []packets.Packet {
	c.t.Helper()
	c.send(&packets.Pingreq{})
	var got []packets.Packet
	for {
		p := c.recv()
		if _, ok := p.(*packets.Pingresp); ok {
			return got
		}
		got = append(got, p)
	}
}

// expectQuiet fails if anything but PINGRESP answers a PINGREQ: nothing
// was pending for this client.
func expectQuiet(c *rawClient) {
	c.t.Helper()
	got := pingSync(c)
	require.Empty(c.t, got, "expected nothing before PINGRESP, got %s", describePackets(got...))
}

func describePackets(ps ...packets.Packet) string {
	var sb strings.Builder
	for i, p := range ps {
		if i > 0 {
			sb.WriteString(", ")
		}
		if pub, ok := p.(*packets.Publish); ok {
			fmt.Fprintf(&sb, "PUBLISH{topic=%q payload=%q qos=%d dup=%v retain=%v id=%d}",
				pub.Topic, pub.Payload, pub.QoS, pub.Dup, pub.Retain, pub.PacketID)
			continue
		}
		fmt.Fprintf(&sb, "%v %+v", p.Type(), p)
	}
	return sb.String()
}

// ackDelivery acknowledges a PUBLISH received from the broker as its QoS
// requires [MQTT-4.5.0-2], completing the QoS 2 exchange.
func ackDelivery(c *rawClient, p *packets.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		c.send(&packets.Puback{PacketID: p.PacketID})
	case 2:
		c.send(&packets.Pubrec{PacketID: p.PacketID})
		require.Equal(c.t, p.PacketID, recvAs[*packets.Pubrel](c).PacketID, "PUBREL packet identifier")
		c.send(&packets.Pubcomp{PacketID: p.PacketID})
	}
}

// expectPublish receives a PUBLISH and checks its topic, payload and QoS.
func expectPublish(c *rawClient, topic, payload string, qos byte) *packets.Publish {
	c.t.Helper()
	p := recvAs[*packets.Publish](c)
	require.Equal(c.t, topic, p.Topic, "got %s", describePackets(p))
	require.Equal(c.t, payload, string(p.Payload), "got %s", describePackets(p))
	require.Equal(c.t, qos, p.QoS, "got %s", describePackets(p))
	return p
}

// wirePacket frames body parts behind the first byte and the Remaining
// Length, without any validation, to send what an encoder would refuse.
func wirePacket(first byte, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	out := []byte{first}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// wireString is a length-prefixed string of raw bytes, valid or not.
func wireString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

func wireID(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

// TestPublishIncomingDupIsNotPropagated: the DUP flag a publisher sets is
// not forwarded; a first delivery has DUP 0.
// [MQTT-3.3.1-3] [MQTT-3.3.1-1] [MQTT-4.3.2-1] [MQTT-4.3.3-1]
func TestPublishIncomingDupIsNotPropagated(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "dup/+", QoS: 2})
	pub := mustConnect(t, addr, "pub", true)
	for qos := byte(1); qos <= 2; qos++ {
		topic := fmt.Sprintf("dup/%d", qos)
		pub.send(&packets.Publish{Topic: topic, Payload: []byte("x"), QoS: qos, Dup: true, PacketID: 10})
		if qos == 1 {
			recvAs[*packets.Puback](pub)
		} else {
			recvAs[*packets.Pubrec](pub)
			pub.send(&packets.Pubrel{PacketID: 10})
			recvAs[*packets.Pubcomp](pub)
		}
		got := expectPublish(sub, topic, "x", qos)
		assert.False(t, got.Dup, "QoS %d: DUP propagated to the subscriber", qos)
		ackDelivery(sub, got)
	}
}

// TestPublishQoS0IsSentWithDupZeroAndNoPacketID checks the exact bytes of a
// QoS 0 delivery: flags 0000 and no packet identifier before the payload.
// [MQTT-3.3.1-2] [MQTT-4.3.1-1] [MQTT-2.3.1-5] [MQTT-3.3.2-3]
func TestPublishQoS0IsSentWithDupZeroAndNoPacketID(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "q0/#", QoS: 2})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(0, "q0/a", "payload", 0, false)
	sub.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	fh, body, err := sub.r.ReadRaw()
	require.NoError(t, err)
	want := append(wireString("q0/a"), "payload"...)
	assert.Equal(t, packets.TypePublish, fh.Type, "want PUBLISH flags 0000 body %q", want)
	assert.Zero(t, fh.Flags, "flags %04b, want PUBLISH flags 0000", fh.Flags)
	assert.Equal(t, want, body, "want PUBLISH flags 0000 body %q", want)
}

// TestPublishMalformedClosesConnection: a PUBLISH that breaks a rule of the
// fixed header, the topic name or the packet identifier closes the
// connection, and nothing of it is forwarded.
// [MQTT-3.3.1-4] [MQTT-3.3.1-2] [MQTT-3.3.2-1] [MQTT-3.3.2-2] [MQTT-4.7.1-1]
// [MQTT-4.7.3-1] [MQTT-4.7.3-2] [MQTT-2.3.1-1]
func TestPublishMalformedClosesConnection(t *testing.T) {
	cases := []struct {
		name, rule string
		pkt        []byte
	}{
		{"QoS 3", "MQTT-3.3.1-4", wirePacket(0x36, wireString("a/b"), wireID(1), []byte("x"))},
		{"QoS 3 with DUP and RETAIN", "MQTT-3.3.1-4", wirePacket(0x3F, wireString("a/b"), wireID(1), []byte("x"))},
		{"DUP on QoS 0", "MQTT-3.3.1-2", wirePacket(0x38, wireString("a/b"), []byte("x"))},
		{"wildcard + in topic", "MQTT-3.3.2-2", wirePacket(0x30, wireString("a/+"), []byte("x"))},
		{"wildcard # in topic", "MQTT-3.3.2-2", wirePacket(0x32, wireString("a/#"), wireID(1), []byte("x"))},
		{"topic is #", "MQTT-4.7.1-1", wirePacket(0x30, wireString("#"), []byte("x"))},
		{"wildcard inside a level", "MQTT-4.7.1-1", wirePacket(0x30, wireString("a+b"), []byte("x"))},
		{"empty topic", "MQTT-4.7.3-1", wirePacket(0x30, wireString(""), []byte("x"))},
		{"U+0000 in topic", "MQTT-4.7.3-2", wirePacket(0x30, wireString("a\x00b"), []byte("x"))},
		{"ill-formed UTF-8 topic", "MQTT-3.3.2-1", wirePacket(0x30, wireString("a\xffb"), []byte("x"))},
		{"UTF-16 surrogate in topic", "MQTT-3.3.2-1", wirePacket(0x30, wireString("a\xed\xa0\x80"), []byte("x"))},
		{"QoS 1 with packet id 0", "MQTT-2.3.1-1", wirePacket(0x32, wireString("a/b"), wireID(0), []byte("x"))},
		{"QoS 2 with packet id 0", "MQTT-2.3.1-1", wirePacket(0x34, wireString("a/b"), wireID(0), []byte("x"))},
		{"QoS 1 without packet id", "MQTT-2.3.1-1", wirePacket(0x32, wireString("a/b"))},
	}
	_, addr := startBroker(t, tern.Options{})
	watcher := mustConnect(t, addr, "watcher", true)
	watcher.subscribe(1, packets.Subscription{Filter: "#", QoS: 2})
	for _, tc := range cases {
		t.Run(tc.rule+" "+tc.name, func(t *testing.T) {
			c := mustConnect(t, addr, "bad", true)
			c.sendRaw(tc.pkt)
			c.expectClosed()
		})
	}
	expectQuiet(watcher)
}

// TestPublishResponseDependsOnQoS: none for QoS 0, PUBACK for QoS 1,
// PUBREC for QoS 2 then PUBCOMP for PUBREL, each with the PUBLISH's packet
// identifier.
// [MQTT-3.3.4-1] [MQTT-4.3.2-2] [MQTT-4.3.3-2] [MQTT-2.3.1-6]
func TestPublishResponseDependsOnQoS(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	c := mustConnect(t, addr, "pub", true)

	c.send(&packets.Publish{Topic: "r/0", Payload: []byte("x")})
	expectQuiet(c) // QoS 0: no response

	for _, id := range []uint16{1, 0x1234, 0xFFFF} {
		c.send(&packets.Publish{Topic: "r/1", Payload: []byte("x"), QoS: 1, PacketID: id})
		assert.Equal(t, id, recvAs[*packets.Puback](c).PacketID, "PUBACK packet identifier")
		c.send(&packets.Publish{Topic: "r/2", Payload: []byte("x"), QoS: 2, PacketID: id})
		assert.Equal(t, id, recvAs[*packets.Pubrec](c).PacketID, "PUBREC packet identifier")
		c.send(&packets.Pubrel{PacketID: id})
		assert.Equal(t, id, recvAs[*packets.Pubcomp](c).PacketID, "PUBCOMP packet identifier")
	}
	expectQuiet(c)
}

// TestPublishDeliveredAtMinimumOfPublishedAndGrantedQoS: every pair of
// published and granted QoS; a QoS 0 delivery is sent with QoS 0, DUP 0.
// [MQTT-3.8.4-6] [MQTT-4.3.1-1] [MQTT-3.3.1-2]
func TestPublishDeliveredAtMinimumOfPublishedAndGrantedQoS(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	var subs [3]*rawClient
	for granted := range subs {
		subs[granted] = mustConnect(t, addr, fmt.Sprintf("sub%d", granted), true)
		ack := subs[granted].subscribe(1, packets.Subscription{Filter: "m/q", QoS: byte(granted)})
		require.Equal(t, byte(granted), ack.ReturnCodes[0], "granted QoS")
	}
	pub := mustConnect(t, addr, "pub", true)
	for published := byte(0); published <= 2; published++ {
		pub.publishQoS(7, "m/q", "v", published, false)
		for granted, sub := range subs {
			want := min(published, byte(granted))
			got := expectPublish(sub, "m/q", "v", want)
			assert.False(t, got.Dup, "published %d granted %d: DUP", published, granted)
			assert.False(t, got.Retain, "published %d granted %d: RETAIN", published, granted)
			ackDelivery(sub, got)
		}
	}
	for _, sub := range subs {
		expectQuiet(sub)
	}
}

// TestPublishOverlappingSubscriptionsDeliverOneCopyAtMaxQoS: a client whose
// filters overlap gets one copy, at the highest QoS among the matching
// subscriptions (bounded by the published QoS).
// [MQTT-3.3.5-1]
func TestPublishOverlappingSubscriptionsDeliverOneCopyAtMaxQoS(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1,
		packets.Subscription{Filter: "o/+", QoS: 0},
		packets.Subscription{Filter: "o/#", QoS: 2},
		packets.Subscription{Filter: "o/b", QoS: 1},
		packets.Subscription{Filter: "#", QoS: 0},
	)
	sub.subscribe(2, packets.Subscription{Filter: "p/+", QoS: 1}, packets.Subscription{Filter: "p/b", QoS: 0})
	pub := mustConnect(t, addr, "pub", true)
	cases := []struct {
		topic     string
		published byte
		want      byte
	}{
		{"o/b", 2, 2},
		{"o/b", 1, 1},
		{"o/c", 2, 2},
		{"p/b", 2, 1},
		{"p/b", 0, 0},
	}
	for i, tc := range cases {
		pub.publishQoS(uint16(i+1), tc.topic, "v", tc.published, false)
		expectQuiet(pub) // routed before this returns
		got := pingSync(sub)
		require.NotEmpty(t, got, "%s at QoS %d: nothing delivered", tc.topic, tc.published)
		p, ok := got[0].(*packets.Publish)
		require.True(t, len(got) == 1 && ok, "%s at QoS %d: got %s, want one PUBLISH at QoS %d", tc.topic, tc.published, describePackets(got...), tc.want)
		require.Equal(t, tc.want, p.QoS, "%s at QoS %d: got %s", tc.topic, tc.published, describePackets(got...))
		require.Equal(t, tc.topic, p.Topic, "%s at QoS %d: got %s", tc.topic, tc.published, describePackets(got...))
		ackDelivery(sub, p)
	}
}

// refusePublish refuses publishes to topics under "deny/".
type refusePublish struct{}

func (refusePublish) AuthorizePublish(_ context.Context, _ tern.Client, m tern.Message) error {
	if strings.HasPrefix(m.Topic, "deny/") {
		return tern.ErrNotAuthorized
	}
	return nil
}

// TestPublishRefusedByAuthorizerIsStillAcknowledged: an unauthorized
// PUBLISH is acknowledged as its QoS requires (Tern's choice among the two
// the specification allows), not forwarded, not retained, and counted.
// [MQTT-3.3.5-2]
func TestPublishRefusedByAuthorizerIsStillAcknowledged(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	require.NoError(t, b.AddHook(refusePublish{}))
	watcher := mustConnect(t, addr, "watcher", true)
	watcher.subscribe(1, packets.Subscription{Filter: "#", QoS: 2})
	c := mustConnect(t, addr, "pub", true)
	before := b.Stats().PublishDropped
	for qos := byte(0); qos <= 2; qos++ {
		c.publishQoS(uint16(qos+1), "deny/x", "secret", qos, true)
	}
	expectQuiet(c)
	expectQuiet(watcher)
	assert.Zero(t, b.Stats().Retained, "retained messages")
	assert.EqualValues(t, 3, b.Stats().PublishDropped-before, "PublishDropped growth")
	c.publishQoS(9, "allow/x", "ok", 1, false)
	ackDelivery(watcher, expectPublish(watcher, "allow/x", "ok", 1))
}

// TestQoS1OutboundPublishUnacknowledgedUntilPuback: the broker, as sender,
// sends QoS 1 with DUP 0 and a non-zero identifier and keeps the message in
// flight until the PUBACK with that identifier.
// [MQTT-4.3.2-1] [MQTT-2.3.1-4] [MQTT-2.3.1-1]
func TestQoS1OutboundPublishUnacknowledgedUntilPuback(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "q1", QoS: 1})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "q1", "v", 1, false)
	got := expectPublish(sub, "q1", "v", 1)
	require.False(t, got.Dup, "first delivery: want DUP 0")
	require.NotZero(t, got.PacketID, "first delivery: want a non-zero id")
	require.Equal(t, 1, clientInfo(t, b, "sub").Inflight, "in flight before PUBACK")
	sub.send(&packets.Puback{PacketID: got.PacketID + 1}) // not its identifier
	expectQuiet(sub)
	require.Equal(t, 1, clientInfo(t, b, "sub").Inflight, "in flight after a PUBACK for another id")
	sub.send(&packets.Puback{PacketID: got.PacketID})
	expectQuiet(sub)
	assert.Zero(t, clientInfo(t, b, "sub").Inflight, "in flight after PUBACK")
}

// TestQoS1SameIDAfterPubackIsNewPublication: once PUBACK is sent, a
// PUBLISH with the same identifier is a new message, DUP or not.
// [MQTT-4.3.2-2]
func TestQoS1SameIDAfterPubackIsNewPublication(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "same", QoS: 1})
	pub := mustConnect(t, addr, "pub", true)
	for i, dup := range []bool{false, true, false} {
		payload := fmt.Sprint("m", i)
		pub.send(&packets.Publish{Topic: "same", Payload: []byte(payload), QoS: 1, PacketID: 5, Dup: dup})
		require.Equal(t, uint16(5), recvAs[*packets.Puback](pub).PacketID, "PUBACK packet identifier")
		ackDelivery(sub, expectPublish(sub, "same", payload, 1))
	}
	expectQuiet(sub)
}

// TestQoS2OutboundFlowPubrelAfterPubrec: the broker, as sender, answers
// PUBREC with PUBREL (flags 0010, same identifier), does not resend the
// PUBLISH, and keeps the identifier in use until PUBCOMP.
// [MQTT-4.3.3-1] [MQTT-2.3.1-6] [MQTT-3.6.1-1]
func TestQoS2OutboundFlowPubrelAfterPubrec(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "q2", QoS: 2})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "q2", "v", 2, false)
	got := expectPublish(sub, "q2", "v", 2)
	require.False(t, got.Dup, "first delivery DUP")
	require.NotZero(t, got.PacketID, "first delivery packet identifier")
	sub.send(&packets.Pubrec{PacketID: got.PacketID})
	sub.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	fh, body, err := sub.r.ReadRaw()
	require.NoError(t, err)
	require.Equal(t, packets.TypePubrel, fh.Type, "want PUBREL flags 0010 id %d", got.PacketID)
	require.Equal(t, byte(0b0010), fh.Flags, "flags %04b, want PUBREL flags 0010", fh.Flags)
	require.Equal(t, wireID(got.PacketID), body, "want PUBREL id %d", got.PacketID)
	expectQuiet(sub) // the PUBLISH is not sent again
	require.Equal(t, 1, clientInfo(t, b, "sub").Inflight, "in flight before PUBCOMP")
	sub.send(&packets.Pubcomp{PacketID: got.PacketID})
	expectQuiet(sub)
	assert.Zero(t, clientInfo(t, b, "sub").Inflight, "in flight after PUBCOMP")
}

// TestQoS2InboundRepeatBeforePubrelNotForwardedAgain: until PUBREL, any
// PUBLISH with the same identifier gets PUBREC and is not delivered again;
// after PUBCOMP the identifier starts a new message.
// [MQTT-4.3.3-2]
func TestQoS2InboundRepeatBeforePubrelNotForwardedAgain(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "once", QoS: 2})
	pub := mustConnect(t, addr, "pub", true)
	send := func(payload string, dup bool, id uint16) {
		t.Helper()
		pub.send(&packets.Publish{Topic: "once", Payload: []byte(payload), QoS: 2, PacketID: id, Dup: dup})
		require.Equal(t, id, recvAs[*packets.Pubrec](pub).PacketID, "PUBREC packet identifier")
	}
	send("first", false, 3)
	ackDelivery(sub, expectPublish(sub, "once", "first", 2))
	send("first", true, 3)
	send("other payload, same id", false, 3)
	expectQuiet(sub)

	send("independent", false, 4) // another identifier is another message
	ackDelivery(sub, expectPublish(sub, "once", "independent", 2))

	for _, id := range []uint16{3, 4} {
		pub.send(&packets.Pubrel{PacketID: id})
		require.Equal(t, id, recvAs[*packets.Pubcomp](pub).PacketID, "PUBCOMP packet identifier")
	}
	send("second", false, 3)
	ackDelivery(sub, expectPublish(sub, "once", "second", 2))
	expectQuiet(sub)
}

// TestPubrelWithWrongFlagsClosesConnection: PUBREL flags other than 0010
// are malformed. [MQTT-3.6.1-1]
func TestPubrelWithWrongFlagsClosesConnection(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	for _, first := range []byte{0x60, 0x61, 0x63, 0x64, 0x66, 0x6A, 0x6F} {
		t.Run(fmt.Sprintf("%#02x", first), func(t *testing.T) {
			c := mustConnect(t, addr, "c", true)
			c.send(&packets.Publish{Topic: "t", Payload: []byte("x"), QoS: 2, PacketID: 1})
			recvAs[*packets.Pubrec](c)
			c.sendRaw([]byte{first, 2, 0, 1})
			c.expectClosed()
		})
	}
}

// TestAcksForUnknownPacketIDs: PUBREL always gets PUBCOMP and PUBREC always
// gets PUBREL (so the peer's state can complete); PUBACK and PUBCOMP for an
// identifier not in flight are ignored, and the connection stays open.
// [MQTT-4.3.3-2] [MQTT-4.3.3-1]
func TestAcksForUnknownPacketIDs(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	c := mustConnect(t, addr, "c", true)
	c.send(&packets.Pubrel{PacketID: 77})
	require.Equal(t, uint16(77), recvAs[*packets.Pubcomp](c).PacketID, "PUBCOMP packet identifier")
	c.send(&packets.Pubrec{PacketID: 78})
	require.Equal(t, uint16(78), recvAs[*packets.Pubrel](c).PacketID, "PUBREL packet identifier")
	c.send(&packets.Puback{PacketID: 79})
	c.send(&packets.Pubcomp{PacketID: 80})
	expectQuiet(c)
}

// TestPubrelSentInOrderOfPubrec: the broker sends PUBREL in the order it
// receives PUBREC, whatever the order of the PUBLISH packets.
// [MQTT-4.6.0-4] [MQTT-4.6.0-6]
func TestPubrelSentInOrderOfPubrec(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "rel", QoS: 2})
	pub := mustConnect(t, addr, "pub", true)
	var ids []uint16
	for i := 0; i < 4; i++ {
		pub.publishQoS(uint16(i+1), "rel", fmt.Sprint(i), 2, false)
		ids = append(ids, expectPublish(sub, "rel", fmt.Sprint(i), 2).PacketID)
	}
	order := []uint16{ids[2], ids[0], ids[3], ids[1]}
	var buf []byte
	for _, id := range order {
		buf, _ = (&packets.Pubrec{PacketID: id}).Append(buf)
	}
	sub.sendRaw(buf) // one write: the broker sees them in one batch
	for _, id := range order {
		require.Equal(t, id, recvAs[*packets.Pubrel](sub).PacketID, "PUBREL packet identifier (order %v)", order)
	}
	for _, id := range order {
		sub.send(&packets.Pubcomp{PacketID: id})
	}
	expectQuiet(sub)
}

// receiveAll reads until n PUBLISH packets have arrived and every QoS 2
// one among them has been released, acknowledging each as a subscriber
// must, and returns them in the order they arrived.
func receiveAll(c *rawClient, n int) []*packets.Publish {
	c.t.Helper()
	var got []*packets.Publish
	pending := map[uint16]bool{}
	for len(got) < n || len(pending) > 0 {
		switch p := c.recv().(type) {
		case *packets.Publish:
			got = append(got, p)
			switch p.QoS {
			case 1:
				c.send(&packets.Puback{PacketID: p.PacketID})
			case 2:
				pending[p.PacketID] = true
				c.send(&packets.Pubrec{PacketID: p.PacketID})
			}
		case *packets.Pubrel:
			require.True(c.t, pending[p.PacketID], "PUBREL for id %d, which is not awaiting one", p.PacketID)
			delete(pending, p.PacketID)
			c.send(&packets.Pubcomp{PacketID: p.PacketID})
		default:
			require.FailNow(c.t, "expected PUBLISH or PUBREL", "got %s", describePackets(p))
		}
	}
	return got
}

// TestTopicLengthLimit: a topic name of 65535 bytes, the most an MQTT
// string holds, travels through the broker; a longer one cannot be put on
// the wire and is refused by Broker.Publish and Broker.Subscribe.
// [MQTT-4.7.3-3]
func TestTopicLengthLimit(t *testing.T) {
	// 65536 levels, as many as a topic can have: no level limit.
	b, addr := startBroker(t, tern.Options{MaxTopicLevels: 65536})
	longest := strings.Repeat("a/", 32767) + "b" // 65535 bytes
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: longest, QoS: 1})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, longest, "x", 1, false)
	ackDelivery(sub, expectPublish(sub, longest, "x", 1))

	tooLong := longest + "c"
	assert.Error(t, b.Publish(context.Background(), tooLong, []byte("x"), 0, false), "Broker.Publish accepted a topic of 65536 bytes")
	cancel, err := b.Subscribe(tooLong, tern.SubscribeOptions{}, func(tern.Message, tern.Client) {})
	if !assert.Error(t, err, "Broker.Subscribe accepted a filter of 65536 bytes") {
		cancel()
	}
}
