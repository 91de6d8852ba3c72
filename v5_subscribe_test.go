package tern_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of MQTT 5 SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK
// (sections 3.8 to 3.11), the subscription options, Subscription
// Identifiers, and topic names and filters (section 4.7).

// TestV5SubscribeNoLocal: with No Local a client does not get its own
// messages, also on a later connection with the same Client Identifier;
// other clients still get them, and it gets theirs. A subscription of its
// own without No Local that matches too still delivers.
// [v5 MQTT-3.8.3-3]
func TestV5SubscribeNoLocal(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	me := m5Connect(t, addr, "nl-me", m5Expiry(60))
	ack := m5Subscribe(me, 1, 0, packets.Subscription{Filter: "nl/#", QoS: 1, NoLocal: true})
	require.Equal(t, []byte{1}, ack.ReturnCodes)
	other := m5Connect(t, addr, "nl-other")
	m5Sub(other, "nl/#", 1)

	m5Pub(me, "nl/t", "mine", 1)
	m5Expect(other, "nl/t", "mine", 1)
	third := m5Connect(t, addr, "nl-third")
	m5Pub(third, "nl/t", "theirs", 1)
	m5Expect(me, "nl/t", "theirs", 1)
	m5Expect(other, "nl/t", "theirs", 1)
	m5Quiet(me)

	// A new connection of the same client.
	m5Bye(me)
	m5WaitOffline(t, b, "nl-me")
	me = m5Connect(t, addr, "nl-me", m5Resume(), m5Expiry(60))
	m5Pub(me, "nl/t", "mine again", 1)
	m5Expect(other, "nl/t", "mine again", 1)
	m5Quiet(me)

	// An overlapping subscription without No Local delivers, with its own
	// Subscription Identifier only.
	// (QoS 0: its own message may arrive before a PUBACK would.)
	m5Subscribe(me, 2, 5, packets.Subscription{Filter: "nl/t", QoS: 1})
	m5Send(me, &packets.Publish{Topic: "nl/t", Payload: []byte("overlap")})
	got := m5Expect(me, "nl/t", "overlap", 0)
	assert.Equal(t, []uint32{5}, got.Props.SubscriptionIDs)
	m5Send(me, &packets.Publish{Topic: "nl/u", Payload: []byte("only no local")})
	m5Expect(other, "nl/t", "overlap", 0)
	m5Expect(other, "nl/u", "only no local", 0)
	m5Quiet(me)
}

// TestV5SubscribeRetainAsPublished: a live message keeps RETAIN 1 only for
// a subscription with Retain As Published; retained messages sent for a new
// subscription have RETAIN 1 either way.
// [v5 MQTT-3.3.1-12] [v5 MQTT-3.3.1-13] [v5 MQTT-3.3.1-9]
func TestV5SubscribeRetainAsPublished(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	pub := m5Connect(t, addr, "rap-pub")
	retained := &packets.Publish{Topic: "rap/old", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("old")}
	require.Equal(t, packets.NoMatchingSubscribers, m5Publish(pub, retained))

	as := m5Connect(t, addr, "rap-as")
	m5Subscribe(as, 1, 0, packets.Subscription{Filter: "rap/#", QoS: 1, RetainAsPublished: true})
	assert.True(t, m5Expect(as, "rap/old", "old", 1).Retain)
	plain := m5Connect(t, addr, "rap-plain")
	m5Subscribe(plain, 1, 0, packets.Subscription{Filter: "rap/#", QoS: 1})
	assert.True(t, m5Expect(plain, "rap/old", "old", 1).Retain)

	for qos := byte(0); qos <= 1; qos++ {
		m5Publish(pub, &packets.Publish{Topic: "rap/live", QoS: qos, PacketID: 2, Retain: true, Payload: []byte("r")})
		assert.True(t, m5Expect(as, "rap/live", "r", qos).Retain, "Retain As Published, QoS %d", qos)
		assert.False(t, m5Expect(plain, "rap/live", "r", qos).Retain, "without Retain As Published, QoS %d", qos)
		m5Publish(pub, &packets.Publish{Topic: "rap/live", QoS: qos, PacketID: 2, Payload: []byte("n")})
		assert.False(t, m5Expect(as, "rap/live", "n", qos).Retain)
		assert.False(t, m5Expect(plain, "rap/live", "n", qos).Retain)
	}
}

