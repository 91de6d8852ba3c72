package bolt_test

import (
	"cmp"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/storage/bolt"
)

// testdata/layout-v1.db was written by Tern at commit 1275f4c (layout 1,
// values of format 1), by a program that opened it with bolt.Open and
// wrote putOps(layoutV1Records()) in one Write: a file as the versions of
// Tern before MQTT 5 leave it.

// layoutV1Records is the state in testdata/layout-v1.db: records of every
// kind, with and without their optional parts, and names too long for
// their keys.
func layoutV1Records() storage.Snapshot {
	longID := strings.Repeat("client-", 200)          // 1400 bytes: keyed by its hash
	longTopic := "long/" + strings.Repeat("t", 16400) // over 16 KiB: keyed by its hash
	odd := "a\x00b\x01c"                              // escaped in keys
	seen := time.Date(2026, 11, 20, 10, 11, 12, 123456789, time.UTC)
	binary := []byte{0, 1, 2, 0xfe, 0xff}
	return storage.Snapshot{
		Sessions: []storage.Session{
			{ClientID: "offline", LastSeen: seen, Username: "alice"},
			{ClientID: "online"},
			{ClientID: odd, LastSeen: time.Unix(1, 1).UTC(), Username: "bob"},
			{ClientID: longID, Clean: true, LastSeen: seen.Add(time.Hour)},
			{ClientID: "é-日本", Username: "ü"},
		},
		Subscriptions: []storage.Subscription{
			{ClientID: "offline", Filter: "sensors/+/temp", QoS: 1},
			{ClientID: "offline", Filter: "alarm/#", QoS: 2},
			{ClientID: "online", Filter: "#", QoS: 0},
			{ClientID: "online", Filter: "", QoS: 1},
			{ClientID: longID, Filter: "a/b", QoS: 1},
			{ClientID: odd, Filter: longTopic, QoS: 2},
		},
		Deliveries: []storage.Delivery{
			{ClientID: "offline", Seq: 1, QoS: 1, Msg: storage.Message{Topic: "sensors/1/temp", Payload: []byte("queued-1"), QoS: 1}},
			{ClientID: "offline", Seq: 2, QoS: 2, Retain: true, Msg: storage.Message{Topic: "alarm/door", Payload: []byte("queued-2"), QoS: 2, Retain: true}},
			{ClientID: "offline", Seq: 3, PacketID: 17, QoS: 1, Msg: storage.Message{Topic: "sensors/2/temp", Payload: []byte("in flight"), QoS: 2}},
			{ClientID: "offline", Seq: 4, PacketID: 18, QoS: 2, Msg: storage.Message{Topic: "alarm/window", Payload: binary, QoS: 2}},
			{ClientID: "offline", Seq: 5, PacketID: 19, QoS: 2, Released: true, Msg: storage.Message{Topic: "alarm/gate", QoS: 2}},
			{ClientID: "online", Seq: 1 << 40, PacketID: 65535, QoS: 1, Msg: storage.Message{Topic: "empty/payload", QoS: 1}},
			{ClientID: odd, Seq: 9, QoS: 1, Msg: storage.Message{Topic: "x", Payload: []byte("odd"), QoS: 1}},
			{ClientID: longID, Seq: 7, PacketID: 1, QoS: 2, Msg: storage.Message{Topic: "a/b", Payload: []byte("long id"), QoS: 2}},
		},
		Inbound: []storage.Inbound{
			{ClientID: "offline", PacketID: 5},
			{ClientID: "offline", PacketID: 65535},
			{ClientID: "online", PacketID: 300},
			{ClientID: longID, PacketID: 1},
		},
		Retained: []storage.Message{
			{Topic: "home/temp", Payload: []byte("21.5"), QoS: 1, Retain: true},
			{Topic: "home/raw", Payload: binary, QoS: 0, Retain: true},
			{Topic: "plain", Payload: []byte("not flagged"), QoS: 2},
			{Topic: longTopic, Payload: []byte("long"), QoS: 2, Retain: true},
			{Topic: "\x00nul", Payload: []byte("hashed"), Retain: true},
		},
	}
}

