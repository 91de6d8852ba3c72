package session

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// payloadOf is the payload of d, or "<nil>" when there is no delivery.
func payloadOf(d *Delivery) string {
	if d == nil {
		return "<nil>"
	}
	return string(d.Msg.Payload)
}

func TestNewClampsTheWindow(t *testing.T) {
	cases := []struct{ asked, want int }{{-5, 1}, {0, 1}, {1, 1}, {3, 3}, {65535, 65535}, {70000, 65535}}
	for _, tc := range cases {
		s := New("c", false, tc.asked, 0)
		admitted := 0
		for i := 0; i < tc.want+1; i++ {
			d, ok := s.Push(del("m", 1), true)
			if d != nil {
				admitted++
				continue
			}
			require.False(t, ok, "maxQueued 0: delivery %d queued", i)
		}
		assert.Equal(t, tc.want, admitted, "New(maxInflight %d): deliveries admitted", tc.asked)
		assert.Equal(t, tc.want, s.InflightLen(), "New(maxInflight %d): deliveries in flight", tc.asked)
	}
}

func TestSubscribeReportsNewAndUnsubscribeReportsRemoved(t *testing.T) {
	s := New("c", true, 1, 1)
	assert.True(t, s.Subscribe("a/+", 1), "first Subscribe not new")
	// [MQTT-3.8.4-3] an identical filter replaces the subscription.
	assert.False(t, s.Subscribe("a/+", 2), "re-Subscribe reported a new subscription [MQTT-3.8.4-3]")
	assert.Equal(t, map[string]uint32{"a/+": 2}, s.Subs, "re-Subscribe: want a/+ replaced with QoS 2 [MQTT-3.8.4-3]")
	// [MQTT-3.10.4-1] only the identical filter is removed.
	assert.False(t, s.Unsubscribe("a/#"), "Unsubscribe of a/# removed something [MQTT-3.10.4-1]")
	assert.False(t, s.Unsubscribe("A/+"), "Unsubscribe of A/+ removed something [MQTT-3.10.4-1]")
	assert.Len(t, s.Subs, 1, "Unsubscribe of other filters removed something [MQTT-3.10.4-1]")
	assert.True(t, s.Unsubscribe("a/+"), "Unsubscribe of the subscribed filter reported no removal")
	assert.Empty(t, s.Subs, "Unsubscribe left subscriptions")
	assert.False(t, s.Unsubscribe("a/+"), "second Unsubscribe reported a removal")
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
		require.Equal(t, st.sent, d != nil, "step %d: Push = (%v, %v): returned to send", i, d, ok)
		require.Equal(t, st.ok, ok, "step %d: Push = (%v, %v): accepted", i, d, ok)
	}
	require.Equal(t, []string{"b", "c"}, payloadsOf(s.Queued()), "queued")
	offline := New("c", false, 5, 3)
	for i := 0; i < 3; i++ {
		d, ok := offline.Push(del(fmt.Sprint(i), 1), false)
		require.Nil(t, d, "offline Push %d returned a delivery to send", i)
		require.True(t, ok, "offline Push %d refused, want queued", i)
	}
	require.Equal(t, 0, offline.InflightLen(), "offline: deliveries in flight")
	require.Equal(t, 3, offline.QueueLen(), "offline: deliveries queued")
}

func TestNextFillsTheWindowInOrder(t *testing.T) {
	s := New("c", false, 2, 10)
	for _, p := range []Delivery{del("a", 1), del("b", 2), del("c", 1), del("d", 0), del("e", 1)} {
		s.Push(p, false)
	}
	var sent []string
	for d := next(s); d != nil; d = next(s) {
		sent = append(sent, string(d.Msg.Payload))
	}
	require.Equal(t, []string{"a", "b"}, sent, "sent while the window had room")
	require.Equal(t, 2, s.InflightLen(), "in flight after filling the window")
	inflight := s.Inflight()
	s.Puback(inflight[0].PacketID)
	d := next(s)
	require.Equal(t, "c", payloadOf(d), "Next after PUBACK = %+v", d)
	require.NotZero(t, d.PacketID, "Next after PUBACK = %+v, want c with an identifier", d)
	// A full window does not hold back a QoS 0 delivery at the head, but
	// holds back the QoS 1 one behind it.
	d = next(s)
	require.Equal(t, "d", payloadOf(d), "Next with a full window and QoS 0 at the head = %+v", d)
	require.Zero(t, d.PacketID, "Next = %+v, want d without an identifier", d)
	require.Nil(t, next(s), "Next with a full window and QoS 1 at the head")
	s.Pubrec(inflight[1].PacketID)
	require.Nil(t, next(s), "Next after PUBREC only, want nil (PUBREC frees no place)")
	s.Pubcomp(inflight[1].PacketID)
	d = next(s)
	require.Equal(t, "e", payloadOf(d), "Next after PUBCOMP = %+v", d)
	require.Nil(t, next(s), "queue not empty")
	require.Zero(t, s.QueueLen(), "queue not empty")
	full := New("c", false, 1, 10)
	full.Push(del("x", 1), true)
	full.Push(del("q0", 0), false)
	d = next(full)
	require.NotNil(t, d, "QoS 0 at the head behind a full window: Next = nil")
	require.Zero(t, d.QoS, "QoS 0 at the head behind a full window: Next = %+v", d)
}

