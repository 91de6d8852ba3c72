package storagetest

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/storage"
)

// The MQTT 5 fields of each record: every one written, read back,
// replaced by a record without it (and the other way round), and kept
// across a reopen.

// props5 is a block of properties as a PUBLISH carries them: Content Type,
// Correlation Data and two User Properties, in wire order.
var props5 = []byte{
	0x03, 0x00, 0x04, 'j', 's', 'o', 'n', // Content Type "json"
	0x09, 0x00, 0x02, 0x00, 0xff, // Correlation Data 00 ff
	0x26, 0x00, 0x01, 'b', 0x00, 0x01, '2', // User Property b=2
	0x26, 0x00, 0x01, 'a', 0x00, 0x01, '1', // User Property a=1
}

// message5 is a message with every MQTT 5 field set.
func message5(topic string) storage.Message {
	return storage.Message{Topic: topic, Payload: []byte("{}"), QoS: 2, Retain: true,
		HasFormat: true, Format: 1, Props: props5, Expires: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()}
}

func testSessions5(t *testing.T, h *harness) {
	publishAt := time.Date(2031, 7, 1, 8, 9, 10, 999999999, time.FixedZone("X", -5*3600))
	full := storage.Will{Msg: message5("will/full"), Delay: 3600, PublishAt: publishAt}
	full.Msg.Expires = -120 // a will's expiry interval, not yet started
	pending := storage.Will{Msg: storage.Message{Topic: "will/pending", Payload: []byte("gone"), QoS: 1}, Delay: 5}
	empty := storage.Will{Msg: storage.Message{Topic: "will/empty", Payload: []byte{}, Props: []byte{}, HasFormat: true}}
	sessions := []storage.Session{
		{ClientID: "never", Expiry: storage.NeverExpires},
		{ClientID: "zero", Expiry: 0},
		{ClientID: "one", Expiry: 1, LastSeen: time.Unix(1e9, 5).UTC()},
		{ClientID: "varint-edge", Expiry: 128},
		{ClientID: "almost-never", Expiry: storage.NeverExpires - 1, Username: "u"},
		{ClientID: "full-will", Expiry: 60, Will: &full, Username: "w"},
		{ClientID: "connected-will", Expiry: storage.NeverExpires, Will: &pending},
		{ClientID: "empty-will", Expiry: 7, Will: &empty},
		{ClientID: strings.Repeat("long", 400), Expiry: 9, Will: &pending}, // identifier kept in the value
	}
	var ops []storage.Op
	for _, s := range sessions {
		ops = append(ops, putSession(s))
	}
	h.write(ops...)
	h.expectBoth(&storage.Snapshot{Sessions: sessions})

	// Replaced: the will goes, or comes, or changes; the expiry changes.
	sessions[0].Will, sessions[0].Expiry = &full, 10
	sessions[5].Will, sessions[5].Expiry = nil, storage.NeverExpires
	w := *sessions[6].Will
	w.PublishAt = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) // the client went offline
	sessions[6].Will = &w
	h.write(putSession(sessions[0]), putSession(sessions[5]), putSession(sessions[6]))
	h.expectBoth(&storage.Snapshot{Sessions: sessions})

	h.write(deleteSession("full-will"), deleteSession("never"))
	h.expectBoth(&storage.Snapshot{Sessions: append(sessions[1:5:5], sessions[6:]...)})
}

func testSubscriptions5(t *testing.T, h *harness) {
	subs := []storage.Subscription{
		{ClientID: "c", Filter: "plain", QoS: 1},
		{ClientID: "c", Filter: "no-local", QoS: 0, NoLocal: true},
		{ClientID: "c", Filter: "as-published", QoS: 2, RetainAsPublished: true},
		{ClientID: "c", Filter: "handling-1", QoS: 1, RetainHandling: 1},
		{ClientID: "c", Filter: "handling-2", QoS: 1, RetainHandling: 2},
		{ClientID: "c", Filter: "id-1", ID: 1},
		{ClientID: "c", Filter: "id-max", ID: 268435455}, // the largest MQTT allows
		{ClientID: "c", Filter: "id-uint32", ID: math.MaxUint32},
		{ClientID: "c", Filter: "$share/group/all/#", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 300},
		{ClientID: strings.Repeat("x", 2000), Filter: strings.Repeat("f", 20000), QoS: 1, NoLocal: true, ID: 5}, // both hashed
	}
	var ops []storage.Op
	for _, s := range subs {
		ops = append(ops, storage.Op{Kind: storage.PutSubscription, Subscription: s})
	}
	h.write(ops...)
	h.expectBoth(&storage.Snapshot{Subscriptions: subs})

	// A repeated SUBSCRIBE replaces the options: cleared, and set.
	subs[8] = storage.Subscription{ClientID: "c", Filter: "$share/group/all/#", QoS: 0}
	subs[0] = storage.Subscription{ClientID: "c", Filter: "plain", QoS: 1, RetainAsPublished: true, ID: 77}
	h.write(storage.Op{Kind: storage.PutSubscription, Subscription: subs[8]}, storage.Op{Kind: storage.PutSubscription, Subscription: subs[0]})
	h.expectBoth(&storage.Snapshot{Subscriptions: subs})
}

