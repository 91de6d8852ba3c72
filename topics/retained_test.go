package topics

import (
	"fmt"
	"slices"
	"testing"
)

func TestRetainedSetGetDelete(t *testing.T) {
	r := NewRetained[string]()
	if _, ok := r.Get("a/b"); ok {
		t.Fatal("Get on an empty index found a value")
	}
	r.Set("a/b", "1")
	r.Set("a/b", "2") // replaces
	r.Set("a", "3")
	r.Set("a/b/c", "4")
	r.Set("/", "5")
	r.Set("", "ignored") // [MQTT-4.7.3-1] not a topic name
	if r.Len() != 4 {
		t.Errorf("Len = %d, want 4", r.Len())
	}
	for topic, want := range map[string]string{"a/b": "2", "a": "3", "a/b/c": "4", "/": "5"} {
		if v, ok := r.Get(topic); !ok || v != want {
			t.Errorf("Get(%q) = %q, %v, want %q", topic, v, ok, want)
		}
	}
	for _, topic := range []string{"", "a/", "b", "a/b/c/d", "A/b", "//"} {
		if v, ok := r.Get(topic); ok {
			t.Errorf("Get(%q) = %q, want nothing", topic, v)
		}
	}
	if r.Delete("a/x") || r.Delete("") || r.Delete("a/b/c/d") || r.Delete("/x") {
		t.Error("Delete of an absent topic reported true")
	}
	if !r.Delete("a/b") || r.Delete("a/b") {
		t.Error("Delete a/b twice: want true then false")
	}
	if _, ok := r.Get("a/b"); ok {
		t.Error("deleted topic still retained")
	}
	if v, ok := r.Get("a/b/c"); !ok || v != "4" || r.Len() != 3 {
		t.Errorf("child of a deleted topic: %q %v, Len %d", v, ok, r.Len())
	}
	for _, topic := range []string{"a", "a/b/c", "/"} {
		r.Delete(topic)
	}
	if r.Len() != 0 || r.root.children.len() != 0 {
		t.Errorf("Len %d, %d root children after deleting all", r.Len(), r.root.children.len())
	}
}

// TestRetainedInvalidFilter: an invalid filter matches nothing.
func TestRetainedInvalidFilter(t *testing.T) {
	r := NewRetained[int]()
	r.Set("a/#/b", 1) // stored literally
	r.Set("sport+", 2)
	for _, f := range []string{"", "a/#/b", "sport+", "a/\x00", "\xff/#"} {
		if got := r.Match(f, nil); len(got) != 0 {
			t.Errorf("Match(%q) = %v, want nothing", f, got)
		}
	}
	if v, ok := r.Get("sport+"); !ok || v != 2 {
		t.Errorf("Get(sport+) = %v, %v", v, ok)
	}
}

// TestRetainedDollar: "#" and "+" skip '$' topics [MQTT-4.7.2-1], but a
// filter that names the '$' level finds them.
func TestRetainedDollar(t *testing.T) {
	r := NewRetained[string]()
	for _, topic := range []string{"$SYS/uptime", "$SYS", "$x/a", "a", "a/$x", "/$x"} {
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
	}
	for _, tt := range tests {
		got := r.Match(tt.filter, nil)
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %q, want %q", tt.filter, got, tt.want)
		}
	}
}

func TestRetainedForEach(t *testing.T) {
	r := NewRetained[int]()
	want := []string{"a", "a/b", "/", "//x", "$SYS/x", "a/b/c/d"}
	for i, topic := range want {
		r.Set(topic, i)
	}
	var got []string
	r.ForEach(func(topic string, v int) bool {
		if want[v] != topic {
			t.Errorf("ForEach gave %q with the value of %q", topic, want[v])
		}
		got = append(got, topic)
		return true
	})
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	calls := 0
	r.ForEach(func(string, int) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("ForEach went on after false: %d calls", calls)
	}
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
		if n := testing.AllocsPerRun(20, func() { dst = r.Match(tt.filter, dst[:0]) }); n != 0 {
			t.Errorf("Match(%q) allocates %v times per call, want 0", tt.filter, n)
		}
		if len(dst) != tt.n {
			t.Errorf("Match(%q) found %d, want %d", tt.filter, len(dst), tt.n)
		}
	}
}

// TestRetainedWide fills one level with more children than the linear
// lookup handles, with long levels that share their first bytes, then
// empties it in a scattered order.
func TestRetainedWide(t *testing.T) {
	r := NewRetained[int]()
	const n = 5 * childMapMin
	topic := func(i int) string { return fmt.Sprintf("w/sharedprefix-%d", i) }
	for i := range n {
		r.Set(topic(i), i)
		r.Set(fmt.Sprint("w/", i), -i) // short levels beside them
	}
	if got := r.Match("w/+", nil); len(got) != 2*n {
		t.Fatalf("w/+ found %d, want %d", len(got), 2*n)
	}
	for k := range n {
		i := (k * 7) % n // 7 and n are coprime: every i once
		if v, ok := r.Get(topic(i)); !ok || v != i {
			t.Fatalf("Get(%q) = %d, %v", topic(i), v, ok)
		}
		if !r.Delete(topic(i)) || r.Delete(topic(i)) {
			t.Fatalf("Delete(%q) twice: want true then false", topic(i))
		}
		if _, ok := r.Get(topic(i)); ok {
			t.Fatalf("%q still retained", topic(i))
		}
		if got := r.Match("w/+", nil); len(got) != 2*n-k-1 {
			t.Fatalf("after %d deletes, w/+ found %d", k+1, len(got))
		}
	}
	for i := range n {
		if v, ok := r.Get(fmt.Sprint("w/", i)); !ok || v != -i {
			t.Fatalf("Get(w/%d) = %d, %v", i, v, ok)
		}
		r.Delete(fmt.Sprint("w/", i))
	}
	if r.Len() != 0 || r.root.children.len() != 0 {
		t.Errorf("Len %d, %d root children after deleting all", r.Len(), r.root.children.len())
	}
}
