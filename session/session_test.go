package session

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func msg(s string) *Message { return &Message{Topic: "t", Payload: []byte(s), QoS: 2} }

func del(s string, qos byte) Delivery { return Delivery{Msg: msg(s), QoS: qos} }

// payloadsOf lists the payloads of ds.
func payloadsOf[D Delivery | *Delivery](ds []D) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		switch d := any(d).(type) {
		case Delivery:
			out[i] = string(d.Msg.Payload)
		case *Delivery:
			out[i] = string(d.Msg.Payload)
		}
	}
	return out
}

func TestNewClampsTheWindow(t *testing.T) {
	cases := []struct{ asked, want int }{{-5, 1}, {0, 1}, {1, 1}, {3, 3}, {65535, 65535}, {70000, 65535}}
	for _, tc := range cases {
		s := New("c", false, tc.asked, 0)
		admitted := 0
		for i := 0; i < tc.want+1; i++ {
			if d, ok := s.Push(del("m", 1), true); d != nil {
				admitted++
			} else if ok {
				t.Fatalf("maxQueued 0: delivery %d queued", i)
			}
		}
		if admitted != tc.want || s.InflightLen() != tc.want {
			t.Errorf("New(maxInflight %d): %d admitted, %d in flight, want %d", tc.asked, admitted, s.InflightLen(), tc.want)
		}
	}
}

func TestSubscribeReportsNewAndUnsubscribeReportsRemoved(t *testing.T) {
	s := New("c", true, 1, 1)
	if !s.Subscribe("a/+", 1) {
		t.Error("first Subscribe not new")
	}
	// [MQTT-3.8.4-3] an identical filter replaces the subscription.
	if s.Subscribe("a/+", 2) || s.Subs["a/+"] != 2 || len(s.Subs) != 1 {
		t.Errorf("re-Subscribe: Subs %v, want a/+ replaced with QoS 2", s.Subs)
	}
	// [MQTT-3.10.4-1] only the identical filter is removed.
	if s.Unsubscribe("a/#") || s.Unsubscribe("A/+") || len(s.Subs) != 1 {
		t.Errorf("Unsubscribe of other filters removed something: %v", s.Subs)
	}
	if !s.Unsubscribe("a/+") || len(s.Subs) != 0 {
		t.Errorf("Unsubscribe: Subs %v", s.Subs)
	}
	if s.Unsubscribe("a/+") {
		t.Error("second Unsubscribe reported a removal")
	}
}

func TestPushAdmitsQueuesOrRefuses(t *testing.T) {
	s := New("c", false, 2, 2)
	steps := []struct {
		d      Delivery
		online bool
		sent   bool // admitted and returned to send
		ok     bool
	}{
		{del("a", 1), true, true, true},
		{del("b", 0), true, false, true}, // QoS 0 is only ever queued
		{del("c", 2), true, false, true}, // behind the queued one, to keep order
		{del("d", 1), true, false, false},
		{del("e", 2), false, false, false},
	}
	for i, st := range steps {
		d, ok := s.Push(st.d, st.online)
		if (d != nil) != st.sent || ok != st.ok {
			t.Fatalf("step %d: Push = (%v, %v), want sent %v ok %v", i, d, ok, st.sent, st.ok)
		}
	}
	if got := payloadsOf(s.Queued()); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("queued %v, want [b c]", got)
	}
	offline := New("c", false, 5, 3)
	for i := 0; i < 3; i++ {
		if d, ok := offline.Push(del(fmt.Sprint(i), 1), false); d != nil || !ok {
			t.Fatalf("offline Push %d = (%v, %v), want queued", i, d, ok)
		}
	}
	if offline.InflightLen() != 0 || offline.QueueLen() != 3 {
		t.Fatalf("offline: %d in flight, %d queued", offline.InflightLen(), offline.QueueLen())
	}
}

