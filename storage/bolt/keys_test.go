package bolt

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/storage"
)

func FuzzClientKey(f *testing.F) {
	for _, s := range []string{"", "a", "a\x00", "\x01", "\x01\x02\x00", "日本", strings.Repeat("x", maxInlineID+1)} {
		f.Add(s, "ab")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka := appendClientKey(nil, a)
		id, inline, rest, err := parseClientKey(binary.BigEndian.AppendUint64(bytes.Clone(ka), 42))
		require.NoError(t, err, "parse %q", a)
		require.Equal(t, idInline(a), inline, "%q parses as %q inline=%v rest=%x", a, id, inline, rest)
		if inline {
			require.Equal(t, a, id, "%q parses as %q inline=%v rest=%x", a, id, inline, rest)
		}
		require.Len(t, rest, 8, "%q parses as %q inline=%v rest=%x", a, id, inline, rest)
		if !inline {
			return
		}
		// Keys sort as their identifiers, and one client's key range
		// holds no other client's keys.
		kb := appendClientKey(nil, b)
		if !idInline(b) {
			return
		}
		assert.Equal(t, strings.Compare(a, b), bytes.Compare(ka, kb),
			"keys of %q and %q compare as the identifiers do", a, b)
		if a != b {
			assert.False(t, bytes.HasPrefix(ka, kb) || bytes.HasPrefix(kb, ka),
				"key of %q is a prefix of the key of %q or the reverse", a, b)
		}
	})
}

// FuzzDecode feeds arbitrary keys and values to the loader: an error or a
// record, never a panic.
func FuzzDecode(f *testing.F) {
	var b batch
	for _, op := range []storage.Op{
		{Kind: storage.PutSession, Session: storage.Session{ClientID: "c", Username: "u"}},
		{Kind: storage.PutSubscription, Subscription: storage.Subscription{ClientID: "c", Filter: "a/#", QoS: 1}},
		{Kind: storage.PutDelivery, Delivery: storage.Delivery{ClientID: strings.Repeat("c", 2000), Seq: 3, Msg: storage.Message{Topic: "t", Payload: []byte("p")}}},
		{Kind: storage.PutInbound, Inbound: storage.Inbound{ClientID: "c", PacketID: 9}},
		{Kind: storage.PutRetained, Retained: storage.Message{Topic: "", Payload: []byte("p")}},
	} {
		require.NoError(f, b.add(&op), "seed op %v", op.Kind)
		m := b.muts[len(b.muts)-1]
		f.Add(m.bucket, b.buf[m.k0:m.k1], b.buf[m.v0:m.v1])
	}
	f.Fuzz(func(t *testing.T, bucket uint8, k, v []byte) {
		l := loader{&storage.Snapshot{}}
		readers := [numBuckets]func(k, v []byte) error{l.session, l.subscription, l.delivery, l.inbound, l.retained}
		_ = readers[bucket%numBuckets](k, v)
	})
}
