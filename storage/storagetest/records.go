package storagetest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/storage"
)

// Op constructors, so the tests read as the broker's batches do.

func putSession(s storage.Session) storage.Op {
	return storage.Op{Kind: storage.PutSession, Session: s}
}

func deleteSession(id string) storage.Op {
	return storage.Op{Kind: storage.DeleteSession, ClientID: id}
}

func putSub(id, filter string, qos byte) storage.Op {
	return storage.Op{Kind: storage.PutSubscription, Subscription: storage.Subscription{ClientID: id, Filter: filter, QoS: qos}}
}

func deleteSub(id, filter string) storage.Op {
	return storage.Op{Kind: storage.DeleteSubscription, Subscription: storage.Subscription{ClientID: id, Filter: filter}}
}

func putDelivery(d storage.Delivery) storage.Op {
	return storage.Op{Kind: storage.PutDelivery, Delivery: d}
}

func deleteDelivery(id string, seq uint64) storage.Op {
	return storage.Op{Kind: storage.DeleteDelivery, Delivery: storage.Delivery{ClientID: id, Seq: seq}}
}

func putInbound(id string, pid uint16) storage.Op {
	return storage.Op{Kind: storage.PutInbound, Inbound: storage.Inbound{ClientID: id, PacketID: pid}}
}

func deleteInbound(id string, pid uint16) storage.Op {
	return storage.Op{Kind: storage.DeleteInbound, Inbound: storage.Inbound{ClientID: id, PacketID: pid}}
}

func putRetained(m storage.Message) storage.Op {
	return storage.Op{Kind: storage.PutRetained, Retained: m}
}

func deleteRetained(topic string) storage.Op {
	return storage.Op{Kind: storage.DeleteRetained, Retained: storage.Message{Topic: topic}}
}

// delivery is a queued QoS 1 delivery of payload on topic.
func delivery(id string, seq uint64, topic, payload string) storage.Delivery {
	return storage.Delivery{ClientID: id, Seq: seq, QoS: 1, Msg: storage.Message{Topic: topic, Payload: []byte(payload), QoS: 1}}
}

func testEmpty(t *testing.T, h *harness) {
	h.expect(&storage.Snapshot{})
	h.write()
	h.write(deleteSession("nobody"), deleteSub("nobody", "a"), deleteDelivery("nobody", 1),
		deleteInbound("nobody", 1), deleteRetained("nothing"))
	h.expectBoth(&storage.Snapshot{})
}

func testSessions(t *testing.T, h *harness) {
	seen := time.Date(2024, 5, 1, 12, 30, 0, 123456789, time.FixedZone("CEST", 2*3600))
	a := storage.Session{ClientID: "a", LastSeen: seen, Username: "alice"}
	b := storage.Session{ClientID: "b"} // connected: zero LastSeen, no user
	h.write(putSession(a), putSession(b))
	h.expectBoth(&storage.Snapshot{Sessions: []storage.Session{a, b}})

	// Upsert by ClientID, including times far from the epoch.
	a.LastSeen = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	a.Username = "alice2"
	b.LastSeen = time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)
	b.Clean = true
	h.write(putSession(a), putSession(b))
	h.expectBoth(&storage.Snapshot{Sessions: []storage.Session{a, b}})

	h.write(deleteSession("a"))
	h.expectBoth(&storage.Snapshot{Sessions: []storage.Session{b}})
}

func testSubscriptions(t *testing.T, h *harness) {
	h.write(putSub("c1", "a/b", 1), putSub("c1", "a/+", 0), putSub("c2", "#", 2), putSub("c2", "a/b", 0))
	h.expectBoth(&storage.Snapshot{Subscriptions: []storage.Subscription{
		{ClientID: "c1", Filter: "a/b", QoS: 1}, {ClientID: "c1", Filter: "a/+", QoS: 0},
		{ClientID: "c2", Filter: "#", QoS: 2}, {ClientID: "c2", Filter: "a/b", QoS: 0},
	}})

	// Upsert by (ClientID, Filter); delete one; deleting a missing one is
	// not an error.
	h.write(putSub("c1", "a/b", 2), deleteSub("c1", "a/+"), deleteSub("c1", "missing"), deleteSub("c3", "#"))
	h.expectBoth(&storage.Snapshot{Subscriptions: []storage.Subscription{
		{ClientID: "c1", Filter: "a/b", QoS: 2},
		{ClientID: "c2", Filter: "#", QoS: 2}, {ClientID: "c2", Filter: "a/b", QoS: 0},
	}})
}