// TestPacketIDsNonZeroUniqueAndWrapping: identifiers are never 0, never
// those of a delivery in flight, become free on completion, and wrap from
// 65535 to 1 skipping those in use. [MQTT-2.3.1-1] [MQTT-2.3.1-2]
// [MQTT-2.3.1-3] [MQTT-2.3.1-4]
func TestPacketIDsNonZeroUniqueAndWrapping(t *testing.T) {
	s := New("c", false, 10, 0)
	held1, _ := s.Push(del("held", 2), true)
	held2, _ := s.Push(del("held", 1), true)
	require.NotNil(t, held1, "first delivery not admitted")
	require.NotNil(t, held2, "second delivery not admitted")
	require.Equal(t, []uint16{1, 2}, []uint16{held1.PacketID, held2.PacketID}, "first identifiers")
	s.Pubrec(held1.PacketID) // released, not completed: still in use
	seen := map[uint16]int{}
	// Violations are collected and checked after the loop: a check call per
	// delivery would dominate the test's time under the race detector.
	var reused []uint16            // zero or the identifier of a delivery in flight
	var misrouted []uint16         // completions that returned another delivery
	for i := 0; i < 2*65533; i++ { // each free identifier twice
		d, _ := s.Push(del("m", byte(1+i%2)), true)
		if d == nil {
			require.FailNow(t, "delivery not admitted", "delivery %d", i)
		}
		if d.PacketID == 0 || d.PacketID == held1.PacketID || d.PacketID == held2.PacketID {
			reused = append(reused, d.PacketID)
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
			misrouted = append(misrouted, d.PacketID)
		}
	}
	require.Empty(t, reused, "identifiers given that were zero or in use [MQTT-2.3.1-1] [MQTT-2.3.1-2]")
	require.Empty(t, misrouted, "identifiers whose completion returned another delivery")
	require.Len(t, seen, 65533, "distinct identifiers used, want all but 0 and the two held")
	for id, n := range seen {
		require.Equal(t, 2, n, "identifier %d: uses over two wraps", id)
	}
	got := s.Inflight()
	require.Len(t, got, 2, "in flight %+v, want the two held deliveries", got)
	require.Same(t, held1, got[0], "in flight %+v, want the two held deliveries", got)
	require.Same(t, held2, got[1], "in flight %+v, want the two held deliveries", got)
	require.True(t, got[0].Released, "the held QoS 2 delivery lost its PUBREC")
	require.LessOrEqual(t, len(s.f.inflight), 2*len(s.f.byID)+16,
		"inflight slice holds %d entries for %d in flight", len(s.f.inflight), len(s.f.byID))
}