// TestV5SubscribeRetainHandling: Retain Handling 0 sends the retained
// messages on every SUBSCRIBE, 1 only when the subscription is new, 2
// never; replacing a subscription loses none of the messages on their way.
// [v5 MQTT-3.3.1-9] [v5 MQTT-3.3.1-10] [v5 MQTT-3.3.1-11] [v5 MQTT-3.8.4-3]
// [v5 MQTT-3.8.4-4]
func TestV5SubscribeRetainHandling(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	pub := m5Connect(t, addr, "rh-pub")
	m5Publish(pub, &packets.Publish{Topic: "rh/t", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("kept")})
	sub := m5Connect(t, addr, "rh-sub", m5RecvMax(1))
	subscribe := func(filter string, rh byte) {
		t.Helper()
		ack := m5Subscribe(sub, 3, 0, packets.Subscription{Filter: filter, QoS: 1, RetainHandling: rh})
		require.Equal(t, []byte{1}, ack.ReturnCodes)
	}
	subscribe("rh/#", 0)
	m5Expect(sub, "rh/t", "kept", 1)
	subscribe("rh/#", 0)
	m5Expect(sub, "rh/t", "kept", 1)

	subscribe("rh/+", 1)
	m5Expect(sub, "rh/t", "kept", 1)
	subscribe("rh/+", 1)
	m5Quiet(sub)

	subscribe("+/t", 2)
	m5Quiet(sub)
	subscribe("+/t", 2)
	m5Quiet(sub)

	// Messages in flight and queued (Receive Maximum 1) when "rh/#" is
	// replaced all arrive, in order, after the retained one is re-sent.
	for i := range 3 {
		m5Pub(pub, "rh/live", string(rune('a'+i)), 1)
	}
	first := expectPublish(sub, "rh/live", "a", 1)
	subscribe("rh/#", 0)
	m5Ack(sub, first)
	got := m5Payloads(sub, 3)
	assert.ElementsMatch(t, []string{"b", "c", "kept"}, got)
	assert.Less(t, strings.Index(strings.Join(got, ""), "b"), strings.Index(strings.Join(got, ""), "c"), "b before c: %v", got)
	m5Quiet(sub)
}