// putOps returns the ops that write snap.
func putOps(snap storage.Snapshot) []storage.Op {
	var ops []storage.Op
	for _, x := range snap.Sessions {
		ops = append(ops, storage.Op{Kind: storage.PutSession, Session: x})
	}
	for _, x := range snap.Subscriptions {
		ops = append(ops, storage.Op{Kind: storage.PutSubscription, Subscription: x})
	}
	for _, x := range snap.Deliveries {
		ops = append(ops, storage.Op{Kind: storage.PutDelivery, Delivery: x})
	}
	for _, x := range snap.Inbound {
		ops = append(ops, storage.Op{Kind: storage.PutInbound, Inbound: x})
	}
	for _, x := range snap.Retained {
		ops = append(ops, storage.Op{Kind: storage.PutRetained, Retained: x})
	}
	return ops
}

// layoutOf reads the layout version a closed store's file records.
func layoutOf(t *testing.T, path string) []byte {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	require.NoError(t, err, "bbolt.Open")
	defer db.Close()
	var v []byte
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("tern"))
		require.NotNil(t, b, "no meta bucket")
		v = slices.Clone(b.Get([]byte("format")))
		return nil
	}))
	return v
}

// setLayout records layout v (as its bytes) in a closed store's file.
func setLayout(t *testing.T, path string, v []byte) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err, "bbolt.Open")
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		if v == nil {
			return tx.Bucket([]byte("tern")).Delete([]byte("format"))
		}
		return tx.Bucket([]byte("tern")).Put([]byte("format"), v)
	}), "setting the layout")
	require.NoError(t, db.Close())
}

// sorted returns snap's lists in a fixed order, and times in UTC, to
// compare with what was written.
func sorted(snap storage.Snapshot) storage.Snapshot {
	slices.SortFunc(snap.Sessions, func(a, b storage.Session) int { return strings.Compare(a.ClientID, b.ClientID) })
	for i := range snap.Sessions {
		snap.Sessions[i].LastSeen = snap.Sessions[i].LastSeen.UTC()
		if w := snap.Sessions[i].Will; w != nil {
			w.PublishAt = w.PublishAt.UTC()
		}
	}
	slices.SortFunc(snap.Subscriptions, func(a, b storage.Subscription) int {
		return cmp.Or(strings.Compare(a.ClientID, b.ClientID), strings.Compare(a.Filter, b.Filter))
	})
	slices.SortFunc(snap.Deliveries, func(a, b storage.Delivery) int {
		return cmp.Or(strings.Compare(a.ClientID, b.ClientID), cmp.Compare(a.Seq, b.Seq))
	})
	slices.SortFunc(snap.Inbound, func(a, b storage.Inbound) int {
		return cmp.Or(strings.Compare(a.ClientID, b.ClientID), cmp.Compare(a.PacketID, b.PacketID))
	})
	slices.SortFunc(snap.Retained, func(a, b storage.Message) int { return strings.Compare(a.Topic, b.Topic) })
	return snap
}

// loadAll opens path, loads it and closes it.
func loadAll(t *testing.T, path string) storage.Snapshot {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{})
	require.NoError(t, err, "Open")
	defer func() { require.NoError(t, st.Close(), "Close") }()
	snap, err := st.Load(context.Background())
	require.NoError(t, err, "Load")
	return sorted(*snap)
}

