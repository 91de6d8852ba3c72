package topics

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sortSubs orders results by key so they can be compared.
func sortSubs[K cmp.Ordered](s []Sub[K]) []Sub[K] {
	slices.SortFunc(s, func(a, b Sub[K]) int { return cmp.Compare(a.Key, b.Key) })
	return s
}

func TestIndexSubscribeReplaceUnsubscribe(t *testing.T) {
	ix := NewIndex[string]()
	require.True(t, ix.Subscribe("c1", "a/+", 0), "first subscribe not reported new")
	// [MQTT-3.8.4-3] re-subscribing to an identical filter replaces the
	// subscription and its QoS, it adds nothing.
	assert.False(t, ix.Subscribe("c1", "a/+", 2), "re-subscribe reported new")
	assert.Equal(t, []Sub[string]{{Key: "c1", Opts: 2}}, ix.Match("a/b", nil), "after replace")
	assert.Equal(t, 1, ix.Len())
	assert.True(t, ix.Subscribe("c2", "a/+", 1))
	assert.True(t, ix.Subscribe("c1", "a/b", 0))
	assert.Equal(t, 3, ix.Len())
	// [MQTT-3.10.4-1] filters are compared character by character: no
	// filter that merely matches, or overlaps, is removed.
	for _, f := range []string{"a/x", "a/#", "#", "+/+", "a/+/c", "a/b/", "A/+", ""} {
		assert.False(t, ix.Unsubscribe("c1", f), "Unsubscribe(c1, %q) removed something", f)
	}
	assert.False(t, ix.Unsubscribe("c3", "a/+"), "Unsubscribe of another key's filter")
	assert.True(t, ix.Unsubscribe("c1", "a/+"), "first Unsubscribe a/+")
	assert.False(t, ix.Unsubscribe("c1", "a/+"), "second Unsubscribe a/+")
	assert.Equal(t, []Sub[string]{{Key: "c1", Opts: 0}, {Key: "c2", Opts: 1}}, sortSubs(ix.Match("a/b", nil)), "after unsubscribe")
	assert.Equal(t, 2, ix.Len())
}

// TestIndexHighestQoS: one Sub per subscriber, with the opts of its
// matching filter of highest QoS and Multi set when several of its filters
// matched [MQTT-3.3.5-1].
func TestIndexHighestQoS(t *testing.T) {
	ix := NewIndex[string]()
	ix.Subscribe("c1", "a/b", 0)
	ix.Subscribe("c1", "a/+", 2) // [MQTT-3.3.5-1] the highest wins
	ix.Subscribe("c1", "#", 1)
	ix.Subscribe("c1", "a/#", 0)
	ix.Subscribe("c2", "+/b", 1)
	ix.Subscribe("c2", "a/b/#", 0)
	ix.Subscribe("c3", "a/c", 2)
	want := []Sub[string]{{Key: "c1", Opts: 2, Multi: true}, {Key: "c2", Opts: 1, Multi: true}}
	assert.Equal(t, want, sortSubs(ix.Match("a/b", nil)))
	// Appending keeps what dst held, even a Sub with the same key.
	got := ix.Match("a/c", []Sub[string]{{Key: "c1"}})
	require.Len(t, got, 3, "the prefix kept and 2 results appended")
	assert.Equal(t, Sub[string]{Key: "c1"}, got[0])
}

// TestIndexOpts: Subscribe keeps the caller's 32-bit value; Match returns
// it whole, and for overlapping filters, the value of the one with the
// highest QoS (its low two bits) with Multi set [MQTT-3.3.5-1].
func TestIndexOpts(t *testing.T) {
	ix := NewIndex[string]()
	ix.Subscribe("c1", "a/b", 0xABCD_0001)
	ix.Subscribe("c2", "a/+", 0x1234_5602)
	ix.Subscribe("c2", "a/#", 0x0000_0101)
	ix.Subscribe("c2", "#", 0xFFFF_FF00)
	got := sortSubs(ix.Match("a/b", nil))
	want := []Sub[string]{{Key: "c1", Opts: 0xABCD_0001}, {Key: "c2", Opts: 0x1234_5602, Multi: true}}
	assert.Equal(t, want, got)
	assert.Equal(t, byte(1), got[0].QoS())
	assert.Equal(t, byte(2), got[1].QoS())
	// Replacing a subscription replaces its value [MQTT-3.8.4-3].
	assert.False(t, ix.Subscribe("c1", "a/b", 0x77))
	assert.Equal(t, Sub[string]{Key: "c1", Opts: 0x77}, sortSubs(ix.Match("a/b", nil))[0])
	var seen []uint32
	ix.ForEach(func(k, f string, opts uint32) bool {
		seen = append(seen, opts)
		return true
	})
	assert.ElementsMatch(t, []uint32{0x77, 0x1234_5602, 0x0000_0101, 0xFFFF_FF00}, seen)
}

