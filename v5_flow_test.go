package tern_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of MQTT 5 flow control (section 4.9): the client's
// Receive Maximum bounds what Tern sends, Tern's bounds what it accepts;
// the client's Maximum Packet Size bounds what it is sent; and message
// ordering (section 4.6).

// m5Publishes returns the PUBLISHes among ps, failing on anything else.
func m5Publishes(t *testing.T, ps []packets.Packet) []*packets.Publish {
	t.Helper()
	out := make([]*packets.Publish, 0, len(ps))
	for _, p := range ps {
		pub, ok := p.(*packets.Publish)
		require.True(t, ok, "expected only PUBLISH, got %s", describePackets(p))
		out = append(out, pub)
	}
	return out
}

// TestV5FlowClientReceiveMaximum: with a Receive Maximum of 2, Tern never
// has more than 2 QoS 1 or QoS 2 PUBLISHes unacknowledged towards the
// client: of 10 messages 2 are sent, and one more each time a PUBACK (QoS
// 1) or PUBCOMP (QoS 2, not PUBREC) frees a place, all 10 in order. While
// the quota is zero Tern still answers PINGREQ, SUBSCRIBE and UNSUBSCRIBE,
// and sends QoS 0 messages.
// [v5 MQTT-3.3.4-9] [v5 MQTT-3.3.4-10] [v5 MQTT-4.9.0-1] [v5 MQTT-4.9.0-2]
// [v5 MQTT-4.9.0-3]
func TestV5FlowClientReceiveMaximum(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			_, addr := startBroker(t, tern.Options{})
			sub := m5Connect(t, addr, "rm-sub", m5RecvMax(2))
			m5Sub(sub, "rm/#", qos)
			pub := m5Connect(t, addr, "rm-pub")
			want := m5Seq("m", 10)
			for _, p := range want {
				require.Equal(t, packets.Success, m5Pub(pub, "rm/t", p, qos))
			}
			outstanding := m5Publishes(t, pingSync(sub))
			require.Len(t, outstanding, 2, "the Receive Maximum")
			var got []string

			// Quota zero: other packets are answered, QoS 0 is sent.
			m5Send(pub, &packets.Publish{Topic: "rm/t", Payload: []byte("qos0")})
			m5Expect(sub, "rm/t", "qos0", 0)
			assert.Equal(t, []byte{0}, m5Subscribe(sub, 7, 0, packets.Subscription{Filter: "other/#"}).ReturnCodes)
			assert.Equal(t, []byte{0}, m5Unsubscribe(sub, 8, "other/#").ReasonCodes)
			require.Empty(t, pingSync(sub), "no PUBLISH beyond the Receive Maximum")

			for len(outstanding) > 0 {
				p := outstanding[0]
				outstanding = outstanding[1:]
				got = append(got, string(p.Payload))
				if qos == 2 {
					m5Send(sub, &packets.Pubrec{PacketID: p.PacketID})
					rel := recvAs[*packets.Pubrel](sub)
					require.Equal(t, p.PacketID, rel.PacketID)
					require.Empty(t, pingSync(sub), "PUBREC does not free a place")
					m5Send(sub, &packets.Pubcomp{PacketID: p.PacketID})
				} else {
					m5Send(sub, &packets.Puback{PacketID: p.PacketID})
				}
				more := m5Publishes(t, pingSync(sub))
				if len(got)+len(outstanding) < len(want) {
					require.Len(t, more, 1, "one place freed, one PUBLISH sent")
				} else {
					require.Empty(t, more)
				}
				outstanding = append(outstanding, more...)
				require.LessOrEqual(t, len(outstanding), 2)
			}
			assert.Equal(t, want, got, "every message, in order")
		})
	}
}

