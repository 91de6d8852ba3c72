package tern_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of shared subscriptions, $share/NAME/FILTER (section
// 4.8.2), for MQTT 5 and 3.1.1 members.

// m5Member is one member of a shared subscription, at either protocol
// level.
type m5Member struct {
	name string
	c    *rawClient
	v5   bool
}

// m5Join connects a member and subscribes it to filter at qos.
func m5Join(t *testing.T, addr, id, filter string, qos byte, v5 bool) *m5Member {
	t.Helper()
	m := &m5Member{name: id, v5: v5}
	if v5 {
		m.c = m5Connect(t, addr, id)
		m5Sub(m.c, filter, qos)
	} else {
		m.c = mustConnect(t, addr, id, true)
		ack := m.c.subscribe(1, packets.Subscription{Filter: filter, QoS: qos})
		require.Equal(t, []byte{qos}, ack.ReturnCodes, "SUBACK for %s", id)
	}
	return m
}

// drain returns the PUBLISHes pending for m, acknowledged: everything the
// broker routed to it before it handled m's PINGREQ.
func (m *m5Member) drain(t *testing.T) []*packets.Publish {
	t.Helper()
	var out []*packets.Publish
	for _, p := range pingSync(m.c) {
		switch p := p.(type) {
		case *packets.Publish:
			out = append(out, p)
			if m.v5 {
				m5Ack(m.c, p)
			} else if p.QoS > 0 {
				m.c.send(m5Ack311(p))
			}
		case *packets.Pubrel:
			if m.v5 {
				m5Complete(m.c, p)
			} else {
				m.c.send(&packets.Pubcomp{PacketID: p.PacketID})
			}
		default:
			t.Fatalf("%s: unexpected %s", m.name, describePackets(p))
		}
	}
	return out
}

// m5Ack311 is the first acknowledgement of a PUBLISH from a 3.1.1 client.
func m5Ack311(p *packets.Publish) packets.Packet {
	if p.QoS == 2 {
		return &packets.Pubrec{PacketID: p.PacketID}
	}
	return &packets.Puback{PacketID: p.PacketID}
}

// m5Settle drains members until no PUBREL is left in flight, and returns
// every PUBLISH each got, by member name.
func m5Settle(t *testing.T, ms ...*m5Member) map[string][]*packets.Publish {
	t.Helper()
	got := map[string][]*packets.Publish{}
	for _, m := range ms {
		got[m.name] = append(got[m.name], m.drain(t)...)
		got[m.name] = append(got[m.name], m.drain(t)...) // answers the PUBRELs of the first round
		require.Empty(t, m.drain(t), "%s: nothing left", m.name)
	}
	return got
}

// m5Owners maps each payload to the members that got it, failing if one
// got it twice.
func m5Owners(t *testing.T, got map[string][]*packets.Publish) map[string][]string {
	t.Helper()
	owners := map[string][]string{}
	for name, ps := range got {
		for _, p := range ps {
			owners[string(p.Payload)] = append(owners[string(p.Payload)], name)
		}
	}
	return owners
}

// TestV5SharedEachMessageToOneMember: with every strategy, each message
// goes to exactly one member of a group whose members are MQTT 5 and 3.1.1
// clients, while each group and each non-shared subscription gets its own
// copy. Round-robin takes the members in turn; hash-client keeps one
// publisher's messages on one member, hash-topic one topic's messages.
// [v5 MQTT-4.8.2-1] [v5 MQTT-4.8.2-2] [v5 MQTT-4.8.2-3]
func TestV5SharedEachMessageToOneMember(t *testing.T) {
	for _, st := range []tern.ShareStrategy{tern.ShareRoundRobin, tern.ShareRandom, tern.ShareHashClient, tern.ShareHashTopic} {
		t.Run(st.String(), func(t *testing.T) {
			_, addr := startBroker(t, tern.Options{SharedSubscriptions: st})
			members := []*m5Member{
				m5Join(t, addr, "sh-a", "$share/g/sh/#", 2, true),
				m5Join(t, addr, "sh-b", "$share/g/sh/#", 2, true),
				m5Join(t, addr, "sh-c", "$share/g/sh/#", 2, false),
			}
			other := m5Join(t, addr, "sh-other", "$share/h/sh/+/x", 1, true)
			plain := m5Join(t, addr, "sh-plain", "sh/#", 1, true)
			pubs := []*rawClient{m5Connect(t, addr, "sh-p1"), m5Connect(t, addr, "sh-p2")}
			var sent []string
			for i := range 36 {
				payload := fmt.Sprintf("m%02d", i)
				topic := fmt.Sprintf("sh/%d/x", i%3)
				require.Equal(t, packets.Success, m5Pub(pubs[i%2], topic, payload, byte(i%3)))
				sent = append(sent, payload)
			}
			got := m5Settle(t, members...)
			owners := m5Owners(t, got)
			require.Len(t, owners, len(sent), "every message reached the group")
			for payload, who := range owners {
				assert.Len(t, who, 1, "%s went to %v", payload, who)
			}
			assert.Len(t, m5Settle(t, other)["sh-other"], len(sent), "the other group gets every message")
			assert.Len(t, m5Settle(t, plain)["sh-plain"], len(sent), "a non-shared subscription gets every message")

			byKey := func(key func(i int) int) map[int]map[string]bool {
				out := map[int]map[string]bool{}
				for i, payload := range sent {
					k := key(i)
					if out[k] == nil {
						out[k] = map[string]bool{}
					}
					out[k][owners[payload][0]] = true
				}
				return out
			}
			switch st {
			case tern.ShareRoundRobin:
				for _, m := range members {
					assert.Len(t, got[m.name], len(sent)/len(members), "%s: its turn every third message", m.name)
				}
			case tern.ShareHashClient:
				for k, who := range byKey(func(i int) int { return i % 2 }) {
					assert.Len(t, who, 1, "publisher %d's messages went to %v", k, who)
				}
			case tern.ShareHashTopic:
				for k, who := range byKey(func(i int) int { return i % 3 }) {
					assert.Len(t, who, 1, "topic %d's messages went to %v", k, who)
				}
			}
		})
	}
}

// TestV5SharedMemberGetsItsGrantedQoS: a member granted a lower QoS than
// the message gets the message at its own QoS.
// [v5 MQTT-4.8.2-3]
func TestV5SharedMemberGetsItsGrantedQoS(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	low := m5Join(t, addr, "q-low", "$share/g/q/t", 0, true)
	mid := m5Join(t, addr, "q-mid", "$share/g/q/t", 1, false)
	high := m5Join(t, addr, "q-high", "$share/g/q/t", 2, true)
	pub := m5Connect(t, addr, "q-pub")
	for i := range 6 {
		m5Pub(pub, "q/t", fmt.Sprint(i), 2)
	}
	got := m5Settle(t, low, mid, high)
	require.Len(t, m5Owners(t, got), 6)
	for name, want := range map[string]byte{"q-low": 0, "q-mid": 1, "q-high": 2} {
		require.NotEmpty(t, got[name], name)
		for _, p := range got[name] {
			assert.Equal(t, want, p.QoS, "%s", name)
		}
	}
}

// TestV5SharedMessagesOfAnEndedSessionGoToAnotherMember: when a member's
// session ends, the QoS 1 messages it had not acknowledged and the
// messages queued for it go to another member; a QoS 2 message it had
// started to receive does not [v5 MQTT-4.8.2-5]. A member whose session
// lasts gets its QoS 2 message again when it reconnects, and no one else
// does [v5 MQTT-4.8.2-4]. A message a member refused with PUBACK 0x80 is
// discarded, never given to another member [v5 MQTT-4.8.2-6].
func TestV5SharedMessagesOfAnEndedSessionGoToAnotherMember(t *testing.T) {
	t.Run("session ends", func(t *testing.T) {
		b, addr := startBroker(t, tern.Options{})
		a := m5Connect(t, addr, "end-a", m5RecvMax(2))
		m5Sub(a, "$share/g/end/t", 2)
		pub := m5Connect(t, addr, "end-pub")
		m5Pub(pub, "end/t", "qos1 in flight", 1)
		m5Pub(pub, "end/t", "qos2 in flight", 2)
		m5Pub(pub, "end/t", "queued", 2)
		expectPublish(a, "end/t", "qos1 in flight", 1)
		expectPublish(a, "end/t", "qos2 in flight", 2)
		m5WaitQueued(t, b, "end-a", 1)
		other := m5Join(t, addr, "end-b", "$share/g/end/t", 2, true)
		a.conn.Close() // Session Expiry 0: the session ends
		m5Expect(other.c, "end/t", "qos1 in flight", 1)
		m5Expect(other.c, "end/t", "queued", 2)
		m5Quiet(other.c)
	})
	t.Run("session lasts", func(t *testing.T) {
		b, addr := startBroker(t, tern.Options{})
		a := m5Connect(t, addr, "last-a", m5Expiry(600))
		m5Sub(a, "$share/g/last/t", 2)
		pub := m5Connect(t, addr, "last-pub")
		m5Pub(pub, "last/t", "qos2", 2)
		first := expectPublish(a, "last/t", "qos2", 2)
		other := m5Join(t, addr, "last-b", "$share/g/last/t", 2, true)
		a.conn.Close()
		m5WaitOffline(t, b, "last-a")
		m5Quiet(other.c)
		a = m5Connect(t, addr, "last-a", m5Resume(), m5Expiry(600))
		again := expectPublish(a, "last/t", "qos2", 2)
		assert.True(t, again.Dup)
		assert.Equal(t, first.PacketID, again.PacketID)
		m5Ack(a, again)
		m5Quiet(a)
		m5Quiet(other.c)
	})
	t.Run("refused by the member", func(t *testing.T) {
		_, addr := startBroker(t, tern.Options{})
		a := m5Connect(t, addr, "ref-a")
		m5Sub(a, "$share/g/ref/t", 2)
		pub := m5Connect(t, addr, "ref-pub")
		m5Pub(pub, "ref/t", "one", 1)
		m5Pub(pub, "ref/t", "two", 2)
		one := expectPublish(a, "ref/t", "one", 1)
		two := expectPublish(a, "ref/t", "two", 2)
		other := m5Join(t, addr, "ref-b", "$share/g/ref/t", 2, true)
		m5Send(a, &packets.Puback{PacketID: one.PacketID, ReasonCode: packets.UnspecifiedError})
		m5Send(a, &packets.Pubrec{PacketID: two.PacketID, ReasonCode: packets.UnspecifiedError})
		m5Quiet(a)
		a.conn.Close()
		m5Pub(pub, "ref/t", "marker", 1) // the only member left gets it
		m5Expect(other.c, "ref/t", "marker", 1)
		m5Quiet(other.c)
	})
}

// TestV5SharedNoRetainedMessagesOnSubscribe: a shared subscription gets no
// retained messages when it is made (section 4.8.2); a non-shared one does.
func TestV5SharedNoRetainedMessagesOnSubscribe(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	pub := m5Connect(t, addr, "ret-pub")
	m5Publish(pub, &packets.Publish{Topic: "sr/t", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("kept")})
	v5 := m5Join(t, addr, "sr-v5", "$share/g/sr/#", 1, true)
	v311 := m5Join(t, addr, "sr-311", "$share/h/sr/#", 1, false)
	assert.Empty(t, v5.drain(t))
	assert.Empty(t, v311.drain(t))
	plain := m5Connect(t, addr, "sr-plain")
	m5Sub(plain, "sr/#", 1)
	m5Expect(plain, "sr/t", "kept", 1)
}

// TestV5SharedInvalidNamesRefused: a $share filter without a share name of
// at least one character free of '/', '+' and '#', or without a valid
// filter after it, gets SUBACK 0x8F from an MQTT 5 client (the other
// filters of the SUBSCRIBE are granted), and closes a 3.1.1 client's
// connection.
// [v5 MQTT-4.8.2-1] [v5 MQTT-4.8.2-2]
func TestV5SharedInvalidNamesRefused(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	invalid := []string{"$share/", "$share//t", "$share/g", "$share/g/", "$share/g+/t", "$share/#/t", "$share/g/a/#/b", "$share/g/a+"}
	c := m5Connect(t, addr, "share-names")
	subs := []packets.Subscription{{Filter: "$share/ok/#", QoS: 1}}
	want := []byte{1}
	for _, f := range invalid {
		subs = append(subs, packets.Subscription{Filter: f, QoS: 1})
		want = append(want, byte(packets.TopicFilterInvalid))
	}
	ack := m5Subscribe(c, 1, 0, subs...)
	assert.Equal(t, want, ack.ReturnCodes)
	for _, f := range invalid {
		t.Run("3.1.1 "+f, func(t *testing.T) {
			c := mustConnect(t, addr, "share-names-311", true)
			c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: f, QoS: 1}}})
			c.expectClosed()
		})
	}
}