// TestIndexManySubscribersOfOneFilter moves a filter's subscribers from
// the inline slot to a list and back, and from the list to its index map,
// checking Match and the QoS of each at every step.
func TestIndexManySubscribersOfOneFilter(t *testing.T) {
	ix := NewIndex[int]()
	const n = 3 * subMapMin
	check := func(live map[int]bool) {
		t.Helper()
		var want []Sub[int]
		for k := range n {
			if live[k] {
				want = append(want, Sub[int]{Key: k, Opts: uint32(k % 3)})
			}
		}
		assert.Equal(t, want, sortSubs(ix.Match("f/x", nil)))
	}
	live := map[int]bool{}
	for k := range n {
		require.True(t, ix.Subscribe(k, "f/x", uint32(k%3)))
		live[k] = true
		check(live)
	}
	for k := range n - 1 {
		j := (k * 7) % n // 7 and n are coprime: every j once
		require.True(t, ix.Unsubscribe(j, "f/x"))
		delete(live, j)
		check(live)
	}
	last := (n - 1) * 7 % n
	assert.True(t, ix.Unsubscribe(last, "f/x"))
	assert.True(t, ix.root.empty(), "trie not empty after the last unsubscribe")
}

// TestIndexManyOverlapping merges beyond the linear threshold, where the
// merge uses a map [MQTT-3.3.5-1].
func TestIndexManyOverlapping(t *testing.T) {
	ix := NewIndex[int]()
	const n = 3 * linearMergeMax
	for k := range n {
		ix.Subscribe(k, "x/y", uint32(k%3))
		ix.Subscribe(k, "x/+", uint32((k+1)%3))
		if k%2 == 0 {
			ix.Subscribe(k, "#", uint32((k+2)%3))
		}
		ix.Subscribe(n+k, "x/#", 1) // keys seen only once
	}
	for range 3 { // the second and third runs use the pooled map
		got := sortSubs(ix.Match("x/y", make([]Sub[int], 0, 4)))
		require.Len(t, got, 2*n)
		for k := range n {
			want := max(uint32(k%3), uint32((k+1)%3))
			if k%2 == 0 {
				want = max(want, uint32((k+2)%3))
			}
			require.Equal(t, Sub[int]{Key: k, Opts: want, Multi: true}, got[k], "key %d", k)
			require.Equal(t, Sub[int]{Key: n + k, Opts: 1}, got[n+k], "key %d", n+k)
		}
	}
}

// TestIndexInvalidFilter: Subscribe ignores an invalid filter.
func TestIndexInvalidFilter(t *testing.T) {
	ix := NewIndex[int]()
	for _, f := range []string{"", "a/#/b", "sport+", "a\x00", "\xff"} {
		assert.False(t, ix.Subscribe(1, f, 1), "Subscribe(%q) reported new", f)
	}
	assert.Equal(t, 0, ix.Len(), "invalid filters were stored")
	assert.True(t, ix.root.empty(), "invalid filters were stored")
	assert.Empty(t, ix.Match("a/#/b", nil))
}