func TestNextFillsTheWindowInOrder(t *testing.T) {
	s := New("c", false, 2, 10)
	for _, p := range []Delivery{del("a", 1), del("b", 2), del("c", 1), del("d", 0), del("e", 1)} {
		s.Push(p, false)
	}
	var sent []string
	for d := s.Next(); d != nil; d = s.Next() {
		sent = append(sent, string(d.Msg.Payload))
	}
	if !slices.Equal(sent, []string{"a", "b"}) || s.InflightLen() != 2 {
		t.Fatalf("sent %v with %d in flight, want [a b] and 2", sent, s.InflightLen())
	}
	inflight := s.Inflight()
	s.Puback(inflight[0].PacketID)
	if d := s.Next(); d == nil || string(d.Msg.Payload) != "c" || d.PacketID == 0 {
		t.Fatalf("Next after PUBACK = %+v, want c with an identifier", d)
	}
	// A full window does not hold back a QoS 0 delivery at the head, but
	// holds back the QoS 1 one behind it.
	if d := s.Next(); d == nil || string(d.Msg.Payload) != "d" || d.PacketID != 0 {
		t.Fatalf("Next = %+v, want d without an identifier", d)
	}
	if d := s.Next(); d != nil {
		t.Fatalf("Next with a full window = %+v", d)
	}
	s.Pubrec(inflight[1].PacketID)
	if d := s.Next(); d != nil {
		t.Fatalf("Next after PUBREC only = %+v, want nil (PUBREC frees no place)", d)
	}
	s.Pubcomp(inflight[1].PacketID)
	if d := s.Next(); d == nil || string(d.Msg.Payload) != "e" {
		t.Fatalf("Next = %+v, want e", d)
	}
	if s.Next() != nil || s.QueueLen() != 0 {
		t.Fatal("queue not empty")
	}
	full := New("c", false, 1, 10)
	full.Push(del("x", 1), true)
	full.Push(del("q0", 0), false)
	if d := full.Next(); d == nil || d.QoS != 0 {
		t.Fatalf("QoS 0 at the head behind a full window: Next = %+v", d)
	}
}

// TestPacketIDsNonZeroUniqueAndWrapping: identifiers are never 0, never
// those of a delivery in flight, become free on completion, and wrap from
// 65535 to 1 skipping those in use. [MQTT-2.3.1-1] [MQTT-2.3.1-2]
// [MQTT-2.3.1-3] [MQTT-2.3.1-4]
func TestPacketIDsNonZeroUniqueAndWrapping(t *testing.T) {
	s := New("c", false, 10, 0)
	held1, _ := s.Push(del("held", 2), true)
	held2, _ := s.Push(del("held", 1), true)
	if held1.PacketID != 1 || held2.PacketID != 2 {
		t.Fatalf("first identifiers %d %d, want 1 2", held1.PacketID, held2.PacketID)
	}
	s.Pubrec(held1.PacketID) // released, not completed: still in use
	seen := map[uint16]int{}
	for i := 0; i < 2*65533; i++ { // each free identifier twice
		d, _ := s.Push(del("m", byte(1+i%2)), true)
		if d == nil {
			t.Fatalf("delivery %d not admitted", i)
		}
		if d.PacketID == 0 || d.PacketID == held1.PacketID || d.PacketID == held2.PacketID {
			t.Fatalf("delivery %d got identifier %d", i, d.PacketID)
		}
		seen[d.PacketID]++
		var done *Delivery
		if d.QoS == 1 {
			done = s.Puback(d.PacketID)
		} else {
			s.Pubrec(d.PacketID)
			done = s.Pubcomp(d.PacketID)
		}
		if done != d {
			t.Fatalf("completing %d returned %+v", d.PacketID, done)
		}
	}
	if len(seen) != 65533 {
		t.Fatalf("%d distinct identifiers used, want 65533 (all but 0 and the two held)", len(seen))
	}
	for id, n := range seen {
		if n != 2 {
			t.Fatalf("identifier %d used %d times over two wraps, want 2", id, n)
		}
	}
	if got := s.Inflight(); len(got) != 2 || got[0] != held1 || got[1] != held2 || !got[0].Released {
		t.Fatalf("in flight %+v, want the two held deliveries", got)
	}
	if len(s.inflight) > 2*len(s.byID)+16 {
		t.Fatalf("inflight slice holds %d entries for %d in flight", len(s.inflight), len(s.byID))
	}
}