// TestV5SharedNoLocalIsAProtocolError: No Local on a shared subscription
// ends the connection with DISCONNECT 0x82.
// [v5 MQTT-3.8.3-4]
func TestV5SharedNoLocalIsAProtocolError(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	c := m5Connect(t, addr, "share-nolocal")
	c.send(&packets.Subscribe{Version: packets.Level5, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "$share/g/t", QoS: 1}}})
	recvAs[*packets.Suback](c)
	// The encoder refuses No Local on a shared subscription: by hand.
	c.sendRaw(packetBytes(0x82, []byte{0, 2, 0}, mqttString("$share/g/t"), []byte{0x04 | 1}))
	m5ExpectDisconnect(c, packets.ProtocolError)
}

// TestV5SharedUnsubscribeLeavesTheGroup: after a member unsubscribes every
// message goes to the others; subscribing again rejoins.
// [v5 MQTT-3.10.4-1] [v5 MQTT-3.10.4-2]
func TestV5SharedUnsubscribeLeavesTheGroup(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	a := m5Join(t, addr, "leave-a", "$share/g/leave/t", 1, true)
	b311 := m5Join(t, addr, "leave-b", "$share/g/leave/t", 1, false)
	pub := m5Connect(t, addr, "leave-pub")
	publish := func(n int, prefix string) {
		for i := range n {
			m5Pub(pub, "leave/t", fmt.Sprint(prefix, i), 1)
		}
	}
	publish(4, "both")
	got := m5Settle(t, a, b311)
	assert.Len(t, got["leave-a"], 2)
	assert.Len(t, got["leave-b"], 2)

	assert.Equal(t, []byte{0}, m5Unsubscribe(a.c, 2, "$share/g/leave/t").ReasonCodes)
	publish(4, "b only")
	got = m5Settle(t, a, b311)
	assert.Empty(t, got["leave-a"])
	assert.Len(t, got["leave-b"], 4)

	m5Sub(a.c, "$share/g/leave/t", 1)
	publish(4, "again")
	got = m5Settle(t, a, b311)
	assert.Len(t, got["leave-a"], 2)
	assert.Len(t, got["leave-b"], 2)
}