// TestAcknowledgementsMatchQoSAndState: PUBACK completes only QoS 1,
// PUBREC only marks QoS 2 released, PUBCOMP completes only a released
// QoS 2 delivery; unknown identifiers change nothing. [MQTT-4.3.2-1]
// [MQTT-4.3.3-1]
func TestAcknowledgementsMatchQoSAndState(t *testing.T) {
	s := New("c", false, 10, 0)
	q1, _ := s.Push(del("one", 1), true)
	q2, _ := s.Push(del("two", 2), true)
	require.NotNil(t, q1, "QoS 1 delivery not admitted")
	require.NotNil(t, q2, "QoS 2 delivery not admitted")
	checks := []struct {
		name string
		got  *Delivery
	}{
		{"PUBACK unknown", s.Puback(999)},
		{"PUBACK on QoS 2", s.Puback(q2.PacketID)},
		{"PUBREC on QoS 1", s.Pubrec(q1.PacketID)},
		{"PUBCOMP before PUBREC", s.Pubcomp(q2.PacketID)},
		{"PUBCOMP on QoS 1", s.Pubcomp(q1.PacketID)},
	}
	for _, c := range checks {
		assert.Nil(t, c.got, "%s, want nil", c.name)
	}
	require.Equal(t, 2, s.InflightLen(), "state changed by refused acknowledgements: in flight")
	require.False(t, q2.Released, "state changed by refused acknowledgements: QoS 2 released")
	require.Same(t, q2, s.Pubrec(q2.PacketID), "PUBREC did not return the QoS 2 delivery")
	require.True(t, q2.Released, "PUBREC did not mark the QoS 2 delivery released")
	require.Equal(t, 2, s.InflightLen(), "PUBREC did not keep the QoS 2 delivery in flight")
	require.Same(t, q2, s.Pubrec(q2.PacketID), "a repeated PUBREC is refused")
	require.Same(t, q1, s.Puback(q1.PacketID), "PUBACK did not complete the QoS 1 delivery")
	require.Nil(t, s.Puback(q1.PacketID), "PUBACK completed the QoS 1 delivery twice")
	require.Same(t, q2, s.Pubcomp(q2.PacketID), "PUBCOMP did not complete the QoS 2 delivery")
	require.Nil(t, s.Pubcomp(q2.PacketID), "PUBCOMP completed the QoS 2 delivery twice")
	require.Zero(t, s.InflightLen(), "deliveries left in flight after every completion")
}

// TestInflightKeepsSendOrderAcrossOutOfOrderAcks: what is resent on
// reconnect comes in the original order. [MQTT-4.4.0-1] [MQTT-4.6.0-1]
func TestInflightKeepsSendOrderAcrossOutOfOrderAcks(t *testing.T) {
	s := New("c", false, 100, 0)
	var ds []*Delivery
	for i := 0; i < 50; i++ {
		d, _ := s.Push(del(fmt.Sprint(i), 1), true)
		require.NotNil(t, d, "delivery %d not admitted", i)
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
	require.Equal(t, want, payloadsOf(s.Inflight()), "in flight, in send order [MQTT-4.6.0-1]")
}

func TestRestoreKeepsIdentifiersAndState(t *testing.T) {
	s := New("c", false, 10, 10)
	require.False(t, s.Restore(Delivery{Msg: msg("zero"), QoS: 1}), "Restore accepted packet identifier 0")
	a := Delivery{Msg: msg("a"), QoS: 2, PacketID: 40, Released: true}
	require.True(t, s.Restore(a), "Restore refused the first delivery")
	require.False(t, s.Restore(Delivery{Msg: msg("dup"), QoS: 1, PacketID: 40}), "Restore accepted a duplicate identifier")
	s.Restore(Delivery{Msg: msg("b"), QoS: 1, PacketID: 7})
	got := s.Inflight()
	require.Len(t, got, 2, "restored %+v", got)
	require.Equal(t, uint16(40), got[0].PacketID, "restored %+v", got)
	require.True(t, got[0].Released, "restored %+v: released state lost", got)
	require.Equal(t, uint16(7), got[1].PacketID, "restored %+v", got)
	d, _ := s.Push(del("new", 1), true)
	require.NotNil(t, d, "new delivery after Restore not admitted")
	require.NotContains(t, []uint16{0, 7, 40}, d.PacketID, "new delivery after Restore got %+v", d)
	require.NotNil(t, s.Pubcomp(40), "restored released delivery not completed by PUBCOMP")
}

func TestEnqueueIgnoresTheBound(t *testing.T) {
	s := New("c", false, 1, 1)
	for i := 0; i < 5; i++ {
		s.Enqueue(del(fmt.Sprint(i), 1))
	}
	require.Equal(t, 5, s.QueueLen(), "queued")
	_, ok := s.Push(del("x", 1), false)
	require.False(t, ok, "Push accepted past the bound")
}

func TestDropQueuedQoS0KeepsTheOthersInOrder(t *testing.T) {
	s := New("c", false, 1, 10)
	for i, q := range []byte{0, 1, 0, 2, 1, 0} {
		s.Push(del(fmt.Sprint(i), q), false)
	}
	require.Equal(t, []string{"0", "2", "5"}, payloadsOf(s.DropQueuedQoS0()), "dropped")
	require.Equal(t, []string{"1", "3", "4"}, payloadsOf(s.Queued()), "kept")
	require.Empty(t, s.DropQueuedQoS0(), "second drop removed deliveries")
}

// TestInboundQoS2Identifiers: identifiers are held from PUBREC to PUBREL.
// [MQTT-4.3.3-2]
func TestInboundQoS2Identifiers(t *testing.T) {
	s := New("c", false, 1, 1)
	require.False(t, s.Inbound(5), "empty session reports inbound identifier 5")
	require.False(t, s.ReleaseInbound(5), "empty session released inbound identifier 5")
	require.Empty(t, s.InboundIDs(), "empty session reports inbound identifiers")
	s.AddInbound(5)
	s.AddInbound(9)
	s.AddInbound(5)
	ids := s.InboundIDs()
	slices.Sort(ids)
	require.True(t, s.Inbound(5), "inbound %v: 5 missing", ids)
	require.Equal(t, []uint16{5, 9}, ids, "inbound identifiers")
	require.True(t, s.ReleaseInbound(5), "ReleaseInbound(5) found nothing [MQTT-4.3.3-2]")
	require.False(t, s.Inbound(5), "ReleaseInbound did not forget id 5")
	require.False(t, s.ReleaseInbound(5), "ReleaseInbound released id 5 twice")
	require.True(t, s.Inbound(9), "ReleaseInbound(5) forgot id 9")
}

func TestSetLimits(t *testing.T) {
	s := New("c", false, 1, 0)
	s.SetLimits(0, 2) // an invalid window is ignored
	s.Push(del("a", 1), true)
	d, ok := s.Push(del("b", 1), true)
	require.Nil(t, d, "window 1, queue 2: Push returned a delivery to send")
	require.True(t, ok, "window 1, queue 2: Push refused, want queued")
	s.SetLimits(3, 0)
	require.NotNil(t, next(s), "larger window did not let the queued delivery go")
	_, ok = s.Push(del("c", 1), false)
	require.False(t, ok, "queue bound 0 accepted a delivery")
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
		n := r.IntN(len(model) + 1)
		got := make([]string, n)
		for i := range got {
			got[i] = payloadOf(next(s))
		}
		require.Equal(t, model[:n], got, "step %d: Next, %d times", step, n)
		model = model[n:]
		require.Equal(t, len(model), s.QueueLen(), "step %d: QueueLen", step)
	}
	require.Equal(t, model, payloadsOf(s.Queued()), "Queued differs from the model")
}