// TestAcknowledgementsMatchQoSAndState: PUBACK completes only QoS 1,
// PUBREC only marks QoS 2 released, PUBCOMP completes only a released
// QoS 2 delivery; unknown identifiers change nothing. [MQTT-4.3.2-1]
// [MQTT-4.3.3-1]
func TestAcknowledgementsMatchQoSAndState(t *testing.T) {
	s := New("c", false, 10, 0)
	q1, _ := s.Push(del("one", 1), true)
	q2, _ := s.Push(del("two", 2), true)
	checks := []struct {
		name string
		got  *Delivery
		want *Delivery
	}{
		{"PUBACK unknown", s.Puback(999), nil},
		{"PUBACK on QoS 2", s.Puback(q2.PacketID), nil},
		{"PUBREC on QoS 1", s.Pubrec(q1.PacketID), nil},
		{"PUBCOMP before PUBREC", s.Pubcomp(q2.PacketID), nil},
		{"PUBCOMP on QoS 1", s.Pubcomp(q1.PacketID), nil},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %+v, want %v", c.name, c.got, c.want)
		}
	}
	if s.InflightLen() != 2 || q2.Released {
		t.Fatalf("state changed by refused acknowledgements: %d in flight, released %v", s.InflightLen(), q2.Released)
	}
	if s.Pubrec(q2.PacketID) != q2 || !q2.Released || s.InflightLen() != 2 {
		t.Fatal("PUBREC did not mark the QoS 2 delivery released and keep it in flight")
	}
	if s.Pubrec(q2.PacketID) != q2 {
		t.Fatal("a repeated PUBREC is refused")
	}
	if s.Puback(q1.PacketID) != q1 || s.Puback(q1.PacketID) != nil {
		t.Fatal("PUBACK did not complete the QoS 1 delivery exactly once")
	}
	if s.Pubcomp(q2.PacketID) != q2 || s.Pubcomp(q2.PacketID) != nil || s.InflightLen() != 0 {
		t.Fatal("PUBCOMP did not complete the QoS 2 delivery exactly once")
	}
}

// TestInflightKeepsSendOrderAcrossOutOfOrderAcks: what is resent on
// reconnect comes in the original order. [MQTT-4.4.0-1] [MQTT-4.6.0-1]
func TestInflightKeepsSendOrderAcrossOutOfOrderAcks(t *testing.T) {
	s := New("c", false, 100, 0)
	var ds []*Delivery
	for i := 0; i < 50; i++ {
		d, _ := s.Push(del(fmt.Sprint(i), 1), true)
		ds = append(ds, d)
	}
	var want []string
	for i, d := range ds {
		if i%3 == 0 || i == 49 {
			want = append(want, fmt.Sprint(i))
			continue
		}
		s.Puback(d.PacketID)
	}
	if got := payloadsOf(s.Inflight()); !slices.Equal(got, want) {
		t.Fatalf("in flight %v, want %v", got, want)
	}
}

func TestRestoreKeepsIdentifiersAndState(t *testing.T) {
	s := New("c", false, 10, 10)
	if s.Restore(Delivery{Msg: msg("zero"), QoS: 1}) {
		t.Fatal("Restore accepted packet identifier 0")
	}
	a := Delivery{Msg: msg("a"), QoS: 2, PacketID: 40, Released: true}
	if !s.Restore(a) || s.Restore(Delivery{Msg: msg("dup"), QoS: 1, PacketID: 40}) {
		t.Fatal("Restore: first refused or duplicate accepted")
	}
	s.Restore(Delivery{Msg: msg("b"), QoS: 1, PacketID: 7})
	got := s.Inflight()
	if len(got) != 2 || got[0].PacketID != 40 || !got[0].Released || got[1].PacketID != 7 {
		t.Fatalf("restored %+v", got)
	}
	if d, _ := s.Push(del("new", 1), true); d == nil || d.PacketID == 40 || d.PacketID == 7 || d.PacketID == 0 {
		t.Fatalf("new delivery after Restore got %+v", d)
	}
	if s.Pubcomp(40) == nil {
		t.Fatal("restored released delivery not completed by PUBCOMP")
	}
}

func TestEnqueueIgnoresTheBound(t *testing.T) {
	s := New("c", false, 1, 1)
	for i := 0; i < 5; i++ {
		s.Enqueue(del(fmt.Sprint(i), 1))
	}
	if s.QueueLen() != 5 {
		t.Fatalf("%d queued, want 5", s.QueueLen())
	}
	if _, ok := s.Push(del("x", 1), false); ok {
		t.Fatal("Push accepted past the bound")
	}
}