// TestIndexPrune: removing every subscription leaves an empty trie.
func TestIndexPrune(t *testing.T) {
	ix := NewIndex[int]()
	filters := []string{"a/b/c", "a/+/c", "a/#", "#", "+", "/", "a//", "$SYS/+/x", "+/+/#"}
	for k := range 20 { // enough keys for the subscriber maps
		for _, f := range filters {
			ix.Subscribe(k, f, 0)
		}
	}
	const wide = 3 * indexMin // enough children for the level index
	for i := range wide {
		ix.Subscribe(-1, fmt.Sprintf("wide/level-%d", i), 0)
	}
	hasWide := func(topic string) bool {
		return slices.ContainsFunc(ix.Match(topic, nil), func(s Sub[int]) bool { return s.Key == -1 })
	}
	for i := range wide {
		require.True(t, hasWide(fmt.Sprintf("wide/level-%d", i)), "wide/level-%d: subscriber not found", i)
	}
	for k := range 20 {
		for _, f := range filters {
			require.True(t, ix.Unsubscribe(k, f), "Unsubscribe(%d, %q)", k, f)
		}
	}
	for i := range wide {
		j := (i * 7) % wide // 7 and wide are coprime: every j once
		require.True(t, ix.Unsubscribe(-1, fmt.Sprintf("wide/level-%d", j)), "Unsubscribe(wide/level-%d)", j)
		require.False(t, hasWide(fmt.Sprintf("wide/level-%d", j)), "wide/level-%d: subscriber found after unsubscribe", j)
	}
	assert.Equal(t, 0, ix.Len())
	assert.True(t, ix.root.empty(), "want an empty trie")
}

func TestIndexForEach(t *testing.T) {
	ix := NewIndex[string]()
	want := []string{"c1 # 0", "c1 a/+/b 1", "c2 /# 2", "c2 a//b 0", "c3 + 1", "c3 $SYS/# 2", "c1 a 0",
		"c4 a/+/b 2", "c4 level-longer-than-a-tag/x 1"}
	for _, s := range want {
		var k, f string
		var q uint32
		_, err := fmt.Sscanf(s, "%s %s %d", &k, &f, &q)
		require.NoError(t, err)
		ix.Subscribe(k, f, q)
	}
	var got []string
	ix.ForEach(func(k, f string, q uint32) bool {
		got = append(got, fmt.Sprintf("%s %s %d", k, f, q))
		return true
	})
	assert.ElementsMatch(t, want, got)
	calls := 0
	ix.ForEach(func(string, string, uint32) bool { calls++; return false })
	assert.Equal(t, 1, calls, "ForEach went on after false")
}

// TestIndexZeroValue: the zero Index is usable.
func TestIndexZeroValue(t *testing.T) {
	var ix Index[int]
	ix.Subscribe(1, "a", 1)
	assert.Len(t, ix.Match("a", nil), 1)
	assert.Equal(t, 1, ix.Len())
}

// TestIndexMatchAllocs: Match into a reused dst with room does not allocate.
func TestIndexMatchAllocs(t *testing.T) {
	ix := NewIndex[string]()
	for i := range 1000 {
		ix.Subscribe(fmt.Sprint("dev", i), fmt.Sprintf("dev/%d/cmd", i), 1)
		ix.Subscribe(fmt.Sprint("dev", i), fmt.Sprintf("dev/%d/#", i), 0)
	}
	for i := range 10 {
		ix.Subscribe(fmt.Sprint("app", i), "dev/+/cmd", 2)
		ix.Subscribe(fmt.Sprint("app", i), "#", 0)
	}
	dst := make([]Sub[string], 0, 64)
	for _, topic := range []string{"dev/7/cmd", "dev/7/status", "nothing", "$SYS/x"} {
		n := testing.AllocsPerRun(200, func() { dst = ix.Match(topic, dst[:0]) })
		assert.Zero(t, n, "Match(%q) allocations per call", topic)
	}
	assert.Len(t, ix.Match("dev/7/cmd", dst[:0]), 11)
}

func TestGenerationChangesWithEverySubscriptionChange(t *testing.T) {
	ix := NewIndex[string]()
	g0 := ix.Generation()
	ix.Subscribe("a", "x/+", 1)
	g1 := ix.Generation()
	ix.Subscribe("a", "x/+", 2) // replaced
	g2 := ix.Generation()
	ix.Match("x/y", nil)
	g3 := ix.Generation()
	ix.Unsubscribe("a", "x/+")
	g4 := ix.Generation()
	ix.Unsubscribe("a", "x/+") // nothing to remove
	g5 := ix.Generation()
	assert.NotEqual(t, g0, g1, "subscribe")
	assert.NotEqual(t, g1, g2, "replace")
	assert.Equal(t, g2, g3, "match")
	assert.NotEqual(t, g3, g4, "unsubscribe")
	assert.Equal(t, g4, g5, "unsubscribe of nothing")
}