func testDeliveries(t *testing.T, h *harness) {
	d1 := delivery("c", 1, "t/1", "one")
	d2 := delivery("c", 2, "t/2", "two")
	d2.QoS, d2.Msg.QoS, d2.Retain, d2.Msg.Retain = 2, 2, true, true
	h.write(putDelivery(d1), putDelivery(d2))
	h.expectBoth(&storage.Snapshot{Deliveries: []storage.Delivery{d1, d2}})

	// In flight: packet identifier set, then PUBREC received.
	d1.PacketID = 1
	d2.PacketID = 65535
	h.write(putDelivery(d1), putDelivery(d2))
	h.expectBoth(&storage.Snapshot{Deliveries: []storage.Delivery{d1, d2}})
	d2.Released = true
	d2.Msg.Payload = nil // the broker may drop the payload once PUBREC came
	h.write(putDelivery(d2))
	h.expectBoth(&storage.Snapshot{Deliveries: []storage.Delivery{d1, d2}})

	h.write(deleteDelivery("c", 1), deleteDelivery("c", 3), deleteDelivery("other", 2))
	h.expectBoth(&storage.Snapshot{Deliveries: []storage.Delivery{d2}})
}

func testInbound(t *testing.T, h *harness) {
	h.write(putInbound("c", 1), putInbound("c", 65535), putInbound("d", 1), putInbound("c", 1))
	h.expectBoth(&storage.Snapshot{Inbound: []storage.Inbound{{ClientID: "c", PacketID: 1}, {ClientID: "c", PacketID: 65535}, {ClientID: "d", PacketID: 1}}})
	h.write(deleteInbound("c", 1), deleteInbound("c", 2))
	h.expectBoth(&storage.Snapshot{Inbound: []storage.Inbound{{ClientID: "c", PacketID: 65535}, {ClientID: "d", PacketID: 1}}})
}

func testRetained(t *testing.T, h *harness) {
	m1 := storage.Message{Topic: "a/b", Payload: []byte("21.5"), QoS: 1, Retain: true}
	m2 := storage.Message{Topic: "a/c", Payload: []byte{}, QoS: 0, Retain: true} // stored as given
	m3 := storage.Message{Topic: "$SYS/x", Payload: []byte("y"), QoS: 2}
	h.write(putRetained(m1), putRetained(m2), putRetained(m3))
	h.expectBoth(&storage.Snapshot{Retained: []storage.Message{m1, m2, m3}})

	m1.Payload, m1.QoS = []byte("22"), 2
	h.write(putRetained(m1), deleteRetained("a/c"), deleteRetained("missing"))
	h.expectBoth(&storage.Snapshot{Retained: []storage.Message{m1, m3}})
}

func testOpsInOrder(t *testing.T, h *harness) {
	d := delivery("c", 1, "t", "p")
	h.write(
		putDelivery(d), deleteDelivery("c", 1), // gone
		putSub("c", "x", 1), deleteSession("c"), putSession(storage.Session{ClientID: "c"}), // session only
		deleteRetained("r"), putRetained(storage.Message{Topic: "r", Payload: []byte("1")}),
		putInbound("c", 9), deleteInbound("c", 9), putInbound("c", 9),
	)
	h.expectBoth(&storage.Snapshot{
		Sessions: []storage.Session{{ClientID: "c"}},
		Inbound:  []storage.Inbound{{ClientID: "c", PacketID: 9}},
		Retained: []storage.Message{{Topic: "r", Payload: []byte("1")}},
	})
}

// fill writes a session with a subscription, a delivery and an inbound
// identifier for each id, and returns what Load should show.
func fill(h *harness, ids ...string) *storage.Snapshot {
	want := &storage.Snapshot{}
	var ops []storage.Op
	for i, id := range ids {
		s := storage.Session{ClientID: id, Username: "u" + id}
		sub := storage.Subscription{ClientID: id, Filter: id + "/#", QoS: 1}
		d := delivery(id, uint64(i+1), "t/"+id, "payload of "+id)
		in := storage.Inbound{ClientID: id, PacketID: uint16(i + 1)}
		ops = append(ops, putSession(s), putSub(id, sub.Filter, sub.QoS), putDelivery(d), putInbound(id, in.PacketID))
		want.Sessions = append(want.Sessions, s)
		want.Subscriptions = append(want.Subscriptions, sub)
		want.Deliveries = append(want.Deliveries, d)
		want.Inbound = append(want.Inbound, in)
	}
	h.write(ops...)
	return want
}

// without returns want less the records of client id.
func without(want *storage.Snapshot, id string) *storage.Snapshot {
	out := &storage.Snapshot{Retained: want.Retained}
	for _, x := range want.Sessions {
		if x.ClientID != id {
			out.Sessions = append(out.Sessions, x)
		}
	}
	for _, x := range want.Subscriptions {
		if x.ClientID != id {
			out.Subscriptions = append(out.Subscriptions, x)
		}
	}
	for _, x := range want.Deliveries {
		if x.ClientID != id {
			out.Deliveries = append(out.Deliveries, x)
		}
	}
	for _, x := range want.Inbound {
		if x.ClientID != id {
			out.Inbound = append(out.Inbound, x)
		}
	}
	return out
}