func TestDropQueuedQoS0KeepsTheOthersInOrder(t *testing.T) {
	s := New("c", false, 1, 10)
	for i, q := range []byte{0, 1, 0, 2, 1, 0} {
		s.Push(del(fmt.Sprint(i), q), false)
	}
	if got := payloadsOf(s.DropQueuedQoS0()); !slices.Equal(got, []string{"0", "2", "5"}) {
		t.Fatalf("dropped %v, want [0 2 5]", got)
	}
	if got := payloadsOf(s.Queued()); !slices.Equal(got, []string{"1", "3", "4"}) {
		t.Fatalf("kept %v, want [1 3 4]", got)
	}
	if got := s.DropQueuedQoS0(); len(got) != 0 {
		t.Fatalf("second drop removed %v", got)
	}
}

// TestInboundQoS2Identifiers: identifiers are held from PUBREC to PUBREL.
// [MQTT-4.3.3-2]
func TestInboundQoS2Identifiers(t *testing.T) {
	s := New("c", false, 1, 1)
	if s.Inbound(5) || s.ReleaseInbound(5) || len(s.InboundIDs()) != 0 {
		t.Fatal("empty session reports inbound identifiers")
	}
	s.AddInbound(5)
	s.AddInbound(9)
	s.AddInbound(5)
	ids := s.InboundIDs()
	slices.Sort(ids)
	if !s.Inbound(5) || !slices.Equal(ids, []uint16{5, 9}) {
		t.Fatalf("inbound %v", ids)
	}
	if !s.ReleaseInbound(5) || s.Inbound(5) || s.ReleaseInbound(5) || !s.Inbound(9) {
		t.Fatal("ReleaseInbound did not forget exactly id 5")
	}
}

func TestSetLimits(t *testing.T) {
	s := New("c", false, 1, 0)
	s.SetLimits(0, 2) // an invalid window is ignored
	s.Push(del("a", 1), true)
	if d, ok := s.Push(del("b", 1), true); d != nil || !ok {
		t.Fatalf("window 1, queue 2: Push = (%v, %v), want queued", d, ok)
	}
	s.SetLimits(3, 0)
	if s.Next() == nil {
		t.Fatal("larger window did not let the queued delivery go")
	}
	if _, ok := s.Push(del("c", 1), false); ok {
		t.Fatal("queue bound 0 accepted a delivery")
	}
}

// TestQueueMatchesAFIFOModel drives the ring buffer through growth,
// wrap-around and shrinking against a slice.
func TestQueueMatchesAFIFOModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := New("c", false, 1, 1<<20)
	var model []string
	seq := 0
	for step := 0; step < 20000; step++ {
		if r.IntN(3) > 0 || len(model) == 0 {
			for n := r.IntN(40); n > 0; n-- {
				p := fmt.Sprint(seq)
				seq++
				s.Push(del(p, 0), false)
				model = append(model, p)
			}
			continue
		}
		for n := r.IntN(len(model) + 1); n > 0; n-- {
			d := s.Next()
			if d == nil || string(d.Msg.Payload) != model[0] {
				t.Fatalf("step %d: Next = %+v, want %s", step, d, model[0])
			}
			model = model[1:]
		}
		if s.QueueLen() != len(model) {
			t.Fatalf("step %d: QueueLen %d, want %d", step, s.QueueLen(), len(model))
		}
	}
	if got := payloadsOf(s.Queued()); !slices.Equal(got, model) {
		t.Fatal("Queued differs from the model")
	}
}

// TestQueuedReturnsACopy: changing the result does not change the queue.
func TestQueuedReturnsACopy(t *testing.T) {
	s := New("c", false, 1, 5)
	s.Push(del("a", 1), false)
	q := s.Queued()
	q[0].QoS = 0
	q[0].Msg = msg("changed")
	if d := s.Queued()[0]; d.QoS != 1 || string(d.Msg.Payload) != "a" {
		t.Fatalf("queue changed through Queued: %+v", d)
	}
}
