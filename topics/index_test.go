package topics

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
)

// sortSubs orders results by key so they can be compared.
func sortSubs[K cmp.Ordered](s []Sub[K]) []Sub[K] {
	slices.SortFunc(s, func(a, b Sub[K]) int { return cmp.Compare(a.Key, b.Key) })
	return s
}

func TestIndexSubscribeReplaceUnsubscribe(t *testing.T) {
	ix := NewIndex[string]()
	if !ix.Subscribe("c1", "a/+", 0) {
		t.Fatal("first subscribe not reported new")
	}
	// [MQTT-3.8.4-3] re-subscribing to an identical filter replaces the
	// subscription and its QoS, it adds nothing.
	if ix.Subscribe("c1", "a/+", 2) {
		t.Error("re-subscribe reported new")
	}
	if got := ix.Match("a/b", nil); !slices.Equal(got, []Sub[string]{{"c1", 2}}) {
		t.Errorf("after replace: got %v", got)
	}
	if ix.Len() != 1 {
		t.Errorf("Len = %d, want 1", ix.Len())
	}
	if !ix.Subscribe("c2", "a/+", 1) || !ix.Subscribe("c1", "a/b", 0) || ix.Len() != 3 {
		t.Errorf("Len = %d, want 3", ix.Len())
	}
	// [MQTT-3.10.4-1] filters are compared character by character: no
	// filter that merely matches, or overlaps, is removed.
	for _, f := range []string{"a/x", "a/#", "#", "+/+", "a/+/c", "a/b/", "A/+", ""} {
		if ix.Unsubscribe("c1", f) {
			t.Errorf("Unsubscribe(c1, %q) removed something", f)
		}
	}
	if ix.Unsubscribe("c3", "a/+") {
		t.Error("Unsubscribe of another key's filter reported true")
	}
	if !ix.Unsubscribe("c1", "a/+") || ix.Unsubscribe("c1", "a/+") {
		t.Error("Unsubscribe a/+ twice: want true then false")
	}
	if got := sortSubs(ix.Match("a/b", nil)); !slices.Equal(got, []Sub[string]{{"c1", 0}, {"c2", 1}}) {
		t.Errorf("after unsubscribe: got %v", got)
	}
	if ix.Len() != 2 {
		t.Errorf("Len = %d, want 2", ix.Len())
	}
}

