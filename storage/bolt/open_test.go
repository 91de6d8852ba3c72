package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/storage/bolt"
)

func TestOpenRejectsBadOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.db")
	for _, opts := range []bolt.Options{
		{Durability: 2},
		{Durability: bolt.Async, FlushInterval: -time.Second},
		{LockTimeout: -1},
	} {
		st, err := bolt.Open(path, opts)
		if !assert.Error(t, err, "Open with %+v", opts) {
			st.Close()
		}
	}
}

// filled creates a store with n deliveries whose payloads are
// "marker-<i>", in one transaction, closes it, and returns its path.
func filled(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tern.db")
	st, err := bolt.Open(path, bolt.Options{})
	require.NoError(t, err, "Open")
	ops := []storage.Op{{Kind: storage.PutSession, Session: storage.Session{ClientID: "c"}}}
	for i := range n {
		ops = append(ops, storage.Op{Kind: storage.PutDelivery, Delivery: storage.Delivery{
			ClientID: "c", Seq: uint64(i), QoS: 1,
			Msg: storage.Message{Topic: "t", QoS: 1, Payload: fmt.Appendf(nil, "marker-%06d-%s", i, strings.Repeat("x", 200))},
		}})
	}
	require.NoError(t, st.Write(context.Background(), ops), "Write")
	require.NoError(t, st.Close(), "Close")
	return path
}

// openAndLoad opens path and loads it, returning the first error.
func openAndLoad(path string) error {
	st, err := bolt.Open(path, bolt.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.Load(context.Background())
	return err
}

// checkCorrupt checks that err names path and wraps bolt.ErrCorrupt.
func checkCorrupt(t *testing.T, err error, path string) {
	t.Helper()
	require.Error(t, err, "no error for a damaged file")
	t.Log(err)
	assert.ErrorIs(t, err, bolt.ErrCorrupt, "error for a damaged file")
	assert.Contains(t, err.Error(), path, "error does not name the file")
}

func TestOpenFailsOnGarbage(t *testing.T) {
	for _, size := range []int{1, 100, 4096, 3 * 4096, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tern.db")
			garbage := bytes.Repeat([]byte("not a bbolt file\x00\xa5"), size/18+1)[:size]
			require.NoError(t, os.WriteFile(path, garbage, 0o600))
			checkCorrupt(t, openAndLoad(path), path)
		})
	}
}

func TestOpenFailsOnTruncatedFile(t *testing.T) {
	src := filled(t, 2000)
	whole, err := os.ReadFile(src)
	require.NoError(t, err)
	// The file's pages end at its high-water mark; bbolt may have grown
	// the file past it.
	db, err := bbolt.Open(src, 0o600, &bbolt.Options{ReadOnly: true})
	require.NoError(t, err, "bbolt.Open")
	var used int
	require.NoError(t, db.View(func(tx *bbolt.Tx) error { used = int(tx.Size()); return nil }))
	page := db.Info().PageSize
	db.Close()
	require.LessOrEqual(t, used, len(whole), "pages end past the file: not the file this test needs")
	require.GreaterOrEqual(t, used, 20*page, "fewer than 20 pages: not the file this test needs")
	for _, size := range []int{used - page, used / 2, 4 * page, 2*page + 1, page + 10, page, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tern.db")
			require.NoError(t, os.WriteFile(path, whole[:size], 0o600))
			checkCorrupt(t, openAndLoad(path), path)
		})
	}
}

func TestOpenFailsOnForeignBoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err, "bbolt.Open")
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket([]byte("someone else's"))
		return err
	})
	require.NoError(t, err, "CreateBucket")
	require.NoError(t, db.Close(), "Close")
	checkCorrupt(t, openAndLoad(path), path)
}

func TestOpenFailsOnLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.db")
	first, err := bolt.Open(path, bolt.Options{})
	require.NoError(t, err, "first Open")
	defer first.Close()
	start := time.Now()
	second, err := bolt.Open(path, bolt.Options{LockTimeout: 50 * time.Millisecond})
	if !assert.Error(t, err, "a second Open of a locked file succeeded") {
		second.Close()
		t.FailNow()
	}
	assert.Contains(t, err.Error(), path, "error does not say that the file is locked")
	assert.Contains(t, err.Error(), "locked", "error does not say that the file is locked")
	assert.LessOrEqual(t, time.Since(start), 10*time.Second, "Open's wait for a lock timeout of 50ms")
}

