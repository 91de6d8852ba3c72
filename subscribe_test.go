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

// TestSubscribeMalformedClosesConnection: bad fixed header flags, no
// filter, a requested QoS byte with reserved bits or QoS 3, packet
// identifier 0, and filters that break the topic rules close the
// connection without SUBACK (invalid filters: Tern's choice, as Mosquitto).
// [MQTT-3.8.1-1] [MQTT-3.8.3-3] [MQTT-3-8.3-4] [MQTT-3.8.3-1]
// [MQTT-2.3.1-1] [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1] [MQTT-4.7.3-2]
func TestSubscribeMalformedClosesConnection(t *testing.T) {
	sub := func(first byte, id uint16, pairs ...string) []byte {
		parts := [][]byte{wireID(id)}
		for _, f := range pairs {
			filter, qos, _ := strings.Cut(f, "|")
			parts = append(parts, wireString(filter), []byte{qos[0] - '0'})
		}
		return wirePacket(first, parts...)
	}
	withQoSByte := func(q byte) []byte { return wirePacket(0x82, wireID(1), wireString("a/b"), []byte{q}) }
	cases := []struct {
		rule, name string
		pkt        []byte
	}{
		{"MQTT-3.8.1-1", "flags 0000", sub(0x80, 1, "a|0")},
		{"MQTT-3.8.1-1", "flags 0011", sub(0x83, 1, "a|0")},
		{"MQTT-3.8.1-1", "flags 1010", sub(0x8A, 1, "a|0")},
		{"MQTT-3.8.1-1", "flags 0110", sub(0x86, 1, "a|0")},
		{"MQTT-3.8.3-3", "no filter", sub(0x82, 1)},
		{"MQTT-3-8.3-4", "QoS 3", withQoSByte(3)},
		{"MQTT-3-8.3-4", "reserved bit 2", withQoSByte(0x04)},
		{"MQTT-3-8.3-4", "reserved bit 7 with QoS 1", withQoSByte(0x81)},
		{"MQTT-3-8.3-4", "reserved bits in the second pair", sub(0x82, 1, "a|0", "b|:")},
		{"MQTT-3-8.3-4", "QoS byte missing", wirePacket(0x82, wireID(1), wireString("a/b"))},
		{"MQTT-2.3.1-1", "packet id 0", sub(0x82, 0, "a|0")},
		{"MQTT-3.8.3-1", "ill-formed UTF-8 filter", sub(0x82, 1, "a/\xc3|0")},
		{"MQTT-4.7.1-2", "# not last", sub(0x82, 1, "a/#/b|0")},
		{"MQTT-4.7.1-2", "# inside a level", sub(0x82, 1, "a#|0")},
		{"MQTT-4.7.1-3", "+ inside a level", sub(0x82, 1, "a/b+|0")},
		{"MQTT-4.7.1-3", "+ inside a level, second filter", sub(0x82, 1, "ok|1", "+a|0")},
		{"MQTT-4.7.3-1", "empty filter", sub(0x82, 1, "|0")},
		{"MQTT-4.7.3-2", "U+0000 in filter", sub(0x82, 1, "a\x00|0")},
	}
	b, addr := startBroker(t, tern.Options{})
	for _, tc := range cases {
		t.Run(tc.rule+" "+tc.name, func(t *testing.T) {
			c := mustConnect(t, addr, "bad", true)
			c.sendRaw(tc.pkt)
			c.expectClosed()
		})
	}
	assert.Zero(t, b.Stats().Subscriptions, "subscriptions left by refused SUBSCRIBE packets")
}

// refuseFilters refuses subscriptions to filters under "secret/".
type refuseFilters struct{}

func (refuseFilters) AuthorizeSubscribe(_ context.Context, _ tern.Client, filter string, _ byte) error {
	if strings.HasPrefix(filter, "secret/") {
		return tern.ErrNotAuthorized
	}
	return nil
}