// TestV5SubscriptionIdentifiers: a PUBLISH carries the Subscription
// Identifier of the subscription it matched; with overlapping
// subscriptions one copy goes at the highest of their QoS with every
// identifier they have; a subscription without one adds none; retained
// messages sent for a subscription carry its identifier; a new SUBSCRIBE
// with the same filter replaces the identifier.
// [v5 MQTT-3.3.4-2] [v5 MQTT-3.3.4-3] [v5 MQTT-3.3.4-4] [v5 MQTT-3.8.4-3]
func TestV5SubscriptionIdentifiers(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	pub := m5Connect(t, addr, "sid-pub")
	m5Publish(pub, &packets.Publish{Topic: "sid/r/x", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("retained")})

	c := m5Connect(t, addr, "sid")
	m5Subscribe(c, 1, 7, packets.Subscription{Filter: "sid/a/#", QoS: 1})
	m5Subscribe(c, 2, 9, packets.Subscription{Filter: "sid/+/x", QoS: 2, RetainHandling: 2})
	m5Subscribe(c, 3, 0, packets.Subscription{Filter: "sid/a/x", QoS: 0})
	m5Subscribe(c, 4, 268435455, packets.Subscription{Filter: "sid/big", QoS: 0})
	plain := m5Connect(t, addr, "sid-plain")
	m5Subscribe(plain, 1, 0, packets.Subscription{Filter: "sid/#", QoS: 2, RetainHandling: 2})

	cases := []struct {
		topic string
		qos   byte // delivered to c
		ids   []uint32
	}{
		{"sid/a/x", 2, []uint32{7, 9}},
		{"sid/a/y", 1, []uint32{7}},
		{"sid/b/x", 2, []uint32{9}},
		{"sid/big", 0, []uint32{268435455}},
	}
	for _, tc := range cases {
		for _, pubQoS := range []byte{0, 2} {
			m5Pub(pub, tc.topic, "m", pubQoS)
			got := m5Expect(c, tc.topic, "m", min(pubQoS, tc.qos))
			assert.ElementsMatch(t, tc.ids, got.Props.SubscriptionIDs, "%s at QoS %d", tc.topic, pubQoS)
			other := m5Expect(plain, tc.topic, "m", pubQoS)
			assert.Empty(t, other.Props.SubscriptionIDs, "a subscription without an identifier")
		}
	}
	m5Quiet(c)

	// Retained messages for a new subscription carry its identifier.
	m5Subscribe(c, 5, 11, packets.Subscription{Filter: "sid/r/#", QoS: 1})
	got := m5Expect(c, "sid/r/x", "retained", 1)
	assert.True(t, got.Retain)
	assert.Equal(t, []uint32{11}, got.Props.SubscriptionIDs, "the new subscription's identifier only")

	// Replacing a subscription replaces its identifier, or removes it.
	m5Subscribe(c, 6, 12, packets.Subscription{Filter: "sid/a/#", QoS: 1, RetainHandling: 2})
	m5Pub(pub, "sid/a/y", "n", 1)
	assert.Equal(t, []uint32{12}, m5Expect(c, "sid/a/y", "n", 1).Props.SubscriptionIDs)
	m5Subscribe(c, 7, 0, packets.Subscription{Filter: "sid/a/#", QoS: 1, RetainHandling: 2})
	m5Pub(pub, "sid/a/y", "o", 1)
	assert.Empty(t, m5Expect(c, "sid/a/y", "o", 1).Props.SubscriptionIDs)
	m5Quiet(c)
}