func TestOpenOrLoadFailsOnDamagedPage(t *testing.T) {
	src := filled(t, 2000)
	whole, err := os.ReadFile(src)
	require.NoError(t, err)
	page := os.Getpagesize()
	// The store was written in one transaction, so each payload is on
	// disk once, in a live page.
	at := bytes.Index(whole, []byte("marker-001000"))
	require.Equal(t, 1, bytes.Count(whole, []byte("marker-001000")), "payload found at %d: times", at)
	for name, fill := range map[string]byte{"zeros": 0x00, "ones": 0xff, "pattern": 0xa5} {
		t.Run(name, func(t *testing.T) {
			damaged := bytes.Clone(whole)
			start := at / page * page
			for i := start; i < start+page; i++ {
				damaged[i] = fill
			}
			path := filepath.Join(t.TempDir(), "tern.db")
			require.NoError(t, os.WriteFile(path, damaged, 0o600))
			checkCorrupt(t, openAndLoad(path), path)
		})
	}
}

func TestLoadFailsOnMalformedRecord(t *testing.T) {
	cases := []struct {
		name   string
		bucket string
		key    []byte
		value  []byte
	}{
		{"unknown version", "deliveries", []byte("c\x00\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{9, 0, 0, 0, 1, 1, 0, 0}},
		{"value cut short", "deliveries", []byte("c\x00\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{1, 0, 0, 0, 1, 1, 5, 'a'}},
		{"bytes after value", "sessions", []byte("c\x00"), []byte{1, 0, 0, 'x'}},
		{"unknown flag", "sessions", []byte("c\x00"), []byte{1, 0x20, 0}},
		{"key without terminator", "inbound", []byte("c"), []byte{1, 0}},
		{"key of wrong length", "inbound", []byte("c\x00\x00\x01\x02"), []byte{1, 0}},
		{"bad escape", "sessions", []byte("c\x01\x07\x00"), []byte{1, 0, 0}},
		{"hashed key without identifier", "sessions", append([]byte{1, 3}, make([]byte, 32)...), []byte{1, 0, 0}},
		{"identifier not matching its hash", "sessions", append([]byte{1, 3}, make([]byte, 32)...), []byte{1, 0x40, 0, 1, 'c'}},
		{"identifier in value and key", "subscriptions", []byte("c\x00f"), []byte{1, 0x40, 1, 1, 'c'}},
		{"empty value", "retained", []byte("t"), []byte{}},
		{"hashed topic of wrong length", "retained", []byte("\x00abc"), []byte{1, 0x80, 0, 0, 1, 't'}},
		// Format 2: the MQTT 5 fields.
		{"format 1 value with a format 2 flag", "sessions", []byte("c\x00"), []byte{1, 0x04, 0, 5}},
		{"format 2 unknown flag", "sessions", []byte("c\x00"), []byte{2, 0x20, 0}},
		{"session expiry over 32 bits", "sessions", []byte("c\x00"), []byte{2, 0x04, 0, 0x80, 0x80, 0x80, 0x80, 0x10}},
		{"unknown will flag", "sessions", []byte("c\x00"), []byte{2, 0x08, 0, 0x80, 0, 1, 't', 0}},
		{"will cut short", "sessions", []byte("c\x00"), []byte{2, 0x08, 0, 0x02, 0, 1, 't', 0}},
		{"subscription identifier over 32 bits", "subscriptions", []byte("c\x00f"), []byte{2, 0x08, 1, 0x80, 0x80, 0x80, 0x80, 0x10}},
		{"empty extension", "deliveries", []byte("c\x00\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{2, 0x08, 0, 0, 1, 1, 1, 't', 0, 0}},
		{"unknown extension flag", "deliveries", []byte("c\x00\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{2, 0x08, 0, 0, 1, 1, 1, 't', 0, 0x40}},
		{"no subscription identifiers", "deliveries", []byte("c\x00\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{2, 0x08, 0, 0, 1, 1, 1, 't', 0, 0x10, 0}},
		{"subscription identifiers past the end", "deliveries", []byte("c\x00\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{2, 0x08, 0, 0, 1, 1, 1, 't', 0, 0x10, 3, 1}},
		{"retained extension flag of a delivery", "retained", []byte("t"), []byte{2, 0x08, 0, 0, 0x20, 1, 's'}},
		{"inbound in format 2", "inbound", []byte("c\x00\x00\x01"), []byte{2, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tern.db")
			st, err := bolt.Open(path, bolt.Options{})
			require.NoError(t, err, "Open")
			require.NoError(t, st.Close(), "Close")
			db, err := bbolt.Open(path, 0o600, nil)
			require.NoError(t, err, "bbolt.Open")
			err = db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte(tc.bucket)).Put(tc.key, tc.value) })
			require.NoError(t, err, "Put of the malformed record")
			require.NoError(t, db.Close(), "bbolt Close")
			err = openAndLoad(path)
			checkCorrupt(t, err, path)
			assert.Contains(t, err.Error(), tc.bucket, "error does not name the bucket")
		})
	}
}