// TestSubackSameIDOneCodePerFilterInOrder: SUBACK carries the SUBSCRIBE's
// identifier and one allowed return code per filter, in order; a refused
// filter gets 0x80 without affecting the others.
// [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-5] [MQTT-3.9.3-1] [MQTT-3.9.3-2]
// [MQTT-2.3.1-7]
func TestSubackSameIDOneCodePerFilterInOrder(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	require.NoError(t, b.AddHook(refuseFilters{}))
	c := mustConnect(t, addr, "c", true)
	cases := []struct {
		id   uint16
		subs []packets.Subscription
		want []byte
	}{
		{1, []packets.Subscription{{Filter: "a", QoS: 0}}, []byte{0}},
		{0xBEEF, []packets.Subscription{{Filter: "x/+", QoS: 2}, {Filter: "y", QoS: 0}, {Filter: "z/#", QoS: 1}}, []byte{2, 0, 1}},
		{0xFFFF, []packets.Subscription{{Filter: "secret/a", QoS: 1}, {Filter: "open", QoS: 2}, {Filter: "secret/#", QoS: 0}}, []byte{0x80, 2, 0x80}},
	}
	for _, tc := range cases {
		ack := c.subscribe(tc.id, tc.subs...)
		assert.Equal(t, tc.id, ack.PacketID, "SUBSCRIBE %d %v: SUBACK packet identifier", tc.id, tc.subs)
		assert.Equal(t, tc.want, ack.ReturnCodes, "SUBSCRIBE %d %v: SUBACK return codes", tc.id, tc.subs)
	}
	assert.Equal(t, 5, clientInfo(t, b, "c").Subscriptions, "subscriptions (refused filters not subscribed)")
}

// TestSubscribeWithSeveralFiltersActsAsSeveral: each filter of one
// SUBSCRIBE is a subscription of its own, with its retained messages;
// a repeated filter in the same packet replaces the earlier one.
// [MQTT-3.8.4-4] [MQTT-3.8.4-3]
func TestSubscribeWithSeveralFiltersActsAsSeveral(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "a/1", "ra", 1, true)
	pub.publishQoS(2, "b/x/y", "rb", 1, true)
	c := mustConnect(t, addr, "c", true)
	ack := c.subscribe(9,
		packets.Subscription{Filter: "a/+", QoS: 1},
		packets.Subscription{Filter: "b/#", QoS: 0},
		packets.Subscription{Filter: "d", QoS: 0},
		packets.Subscription{Filter: "d", QoS: 2},
	)
	require.Equal(t, []byte{1, 0, 0, 2}, ack.ReturnCodes, "SUBACK return codes")
	got := map[string]bool{}
	for _, p := range pingSync(c) {
		pp, ok := p.(*packets.Publish)
		require.True(t, ok && pp.Retain, "expected retained PUBLISH packets, got %s", describePackets(p))
		got[pp.Topic+"="+string(pp.Payload)] = true
		ackDelivery(c, pp)
	}
	require.Equal(t, map[string]bool{"a/1=ra": true, "b/x/y=rb": true}, got, "retained messages")
	require.Equal(t, 3, clientInfo(t, b, "c").Subscriptions, "subscriptions")
	pub.publishQoS(3, "a/2", "la", 2, false)
	ackDelivery(c, expectPublish(c, "a/2", "la", 1))
	pub.publishQoS(4, "b/z", "lb", 2, false)
	expectPublish(c, "b/z", "lb", 0)
	pub.publishQoS(5, "d", "ld", 2, false)
	ackDelivery(c, expectPublish(c, "d", "ld", 2))
	expectQuiet(c)
}

// TestResubscribeReplacesQoS: subscribing again to an identical filter
// replaces the subscription (one subscription, the new QoS, one copy).
// [MQTT-3.8.4-3]
func TestResubscribeReplacesQoS(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	c := mustConnect(t, addr, "c", true)
	pub := mustConnect(t, addr, "pub", true)
	for i, qos := range []byte{2, 0, 1} {
		ack := c.subscribe(uint16(i+1), packets.Subscription{Filter: "re/+", QoS: qos})
		require.Equal(t, qos, ack.ReturnCodes[0], "granted QoS")
		require.Equal(t, 1, clientInfo(t, b, "c").Subscriptions, "subscriptions after subscribing again")
		pub.publishQoS(1, "re/x", "v", 2, false)
		ackDelivery(c, expectPublish(c, "re/x", "v", qos))
		expectQuiet(c)
	}
}