// TestV5SubackReasonCodes: one SUBSCRIBE with several filters gets one
// SUBACK with a code per filter, in order: the granted QoS, 0x87 when a
// SubscribeAuthorizer refuses, 0x8F for an invalid filter, and the code of
// a ReasonError (0x97, 0xA2) with its Reason String; each granted filter
// works as if subscribed alone, the refused ones do not.
// [v5 MQTT-3.8.4-1] [v5 MQTT-3.8.4-2] [v5 MQTT-3.8.4-5] [v5 MQTT-3.8.4-6]
// [v5 MQTT-3.8.4-7] [v5 MQTT-3.9.3-1] [v5 MQTT-3.9.3-2] [v5 MQTT-4.7.1-1]
// [v5 MQTT-4.7.1-2]
func TestV5SubackReasonCodes(t *testing.T) {
	_, addr := m5Hooks(t, tern.Options{}, m5SubAuth(func(filter string) error {
		switch {
		case strings.HasPrefix(filter, "deny/"):
			return errors.New("no")
		case strings.HasPrefix(filter, "quota/"):
			return &tern.ReasonError{Code: packets.QuotaExceeded, Reason: "too many"}
		case filter == "#":
			return &tern.ReasonError{Code: packets.WildcardSubscriptionsNotSupported}
		}
		return nil
	}))
	c := m5Connect(t, addr, "suback")
	filters := []struct {
		filter string
		qos    byte
		code   packets.ReasonCode
	}{
		{"ok/0", 0, packets.GrantedQoS0},
		{"deny/x", 1, packets.NotAuthorized},
		{"ok/1", 1, packets.GrantedQoS1},
		{"bad/#/x", 1, packets.TopicFilterInvalid},
		{"bad+", 1, packets.TopicFilterInvalid},
		{"bad/#x", 1, packets.TopicFilterInvalid},
		{"ok/2", 2, packets.GrantedQoS2},
		{"#", 0, packets.WildcardSubscriptionsNotSupported},
		{"quota/x", 2, packets.QuotaExceeded},
	}
	var subs []packets.Subscription
	var want []byte
	for _, f := range filters {
		subs = append(subs, packets.Subscription{Filter: f.filter, QoS: f.qos})
		want = append(want, byte(f.code))
	}
	ack := m5Subscribe(c, 0x1234, 0, subs...)
	assert.Equal(t, want, ack.ReturnCodes)
	assert.Equal(t, "too many", ack.Properties.ReasonString)

	pub := m5Connect(t, addr, "suback-pub")
	for _, topic := range []string{"deny/x", "ok/0", "ok/1", "ok/2", "quota/x"} {
		m5Pub(pub, topic, topic, 2)
	}
	m5Expect(c, "ok/0", "ok/0", 0)
	m5Expect(c, "ok/1", "ok/1", 1)
	m5Expect(c, "ok/2", "ok/2", 2)
	m5Quiet(c)

	quiet := m5Connect(t, addr, "suback-quiet", m5NoProblem())
	ack = m5Subscribe(quiet, 1, 0, packets.Subscription{Filter: "quota/y"})
	assert.Equal(t, []byte{byte(packets.QuotaExceeded)}, ack.ReturnCodes)
	assert.Empty(t, ack.Properties.ReasonString, "Request Problem Information 0")
}

// TestV5AckReasonStringsWithinMaximumPacketSize: a Reason String that
// would make a SUBACK, PUBACK or PUBREC larger than the client's Maximum
// Packet Size is left out; the packet itself is sent. Tern puts no User
// Property on them.
// [v5 MQTT-3.9.2-1] [v5 MQTT-3.4.2-2] [v5 MQTT-3.5.2-2] [v5 MQTT-3.9.2-2]
// [v5 MQTT-3.4.2-3] [v5 MQTT-3.5.2-3]
func TestV5AckReasonStringsWithinMaximumPacketSize(t *testing.T) {
	long := strings.Repeat("r", 200)
	refusal := &tern.ReasonError{Code: packets.NotAuthorized, Reason: long}
	_, addr := m5Hooks(t, tern.Options{},
		m5SubAuth(func(string) error { return refusal }),
		m5PubAuth(func(tern.Message) error { return refusal }))
	for _, limit := range []uint32{100, 1000} {
		c := m5Connect(t, addr, "small", m5MaxPacket(limit))
		wantReason := long
		if limit < 200 {
			wantReason = ""
		}
		ack := m5Subscribe(c, 1, 0, packets.Subscription{Filter: "x"})
		assert.Equal(t, []byte{byte(packets.NotAuthorized)}, ack.ReturnCodes)
		assert.Equal(t, wantReason, ack.Properties.ReasonString, "SUBACK, Maximum Packet Size %d", limit)
		assert.Empty(t, ack.Properties.User, "Tern sends no User Property on SUBACK")
		m5Send(c, &packets.Publish{Topic: "x", QoS: 1, PacketID: 1})
		puback := recvAs[*packets.Puback](c)
		assert.Equal(t, packets.NotAuthorized, puback.ReasonCode)
		assert.Equal(t, wantReason, puback.Properties.ReasonString, "PUBACK, Maximum Packet Size %d", limit)
		assert.Empty(t, puback.Properties.User)
		m5Send(c, &packets.Publish{Topic: "x", QoS: 2, PacketID: 2})
		pubrec := recvAs[*packets.Pubrec](c)
		assert.Equal(t, packets.NotAuthorized, pubrec.ReasonCode)
		assert.Equal(t, wantReason, pubrec.Properties.ReasonString, "PUBREC, Maximum Packet Size %d", limit)
		assert.Empty(t, pubrec.Properties.User)
		m5Bye(c)
	}
}