// TestV5FlowServerReceiveMaximum: Tern announces Options.ReceiveMaximum in
// the CONNACK and accepts that many QoS 2 PUBLISHes awaiting PUBREL; one
// more is DISCONNECT 0x93. A PUBREL frees a place; a repeat of an
// identifier awaiting PUBREL takes none; QoS 1 PUBLISHes, acknowledged at
// once, take none.
// [v5 MQTT-3.3.4-7] [v5 MQTT-4.9.0-1]
func TestV5FlowServerReceiveMaximum(t *testing.T) {
	_, addr := startBroker(t, tern.Options{ReceiveMaximum: 2})
	c, ack := m5ConnectAck(t, addr, "srm")
	require.NotNil(t, ack.Properties.ReceiveMaximum)
	assert.Equal(t, uint16(2), *ack.Properties.ReceiveMaximum)
	qos2 := func(id uint16, dup bool) {
		t.Helper()
		m5Send(c, &packets.Publish{Topic: "srm/t", QoS: 2, PacketID: id, Dup: dup, Payload: []byte("x")})
		rec := recvAs[*packets.Pubrec](c)
		require.Equal(t, id, rec.PacketID)
	}
	qos2(1, false)
	qos2(2, false)
	qos2(2, true) // a repeat
	for id := uint16(10); id < 20; id++ {
		require.Equal(t, packets.NoMatchingSubscribers, m5Pub(c, "srm/q1", "x", 1))
	}
	m5Send(c, &packets.Pubrel{PacketID: 1})
	assert.Equal(t, uint16(1), recvAs[*packets.Pubcomp](c).PacketID)
	qos2(3, false)
	m5Send(c, &packets.Publish{Topic: "srm/t", QoS: 2, PacketID: 4, Payload: []byte("one too many")})
	m5ExpectDisconnect(c, packets.ReceiveMaximumExceeded)

	_, def := startBroker(t, tern.Options{})
	_, ack = m5ConnectAck(t, def, "srm-default")
	require.NotNil(t, ack.Properties.ReceiveMaximum)
	assert.Equal(t, uint16(tern.DefaultReceiveMaximum), *ack.Properties.ReceiveMaximum)
}

// TestV5FlowMaximumPacketSize: a message whose PUBLISH would be larger than
// the client's Maximum Packet Size is not sent to that client, live at any
// QoS, queued or retained, and is counted in Stats().PublishDropped; other
// clients get it, and the client gets the messages that fit, in order,
// its window not held by the dropped ones.
// [v5 MQTT-3.1.2-24] [v5 MQTT-3.1.2-25]
func TestV5FlowMaximumPacketSize(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	// A PUBLISH of "mps/t" with no properties to an MQTT 5 client is 10
	// bytes and the payload, 12 at QoS 1 and 2 (the packet identifier):
	// fits(qos) bytes of payload make a packet of 100, the limit.
	fits := func(qos byte) string { return strings.Repeat("f", 90-2*int(min(qos, 1))) }
	over := func(qos byte) string { return fits(qos) + "o" }
	small := m5Connect(t, addr, "mps-small", m5MaxPacket(100), m5RecvMax(1), m5Expiry(600))
	m5Subscribe(small, 1, 0, packets.Subscription{Filter: "mps/#", QoS: 2})
	large := m5Connect(t, addr, "mps-large")
	m5Sub(large, "mps/#", 2)
	pub := m5Connect(t, addr, "mps-pub")

	dropped := b.Stats().PublishDropped
	for _, qos := range []byte{0, 1, 2} {
		m5Pub(pub, "mps/t", over(qos), qos)
		m5Pub(pub, "mps/t", fits(qos), qos)
		m5Expect(large, "mps/t", over(qos), qos)
		m5Expect(large, "mps/t", fits(qos), qos)
		m5Expect(small, "mps/t", fits(qos), qos)
		m5Quiet(small)
	}
	assert.Equal(t, dropped+3, b.Stats().PublishDropped, "one drop per QoS")

	// Queued while offline, and retained.
	m5Bye(small)
	m5WaitOffline(t, b, "mps-small")
	m5Pub(pub, "mps/q", over(1), 1)
	m5Pub(pub, "mps/q", fits(1), 1)
	m5Publish(pub, &packets.Publish{Topic: "mps/r", QoS: 1, PacketID: 1, Retain: true, Payload: []byte(over(1))})
	m5Expect(large, "mps/q", over(1), 1)
	m5Expect(large, "mps/q", fits(1), 1)
	m5Expect(large, "mps/r", over(1), 1)
	m5WaitQueued(t, b, "mps-small", 3)
	dropped = b.Stats().PublishDropped
	small = m5Connect(t, addr, "mps-small", m5MaxPacket(100), m5RecvMax(1), m5Expiry(600), m5Resume())
	m5Expect(small, "mps/q", fits(1), 1)
	m5Quiet(small)
	m5Subscribe(small, 2, 0, packets.Subscription{Filter: "mps/r", QoS: 1})
	m5Quiet(small)
	// Dropped: "mps/q" and "mps/r" from the queue, "mps/r" again when
	// sent for the new subscription.
	assert.Equal(t, dropped+3, b.Stats().PublishDropped)
}

