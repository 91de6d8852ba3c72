package tern_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
	if n := b.Stats().Subscriptions; n != 0 {
		t.Errorf("%d subscriptions left by refused SUBSCRIBE packets, want 0", n)
	}
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
	if err := b.AddHook(refuseFilters{}); err != nil {
		t.Fatal(err)
	}
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
		if ack.PacketID != tc.id || string(ack.ReturnCodes) != string(tc.want) {
			t.Errorf("SUBSCRIBE %d %v: SUBACK id %d codes %v, want id %d codes %v", tc.id, tc.subs, ack.PacketID, ack.ReturnCodes, tc.id, tc.want)
		}
	}
	if n := clientInfo(t, b, "c").Subscriptions; n != 5 {
		t.Errorf("%d subscriptions, want 5 (refused filters not subscribed)", n)
	}
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
	if string(ack.ReturnCodes) != string([]byte{1, 0, 0, 2}) {
		t.Fatalf("codes %v", ack.ReturnCodes)
	}
	got := map[string]bool{}
	for _, p := range pingSync(c) {
		pp, ok := p.(*packets.Publish)
		if !ok || !pp.Retain {
			t.Fatalf("expected retained PUBLISH packets, got %s", describePackets(p))
		}
		got[pp.Topic+"="+string(pp.Payload)] = true
		ackDelivery(c, pp)
	}
	if len(got) != 2 || !got["a/1=ra"] || !got["b/x/y=rb"] {
		t.Fatalf("retained messages %v, want a/1=ra and b/x/y=rb", got)
	}
	if n := clientInfo(t, b, "c").Subscriptions; n != 3 {
		t.Fatalf("%d subscriptions, want 3", n)
	}
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
		if ack := c.subscribe(uint16(i+1), packets.Subscription{Filter: "re/+", QoS: qos}); ack.ReturnCodes[0] != qos {
			t.Fatalf("granted %d, want %d", ack.ReturnCodes[0], qos)
		}
		if n := clientInfo(t, b, "c").Subscriptions; n != 1 {
			t.Fatalf("%d subscriptions after subscribing again, want 1", n)
		}
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
		if !p.Retain {
			t.Fatalf("subscription %d: retained message sent with RETAIN 0", i)
		}
		ackDelivery(c, p)
		pub.publishQoS(2, "st/b", fmt.Sprint("live", i), 1, false)
		p = expectPublish(c, "st/b", fmt.Sprint("live", i), 1)
		if p.Retain {
			t.Fatalf("live message sent with RETAIN 1")
		}
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
	if ack := recvAs[*packets.Unsuback](c); ack.PacketID != id {
		c.t.Fatalf("UNSUBACK id %d, want %d", ack.PacketID, id)
	}
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
	if n := clientInfo(t, b, "c").Subscriptions; n != 4 {
		t.Fatalf("%d subscriptions, want 4", n)
	}
	unsubscribe(c, 7, "u/+")
	if !delivered("u/b") {
		t.Fatal("u/b not delivered after unsubscribing only u/+")
	}
	if delivered("u/c") {
		t.Fatal("u/c delivered after unsubscribing u/+")
	}
	unsubscribe(c, 8, "u/b")
	if delivered("u/b") {
		t.Fatal("u/b delivered after unsubscribing u/b")
	}
	unsubscribe(c, 0xFFFF, "v", "w") // [MQTT-3.10.4-6]
	if delivered("v") || delivered("w") {
		t.Fatal("delivered after unsubscribing v and w in one packet")
	}
	if n := clientInfo(t, b, "c").Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions, want 0", n)
	}
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
	if n := clientInfo(t, b, "c").Inflight; n != 2 {
		t.Fatalf("%d in flight after UNSUBSCRIBE, want 2", n)
	}
	ackDelivery(c, p1)
	ackDelivery(c, p2) // PUBREL still comes for the QoS 2 message
	expectQuiet(c)
	if n := clientInfo(t, b, "c").Inflight; n != 0 {
		t.Fatalf("%d in flight after the acknowledgements, want 0", n)
	}
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
		switch {
		case tc.match && len(got) != 1:
			t.Errorf("filter %q topic %q: got %s, want one PUBLISH", tc.filter, tc.topic, describePackets(got...))
		case !tc.match && len(got) != 0:
			t.Errorf("filter %q topic %q: got %s, want none", tc.filter, tc.topic, describePackets(got...))
		}
		for _, p := range got {
			if pp, ok := p.(*packets.Publish); ok {
				if pp.Topic != tc.topic {
					t.Errorf("delivered topic %q, want %q", pp.Topic, tc.topic)
				}
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
	if len(got) == 0 {
		t.Fatal(`no retained $SYS message for "$SYS/#"`)
	}
	for _, p := range got {
		if pp, ok := p.(*packets.Publish); !ok || !strings.HasPrefix(pp.Topic, "$SYS/broker/") || !pp.Retain {
			t.Fatalf("got %s, want retained $SYS/broker/ messages", describePackets(p))
		}
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
		if !ok {
			c.t.Fatalf("expected PUBLISH, got %s", describePackets(p))
		}
		if _, dup := out[pp.Topic]; dup {
			c.t.Fatalf("two retained messages for %q", pp.Topic)
		}
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
	if n := b.Stats().Retained; n != 4 {
		t.Fatalf("%d retained messages, want 4", n)
	}
	for granted := byte(0); granted <= 2; granted++ {
		c := mustConnect(t, addr, fmt.Sprint("c", granted), true)
		got := retainedOnSubscribe(c, 1, "r/+", granted)
		want := map[string]struct {
			payload string
			qos     byte
		}{"r/a": {"A2", 1}, "r/b": {"B", 2}, "r/c": {"C", 0}}
		if len(got) != len(want) {
			t.Fatalf("granted %d: got %d retained messages, want %d", granted, len(got), len(want))
		}
		for topic, w := range want {
			p := got[topic]
			if p == nil || string(p.Payload) != w.payload || p.QoS != min(w.qos, granted) || !p.Retain || p.Dup {
				t.Errorf("granted %d, %s: got %+v, want payload %q QoS %d RETAIN 1", granted, topic, p, w.payload, min(w.qos, granted))
			}
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
		if p.Retain {
			t.Errorf("QoS %d: live delivery has RETAIN 1", qos)
		}
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
		if p.Retain {
			t.Errorf("%s: empty retained message forwarded with RETAIN 1", topic)
		}
		ackDelivery(c, p)
	}
	if n := b.Stats().Retained; n != 0 {
		t.Fatalf("%d retained messages, want 0", n)
	}
	late := mustConnect(t, addr, "late", true)
	if got := retainedOnSubscribe(late, 1, "z/#", 1); len(got) != 0 {
		t.Fatalf("a new subscriber got retained messages %v after they were cleared", got)
	}
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
	if p := got["q0r"]; len(got) != 1 || p == nil || string(p.Payload) != "new" || p.QoS != 0 || !p.Retain {
		t.Fatalf("retained %v, want only q0r=new at QoS 0 with RETAIN 1", got)
	}
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
	if n := b.Stats().Retained; n != 1 {
		t.Fatalf("%d retained messages, want 1", n)
	}
	c := mustConnect(t, addr, "c", true)
	got := retainedOnSubscribe(c, 1, "k/#", 2)
	if p := got["k/a"]; len(got) != 1 || p == nil || string(p.Payload) != "keep" || p.QoS != 1 {
		t.Fatalf("retained %v, want only k/a=keep at QoS 1", got)
	}
}
