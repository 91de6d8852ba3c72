package storagetest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/storage"
)

// model is the reference a backend is compared with: the contract of
// storage.Op applied to plain maps.
type model struct {
	sessions   map[string]storage.Session
	subs       map[[2]string]storage.Subscription
	deliveries map[deliveryKey]storage.Delivery
	inbound    map[storage.Inbound]bool
	retained   map[string]storage.Message
}

type deliveryKey struct {
	id  string
	seq uint64
}

func newModel() *model {
	return &model{
		sessions:   map[string]storage.Session{},
		subs:       map[[2]string]storage.Subscription{},
		deliveries: map[deliveryKey]storage.Delivery{},
		inbound:    map[storage.Inbound]bool{},
		retained:   map[string]storage.Message{},
	}
}

func (m *model) apply(op storage.Op) {
	switch op.Kind {
	case storage.PutSession:
		m.sessions[op.Session.ClientID] = op.Session
	case storage.DeleteSession:
		delete(m.sessions, op.ClientID)
		for k := range m.subs {
			if k[0] == op.ClientID {
				delete(m.subs, k)
			}
		}
		for k := range m.deliveries {
			if k.id == op.ClientID {
				delete(m.deliveries, k)
			}
		}
		for k := range m.inbound {
			if k.ClientID == op.ClientID {
				delete(m.inbound, k)
			}
		}
	case storage.PutSubscription:
		m.subs[[2]string{op.Subscription.ClientID, op.Subscription.Filter}] = op.Subscription
	case storage.DeleteSubscription:
		delete(m.subs, [2]string{op.Subscription.ClientID, op.Subscription.Filter})
	case storage.PutDelivery:
		m.deliveries[deliveryKey{op.Delivery.ClientID, op.Delivery.Seq}] = op.Delivery
	case storage.DeleteDelivery:
		delete(m.deliveries, deliveryKey{op.Delivery.ClientID, op.Delivery.Seq})
	case storage.PutInbound:
		m.inbound[op.Inbound] = true
	case storage.DeleteInbound:
		delete(m.inbound, op.Inbound)
	case storage.PutRetained:
		m.retained[op.Retained.Topic] = op.Retained
	case storage.DeleteRetained:
		delete(m.retained, op.Retained.Topic)
	}
}

// snapshot lists the model's contents; harness.expect sorts them.
func (m *model) snapshot() *storage.Snapshot {
	s := &storage.Snapshot{}
	for _, x := range m.sessions {
		s.Sessions = append(s.Sessions, x)
	}
	for _, x := range m.subs {
		s.Subscriptions = append(s.Subscriptions, x)
	}
	for _, x := range m.deliveries {
		s.Deliveries = append(s.Deliveries, x)
	}
	for x := range m.inbound {
		s.Inbound = append(s.Inbound, x)
	}
	for _, x := range m.retained {
		s.Retained = append(s.Retained, x)
	}
	return s
}