// TestIndexHighestQoS: one Sub per subscriber, with the highest QoS of its
// overlapping matching filters [MQTT-3.3.5-1].
func TestIndexHighestQoS(t *testing.T) {
	ix := NewIndex[string]()
	ix.Subscribe("c1", "a/b", 0)
	ix.Subscribe("c1", "a/+", 2) // [MQTT-3.3.5-1] the highest wins
	ix.Subscribe("c1", "#", 1)
	ix.Subscribe("c1", "a/#", 0)
	ix.Subscribe("c2", "+/b", 1)
	ix.Subscribe("c2", "a/b/#", 0)
	ix.Subscribe("c3", "a/c", 2)
	got := sortSubs(ix.Match("a/b", nil))
	want := []Sub[string]{{"c1", 2}, {"c2", 1}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Appending keeps what dst held, even a Sub with the same key.
	dst := []Sub[string]{{"c1", 0}}
	got = ix.Match("a/c", dst)
	if len(got) != 3 || got[0] != (Sub[string]{"c1", 0}) {
		t.Errorf("got %v, want the prefix kept and 2 results appended", got)
	}
}

// TestIndexManyOverlapping merges beyond the linear threshold, where the
// merge uses a map [MQTT-3.3.5-1].
func TestIndexManyOverlapping(t *testing.T) {
	ix := NewIndex[int]()
	const n = 3 * linearMergeMax
	for k := range n {
		ix.Subscribe(k, "x/y", byte(k%3))
		ix.Subscribe(k, "x/+", byte((k+1)%3))
		if k%2 == 0 {
			ix.Subscribe(k, "#", byte((k+2)%3))
		}
		ix.Subscribe(n+k, "x/#", 1) // keys seen only once
	}
	for range 3 { // the second and third runs use the pooled map
		got := sortSubs(ix.Match("x/y", make([]Sub[int], 0, 4)))
		if len(got) != 2*n {
			t.Fatalf("got %d results, want %d", len(got), 2*n)
		}
		for k := range n {
			want := max(byte(k%3), byte((k+1)%3))
			if k%2 == 0 {
				want = max(want, byte((k+2)%3))
			}
			if got[k] != (Sub[int]{k, want}) || got[n+k] != (Sub[int]{n + k, 1}) {
				t.Fatalf("key %d: got %v and %v, want QoS %d", k, got[k], got[n+k], want)
			}
		}
	}
}

// TestIndexInvalidFilter: Subscribe ignores an invalid filter.
func TestIndexInvalidFilter(t *testing.T) {
	ix := NewIndex[int]()
	for _, f := range []string{"", "a/#/b", "sport+", "a\x00", "\xff"} {
		if ix.Subscribe(1, f, 1) {
			t.Errorf("Subscribe(%q) reported new", f)
		}
	}
	if ix.Len() != 0 || !ix.root.empty() {
		t.Errorf("invalid filters were stored: Len %d", ix.Len())
	}
	if got := ix.Match("a/#/b", nil); len(got) != 0 {
		t.Errorf("got %v", got)
	}
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
	const wide = 3 * childMapMin // enough children for the child maps
	for i := range wide {
		ix.Subscribe(-1, fmt.Sprintf("wide/level-%d", i), 0)
	}
	hasWide := func(topic string) bool {
		return slices.ContainsFunc(ix.Match(topic, nil), func(s Sub[int]) bool { return s.Key == -1 })
	}
	for i := range wide {
		if !hasWide(fmt.Sprintf("wide/level-%d", i)) {
			t.Fatalf("wide/level-%d: subscriber not found", i)
		}
	}
	for k := range 20 {
		for _, f := range filters {
			if !ix.Unsubscribe(k, f) {
				t.Fatalf("Unsubscribe(%d, %q) = false", k, f)
			}
		}
	}
	for i := range wide {
		j := (i * 7) % wide // 7 and wide are coprime: every j once
		if !ix.Unsubscribe(-1, fmt.Sprintf("wide/level-%d", j)) {
			t.Fatalf("Unsubscribe(wide/level-%d) = false", j)
		}
		if hasWide(fmt.Sprintf("wide/level-%d", j)) {
			t.Fatalf("wide/level-%d: subscriber found after unsubscribe", j)
		}
	}
	if ix.Len() != 0 || !ix.root.empty() {
		t.Errorf("Len %d, root empty %v, want an empty trie", ix.Len(), ix.root.empty())
	}
}

func TestIndexForEach(t *testing.T) {
	ix := NewIndex[string]()
	want := []string{"c1 # 0", "c1 a/+/b 1", "c2 /# 2", "c2 a//b 0", "c3 + 1", "c3 $SYS/# 2", "c1 a 0"}
	for _, s := range want {
		var k, f string
		var q byte
		fmt.Sscanf(s, "%s %s %d", &k, &f, &q)
		ix.Subscribe(k, f, q)
	}
	var got []string
	ix.ForEach(func(k, f string, q byte) bool {
		got = append(got, fmt.Sprintf("%s %s %d", k, f, q))
		return true
	})
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	calls := 0
	ix.ForEach(func(string, string, byte) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("ForEach went on after false: %d calls", calls)
	}
}

// TestIndexZeroValue: the zero Index is usable.
func TestIndexZeroValue(t *testing.T) {
	var ix Index[int]
	ix.Subscribe(1, "a", 1)
	if got := ix.Match("a", nil); len(got) != 1 || ix.Len() != 1 {
		t.Errorf("got %v", got)
	}
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
		if n := testing.AllocsPerRun(200, func() {
			dst = ix.Match(topic, dst[:0])
		}); n != 0 {
			t.Errorf("Match(%q) allocates %v times per call, want 0", topic, n)
		}
	}
	if got := ix.Match("dev/7/cmd", dst[:0]); len(got) != 11 {
		t.Errorf("got %d results, want 11", len(got))
	}
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
	if g1 == g0 || g2 == g1 || g3 != g2 || g4 == g3 || g5 != g4 {
		t.Fatalf("generations %d %d %d %d %d %d", g0, g1, g2, g3, g4, g5)
	}
}
