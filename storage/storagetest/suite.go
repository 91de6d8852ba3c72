// Package storagetest is the conformance suite for storage backends: every
// storage.Store a Tern broker may run on passes it. A backend runs it from
// its own tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storagetest.Opener {
//			path := filepath.Join(t.TempDir(), "tern.db")
//			return func() (storage.Store, error) { return bolt.Open(path, bolt.Options{}) }
//		})
//	}
//
// The suite checks each record type written, read back, replaced and
// deleted, with and without each of its MQTT 5 fields (session expiry and
// will; subscription options and identifier; message properties and
// expiry; a delivery's subscription identifiers and shared subscription); DeleteSession removing everything a client owns and nothing
// else; ops applied in order and atomically; deliveries loaded in
// (ClientID, Seq) order; empty, binary and 1 MiB payloads; unusual client
// identifiers, filters and topics (empty, unicode, NUL bytes, up to 65535
// bytes); contents kept across Close and reopen; concurrent writers; and
// the behaviour of a closed store and a cancelled context.
package storagetest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/storage"
)

// Opener opens a store on one set of backing data (a file, a directory, a
// shared in-memory value). Each call after the previous store was closed
// must see everything that store wrote, as a process restarting would.
type Opener func() (storage.Store, error)

// Run runs the suite. newBackend is called once per test and returns the
// opener of fresh, empty backing data; the suite opens, closes and reopens
// stores through it and closes the last one at the end of the test.
func Run(t *testing.T, newBackend func(t *testing.T) Opener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, *harness)
	}{
		{"Empty", testEmpty},
		{"Sessions", testSessions},
		{"Subscriptions", testSubscriptions},
		{"Deliveries", testDeliveries},
		{"Inbound", testInbound},
		{"Retained", testRetained},
		{"Sessions5", testSessions5},
		{"Subscriptions5", testSubscriptions5},
		{"Messages5", testMessages5},
		{"OpsApplyInOrder", testOpsInOrder},
		{"DeleteSessionCascades", testDeleteSessionCascades},
		{"DeliveryOrder", testDeliveryOrder},
		{"Payloads", testPayloads},
		{"Identifiers", testIdentifiers},
		{"Restart", testRestart},
		{"AtomicOnBadOp", testAtomicOnBadOp},
		{"CallerOwnsBuffers", testCallerOwnsBuffers},
		{"CallerOwnsBuffers5", testCallerOwnsBuffers5},
		{"CancelledContext", testCancelledContext},
		{"Close", testClose},
		{"ConcurrentWriters", testConcurrentWriters},
		{"RandomOpsMatchModel", testRandomOps},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, open: newBackend(t)}
			h.reopen()
			t.Cleanup(func() {
				if h.st != nil {
					assert.NoError(t, h.st.Close(), "Close at the end of the test")
				}
			})
			tc.fn(t, h)
		})
	}
}

// harness holds the store under test.
type harness struct {
	t    *testing.T
	open Opener
	st   storage.Store
}

// reopen closes the current store, if any, and opens the backing data
// again.
func (h *harness) reopen() {
	h.t.Helper()
	if h.st != nil {
		require.NoError(h.t, h.st.Close(), "Close before reopening")
		h.st = nil
	}
	st, err := h.open()
	require.NoError(h.t, err, "open")
	h.st = st
}

// write writes ops in one batch and fails the test on an error.
func (h *harness) write(ops ...storage.Op) {
	h.t.Helper()
	require.NoError(h.t, h.st.Write(context.Background(), ops), "Write(%d ops)", len(ops))
}

// load loads and fails the test on an error.
func (h *harness) load() *storage.Snapshot {
	h.t.Helper()
	snap, err := h.st.Load(context.Background())
	require.NoError(h.t, err, "Load")
	require.NotNil(h.t, snap, "Load returned a nil snapshot and no error")
	return snap
}

// expect loads and compares with want. Deliveries must come in (ClientID,
// Seq) order; the other lists may come in any order.
func (h *harness) expect(want *storage.Snapshot) {
	h.t.Helper()
	got := h.load()
	checkDeliveryOrder(h.t, got.Deliveries)
	g, w := canonical(got), canonical(want)
	if assert.ObjectsAreEqual(w, g) {
		return
	}
	// Records hold payloads up to 1 MiB and identifiers up to 64 KiB: the
	// failure shows abbreviated descriptions, as a diff where they differ.
	if assert.Equal(h.t, describe(w), describe(g), "Load differs from what was written") {
		assert.Fail(h.t, "Load differs from what was written in what the descriptions leave out"+
			" (an empty list against none, or long values with equal abbreviations)", describe(g))
	}
}

// expectBoth compares now and again after a reopen.
func (h *harness) expectBoth(want *storage.Snapshot) {
	h.t.Helper()
	h.expect(want)
	h.reopen()
	h.expect(want)
}

