package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/ternmq/tern/storage"
)

// Buckets, in the order of the bkt constants.
var bucketNames = [...][]byte{
	bktSessions:      []byte("sessions"),
	bktSubscriptions: []byte("subscriptions"),
	bktDeliveries:    []byte("deliveries"),
	bktInbound:       []byte("inbound"),
	bktRetained:      []byte("retained"),
}

const (
	bktSessions = iota
	bktSubscriptions
	bktDeliveries
	bktInbound
	bktRetained
	numBuckets
)

// A mutation changes one bucket: a put, a delete, or the delete of every
// key with a prefix. Keys and values are offsets in the batch's buffer.
type mutation struct {
	bucket         uint8
	kind           uint8
	k0, k1, v0, v1 int
}

const (
	mPut = iota
	mDelete
	mDeletePrefix
)

// batch is one Write, encoded: the work left for the writer is to hand
// the keys and values to bbolt.
type batch struct {
	buf  []byte
	muts []mutation
}

// encode turns ops into a batch, or fails before anything is written.
func encode(ops []storage.Op) (*batch, error) {
	b := &batch{muts: make([]mutation, 0, len(ops))}
	for i := range ops {
		if err := b.add(&ops[i]); err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
	}
	return b, nil
}

// put records a put of the key buf[k0:v0] and the value buf[v0:].
func (b *batch) put(bucket uint8, k0, v0 int) {
	b.muts = append(b.muts, mutation{bucket: bucket, kind: mPut, k0: k0, k1: v0, v0: v0, v1: len(b.buf)})
}

// del records a delete of the key, or the prefix, buf[k0:].
func (b *batch) del(bucket, kind uint8, k0 int) {
	b.muts = append(b.muts, mutation{bucket: bucket, kind: kind, k0: k0, k1: len(b.buf)})
}

func (b *batch) add(op *storage.Op) error {
	k0 := len(b.buf)
	switch op.Kind {
	case storage.PutSession:
		b.buf = appendClientKey(b.buf, op.Session.ClientID)
		v0 := len(b.buf)
		b.buf = appendSessionValue(b.buf, &op.Session)
		b.put(bktSessions, k0, v0)
	case storage.DeleteSession:
		b.buf = appendClientKey(b.buf, op.ClientID)
		b.del(bktSessions, mDelete, k0)
		for _, bkt := range []uint8{bktSubscriptions, bktDeliveries, bktInbound} {
			b.del(bkt, mDeletePrefix, k0)
		}
	case storage.PutSubscription, storage.DeleteSubscription:
		s := &op.Subscription
		b.buf = appendClientKey(b.buf, s.ClientID)
		b.buf = appendNameKey(b.buf, s.Filter, true)
		if op.Kind == storage.DeleteSubscription {
			b.del(bktSubscriptions, mDelete, k0)
			break
		}
		v0 := len(b.buf)
		b.buf = appendSubscriptionValue(b.buf, s)
		b.put(bktSubscriptions, k0, v0)
	case storage.PutDelivery, storage.DeleteDelivery:
		d := &op.Delivery
		b.buf = appendClientKey(b.buf, d.ClientID)
		b.buf = binary.BigEndian.AppendUint64(b.buf, d.Seq)
		if op.Kind == storage.DeleteDelivery {
			b.del(bktDeliveries, mDelete, k0)
			break
		}
		v0 := len(b.buf)
		b.buf = appendDeliveryValue(b.buf, d)
		b.put(bktDeliveries, k0, v0)
	case storage.PutInbound, storage.DeleteInbound:
		in := &op.Inbound
		b.buf = appendClientKey(b.buf, in.ClientID)
		b.buf = binary.BigEndian.AppendUint16(b.buf, in.PacketID)
		if op.Kind == storage.DeleteInbound {
			b.del(bktInbound, mDelete, k0)
			break
		}
		v0 := len(b.buf)
		b.buf = appendInboundValue(b.buf, in)
		b.put(bktInbound, k0, v0)
	case storage.PutRetained, storage.DeleteRetained:
		m := &op.Retained
		b.buf = appendNameKey(b.buf, m.Topic, false)
		if op.Kind == storage.DeleteRetained {
			b.del(bktRetained, mDelete, k0)
			break
		}
		v0 := len(b.buf)
		b.buf = appendRetainedValue(b.buf, m)
		b.put(bktRetained, k0, v0)
	default:
		return fmt.Errorf("unknown kind %d", op.Kind)
	}
	if m := b.muts[len(b.muts)-1]; m.v1-m.v0 > bbolt.MaxValueSize {
		b.buf, b.muts = b.buf[:k0], b.muts[:len(b.muts)-1]
		return fmt.Errorf("value of %d bytes is over bbolt's limit", m.v1-m.v0)
	}
	return nil
}

// apply writes the batch in tx; bks are its buckets.
func (b *batch) apply(bks *[numBuckets]*bbolt.Bucket) error {
	for _, m := range b.muts {
		bk := bks[m.bucket]
		key := b.buf[m.k0:m.k1:m.k1]
		var err error
		switch m.kind {
		case mPut:
			err = bk.Put(key, b.buf[m.v0:m.v1:m.v1])
		case mDelete:
			err = bk.Delete(key)
		case mDeletePrefix:
			err = deletePrefix(bk, key)
		}
		if err != nil {
			return fmt.Errorf("bucket %s: %w", bucketNames[m.bucket], err)
		}
	}
	return nil
}

// deletePrefix deletes every key of bk that starts with prefix. It seeks
// again after each delete, as a bbolt cursor may skip the key that follows
// a deleted one.
func deletePrefix(bk *bbolt.Bucket, prefix []byte) error {
	c := bk.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