func testMessages5(t *testing.T, h *harness) {
	full := message5("full")
	variants := []storage.Message{
		full,
		{Topic: "format-0", Payload: []byte{0xff}, HasFormat: true},           // bytes, said so
		{Topic: "format-1", Payload: []byte("é"), HasFormat: true, Format: 1}, // UTF-8
		{Topic: "empty", Payload: []byte{}, Props: []byte{}},                  // present but empty
		{Topic: "props-only", Props: props5},
		{Topic: "expires", Payload: []byte("x"), Expires: 1},
		{Topic: "expires-negative", Expires: -1},
		{Topic: "expires-min", Expires: math.MinInt64},
		{Topic: "expires-max", Expires: math.MaxInt64},
	}
	want := &storage.Snapshot{}
	var ops []storage.Op
	for i, m := range variants {
		d := storage.Delivery{ClientID: "c", Seq: uint64(i), QoS: 1, Msg: m}
		switch i % 3 {
		case 0:
			d.SubIDs = []uint32{1, 268435455, 7, math.MaxUint32} // several, in the order sent
		case 1:
			d.SubIDs = []uint32{42}
		}
		if i%2 == 0 {
			d.Share = "$share/g/" + m.Topic
		}
		if i == 0 {
			d.PacketID, d.QoS, d.Released = 9, 2, true // released: its properties stay
		}
		r := m
		r.Topic = "r/" + m.Topic
		ops = append(ops, putDelivery(d), putRetained(r))
		want.Deliveries = append(want.Deliveries, d)
		want.Retained = append(want.Retained, r)
	}
	// Empty, not absent: none sent.
	d := storage.Delivery{ClientID: "c", Seq: 100, QoS: 1, Msg: storage.Message{Topic: "t"}, SubIDs: []uint32{}}
	ops = append(ops, putDelivery(d))
	want.Deliveries = append(want.Deliveries, d)
	// Identifier and topic too long for their keys.
	long := storage.Delivery{ClientID: strings.Repeat("l", 3000), Seq: 1, QoS: 2, Msg: full, SubIDs: []uint32{3}, Share: "$share/g/#"}
	longRetained := message5(strings.Repeat("t/", 9000))
	ops = append(ops, putDelivery(long), putRetained(longRetained))
	want.Deliveries = append(want.Deliveries, long)
	want.Retained = append(want.Retained, longRetained)
	h.write(ops...)
	h.expectBoth(want)

	// Replaced by the same records without their MQTT 5 fields, and the
	// other way round.
	ops = ops[:0]
	for i := range want.Deliveries {
		d := &want.Deliveries[i]
		if d.Seq == 0 {
			*d = storage.Delivery{ClientID: d.ClientID, Seq: d.Seq, QoS: 1, Msg: storage.Message{Topic: "plain", QoS: 1}}
		} else {
			d.Msg, d.SubIDs, d.Share = message5(d.Msg.Topic), []uint32{2}, "$share/h/x"
		}
		ops = append(ops, putDelivery(*d))
	}
	want.Retained[0] = storage.Message{Topic: want.Retained[0].Topic, Payload: []byte("plain"), Retain: true}
	ops = append(ops, putRetained(want.Retained[0]))
	h.write(ops...)
	h.expectBoth(want)

	h.write(deleteSession("c"), deleteRetained(longRetained.Topic))
	want.Deliveries = want.Deliveries[len(want.Deliveries)-1:]
	want.Retained = want.Retained[:len(want.Retained)-1]
	h.expectBoth(want)
}

// testCallerOwnsBuffers5: what Write was given and what Load returned may
// be changed by the caller afterwards, MQTT 5 fields included.
func testCallerOwnsBuffers5(t *testing.T, h *harness) {
	props := append([]byte(nil), props5...)
	ids := []uint32{1, 2, 3}
	will := &storage.Will{Msg: storage.Message{Topic: "w", Payload: []byte("will"), Props: props}}
	d := storage.Delivery{ClientID: "c", Seq: 1, QoS: 1, Msg: storage.Message{Topic: "t", Props: props}, SubIDs: ids}
	h.write(putSession(storage.Session{ClientID: "c", Expiry: 5, Will: will}), putDelivery(d),
		putRetained(storage.Message{Topic: "r", Props: props}))
	props[0], ids[0] = 0x08, 99 // the broker reuses its buffers after Write
	will.Msg.Payload[0], will.Delay = 'X', 9

	want := &storage.Snapshot{
		Sessions:   []storage.Session{{ClientID: "c", Expiry: 5, Will: &storage.Will{Msg: storage.Message{Topic: "w", Payload: []byte("will"), Props: props5}}}},
		Deliveries: []storage.Delivery{{ClientID: "c", Seq: 1, QoS: 1, Msg: storage.Message{Topic: "t", Props: props5}, SubIDs: []uint32{1, 2, 3}}},
		Retained:   []storage.Message{{Topic: "r", Props: props5}},
	}
	h.expect(want)

	snap := h.load()
	snap.Sessions[0].Will.Msg.Payload[0] = 'Y'
	snap.Sessions[0].Will.Msg.Props[0] = 0
	snap.Sessions[0].Will.Delay = 1
	snap.Deliveries[0].Msg.Props[0] = 0
	snap.Deliveries[0].SubIDs[0] = 0
	snap.Retained[0].Props[0] = 0
	h.expectBoth(want)
}
