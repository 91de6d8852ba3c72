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
	subs       map[[2]string]byte
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
		subs:       map[[2]string]byte{},
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
		m.subs[[2]string{op.Subscription.ClientID, op.Subscription.Filter}] = op.Subscription.QoS
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
	for k, qos := range m.subs {
		s.Subscriptions = append(s.Subscriptions, storage.Subscription{ClientID: k[0], Filter: k[1], QoS: qos})
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
// deletes of one record meet often.
func randomOp(r *rand.Rand) storage.Op {
	ids := []string{"a", "ab", "a\x00", "", "é"}
	filters := []string{"x", "x/+", "#"}
	topics := []string{"t", "t/1", ""}
	id := ids[r.IntN(len(ids))]
	payload := fmt.Appendf(nil, "%d", r.Uint32())
	switch kind := storage.Kind(1 + r.IntN(int(storage.DeleteRetained))); kind {
	case storage.PutSession:
		return putSession(storage.Session{ClientID: id, Username: string(payload),
			LastSeen: time.Unix(r.Int64N(1<<40), r.Int64N(1e9)).UTC()})
	case storage.DeleteSession:
		if r.IntN(3) > 0 { // rarer than the others, or little would be stored
			return deleteDelivery(id, uint64(r.IntN(20)))
		}
		return deleteSession(id)
	case storage.PutSubscription:
		return putSub(id, filters[r.IntN(len(filters))], byte(r.IntN(3)))
	case storage.DeleteSubscription:
		return deleteSub(id, filters[r.IntN(len(filters))])
	case storage.PutDelivery:
		d := delivery(id, uint64(r.IntN(20)), topics[r.IntN(len(topics))], string(payload))
		d.PacketID = uint16(r.IntN(3))
		d.Released = r.IntN(2) == 0
		d.Retain = r.IntN(2) == 0
		return putDelivery(d)
	case storage.DeleteDelivery:
		return deleteDelivery(id, uint64(r.IntN(20)))
	case storage.PutInbound:
		return putInbound(id, uint16(1+r.IntN(5)))
	case storage.DeleteInbound:
		return deleteInbound(id, uint16(1+r.IntN(5)))
	case storage.PutRetained:
		return putRetained(storage.Message{Topic: topics[r.IntN(len(topics))], Payload: payload, QoS: byte(r.IntN(3)), Retain: true})
	default:
		return deleteRetained(topics[r.IntN(len(topics))])
	}
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