// randomOp draws an op over a few keys, so that puts, replacements and
// deletes of one record meet often. About half the records it puts carry
// MQTT 5 fields, each set or not at random, so that a record with some is
// replaced by one with others or none.
func randomOp(r *rand.Rand) storage.Op {
	ids := []string{"a", "ab", "a\x00", "", "é"}
	filters := []string{"x", "x/+", "#", "$share/g/x"}
	topics := []string{"t", "t/1", ""}
	id := ids[r.IntN(len(ids))]
	payload := fmt.Appendf(nil, "%d", r.Uint32())
	v5 := r.IntN(2) == 0
	switch kind := storage.Kind(1 + r.IntN(int(storage.DeleteRetained))); kind {
	case storage.PutSession:
		s := storage.Session{ClientID: id, Username: string(payload),
			LastSeen: time.Unix(r.Int64N(1<<40), r.Int64N(1e9)).UTC(), Expiry: storage.NeverExpires}
		if v5 {
			s.Expiry = randomUint32(r)
			if r.IntN(2) == 0 {
				s.Will = &storage.Will{Msg: randomMessage(r, topics[r.IntN(len(topics))], payload), Delay: randomUint32(r)}
				if r.IntN(2) == 0 {
					s.Will.PublishAt = time.Unix(r.Int64N(1<<40), r.Int64N(1e9)).UTC()
				}
			}
		}
		return putSession(s)
	case storage.DeleteSession:
		if r.IntN(3) > 0 { // rarer than the others, or little would be stored
			return deleteDelivery(id, uint64(r.IntN(20)))
		}
		return deleteSession(id)
	case storage.PutSubscription:
		s := storage.Subscription{ClientID: id, Filter: filters[r.IntN(len(filters))], QoS: byte(r.IntN(3))}
		if v5 {
			s.NoLocal, s.RetainAsPublished = r.IntN(2) == 0, r.IntN(2) == 0
			s.RetainHandling = byte(r.IntN(3))
			s.ID = uint32(r.IntN(3)) * randomUint32(r)
		}
		return storage.Op{Kind: storage.PutSubscription, Subscription: s}
	case storage.DeleteSubscription:
		return deleteSub(id, filters[r.IntN(len(filters))])
	case storage.PutDelivery:
		d := delivery(id, uint64(r.IntN(20)), topics[r.IntN(len(topics))], string(payload))
		d.PacketID = uint16(r.IntN(3))
		d.Released = r.IntN(2) == 0
		d.Retain = r.IntN(2) == 0
		if v5 {
			d.Msg = randomMessage(r, d.Msg.Topic, d.Msg.Payload)
			for range r.IntN(4) {
				d.SubIDs = append(d.SubIDs, 1+uint32(r.IntN(268435455)))
			}
			if r.IntN(2) == 0 {
				d.Share = "$share/g/x"
			}
		}
		return putDelivery(d)
	case storage.DeleteDelivery:
		return deleteDelivery(id, uint64(r.IntN(20)))
	case storage.PutInbound:
		return putInbound(id, uint16(1+r.IntN(5)))
	case storage.DeleteInbound:
		return deleteInbound(id, uint16(1+r.IntN(5)))
	case storage.PutRetained:
		m := storage.Message{Topic: topics[r.IntN(len(topics))], Payload: payload, QoS: byte(r.IntN(3)), Retain: true}
		if v5 {
			m = randomMessage(r, m.Topic, m.Payload)
		}
		return putRetained(m)
	default:
		return deleteRetained(topics[r.IntN(len(topics))])
	}
}

// randomMessage draws a message on topic whose MQTT 5 fields are each set
// or not.
func randomMessage(r *rand.Rand, topic string, payload []byte) storage.Message {
	m := storage.Message{Topic: topic, Payload: payload, QoS: byte(r.IntN(3)), Retain: r.IntN(2) == 0}
	m.HasFormat = r.IntN(2) == 0
	if m.HasFormat {
		m.Format = byte(r.IntN(2))
	}
	if r.IntN(2) == 0 {
		m.Props = []byte{0x03, 0x00, 0x01, byte('a' + r.IntN(26))} // Content Type
	}
	if r.IntN(2) == 0 {
		m.Expires = r.Int64() - r.Int64() // either sign
	}
	return m
}

// randomUint32 draws from the values whose encodings differ: 0, small,
// large, the largest.
func randomUint32(r *rand.Rand) uint32 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return 1 + uint32(r.IntN(127))
	case 2:
		return r.Uint32()
	}
	return 0xFFFFFFFF
}

func testRandomOps(t *testing.T, h *harness) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	m := newModel()
	for i := 1; i <= 300; i++ {
		ops := make([]storage.Op, 1+r.IntN(8))
		for j := range ops {
			ops[j] = randomOp(r)
			m.apply(ops[j])
		}
		h.write(ops...)
		if i%25 == 0 {
			h.expect(m.snapshot())
		}
		if i%100 == 0 {
			h.reopen()
			h.expect(m.snapshot())
		}
		if t.Failed() {
			require.FailNow(t, "stopped at the first write whose result differs",
				"after write %d (seed %d)", i, seed)
		}
	}
}