// TestV5UnsubackReasonCodes: one UNSUBSCRIBE with several filters is
// handled as a sequence and gets one UNSUBACK with a code per filter, in
// order: 0x00 when a subscription was deleted, 0x11 when none existed
// (also for a filter deleted earlier in the same packet), 0x8F for an
// invalid filter; deleted subscriptions deliver nothing more, and no
// Reason String or User Property is sent.
// [v5 MQTT-3.10.4-1] [v5 MQTT-3.10.4-2] [v5 MQTT-3.10.4-4] [v5 MQTT-3.10.4-5]
// [v5 MQTT-3.10.4-6] [v5 MQTT-3.11.3-1] [v5 MQTT-3.11.3-2] [v5 MQTT-2.2.1-6]
// [v5 MQTT-3.11.2-1] [v5 MQTT-3.11.2-2]
func TestV5UnsubackReasonCodes(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	c := m5Connect(t, addr, "unsub")
	m5Sub(c, "u/a", 1)
	m5Sub(c, "u/+", 1)
	m5Sub(c, "$share/g/u/b", 1)
	ack := m5Unsubscribe(c, 0x4321, "u/a", "u/none", "u/#/bad", "$share/g/u/b", "u/a", "$share//u")
	assert.Equal(t, []byte{0x00, 0x11, 0x8F, 0x00, 0x11, 0x8F}, ack.ReasonCodes)
	assert.Empty(t, ack.Properties.ReasonString)
	assert.Empty(t, ack.Properties.User)
	pub := m5Connect(t, addr, "unsub-pub")
	m5Pub(pub, "u/a", "via u/+", 1)
	m5Pub(pub, "u/b", "via u/+ only", 1)
	m5Expect(c, "u/a", "via u/+", 1)
	m5Expect(c, "u/b", "via u/+ only", 1)
	m5Quiet(c)
	ack = m5Unsubscribe(c, 9, "u/none")
	assert.Equal(t, []byte{0x11}, ack.ReasonCodes, "UNSUBACK even when nothing was deleted")
}

// TestV5UnsubscribeCompletesDeliveriesInFlight: QoS 1 and 2 messages
// already sent for a subscription complete after it is deleted.
// [v5 MQTT-3.10.4-3]
func TestV5UnsubscribeCompletesDeliveriesInFlight(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	c := m5Connect(t, addr, "unsub-flight")
	m5Sub(c, "uf/#", 2)
	pub := m5Connect(t, addr, "uf-pub")
	m5Pub(pub, "uf/1", "one", 1)
	m5Pub(pub, "uf/2", "two", 2)
	one := expectPublish(c, "uf/1", "one", 1)
	two := expectPublish(c, "uf/2", "two", 2)
	assert.Equal(t, []byte{0}, m5Unsubscribe(c, 3, "uf/#").ReasonCodes)
	m5Pub(pub, "uf/3", "after", 1)
	m5Send(c, &packets.Puback{PacketID: one.PacketID})
	m5Send(c, &packets.Pubrec{PacketID: two.PacketID})
	rel := recvAs[*packets.Pubrel](c)
	assert.Equal(t, two.PacketID, rel.PacketID)
	m5Complete(c, rel)
	m5Quiet(c)
	assert.Zero(t, clientInfo(t, b, "unsub-flight").Inflight)
}

