package topics

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRetainedSetGetDelete(t *testing.T) {
	r := NewRetained[string]()
	_, ok := r.Get("a/b")
	require.False(t, ok, "Get on an empty index found a value")
	r.Set("a/b", "1")
	r.Set("a/b", "2") // replaces
	r.Set("a", "3")
	r.Set("a/b/c", "4")
	r.Set("/", "5")
	r.Set("", "ignored") // [MQTT-4.7.3-1] not a topic name
	assert.Equal(t, 4, r.Len())
	for topic, want := range map[string]string{"a/b": "2", "a": "3", "a/b/c": "4", "/": "5"} {
		v, ok := r.Get(topic)
		assert.True(t, ok, "Get(%q) found", topic)
		assert.Equal(t, want, v, "Get(%q)", topic)
	}
	for _, topic := range []string{"", "a/", "b", "a/b/c/d", "A/b", "//"} {
		v, ok := r.Get(topic)
		assert.False(t, ok, "Get(%q) = %q, want nothing", topic, v)
	}
	for _, topic := range []string{"a/x", "", "a/b/c/d", "/x"} {
		assert.False(t, r.Delete(topic), "Delete of absent %q", topic)
	}
	assert.True(t, r.Delete("a/b"), "first Delete a/b")
	assert.False(t, r.Delete("a/b"), "second Delete a/b")
	_, ok = r.Get("a/b")
	assert.False(t, ok, "deleted topic still retained")
	v, ok := r.Get("a/b/c")
	assert.True(t, ok, "child of a deleted topic")
	assert.Equal(t, "4", v, "child of a deleted topic")
	assert.Equal(t, 3, r.Len())
	for _, topic := range []string{"a", "a/b/c", "/"} {
		r.Delete(topic)
	}
	assert.Zero(t, r.Len())
	assert.Zero(t, r.root.children.len(), "root children after deleting all")
}

// TestRetainedInvalidFilter: an invalid filter matches nothing.
func TestRetainedInvalidFilter(t *testing.T) {
	r := NewRetained[int]()
	r.Set("a/#/b", 1) // stored literally
	r.Set("sport+", 2)
	for _, f := range []string{"", "a/#/b", "sport+", "a/\x00", "\xff/#"} {
		assert.Empty(t, r.Match(f, nil), "Match(%q)", f)
	}
	v, ok := r.Get("sport+")
	assert.True(t, ok, "Get(sport+)")
	assert.Equal(t, 2, v, "Get(sport+)")
}

// TestRetainedDollar: "#" and "+" skip '$' topics [MQTT-4.7.2-1], but a
// filter that names the '$' level finds them.
func TestRetainedDollar(t *testing.T) {
	r := NewRetained[string]()
	for _, topic := range []string{"$SYS/uptime", "$SYS", "$x/a", "a", "a/$x", "/$x", "$longer-than-a-tag/x"} {
		r.Set(topic, topic)
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"#", []string{"/$x", "a", "a/$x"}},         // [MQTT-4.7.2-1]
		{"+", []string{"a"}},                        // [MQTT-4.7.2-1]
		{"+/+", []string{"/$x", "a/$x"}},            // [MQTT-4.7.2-1]
		{"$SYS/#", []string{"$SYS", "$SYS/uptime"}}, // [MQTT-4.7.2-1]
		{"$SYS/+", []string{"$SYS/uptime"}},         // [MQTT-4.7.2-1]
		{"$x/+", []string{"$x/a"}},                  // [MQTT-4.7.2-1]
		{"a/#", []string{"a", "a/$x"}},              // [MQTT-4.7.1-2]
		{"a/+", []string{"a/$x"}},                   // [MQTT-4.7.1-3]
		{"$longer-than-a-tag/+", []string{"$longer-than-a-tag/x"}},
	}
	for _, tt := range tests {
		assert.ElementsMatch(t, tt.want, r.Match(tt.filter, nil), "Match(%q)", tt.filter)
	}
}

func TestRetainedForEach(t *testing.T) {
	r := NewRetained[int]()
	want := []string{"a", "a/b", "/", "//x", "$SYS/x", "a/b/c/d", "level-longer-than-a-tag/x"}
	for i, topic := range want {
		r.Set(topic, i)
	}
	var got []string
	r.ForEach(func(topic string, v int) bool {
		assert.Equal(t, want[v], topic, "ForEach gave a topic with the value of another")
		got = append(got, topic)
		return true
	})
	assert.ElementsMatch(t, want, got)
	calls := 0
	r.ForEach(func(string, int) bool { calls++; return false })
	assert.Equal(t, 1, calls, "ForEach went on after false")
}

// TestRetainedMatchAllocs: matching into a dst with room does not allocate,
// for '#' walks and '+' walks alike.
func TestRetainedMatchAllocs(t *testing.T) {
	var r Retained[int] // the zero value is usable
	for i := range 2000 {
		r.Set(fmt.Sprintf("s%d/d%d/m", i%20, i/20), i)
	}
	dst := make([]int, 0, 4096)
	for _, tt := range []struct {
		filter string
		n      int
	}{{"#", 2000}, {"s1/+/m", 100}, {"+/d3/#", 20}, {"s1/d21/m", 1}} {
		n := testing.AllocsPerRun(20, func() { dst = r.Match(tt.filter, dst[:0]) })
		assert.Zero(t, n, "Match(%q) allocations per call", tt.filter)
		assert.Len(t, dst, tt.n, "Match(%q)", tt.filter)
	}
}

// TestRetainedWide fills one level with more children than the linear
// lookup handles, with long levels that share their first bytes, then
// empties it in a scattered order.
func TestRetainedWide(t *testing.T) {
	r := NewRetained[int]()
	const n = 5 * indexMin
	topic := func(i int) string { return fmt.Sprintf("w/sharedprefix-%d", i) }
	for i := range n {
		r.Set(topic(i), i)
		r.Set(fmt.Sprint("w/", i), -i) // short levels beside them
	}
	require.Len(t, r.Match("w/+", nil), 2*n)
	for k := range n {
		i := (k * 7) % n // 7 and n are coprime: every i once
		v, ok := r.Get(topic(i))
		require.True(t, ok, "Get(%q)", topic(i))
		require.Equal(t, i, v, "Get(%q)", topic(i))
		require.True(t, r.Delete(topic(i)), "first Delete(%q)", topic(i))
		require.False(t, r.Delete(topic(i)), "second Delete(%q)", topic(i))
		_, ok = r.Get(topic(i))
		require.False(t, ok, "%q still retained", topic(i))
		require.Len(t, r.Match("w/+", nil), 2*n-k-1, "after %d deletes", k+1)
	}
	for i := range n {
		v, ok := r.Get(fmt.Sprint("w/", i))
		require.True(t, ok, "Get(w/%d)", i)
		require.Equal(t, -i, v, "Get(w/%d)", i)
		r.Delete(fmt.Sprint("w/", i))
	}
	assert.Zero(t, r.Len())
	assert.Zero(t, r.root.children.len(), "root children after deleting all")
}