func testDeleteSessionCascades(t *testing.T, h *harness) {
	// Neighbours that share a prefix with "a" in every plausible key
	// encoding must survive its deletion.
	ids := []string{"a", "", "ab", "a\x00", "a\x00b", "a\x01", "a/b", "a\xff", "b", strings.Repeat("a", 5000)}
	want := fill(h, ids...)
	r := storage.Message{Topic: "a", Payload: []byte("kept"), Retain: true}
	h.write(putRetained(r))
	want.Retained = []storage.Message{r}
	h.expect(want)
	// Many records of one client go at once.
	var ops []storage.Op
	for i := range 50 {
		ops = append(ops, putDelivery(delivery("a", uint64(100+i), "t", "x")), putSub("a", fmt.Sprint("f/", i), 1), putInbound("a", uint16(100+i)))
	}
	h.write(ops...)

	for _, id := range []string{"a", "", "a\x00", strings.Repeat("a", 5000)} {
		h.write(deleteSession(id))
		want = without(want, id)
		h.expectBoth(want)
	}

	// A client's records go even when it has no session record.
	h.write(putDelivery(delivery("orphan", 1, "t", "x")), putSub("orphan", "f", 0), putInbound("orphan", 3))
	h.write(deleteSession("orphan"))
	h.expectBoth(want)
}

func testDeliveryOrder(t *testing.T, h *harness) {
	seqs := []uint64{1 << 63, 0, 256, 1, 255, 1<<64 - 1, 65536, 1 << 32, 65535}
	ids := []string{"b", "a", "ab", "é", "a\x00", "", "B", strings.Repeat("z", 3000)}
	var want []storage.Delivery
	var ops []storage.Op
	for i, seq := range seqs {
		for j, id := range ids {
			d := delivery(id, seq, "t", string(rune('a'+i+j)))
			want = append(want, d)
			ops = append(ops, putDelivery(d))
		}
	}
	// Two batches, the second written first, so insertion order is not
	// the answer.
	h.write(ops[len(ops)/2:]...)
	h.write(ops[:len(ops)/2]...)
	h.expectBoth(&storage.Snapshot{Deliveries: want})
}

func testPayloads(t *testing.T, h *harness) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), (1<<20)/18+1)[:1<<20]
	payloads := [][]byte{nil, {}, {0}, all, big}
	want := &storage.Snapshot{}
	var ops []storage.Op
	for i, p := range payloads {
		d := delivery("c", uint64(i), "t", "")
		d.Msg.Payload = p
		m := storage.Message{Topic: "t/" + string(rune('a'+i)), Payload: p, Retain: true}
		ops = append(ops, putDelivery(d), putRetained(m))
		want.Deliveries = append(want.Deliveries, d)
		want.Retained = append(want.Retained, m)
	}
	h.write(ops...)
	h.expectBoth(want)
}

func testIdentifiers(t *testing.T, h *harness) {
	long := strings.Repeat("é", 32767) // 65534 bytes, the protocol allows 65535
	ids := []string{"", "日本語のクライアント", "🙂/+#", "a\x00b", "\x00", "\x01\x02", "\xff\xfe", long}
	topics := []string{"", "/", "日本/語", "a\x00b", "\x00", "\x01", "$SYS/🙂", long + "x"}
	want := &storage.Snapshot{}
	var ops []storage.Op
	for i, id := range ids {
		topic := topics[i]
		s := storage.Session{ClientID: id, Username: id}
		sub := storage.Subscription{ClientID: id, Filter: topic, QoS: 2}
		d := delivery(id, 7, topic, id)
		in := storage.Inbound{ClientID: id, PacketID: 7}
		m := storage.Message{Topic: topic, Payload: []byte(id), QoS: 1, Retain: true}
		ops = append(ops, putSession(s), putSub(id, topic, 2), putDelivery(d), putInbound(id, 7), putRetained(m))
		want.Sessions = append(want.Sessions, s)
		want.Subscriptions = append(want.Subscriptions, sub)
		want.Deliveries = append(want.Deliveries, d)
		want.Inbound = append(want.Inbound, in)
		want.Retained = append(want.Retained, m)
	}
	h.write(ops...)
	h.expectBoth(want)

	// Deleting each kind of record by its odd key works too.
	ops = ops[:0]
	for i, id := range ids {
		ops = append(ops, deleteSub(id, topics[i]), deleteDelivery(id, 7), deleteInbound(id, 7), deleteRetained(topics[i]))
	}
	h.write(ops...)
	h.expectBoth(&storage.Snapshot{Sessions: want.Sessions})
	for _, id := range ids {
		h.write(deleteSession(id))
	}
	h.expectBoth(&storage.Snapshot{})
}