// TestResubscribeResendsRetainedWithoutInterruptingFlow: subscribing again
// to the same filter resends the retained messages with RETAIN set, and
// live messages keep flowing.
// [MQTT-3.8.4-3] [MQTT-3.3.1-6] [MQTT-3.3.1-8]
func TestResubscribeResendsRetainedWithoutInterruptingFlow(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "st/a", "state", 1, true)
	c := mustConnect(t, addr, "c", true)
	for i := 0; i < 3; i++ {
		c.subscribe(uint16(i+1), packets.Subscription{Filter: "st/#", QoS: 1})
		p := expectPublish(c, "st/a", "state", 1)
		require.True(t, p.Retain, "subscription %d: retained message sent with RETAIN 0", i)
		ackDelivery(c, p)
		pub.publishQoS(2, "st/b", fmt.Sprint("live", i), 1, false)
		p = expectPublish(c, "st/b", fmt.Sprint("live", i), 1)
		require.False(t, p.Retain, "live message sent with RETAIN 1")
		ackDelivery(c, p)
	}
	expectQuiet(c)
}

// TestUnsubscribeMalformedClosesConnection: bad fixed header flags, no
// filter, packet identifier 0 and ill-formed filters close the connection
// without UNSUBACK.
// [MQTT-3.10.1-1] [MQTT-3.10.3-2] [MQTT-3.10.3-1] [MQTT-2.3.1-1]
func TestUnsubscribeMalformedClosesConnection(t *testing.T) {
	cases := []struct {
		rule, name string
		pkt        []byte
	}{
		{"MQTT-3.10.1-1", "flags 0000", wirePacket(0xA0, wireID(1), wireString("a"))},
		{"MQTT-3.10.1-1", "flags 0011", wirePacket(0xA3, wireID(1), wireString("a"))},
		{"MQTT-3.10.1-1", "flags 1010", wirePacket(0xAA, wireID(1), wireString("a"))},
		{"MQTT-3.10.3-2", "no filter", wirePacket(0xA2, wireID(1))},
		{"MQTT-3.10.3-1", "ill-formed UTF-8", wirePacket(0xA2, wireID(1), wireString("\xfe"))},
		{"MQTT-3.10.3-1", "truncated filter", wirePacket(0xA2, wireID(1), []byte{0, 5, 'a'})},
		{"MQTT-2.3.1-1", "packet id 0", wirePacket(0xA2, wireID(0), wireString("a"))},
		{"MQTT-4.7.3-1", "empty filter", wirePacket(0xA2, wireID(1), wireString(""))},
		{"MQTT-4.7.1-2", "invalid wildcard", wirePacket(0xA2, wireID(1), wireString("a/#/b"))},
	}
	_, addr := startBroker(t, tern.Options{})
	for _, tc := range cases {
		t.Run(tc.rule+" "+tc.name, func(t *testing.T) {
			c := mustConnect(t, addr, "bad", true)
			c.sendRaw(tc.pkt)
			c.expectClosed()
		})
	}
}

// unsubscribe sends UNSUBSCRIBE and requires an UNSUBACK with its id.
func unsubscribe(c *rawClient, id uint16, filters ...string) {
	c.t.Helper()
	c.send(&packets.Unsubscribe{PacketID: id, Filters: filters})
	require.Equal(c.t, id, recvAs[*packets.Unsuback](c).PacketID, "UNSUBACK packet identifier")
}