// TestV5SharedAndOwnSubscriptionSendTwoCopies: a client with a shared and
// a non-shared subscription matching a message gets one copy through each,
// each with its own Subscription Identifier.
// [v5 MQTT-3.3.4-5]
func TestV5SharedAndOwnSubscriptionSendTwoCopies(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	c := m5Connect(t, addr, "two-copies")
	m5Subscribe(c, 1, 1, packets.Subscription{Filter: "$share/g/two/t", QoS: 1})
	m5Subscribe(c, 2, 2, packets.Subscription{Filter: "two/+", QoS: 1})
	pub := m5Connect(t, addr, "two-pub")
	m5Pub(pub, "two/t", "m", 1)
	var ids []uint32
	for range 2 {
		p := m5Expect(c, "two/t", "m", 1)
		require.Len(t, p.Props.SubscriptionIDs, 1)
		ids = append(ids, p.Props.SubscriptionIDs[0])
	}
	assert.ElementsMatch(t, []uint32{1, 2}, ids)
	m5Quiet(c)
}

// TestV5SharedExpiredMessagesNotRedistributed: a message queued for a
// member whose session ends, and whose Message Expiry Interval has passed
// since, is not given to another member.
// [v5 MQTT-3.3.2-5]
func TestV5SharedExpiredMessagesNotRedistributed(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	a := m5Connect(t, addr, "exp-a", m5RecvMax(1))
	m5Sub(a, "$share/g/sx/t", 1)
	pub := m5Connect(t, addr, "exp-pub")
	m5Pub(pub, "sx/t", "in flight", 1)
	m5Publish(pub, &packets.Publish{Topic: "sx/t", QoS: 1, PacketID: 2, Payload: []byte("expires"),
		Props: packets.PublishProps{HasMessageExpiry: true, MessageExpiry: 1}})
	m5Publish(pub, &packets.Publish{Topic: "sx/t", QoS: 1, PacketID: 3, Payload: []byte("lasts"),
		Props: packets.PublishProps{HasMessageExpiry: true, MessageExpiry: 600}})
	expectPublish(a, "sx/t", "in flight", 1)
	m5WaitQueued(t, b, "exp-a", 2)
	other := m5Join(t, addr, "exp-b", "$share/g/sx/t", 1, true)
	<-time.After(1500 * time.Millisecond) // lets the 1 s interval pass: the time under test
	a.conn.Close()
	m5Expect(other.c, "sx/t", "in flight", 1)
	m5Expect(other.c, "sx/t", "lasts", 1)
	m5Quiet(other.c)
}

