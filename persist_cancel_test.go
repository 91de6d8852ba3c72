package tern_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
)

// opLog is a Store that records every op it writes.
type opLog struct {
	storage.Store
	mu  sync.Mutex
	ops []storage.Op
}

func (l *opLog) Write(ctx context.Context, ops []storage.Op) error {
	l.mu.Lock()
	l.ops = append(l.ops, ops...)
	l.mu.Unlock()
	return l.Store.Write(ctx, ops)
}

func (l *opLog) deliveryOps(topic string) (puts, deletes int, seqs map[uint64]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seqs = map[uint64]bool{}
	for _, op := range l.ops {
		if op.Kind == storage.PutDelivery && op.Delivery.Msg.Topic == topic {
			puts++
			seqs[op.Delivery.Seq] = true
		}
	}
	for _, op := range l.ops {
		if op.Kind == storage.DeleteDelivery && seqs[op.Delivery.Seq] {
			deletes++
		}
	}
	return puts, deletes, seqs
}

// TestPersistDeliveryAcknowledgedWithinOneBatchNeverReachesTheStore: a QoS
// 1 delivery to an online persistent subscriber that is acknowledged before
// the batch holding it is written is dropped from the batch, with its
// deletion; one written before its acknowledgement is put and deleted. The
// publisher's PUBACK still waits for the batch [MQTT-4.3.2-2].
func TestPersistDeliveryAcknowledgedWithinOneBatchNeverReachesTheStore(t *testing.T) {
	log := &opLog{Store: storage.NewMemory()}
	g := &psGate{Store: log}
	e := psStart(t, psBackend{"gated log", func(*testing.T) (storage.Store, func() storage.Store) { return g, nil }}, tern.Options{})
	t.Cleanup(g.release)
	sub := mustConnect(t, e.addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "c/#", QoS: 1})
	pub := mustConnect(t, e.addr, "pub", true)

	g.hold()
	pub.send(&packets.Publish{Topic: "c/first", Payload: []byte("1"), QoS: 1, PacketID: 1})
	first := sub.recvPublish() // a QoS 1 delivery is not held by the store
	g.waitEntered(t)           // the batch with "first" is being written

	pub.send(&packets.Publish{Topic: "c/second", Payload: []byte("2"), QoS: 1, PacketID: 2})
	second := sub.recvPublish()
	sub.send(&packets.Puback{PacketID: second.PacketID})
	sub.send(&packets.Pingreq{}) // the PUBACK is handled once PINGRESP comes
	_, ok := sub.recv().(*packets.Pingresp)
	require.True(t, ok, "expected PINGRESP")
	g.release()
	for _, id := range []uint16{1, 2} {
		p := pub.recv()
		a, ok := p.(*packets.Puback)
		require.True(t, ok, "expected PUBACK %d, got %v %+v", id, p.Type(), p)
		require.Equal(t, id, a.PacketID, "expected PUBACK %d", id)
	}
	sub.send(&packets.Puback{PacketID: first.PacketID})
	sub.send(&packets.Pingreq{})
	sub.recv()
	eventually(t, "the first delivery's deletion to be written", func() bool {
		_, del, _ := log.deliveryOps("c/first")
		return del == 1
	})
	puts, _, _ := log.deliveryOps("c/first")
	assert.Equal(t, 1, puts, "first: puts")
	puts, dels, _ := log.deliveryOps("c/second")
	assert.Zero(t, puts, "second: puts reached the store, want none")
	assert.Zero(t, dels, "second: deletes reached the store, want none")
}