// TestUnsubscribeStopsDeliveryForExactFilterOnly: an UNSUBSCRIBE filter
// removes only the subscription with the identical filter (no wildcard
// matching between filters); UNSUBACK comes with the same identifier even
// when nothing was removed; several filters act as several UNSUBSCRIBEs.
// [MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-4] [MQTT-3.10.4-5]
// [MQTT-3.10.4-6] [MQTT-2.3.1-7]
func TestUnsubscribeStopsDeliveryForExactFilterOnly(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	c := mustConnect(t, addr, "c", true)
	c.subscribe(1, packets.Subscription{Filter: "u/+", QoS: 0}, packets.Subscription{Filter: "u/b", QoS: 0},
		packets.Subscription{Filter: "v", QoS: 0}, packets.Subscription{Filter: "w", QoS: 0})
	pub := mustConnect(t, addr, "pub", true)
	delivered := func(topic string) bool {
		t.Helper()
		pub.publishQoS(1, topic, "x", 1, false)
		got := pingSync(c)
		return len(got) == 1
	}

	unsubscribe(c, 0x4242, "u/#", "nothing/here", "U/B") // [MQTT-3.10.4-5] nothing removed
	require.Equal(t, 4, clientInfo(t, b, "c").Subscriptions, "subscriptions")
	unsubscribe(c, 7, "u/+")
	require.True(t, delivered("u/b"), "u/b not delivered after unsubscribing only u/+")
	require.False(t, delivered("u/c"), "u/c delivered after unsubscribing u/+")
	unsubscribe(c, 8, "u/b")
	require.False(t, delivered("u/b"), "u/b delivered after unsubscribing u/b")
	unsubscribe(c, 0xFFFF, "v", "w") // [MQTT-3.10.4-6]
	require.False(t, delivered("v") || delivered("w"), "delivered after unsubscribing v and w in one packet")
	assert.Zero(t, clientInfo(t, b, "c").Subscriptions, "subscriptions")
}

// TestUnsubscribeCompletesDeliveriesInFlight: messages already sent at
// QoS 1 and 2 are completed after the subscription is deleted.
// [MQTT-3.10.4-3]
func TestUnsubscribeCompletesDeliveriesInFlight(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	c := mustConnect(t, addr, "c", true)
	c.subscribe(1, packets.Subscription{Filter: "f/#", QoS: 2})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "f/1", "one", 1, false)
	pub.publishQoS(2, "f/2", "two", 2, false)
	p1 := expectPublish(c, "f/1", "one", 1)
	p2 := expectPublish(c, "f/2", "two", 2)
	unsubscribe(c, 3, "f/#")
	require.Equal(t, 2, clientInfo(t, b, "c").Inflight, "in flight after UNSUBSCRIBE")
	ackDelivery(c, p1)
	ackDelivery(c, p2) // PUBREL still comes for the QoS 2 message
	expectQuiet(c)
	assert.Zero(t, clientInfo(t, b, "c").Inflight, "in flight after the acknowledgements")
}

// TestTopicMatchingThroughTheBroker: the matching rules of section 4.7 as a
// subscriber sees them, including '$' topics that wildcards at the first
// level do not match, and no normalisation of names or filters.
// [MQTT-4.7.2-1] [MQTT-4.7.3-4] [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-3.3.2-3]
// [MQTT-4.5.0-1]
func TestTopicMatchingThroughTheBroker(t *testing.T) {
	cases := []struct {
		filter, topic string
		match         bool
	}{
		{"sport/#", "sport", true},
		{"sport/#", "sport/tennis/player1/score", true},
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+/tennis/#", "sport/tennis", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"#", "$SYS/x", false},
		{"#", "$share/x", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"+", "$SYS", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"a/#", "a/$b", true},
		{"ACCOUNTS", "Accounts", false},
		{"Accounts payable", "Accounts payable", true},
		{"/finance", "finance", false},
		{"finance/", "finance", false},
		{"caf\u00e9", "cafe\u0301", false},
		{"caf\u00e9", "caf\u00e9", true},
	}
	_, addr := startBroker(t, tern.Options{})
	c := mustConnect(t, addr, "c", true)
	pub := mustConnect(t, addr, "pub", true)
	for i, tc := range cases {
		c.subscribe(uint16(i+1), packets.Subscription{Filter: tc.filter, QoS: 1})
		pub.publishQoS(1, tc.topic, "m", 1, false)
		got := pingSync(c)
		if tc.match {
			assert.Len(t, got, 1, "filter %q topic %q: got %s, want one PUBLISH", tc.filter, tc.topic, describePackets(got...))
		} else {
			assert.Empty(t, got, "filter %q topic %q: got %s, want none", tc.filter, tc.topic, describePackets(got...))
		}
		for _, p := range got {
			if pp, ok := p.(*packets.Publish); ok {
				assert.Equal(t, tc.topic, pp.Topic, "delivered topic")
				ackDelivery(c, pp)
			}
		}
		unsubscribe(c, uint16(i+1), tc.filter)
	}
}

