package bolt

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/ternmq/tern/storage"
)

// TestFormatV2CostsNothingWithoutMQTT5Fields: every value of the layout 1
// file, decoded and encoded again, is the same bytes in format 2 but for
// the version byte (inbound values, which have no MQTT 5 field, stay in
// format 1): a record without MQTT 5 fields costs what it did.
func TestFormatV2CostsNothingWithoutMQTT5Fields(t *testing.T) {
	db, err := bbolt.Open(filepath.Join("testdata", "layout-v1.db"), 0o600, &bbolt.Options{ReadOnly: true})
	require.NoError(t, err, "bbolt.Open")
	defer db.Close()
	// Each record is read as Load reads it (its names from the key or the
	// value), then encoded again.
	reencode := [numBuckets]func(k, v []byte) ([]byte, error){
		bktSessions: func(k, v []byte) ([]byte, error) {
			l := loader{&storage.Snapshot{}}
			if err := l.session(k, v); err != nil {
				return nil, err
			}
			return appendSessionValue(nil, &l.snap.Sessions[0]), nil
		},
		bktSubscriptions: func(k, v []byte) ([]byte, error) {
			l := loader{&storage.Snapshot{}}
			if err := l.subscription(k, v); err != nil {
				return nil, err
			}
			return appendSubscriptionValue(nil, &l.snap.Subscriptions[0]), nil
		},
		bktDeliveries: func(k, v []byte) ([]byte, error) {
			l := loader{&storage.Snapshot{}}
			if err := l.delivery(k, v); err != nil {
				return nil, err
			}
			return appendDeliveryValue(nil, &l.snap.Deliveries[0]), nil
		},
		bktInbound: func(k, v []byte) ([]byte, error) {
			l := loader{&storage.Snapshot{}}
			if err := l.inbound(k, v); err != nil {
				return nil, err
			}
			return appendInboundValue(nil, &l.snap.Inbound[0]), nil
		},
		bktRetained: func(k, v []byte) ([]byte, error) {
			l := loader{&storage.Snapshot{}}
			if err := l.retained(k, v); err != nil {
				return nil, err
			}
			return appendRetainedValue(nil, &l.snap.Retained[0]), nil
		},
	}
	n := 0
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		for i, name := range bucketNames {
			require.NoError(t, tx.Bucket(name).ForEach(func(k, v []byte) error {
				n++
				require.Equal(t, byte(formatV1), v[0], "bucket %s key %x: version", name, k)
				got, err := reencode[i](k, v)
				require.NoError(t, err, "bucket %s key %x: decode", name, k)
				want := append([]byte(nil), v...)
				if i != bktInbound {
					want[0] = formatV2
				}
				assert.Equal(t, want, got, "bucket %s key %x: encoded again", name, k)
				return nil
			}))
		}
		return nil
	}))
	assert.Equal(t, 28, n, "records in the file")
}

// TestFormatV2Sizes: what each MQTT 5 field costs in a delivery's value.
func TestFormatV2Sizes(t *testing.T) {
	base := storage.Delivery{ClientID: "c", Seq: 1, QoS: 1, Msg: storage.Message{Topic: "t", QoS: 1, Payload: []byte("p")}}
	size := func(d storage.Delivery) int { return len(appendDeliveryValue(nil, &d)) }
	plain := size(base)
	assert.Equal(t, 10, plain, "a delivery without MQTT 5 fields")
	for name, tc := range map[string]struct {
		set  func(d *storage.Delivery)
		cost int
	}{
		"payload format indicator 0": {func(d *storage.Delivery) { d.Msg.HasFormat = true }, 1},
		"payload format indicator 1": {func(d *storage.Delivery) { d.Msg.HasFormat, d.Msg.Format = true, 1 }, 2},
		"properties":                 {func(d *storage.Delivery) { d.Msg.Props = make([]byte, 10) }, 1 + 1 + 10},
		"expiry":                     {func(d *storage.Delivery) { d.Msg.Expires = 1 << 60 }, 1 + 9},
		"one subscription id":        {func(d *storage.Delivery) { d.SubIDs = []uint32{5} }, 1 + 1 + 1},
		"shared":                     {func(d *storage.Delivery) { d.Share = "$share/g/t" }, 1 + 1 + 10},
	} {
		d := base
		tc.set(&d)
		assert.Equal(t, plain+tc.cost, size(d), name)
	}
}