func checkDeliveryOrder(t *testing.T, ds []storage.Delivery) {
	t.Helper()
	for i := 1; i < len(ds); i++ {
		if !assert.Negative(t, compareDelivery(ds[i-1], ds[i]),
			"deliveries out of (ClientID, Seq) order at %d: (%q, %d) then (%q, %d)",
			i, ds[i-1].ClientID, ds[i-1].Seq, ds[i].ClientID, ds[i].Seq) {
			return
		}
	}
}

func compareDelivery(a, b storage.Delivery) int {
	return cmp.Or(strings.Compare(a.ClientID, b.ClientID), cmp.Compare(a.Seq, b.Seq))
}

// canonical returns a copy of s that compares with reflect.DeepEqual (which
// testify's ObjectsAreEqual uses) as the contract means: lists sorted, empty
// lists and payloads nil, times in UTC without a monotonic reading.
func canonical(s *storage.Snapshot) storage.Snapshot {
	var c storage.Snapshot
	for _, x := range s.Sessions {
		x.LastSeen = x.LastSeen.UTC()
		if x.Will != nil {
			w := *x.Will
			w.PublishAt = w.PublishAt.UTC()
			w.Msg = canonicalMsg(w.Msg)
			x.Will = &w
		}
		c.Sessions = append(c.Sessions, x)
	}
	slices.SortFunc(c.Sessions, func(a, b storage.Session) int { return strings.Compare(a.ClientID, b.ClientID) })
	c.Subscriptions = slices.Clone(s.Subscriptions)
	slices.SortFunc(c.Subscriptions, func(a, b storage.Subscription) int {
		return cmp.Or(strings.Compare(a.ClientID, b.ClientID), strings.Compare(a.Filter, b.Filter))
	})
	for _, d := range s.Deliveries {
		d.Msg = canonicalMsg(d.Msg)
		if len(d.SubIDs) == 0 {
			d.SubIDs = nil
		}
		c.Deliveries = append(c.Deliveries, d)
	}
	slices.SortFunc(c.Deliveries, compareDelivery)
	c.Inbound = slices.Clone(s.Inbound)
	slices.SortFunc(c.Inbound, func(a, b storage.Inbound) int {
		return cmp.Or(strings.Compare(a.ClientID, b.ClientID), cmp.Compare(a.PacketID, b.PacketID))
	})
	for _, m := range s.Retained {
		c.Retained = append(c.Retained, canonicalMsg(m))
	}
	slices.SortFunc(c.Retained, func(a, b storage.Message) int { return strings.Compare(a.Topic, b.Topic) })
	return c
}

// canonicalMsg makes m's empty payload and properties nil: a backend may
// return either for what was written either way.
func canonicalMsg(m storage.Message) storage.Message {
	m.Payload = nilIfEmpty(m.Payload)
	m.Props = nilIfEmpty(m.Props)
	return m
}

func nilIfEmpty(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return p
}

// describe prints a snapshot with long strings and payloads abbreviated.
func describe(s storage.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n")
	for _, x := range s.Sessions {
		fmt.Fprintf(&b, "  session %s clean=%v lastSeen=%s user=%s expiry=%d",
			short(x.ClientID), x.Clean, x.LastSeen.Format(time.RFC3339Nano), short(x.Username), x.Expiry)
		if w := x.Will; w != nil {
			fmt.Fprintf(&b, " will={delay=%d publishAt=%s msg=%s}", w.Delay, w.PublishAt.Format(time.RFC3339Nano), describeMsg(w.Msg))
		}
		b.WriteString("\n")
	}
	for _, x := range s.Subscriptions {
		fmt.Fprintf(&b, "  subscription %s %s qos=%d noLocal=%v rap=%v rh=%d id=%d\n",
			short(x.ClientID), short(x.Filter), x.QoS, x.NoLocal, x.RetainAsPublished, x.RetainHandling, x.ID)
	}
	for _, x := range s.Deliveries {
		fmt.Fprintf(&b, "  delivery %s seq=%d pid=%d qos=%d retain=%v released=%v subIDs=%v share=%s msg=%s\n",
			short(x.ClientID), x.Seq, x.PacketID, x.QoS, x.Retain, x.Released, x.SubIDs, short(x.Share), describeMsg(x.Msg))
	}
	for _, x := range s.Inbound {
		fmt.Fprintf(&b, "  inbound %s pid=%d\n", short(x.ClientID), x.PacketID)
	}
	for _, x := range s.Retained {
		fmt.Fprintf(&b, "  retained %s\n", describeMsg(x))
	}
	b.WriteString("}")
	return b.String()
}

func describeMsg(m storage.Message) string {
	return fmt.Sprintf("{topic=%s qos=%d retain=%v payload=%s hasFormat=%v format=%d props=%s expires=%d}",
		short(m.Topic), m.QoS, m.Retain, short(string(m.Payload)), m.HasFormat, m.Format, short(string(m.Props)), m.Expires)
}

// short quotes s, or abbreviates it with its length and a hash when long.
func short(s string) string {
	if len(s) <= 40 {
		return fmt.Sprintf("%q", s)
	}
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%q...(%d bytes, sha256 %x)", s[:16], len(s), sum[:6])
}