// TestSysTopicsNotMatchedByLeadingWildcards: the broker's own $SYS topics
// reach "$SYS/#" but not "#" or "+/broker/#".
// [MQTT-4.7.2-1]
func TestSysTopicsNotMatchedByLeadingWildcards(t *testing.T) {
	_, addr := startBroker(t, tern.Options{SysInterval: time.Hour})
	c := mustConnect(t, addr, "c", true)
	c.subscribe(1, packets.Subscription{Filter: "#", QoS: 0}, packets.Subscription{Filter: "+/broker/#", QoS: 0})
	expectQuiet(c)
	c.subscribe(2, packets.Subscription{Filter: "$SYS/#", QoS: 0})
	got := pingSync(c)
	require.NotEmpty(t, got, `no retained $SYS message for "$SYS/#"`)
	for _, p := range got {
		pp, ok := p.(*packets.Publish)
		require.True(t, ok && strings.HasPrefix(pp.Topic, "$SYS/broker/") && pp.Retain, "got %s, want retained $SYS/broker/ messages", describePackets(p))
	}
}

// retainedOnSubscribe subscribes c to filter at qos and returns the
// retained messages sent for it (by topic), each acknowledged.
func retainedOnSubscribe(c *rawClient, id uint16, filter string, qos byte) map[string]*packets.Publish {
	c.t.Helper()
	c.subscribe(id, packets.Subscription{Filter: filter, QoS: qos})
	out := map[string]*packets.Publish{}
	for _, p := range pingSync(c) {
		pp, ok := p.(*packets.Publish)
		require.True(c.t, ok, "expected PUBLISH, got %s", describePackets(p))
		require.NotContains(c.t, out, pp.Topic, "two retained messages for %q", pp.Topic)
		out[pp.Topic] = pp
		ackDelivery(c, pp)
	}
	return out
}

// TestRetainedMessageSentToNewSubscriptionWithRetainSet: the last retained
// message of each matching topic is stored with its QoS and sent to a new
// subscription with RETAIN 1, at the minimum of that QoS and the granted one.
// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.8.4-6]
func TestRetainedMessageSentToNewSubscriptionWithRetainSet(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "r/a", "A1", 1, true)
	pub.publishQoS(2, "r/a", "A2", 1, true)
	pub.publishQoS(3, "r/b", "B", 2, true)
	pub.publishQoS(4, "r/c", "C", 0, true)
	pub.publishQoS(5, "other", "O", 1, true)
	expectQuiet(pub)
	require.Equal(t, 4, b.Stats().Retained, "retained messages")
	for granted := byte(0); granted <= 2; granted++ {
		c := mustConnect(t, addr, fmt.Sprint("c", granted), true)
		got := retainedOnSubscribe(c, 1, "r/+", granted)
		want := map[string]struct {
			payload string
			qos     byte
		}{"r/a": {"A2", 1}, "r/b": {"B", 2}, "r/c": {"C", 0}}
		require.Len(t, got, len(want), "granted %d: retained messages", granted)
		for topic, w := range want {
			p := got[topic]
			if !assert.NotNil(t, p, "granted %d, %s: no retained message", granted, topic) {
				continue
			}
			assert.Equal(t, w.payload, string(p.Payload), "granted %d, %s: payload", granted, topic)
			assert.Equal(t, min(w.qos, granted), p.QoS, "granted %d, %s: QoS", granted, topic)
			assert.True(t, p.Retain, "granted %d, %s: want RETAIN 1", granted, topic)
			assert.False(t, p.Dup, "granted %d, %s: want DUP 0", granted, topic)
		}
	}
}