// TestV5SubscribeMalformedEndsConnection: a SUBSCRIBE or UNSUBSCRIBE that
// breaks the rules ends the connection with DISCONNECT 0x81 (malformed) or
// 0x82 (protocol error).
// [v5 MQTT-3.8.1-1] [v5 MQTT-3.8.3-1] [v5 MQTT-3.8.3-2] [v5 MQTT-3.8.3-5]
// [v5 MQTT-3.10.1-1] [v5 MQTT-3.10.3-1] [v5 MQTT-3.10.3-2] [v5 MQTT-4.7.3-1]
// [v5 MQTT-2.2.1-3] [v5 MQTT-4.7.3-2]
func TestV5SubscribeMalformedEndsConnection(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	id := []byte{0, 1}
	noProps := []byte{0}
	sub := func(filter string, opts byte) []byte { return append(mqttString(filter), opts) }
	cases := []struct {
		name string
		pkt  []byte
		code packets.ReasonCode
	}{
		{"SUBSCRIBE flags 0000", packetBytes(0x80, id, noProps, sub("a", 0)), packets.MalformedPacket},
		{"SUBSCRIBE without filters", packetBytes(0x82, id, noProps), packets.ProtocolError},
		{"SUBSCRIBE packet identifier 0", packetBytes(0x82, []byte{0, 0}, noProps, sub("a", 0)), packets.ProtocolError},
		{"UNSUBSCRIBE packet identifier 0", packetBytes(0xA2, []byte{0, 0}, noProps, mqttString("a")), packets.ProtocolError},
		{"reserved option bits", packetBytes(0x82, id, noProps, sub("a", 0x40)), packets.MalformedPacket},
		{"QoS 3", packetBytes(0x82, id, noProps, sub("a", 3)), packets.ProtocolError},
		{"Retain Handling 3", packetBytes(0x82, id, noProps, sub("a", 0x30)), packets.ProtocolError},
		{"filter not UTF-8", packetBytes(0x82, id, noProps, sub("a\xff", 0)), packets.MalformedPacket},
		{"empty filter", packetBytes(0x82, id, noProps, sub("", 0)), packets.ProtocolError},
		{"null character in a filter", packetBytes(0x82, id, noProps, sub("a/\x00", 0)), packets.MalformedPacket},
		{"two Subscription Identifiers", packetBytes(0x82, id, []byte{4, 0x0B, 1, 0x0B, 2}, sub("a", 0)), packets.ProtocolError},
		{"Subscription Identifier 0", packetBytes(0x82, id, []byte{2, 0x0B, 0}, sub("a", 0)), packets.ProtocolError},
		{"UNSUBSCRIBE flags 0000", packetBytes(0xA0, id, noProps, mqttString("a")), packets.MalformedPacket},
		{"UNSUBSCRIBE without filters", packetBytes(0xA2, id, noProps), packets.ProtocolError},
		{"UNSUBSCRIBE filter not UTF-8", packetBytes(0xA2, id, noProps, mqttString("\xc0")), packets.MalformedPacket},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := m5Connect(t, addr, "sub-mal")
			c.sendRaw(tc.pkt)
			m5ExpectDisconnect(c, tc.code)
		})
	}
}