// copyLayoutV1 copies testdata/layout-v1.db into a new directory.
func copyLayoutV1(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "layout-v1.db"))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "tern.db")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// TestOpenLayoutV1File: a file written before MQTT 5 opens, every record
// reads back as written with the MQTT 5 fields at their defaults (a
// session never expires, as every session did then), the file is marked
// with the current layout, and records with every MQTT 5 field set are
// then kept beside the old ones.
func TestOpenLayoutV1File(t *testing.T) {
	path := copyLayoutV1(t)
	require.Equal(t, []byte{1}, layoutOf(t, path), "layout of the file as committed")

	old := layoutV1Records()
	for i := range old.Sessions {
		old.Sessions[i].Expiry = storage.NeverExpires
	}
	want := sorted(old)
	assert.Equal(t, want, loadAll(t, path), "records of the layout 1 file")
	assert.Equal(t, []byte{2}, layoutOf(t, path), "layout recorded after Open")

	// New records with every MQTT 5 field, and an old record replaced by
	// one with them.
	props := []byte{0x03, 0x00, 0x01, 'j', 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v'}
	msg := storage.Message{Topic: "v5/t", Payload: []byte("p"), QoS: 1, HasFormat: true, Format: 1, Props: props,
		Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	will := storage.Will{Msg: msg, Delay: 30, PublishAt: time.Date(2027, 2, 1, 0, 0, 0, 5, time.UTC)}
	will.Msg.Expires = -60
	fresh := storage.Snapshot{
		Sessions: []storage.Session{
			{ClientID: "v5", Expiry: 2, Will: &will, LastSeen: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
			{ClientID: "offline", LastSeen: old.Sessions[0].LastSeen, Username: "alice", Expiry: 3600,
				Will: &storage.Will{Msg: storage.Message{Topic: "bye", QoS: 2}, Delay: 5}},
		},
		Subscriptions: []storage.Subscription{
			{ClientID: "v5", Filter: "$share/g/v5/#", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 268435455},
			{ClientID: "offline", Filter: "alarm/#", QoS: 2, ID: 1},
		},
		Deliveries: []storage.Delivery{
			{ClientID: "v5", Seq: 1, PacketID: 3, QoS: 1, Msg: msg, SubIDs: []uint32{268435455, 1}, Share: "$share/g/v5/#"},
			{ClientID: "offline", Seq: 6, QoS: 1, Msg: msg, SubIDs: []uint32{1}},
		},
		Retained: []storage.Message{{Topic: "v5/r", Payload: []byte("r"), QoS: 1, Retain: true, HasFormat: true, Props: props, Expires: math.MinInt64}},
	}
	st, err := bolt.Open(path, bolt.Options{})
	require.NoError(t, err, "Open")
	require.NoError(t, st.Write(context.Background(), putOps(fresh)), "Write")
	require.NoError(t, st.Close(), "Close")

	all := layoutV1Records()
	for i := range all.Sessions {
		all.Sessions[i].Expiry = storage.NeverExpires
	}
	all.Sessions[0] = fresh.Sessions[1] // "offline" replaced
	all.Sessions = append(all.Sessions, fresh.Sessions[0])
	all.Subscriptions[1] = fresh.Subscriptions[1] // "offline" "alarm/#" replaced
	all.Subscriptions = append(all.Subscriptions, fresh.Subscriptions[0])
	all.Deliveries = append(all.Deliveries, fresh.Deliveries...)
	all.Retained = append(all.Retained, fresh.Retained...)
	assert.Equal(t, sorted(all), loadAll(t, path), "records after writing MQTT 5 records into the upgraded file")
	assert.Equal(t, []byte{2}, layoutOf(t, path), "layout after a reopen")
}

// TestOpenRefusesNewerLayout: a file written by a later version of Tern,
// in a layout this one does not know, is refused by Open with an error
// that names the file and both layouts, and is left as it was.
func TestOpenRefusesNewerLayout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes []byte
		want  string
	}{
		{"next", []byte{3}, "layout 3"},
		{"two bytes", []byte{0x01, 0x00}, "layout 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tern.db")
			st, err := bolt.Open(path, bolt.Options{})
			require.NoError(t, err, "Open")
			require.NoError(t, st.Close())
			setLayout(t, path, tc.bytes)

			st, err = bolt.Open(path, bolt.Options{})
			if err == nil {
				st.Close()
			}
			require.Error(t, err, "Open of a file of a newer layout")
			t.Log(err)
			assert.ErrorIs(t, err, bolt.ErrNewerLayout)
			assert.NotErrorIs(t, err, bolt.ErrCorrupt, "a newer file is not a damaged one")
			assert.Contains(t, err.Error(), path, "error does not name the file")
			assert.Contains(t, err.Error(), tc.want, "error does not name the file's layout")
			assert.Contains(t, err.Error(), "up to 2", "error does not name the layout this version reads")
			assert.Equal(t, tc.bytes, layoutOf(t, path), "layout after the refused Open")
		})
	}
}

// TestOpenRefusesMalformedLayout: a meta bucket whose layout version is
// missing, empty, zero or too long is damage.
func TestOpenRefusesMalformedLayout(t *testing.T) {
	for name, v := range map[string][]byte{
		"missing": nil, "empty": {}, "zero": {0}, "nine bytes": {1, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tern.db")
			st, err := bolt.Open(path, bolt.Options{})
			require.NoError(t, err, "Open")
			require.NoError(t, st.Close())
			setLayout(t, path, v)
			checkCorrupt(t, openAndLoad(path), path)
		})
	}
}

// TestNewFileHasCurrentLayout: Open records the current layout in a new
// file.
func TestNewFileHasCurrentLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.db")
	st, err := bolt.Open(path, bolt.Options{})
	require.NoError(t, err, "Open")
	require.NoError(t, st.Close())
	assert.Equal(t, []byte{2}, layoutOf(t, path))
}