// TestV5SharedWildcardsSkipDollarTopics: the filter of a shared
// subscription starting with a wildcard matches no topic starting with
// '$'.
// [v5 MQTT-4.7.2-1]
func TestV5SharedWildcardsSkipDollarTopics(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	all := m5Join(t, addr, "dollar-all", "$share/g/#", 1, true)
	plus := m5Join(t, addr, "dollar-plus", "$share/h/+/x", 1, false)
	dollar := m5Join(t, addr, "dollar-own", "$share/i/$app/#", 1, true)
	pub := m5Connect(t, addr, "dollar-pub")
	m5Pub(pub, "$app/x", "dollar", 1)
	m5Pub(pub, "app/x", "plain", 1)
	for _, m := range []*m5Member{all, plus} {
		got := m.drain(t)
		require.Len(t, got, 1, m.name)
		assert.Equal(t, "plain", string(got[0].Payload), m.name)
	}
	got := dollar.drain(t)
	require.Len(t, got, 1)
	assert.Equal(t, "dollar", string(got[0].Payload))
}

// TestV5SharedMessagesSurviveRestartForRedistribution: after a restart
// (memory store), the messages a member held for a shared subscription
// still belong to it: when the member's session then ends, they go to
// another member.
func TestV5SharedMessagesSurviveRestartForRedistribution(t *testing.T) {
	e := psStart(t, m5Memory(), tern.Options{})
	a := m5Connect(t, e.addr, "rs-a", m5RecvMax(1), m5Expiry(600))
	m5Sub(a, "$share/g/rs/t", 1)
	pub := m5Connect(t, e.addr, "rs-pub")
	m5Pub(pub, "rs/t", "in flight", 1)
	m5Pub(pub, "rs/t", "queued", 1)
	expectPublish(a, "rs/t", "in flight", 1)
	m5WaitQueued(t, e.b, "rs-a", 1)
	e.restart()
	other := m5Join(t, e.addr, "rs-b", "$share/g/rs/t", 1, true)
	// Clean Start: rs-a's session ends now.
	m5Connect(t, e.addr, "rs-a")
	m5Expect(other.c, "rs/t", "in flight", 1)
	m5Expect(other.c, "rs/t", "queued", 1)
	m5Quiet(other.c)
}