// TestV5TopicMatching: Tern matches filters to names without
// normalisation (case, Unicode forms, empty levels all count), wildcards
// match no topic starting with '$', a message goes out at the minimum of
// its QoS and the granted QoS, and its topic matches the filter.
// [v5 MQTT-4.7.2-1] [v5 MQTT-4.7.3-4] [v5 MQTT-3.3.2-3] [v5 MQTT-3.8.4-8]
func TestV5TopicMatching(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	c := m5Connect(t, addr, "match")
	subs := map[string]byte{
		"Accounts":     0,
		"caf\u00e9":    1, // é precomposed
		"a/":           2,
		"/a":           2,
		"#":            2,
		"+/x":          2,
		"$app/#":       1,
		"qos/1":        1,
		"qos/0":        0,
		"+/+":          0,
		"sport/+/play": 2,
	}
	var id uint16 = 1
	for f, q := range subs {
		m5Subscribe(c, id, uint32(id), packets.Subscription{Filter: f, QoS: q})
		id++
	}
	pub := m5Connect(t, addr, "match-pub")
	cases := []struct {
		topic string
		qos   byte // delivered
		match int  // how many of c's filters match
	}{
		{"ACCOUNTS", 2, 1},   // "#" only
		{"cafe\u0301", 2, 1}, // e + combining accent: not "café"
		{"caf\u00e9", 2, 2},  // "#", "café"
		{"a", 2, 1},          // "#"
		{"a/", 2, 3},         // "#", "a/", "+/+"
		{"/a", 2, 3},         // "#", "/a", "+/+"
		{"$app/x", 1, 1},     // "$app/#" only, not "#" nor "+/x"
		{"qos/1", 2, 3},      // "#", "qos/1", "+/+": the highest, 2
		{"sport/tennis/play", 2, 2},
		{"y/x", 2, 3}, // "#", "+/x", "+/+"
	}
	for _, tc := range cases {
		m5Pub(pub, tc.topic, "m", 2)
		got := m5Expect(c, tc.topic, "m", tc.qos)
		assert.Len(t, got.Props.SubscriptionIDs, tc.match, "%q: one identifier per matching filter", tc.topic)
	}
	m5Quiet(c)
	// The minimum of published and granted QoS, one subscription.
	only := m5Connect(t, addr, "match-only")
	m5Sub(only, "min/+", 1)
	for _, q := range []byte{0, 1, 2} {
		m5Pub(pub, "min/t", "q", q)
		m5Expect(only, "min/t", "q", min(q, 1))
	}
	m5Quiet(only)
}

// TestV5SubscriptionOptionsSurviveRestart: after a restart (memory store)
// a persistent session's subscription keeps its No Local, Retain As
// Published and Subscription Identifier, and a queued message its
// properties.
// [v5 MQTT-3.8.3-3] [v5 MQTT-3.3.1-13] [v5 MQTT-3.3.4-3] [v5 MQTT-3.3.2-17]
func TestV5SubscriptionOptionsSurviveRestart(t *testing.T) {
	e := psStart(t, m5Memory(), tern.Options{})
	c := m5Connect(t, e.addr, "so", m5Expiry(600))
	m5Subscribe(c, 1, 5, packets.Subscription{Filter: "so/#", QoS: 1, NoLocal: true, RetainAsPublished: true})
	m5Bye(c)
	m5WaitOffline(t, e.b, "so")
	pub := m5Connect(t, e.addr, "so-pub")
	user := []packets.UserProperty{{Key: "b", Value: "1"}, {Key: "a", Value: "2"}}
	m5Publish(pub, &packets.Publish{Topic: "so/q", QoS: 1, PacketID: 1, Payload: []byte("queued"),
		Props: packets.PublishProps{HasPayloadFormat: true, PayloadFormat: 1, Raw: m5RawProps(t, &packets.Properties{ContentType: "ct", User: user})}})
	m5WaitQueued(t, e.b, "so", 1)
	e.restart()

	c = m5Connect(t, e.addr, "so", m5Resume(), m5Expiry(600))
	got := m5Expect(c, "so/q", "queued", 1)
	props := m5Props(t, got)
	assert.Equal(t, []uint32{5}, props.SubscriptionIDs)
	assert.Equal(t, "ct", props.ContentType)
	assert.Equal(t, user, props.User)
	require.NotNil(t, props.PayloadFormat)
	assert.Equal(t, byte(1), *props.PayloadFormat)

	m5Send(c, &packets.Publish{Topic: "so/own", Retain: true, Payload: []byte("own")}) // No Local
	pub = m5Connect(t, e.addr, "so-pub")
	m5Publish(pub, &packets.Publish{Topic: "so/live", QoS: 1, PacketID: 2, Retain: true, Payload: []byte("live")})
	got = m5Expect(c, "so/live", "live", 1)
	assert.True(t, got.Retain, "Retain As Published")
	assert.Equal(t, []uint32{5}, got.Props.SubscriptionIDs)
	m5Quiet(c)
}