// TestQueuedReturnsACopy: changing the result does not change the queue.
func TestQueuedReturnsACopy(t *testing.T) {
	s := New("c", false, 1, 5)
	s.Push(del("a", 1), false)
	q := s.Queued()
	q[0].QoS = 0
	q[0].Msg = msg("changed")
	d := s.Queued()[0]
	require.Equal(t, byte(1), d.QoS, "queue changed through Queued: %+v", d)
	require.Equal(t, "a", string(d.Msg.Payload), "queue changed through Queued: %+v", d)
}

// next is Session.Next without the resend flag.
func next(s *Session) *Delivery {
	d, _ := s.Next()
	return d
}

// [MQTT-4.4.0-1] [v5 MQTT-3.3.4-9] Resend gives a new connection every
// PUBREL to send again and at most its window of PUBLISHes; the others
// wait in flight, with their identifiers, and Next hands them out, before
// anything queued, as acknowledgements free the window.
func TestResendWithinTheNewWindow(t *testing.T) {
	s := New("c", false, 10, 10)
	var ids []uint16
	for i := range 5 {
		d, ok := s.Push(Delivery{Msg: &Message{Topic: "t"}, QoS: 1, Seq: uint64(i)}, true)
		require.True(t, ok)
		require.NotNil(t, d)
		ids = append(ids, d.PacketID)
	}
	q2, _ := s.Push(Delivery{Msg: &Message{Topic: "q2"}, QoS: 2}, true)
	require.NotNil(t, s.Pubrec(q2.PacketID))
	d, ok := s.Push(Delivery{Msg: &Message{Topic: "queued"}, QoS: 1}, false) // offline: queued
	require.True(t, ok)
	require.Nil(t, d)
	s.SetLimits(2, 10) // the new connection's Receive Maximum

	again := s.Resend(2)
	require.Len(t, again, 3)
	assert.Equal(t, ids[0], again[0].PacketID)
	assert.Equal(t, ids[1], again[1].PacketID)
	assert.True(t, again[2].Released, "the PUBREL goes again too")
	d, resend := s.Next()
	assert.Nil(t, d, "window full: nothing more until an acknowledgement")
	assert.False(t, resend)

	require.NotNil(t, s.Puback(ids[0]))
	d, _ = s.Next()
	assert.Nil(t, d, "the released QoS 2 delivery still holds a place until PUBCOMP")
	require.NotNil(t, s.Pubcomp(q2.PacketID))
	d, resend = s.Next()
	require.NotNil(t, d)
	assert.True(t, resend, "a delivery in flight is sent again before the queue")
	assert.Equal(t, ids[2], d.PacketID, "with its packet identifier")
	require.NotNil(t, s.Puback(ids[1]))
	require.NotNil(t, s.Puback(ids[2]))
	for _, want := range ids[3:] {
		d, resend = s.Next()
		require.NotNil(t, d)
		assert.True(t, resend)
		assert.Equal(t, want, d.PacketID)
		require.NotNil(t, s.Puback(d.PacketID))
	}
	d, resend = s.Next()
	require.NotNil(t, d)
	assert.False(t, resend)
	assert.Equal(t, "queued", d.Msg.Topic, "then the queue")
}