// TestV5FlowOrderedTopics: Tern forwards each client's messages on a topic,
// per QoS, in the order it received them, to every subscriber, through a
// narrow Receive Maximum too.
// [v5 MQTT-4.6.0-5] [v5 MQTT-4.6.0-6]
func TestV5FlowOrderedTopics(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	narrow := m5Connect(t, addr, "ord-narrow", m5RecvMax(3))
	m5Sub(narrow, "ord/t", 2)
	wide := m5Connect(t, addr, "ord-wide")
	m5Sub(wide, "ord/t", 2)
	pubs := []*rawClient{m5Connect(t, addr, "ord-p0"), m5Connect(t, addr, "ord-p1")}
	const n = 60
	for i := range n {
		qos := byte(i % 3)
		m5Pub(pubs[i%2], "ord/t", fmt.Sprintf("p%d q%d %03d", i%2, qos, i), qos)
	}
	for _, c := range []*rawClient{narrow, wide} {
		streams := map[string][]string{}
		for range n {
			p := m5Next(c)
			key := string(p.Payload[:5])
			streams[key] = append(streams[key], string(p.Payload))
			m5Ack(c, p)
		}
		m5Quiet(c)
		for key, s := range streams {
			assert.IsIncreasing(t, s, "%s: one publisher's messages at one QoS", key)
		}
	}
}

// TestV5FlowReceiveMaximumOnReconnect: a client that reconnects with a
// smaller Receive Maximum than the number of PUBLISHes still
// unacknowledged from its last connection is sent only as many again as
// its new Receive Maximum allows, the others as acknowledgements come, in
// order and with their packet identifiers.
// [v5 MQTT-3.3.4-9] [v5 MQTT-4.9.0-1]
func TestV5FlowReceiveMaximumOnReconnect(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := m5Connect(t, addr, "rmr", m5RecvMax(5), m5Expiry(600))
	m5Sub(sub, "rmr/#", 1)
	pub := m5Connect(t, addr, "rmr-pub")
	want := m5Seq("m", 5)
	for _, p := range want {
		m5Pub(pub, "rmr/t", p, 1)
	}
	first := m5Publishes(t, pingSync(sub))
	require.Len(t, first, 5)
	sub.conn.Close()
	m5WaitOffline(t, b, "rmr")
	sub = m5Connect(t, addr, "rmr", m5Resume(), m5RecvMax(2), m5Expiry(600))
	outstanding := m5Publishes(t, pingSync(sub))
	require.Len(t, outstanding, 2, "sent again: no more than the new Receive Maximum")
	var got []string
	for len(outstanding) > 0 {
		p := outstanding[0]
		outstanding = outstanding[1:]
		assert.True(t, p.Dup)
		assert.Equal(t, first[len(got)].PacketID, p.PacketID)
		got = append(got, string(p.Payload))
		m5Ack(sub, p)
		outstanding = append(outstanding, m5Publishes(t, pingSync(sub))...)
		require.LessOrEqual(t, len(outstanding), 2)
	}
	assert.Equal(t, want, got)
}

// TestV5DisconnectReachesAClientStillSending: a client sends one QoS 2
// PUBLISH more than the Receive Maximum without reading, then reads and
// answers each PUBREC with a PUBREL, as the client of the Paho
// interoperability suite's flow-control test does. The DISCONNECT 0x93
// must reach it: after its DISCONNECT the broker closes its side for
// writing and reads, for a bounded time, what the client still sends, so
// that the client's PUBRELs meet no reset, which would discard the
// DISCONNECT before the client reads it.
// [v5 MQTT-3.3.4-7] [v5 MQTT-4.13.1-1]
func TestV5DisconnectReachesAClientStillSending(t *testing.T) {
	const receiveMax = 64
	_, addr := startBroker(t, tern.Options{ReceiveMaximum: receiveMax})
	c, _ := m5ConnectAck(t, addr, "still-sending")
	var batch []byte
	for id := uint16(1); id <= receiveMax+1; id++ {
		b, err := (&packets.Publish{Version: packets.Level5, Topic: "ss/t", QoS: 2, PacketID: id, Payload: []byte("x")}).Append(nil)
		require.NoError(t, err)
		batch = append(batch, b...)
	}
	c.sendRaw(batch)
	recs := 0
	for {
		p, err := c.tryRecv(waitTimeout)
		require.NoError(t, err, "after %d PUBRECs, before the DISCONNECT", recs)
		if d, ok := p.(*packets.Disconnect); ok {
			assert.Equal(t, packets.ReceiveMaximumExceeded, d.ReasonCode)
			break
		}
		rec, ok := p.(*packets.Pubrec)
		require.True(t, ok, "got %s", describePackets(p))
		recs++
		rel, err := (&packets.Pubrel{Version: packets.Level5, PacketID: rec.PacketID}).Append(nil)
		require.NoError(t, err)
		c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
		_, err = c.conn.Write(rel)
		require.NoError(t, err, "PUBREL %d: the connection was reset before the DISCONNECT was read", rec.PacketID)
	}
	assert.Equal(t, receiveMax, recs, "PUBRECs before the DISCONNECT")
	c.expectClosed()
}