// TestRetainedFlagClearedOnLiveDelivery: a message published with RETAIN 1
// goes to established subscriptions with RETAIN 0.
// [MQTT-3.3.1-9]
func TestRetainedFlagClearedOnLiveDelivery(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	c := mustConnect(t, addr, "c", true)
	c.subscribe(1, packets.Subscription{Filter: "live/#", QoS: 2})
	pub := mustConnect(t, addr, "pub", true)
	for qos := byte(0); qos <= 2; qos++ {
		pub.publishQoS(uint16(qos+1), "live/x", fmt.Sprint(qos), qos, true)
		p := expectPublish(c, "live/x", fmt.Sprint(qos), qos)
		assert.False(t, p.Retain, "QoS %d: live delivery has RETAIN 1", qos)
		ackDelivery(c, p)
	}
}

// TestRetainedZeroLengthClearsTopicAndIsForwarded: an empty retained
// message is forwarded as usual (RETAIN 0) and removes the retained message
// of its topic without being stored itself.
// [MQTT-3.3.1-10] [MQTT-3.3.1-11]
func TestRetainedZeroLengthClearsTopicAndIsForwarded(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	c := mustConnect(t, addr, "c", true)
	c.subscribe(1, packets.Subscription{Filter: "z/#", QoS: 1})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "z/a", "state", 1, true)
	ackDelivery(c, expectPublish(c, "z/a", "state", 1))
	for i, topic := range []string{"z/a", "z/never-retained"} {
		pub.publishQoS(uint16(i+2), topic, "", 1, true)
		p := expectPublish(c, topic, "", 1)
		assert.False(t, p.Retain, "%s: empty retained message forwarded with RETAIN 1", topic)
		ackDelivery(c, p)
	}
	require.Zero(t, b.Stats().Retained, "retained messages")
	late := mustConnect(t, addr, "late", true)
	assert.Empty(t, retainedOnSubscribe(late, 1, "z/#", 1), "a new subscriber got retained messages after they were cleared")
}

// TestRetainedQoS0ReplacesPrevious: a retained QoS 0 message replaces the
// retained message of its topic; Tern stores it.
// [MQTT-3.3.1-7] [MQTT-3.3.1-5]
func TestRetainedQoS0ReplacesPrevious(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "q0r", "old", 2, true)
	pub.publishQoS(0, "q0r", "new", 0, true)
	pingSync(pub) // the QoS 0 publish is handled before anyone subscribes
	c := mustConnect(t, addr, "c", true)
	got := retainedOnSubscribe(c, 1, "q0r", 2)
	require.Len(t, got, 1, "want only q0r=new at QoS 0 with RETAIN 1")
	p := got["q0r"]
	require.NotNil(t, p, "retained %v, want only q0r=new at QoS 0 with RETAIN 1", got)
	assert.Equal(t, "new", string(p.Payload), "want only q0r=new at QoS 0 with RETAIN 1")
	assert.Zero(t, p.QoS, "want only q0r=new at QoS 0 with RETAIN 1")
	assert.True(t, p.Retain, "want only q0r=new at QoS 0 with RETAIN 1")
}

// TestRetainedUntouchedByNonRetainedPublish: a PUBLISH with RETAIN 0, even
// with an empty payload, neither stores nor removes a retained message.
// [MQTT-3.3.1-12]
func TestRetainedUntouchedByNonRetainedPublish(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "k/a", "keep", 1, true)
	pub.publishQoS(2, "k/a", "live", 1, false)
	pub.publishQoS(3, "k/a", "", 2, false)
	pub.publishQoS(0, "k/b", "not stored", 0, false)
	expectQuiet(pub)
	require.Equal(t, 1, b.Stats().Retained, "retained messages")
	c := mustConnect(t, addr, "c", true)
	got := retainedOnSubscribe(c, 1, "k/#", 2)
	require.Len(t, got, 1, "want only k/a=keep at QoS 1")
	p := got["k/a"]
	require.NotNil(t, p, "retained %v, want only k/a=keep at QoS 1", got)
	assert.Equal(t, "keep", string(p.Payload), "want only k/a=keep at QoS 1")
	assert.Equal(t, byte(1), p.QoS, "want only k/a=keep at QoS 1")
}
