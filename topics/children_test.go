package topics

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLevelTagRoundTrip: a level of at most tagBytes bytes is rebuilt from
// its tag alone, byte for byte, and a stored child hashes as the level
// itself does (the level index hashes stored children from their tags and
// looked-up levels from their strings).
func TestLevelTagRoundTrip(t *testing.T) {
	ix := newIndex[int](nil)
	for _, level := range []string{"", "a", "$SYS", "1234567", "é", "日本", "\x01\xff", "12345678", "level-longer-than-a-tag"} {
		k := kid[int]{tag: levelTag(level)}
		if len(level) > tagBytes {
			k.long = level
		}
		assert.Equal(t, level, k.name(), "name of %q", level)
		assert.Equal(t, ix.hash(level, levelTag(level)), kidHash(ix, &k), "hash of %q", level)
		assert.Equal(t, level != "" && level[0] == '$', k.dollar(), "dollar of %q", level)
		assert.True(t, k.is(level, levelTag(level)), "is(%q)", level)
	}
	// Levels that differ only past the tag's bytes, or only in length,
	// are told apart.
	k := kid[int]{tag: levelTag("sharedprefix-1"), long: "sharedprefix-1"}
	assert.False(t, k.is("sharedprefix-2", levelTag("sharedprefix-2")))
	short := kid[int]{tag: levelTag("a")}
	assert.False(t, short.is("a\x00", levelTag("a\x00")))
}

// TestChildSetRandom adds and removes children of one set, across the
// small (scanned) and large (indexed) sizes and back, against a map, and
// checks every lookup, the node each child holds, and that the set gives
// its memory back as it empties.
func TestChildSetRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	level := func(i int) string {
		switch i % 4 {
		case 0:
			return fmt.Sprint(i) // short
		case 1:
			return fmt.Sprintf("sharedprefix-%d", i) // long, same tag as many
		case 2:
			return fmt.Sprintf("%07d", i) // exactly tagBytes
		}
		return fmt.Sprintf("dev-%x-%d", i*2654435761, i) // long, varied
	}
	const universe = 3000
	var c childSet[int]
	var ix *levelIndex
	model := map[string]int{}
	check := func(step int) {
		require.Equal(t, len(model), c.len(), "step %d", step)
		for range 20 {
			l := level(rng.IntN(universe))
			want, ok := model[l]
			got := c.get(l, ix)
			if !ok {
				require.Nil(t, got, "step %d: %q found, absent", step, l)
				continue
			}
			require.NotNil(t, got, "step %d: %q not found", step, l)
			require.Equal(t, want, *got, "step %d: node of %q", step, l)
		}
	}
	for step := range 40_000 {
		// Grow to about 2000 children, shrink to none, grow again.
		growing := (step/10_000)%2 == 0
		l := level(rng.IntN(universe))
		_, present := model[l]
		switch {
		case !present && (growing || rng.IntN(4) == 0):
			var n *int
			n, ix = c.add(l, ix)
			*n = step
			model[l] = step
		case present && (!growing || rng.IntN(4) == 0):
			ix = c.remove(l, ix)
			delete(model, l)
		}
		if step%97 == 0 {
			check(step)
		}
		if c.len() >= indexMin {
			require.NotNil(t, ix, "step %d: %d children without an index", step, c.len())
		}
		if c.len() < indexMin/2 {
			require.Nil(t, ix, "step %d: %d children with an index", step, c.len())
		}
	}
	check(-1)
	for l := range model {
		ix = c.remove(l, ix)
	}
	assert.Zero(t, c.len())
	assert.Nil(t, c.kids, "an empty set holds no slice")
	assert.Nil(t, ix, "an empty set has no index")
}

// TestChildSetShrinks: a set that loses most of its children gives back
// the slice and index memory of the ones gone.
func TestChildSetShrinks(t *testing.T) {
	var c childSet[int]
	var ix *levelIndex
	const n = 10_000
	for i := range n {
		_, ix = c.add(fmt.Sprintf("level-%d", i), ix)
	}
	require.NotNil(t, ix)
	bigKids, bigSlots := cap(c.kids), len(ix.slots)
	for i := range n - 100 {
		ix = c.remove(fmt.Sprintf("level-%d", i), ix)
	}
	require.NotNil(t, ix)
	assert.Less(t, cap(c.kids), bigKids/20, "children slice capacity after shrinking")
	assert.Less(t, len(ix.slots), bigSlots/20, "index slots after shrinking")
	for i := n - 100; i < n; i++ {
		assert.NotNil(t, c.get(fmt.Sprintf("level-%d", i), ix), "level-%d", i)
	}
}

// TestLevelTagMatchesItsDefinition: the wide loads of levelTag give, for
// every length, the length byte and the first tagBytes bytes in order.
func TestLevelTagMatchesItsDefinition(t *testing.T) {
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + 11)
		}
		want := uint64(min(n, 255))
		for i := range min(n, tagBytes) {
			want |= uint64(b[i]) << (8 * (i + 1))
		}
		require.Equal(t, want, levelTag(string(b)), "length %d", n)
	}
}