// NextInto hands out a queued QoS 0 delivery in the caller's scratch
// value, without allocating, and a QoS 1 delivery as its own value in
// flight, as Next does.
func TestNextIntoReusesScratch(t *testing.T) {
	s := New("c", false, 10, 100)
	m := &Message{Topic: "t", Payload: []byte("p")}
	s.Push(Delivery{Msg: m, QoS: 0, Seq: 1}, false)
	s.Push(Delivery{Msg: m, QoS: 1, Seq: 2}, false)
	var q0 Delivery
	d, resend := s.NextInto(&q0)
	require.False(t, resend)
	require.Same(t, &q0, d, "a QoS 0 delivery goes in the scratch value")
	assert.Equal(t, uint64(1), d.Seq)
	d, _ = s.NextInto(&q0)
	require.NotSame(t, &q0, d, "a QoS 1 delivery enters the window as its own value")
	assert.Equal(t, uint64(2), d.Seq)
	assert.NotZero(t, d.PacketID)

	allocs := testing.AllocsPerRun(100, func() {
		s.Push(Delivery{Msg: m, QoS: 0}, false)
		if d, _ := s.NextInto(&q0); d != &q0 {
			t.Fatal("not the scratch value")
		}
	})
	assert.Zero(t, allocs, "allocations per queued QoS 0 delivery")
}

// TestSessionWithoutDeliveries: a session that never had a delivery
// answers every query as empty and completes nothing, and subscriptions
// and inbound QoS 2 identifiers do not allocate its outbound part, which
// an idle client's session does without.
func TestSessionWithoutDeliveries(t *testing.T) {
	s := New("c", true, 10, 10)
	s.Subscribe("a/b", 1)
	s.AddInbound(7)
	require.True(t, s.ReleaseInbound(7), "inbound identifier 7 not recorded")
	d, resend := s.Next()
	assert.Nil(t, d, "Next on a session without deliveries")
	assert.False(t, resend, "Next on a session without deliveries: resend")
	assert.Empty(t, s.Resend(10), "Resend on a session without deliveries")
	assert.Empty(t, s.Inflight(), "Inflight on a session without deliveries")
	assert.Empty(t, s.Queued(), "Queued on a session without deliveries")
	assert.Empty(t, s.DropQueuedQoS0(), "DropQueuedQoS0 on a session without deliveries")
	assert.Zero(t, s.InflightLen(), "InflightLen")
	assert.Zero(t, s.QueueLen(), "QueueLen")
	assert.False(t, s.Waiting(), "Waiting")
	for id := range uint16(3) {
		assert.Nil(t, s.Puback(id), "Puback(%d)", id)
		assert.Nil(t, s.Pubrec(id), "Pubrec(%d)", id)
		assert.Nil(t, s.Pubcomp(id), "Pubcomp(%d)", id)
	}
	assert.False(t, s.Drop(&Delivery{PacketID: 1, QoS: 1}), "Drop of a delivery never in flight")
	assert.Nil(t, s.f, "outbound part allocated without a delivery")

	sent, ok := s.Push(del("m", 1), true)
	require.True(t, ok, "Push refused")
	require.NotNil(t, sent, "Push did not admit into an empty window")
	assert.Equal(t, 1, s.InflightLen(), "InflightLen after Push")
	assert.Same(t, sent, s.Puback(sent.PacketID), "Puback of the delivery pushed")
}
