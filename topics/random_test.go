package topics

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// naiveMatch is an independent, obviously correct matcher used as the model
// for the tries: split both strings and compare level by level.
func naiveMatch(filter, topic string) bool {
	f := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (f[0] == "+" || f[0] == "#") {
		return false // [MQTT-4.7.2-1]
	}
	for i, level := range f {
		if level == "#" {
			return true // [MQTT-4.7.1-2] the parent (i == len(tl)) and any children
		}
		if i >= len(tl) || (level != "+" && level != tl[i]) {
			return false
		}
	}
	return len(f) == len(tl)
}

// randomLevels is a small alphabet of levels, so that random topics and
// filters collide often: '$' levels, an empty level, case variants, and
// long levels that share their first bytes (the child lookup tags).
var randomLevels = []string{"a", "b", "c", "A", "", "é", "$SYS", "$x", "a$", "longlevel1", "longlevel2"}

func randomTopic(rng *rand.Rand) string {
	for {
		n := 1 + rng.IntN(4)
		levels := make([]string, n)
		for i := range levels {
			levels[i] = randomLevels[rng.IntN(len(randomLevels))]
		}
		if t := strings.Join(levels, "/"); t != "" {
			return t
		}
	}
}

func randomFilter(rng *rand.Rand) string {
	for {
		n := 1 + rng.IntN(4)
		levels := make([]string, n)
		for i := range levels {
			if rng.IntN(3) == 0 {
				levels[i] = "+"
			} else {
				levels[i] = randomLevels[rng.IntN(len(randomLevels))]
			}
		}
		if rng.IntN(3) == 0 {
			levels[n-1] = "#"
		}
		if f := strings.Join(levels, "/"); f != "" {
			return f
		}
	}
}

// TestMatchesRandom holds Matches against the naive matcher.
func TestMatchesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		f, topic := randomFilter(rng), randomTopic(rng)
		require.NoError(t, ValidFilter(f), "generator made an invalid filter")
		require.NoError(t, ValidName(topic), "generator made an invalid topic")
		require.Equal(t, naiveMatch(f, topic), Matches(f, topic), "Matches(%q, %q) against the naive matcher", f, topic)
	}
}

// randomPools returns pools of random topics and filters and the naive
// matcher's verdict for every pair, so that the model checks stay cheap.
// Drawing from pools makes filters gather more than subMapMin subscribers
// and unsubscribes and deletes hit often.
func randomPools(rng *rand.Rand, nTopics, nFilters int) (topics, filters []string, match [][]bool) {
	topics = distinct(nTopics, func() string { return randomTopic(rng) })
	filters = distinct(nFilters, func() string { return randomFilter(rng) })
	match = make([][]bool, nFilters)
	for i := range filters {
		match[i] = make([]bool, nTopics)
		for j, topic := range topics {
			match[i][j] = naiveMatch(filters[i], topic)
		}
	}
	return topics, filters, match
}

// distinct returns n different strings drawn from gen.
func distinct(n int, gen func() string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, n)
	for len(out) < n {
		if s := gen(); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// TestIndexRandom applies random subscribes and unsubscribes to an Index
// and to a plain model, and checks after each step that Match agrees with
// the naive matcher over the model [MQTT-3.3.5-1, MQTT-4.7.2-1].
func TestIndexRandom(t *testing.T) {
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 99))
		topics, filters, match := randomPools(rng, 40, 60)
		ix := NewIndex[int]()
		const keys = 40              // enough to cross linearMergeMax
		model := make([][]int, keys) // key -> filter -> QoS, -1 when absent
		for k := range model {
			model[k] = slices.Repeat([]int{-1}, len(filters))
		}
		// Non-nil, so that an empty result equals an empty model.
		dst, want := make([]Sub[int], 0, keys), make([]Sub[int], 0, keys)
		for step := range 3000 {
			key, fi := rng.IntN(keys), rng.IntN(len(filters))
			had := model[key][fi] >= 0
			if rng.IntN(3) == 0 {
				require.Equal(t, had, ix.Unsubscribe(key, filters[fi]), "seed %d step %d: Unsubscribe(%d, %q)", seed, step, key, filters[fi])
				model[key][fi] = -1
			} else {
				qos := rng.IntN(3)
				require.Equal(t, !had, ix.Subscribe(key, filters[fi], uint32(qos)), "seed %d step %d: Subscribe(%d, %q) is new", seed, step, key, filters[fi])
				model[key][fi] = qos
			}
			ti := rng.IntN(len(topics))
			dst = sortSubs(ix.Match(topics[ti], dst[:0]))
			want = want[:0]
			for k := range keys { // in key order, as sortSubs leaves dst
				best, n := -1, 0
				for f, q := range model[k] {
					if match[f][ti] && q >= 0 {
						best = max(best, q)
						n++
					}
				}
				if best >= 0 {
					want = append(want, Sub[int]{Key: k, Opts: uint32(best), Multi: n > 1})
				}
			}
			require.Equal(t, want, dst, "seed %d step %d: Match(%q)", seed, step, topics[ti])
		}
		checkIndexContents(t, ix, filters, model)
		for key := range model {
			for _, f := range filters {
				ix.Unsubscribe(key, f)
			}
		}
		require.Zero(t, ix.Len(), "seed %d", seed)
		require.True(t, ix.root.empty(), "seed %d: trie not empty after unsubscribing all", seed)
	}
}

// checkIndexContents checks Len and ForEach against the model.
func checkIndexContents(t *testing.T, ix *Index[int], filters []string, model [][]int) {
	t.Helper()
	want := map[Sub[int]]map[string]bool{}
	n := 0
	for key, m := range model {
		for f, q := range m {
			if q >= 0 {
				s := Sub[int]{Key: key, Opts: uint32(q)}
				if want[s] == nil {
					want[s] = map[string]bool{}
				}
				want[s][filters[f]] = true
				n++
			}
		}
	}
	require.Equal(t, n, ix.Len(), "Len against the model")
	seen := 0
	ix.ForEach(func(key int, f string, opts uint32) bool {
		assert.True(t, want[Sub[int]{Key: key, Opts: opts}][f], "ForEach gave %d %q %d, not in the model", key, f, opts)
		seen++
		return true
	})
	require.Equal(t, n, seen, "ForEach entries")
}

// TestRetainedRandom applies random sets and deletes to a Retained and a
// plain model, and checks Match, Get and Len against the naive matcher.
func TestRetainedRandom(t *testing.T) {
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 7))
		topics, filters, match := randomPools(rng, 300, 60)
		r := NewRetained[int]()
		model := slices.Repeat([]int{-1}, len(topics)) // topic -> value, -1 when absent
		n := 0
		dst, want := make([]int, 0, len(topics)), make([]int, 0, len(topics))
		for step := range 3000 {
			ti := rng.IntN(len(topics))
			topic := topics[ti]
			had := model[ti] >= 0
			if rng.IntN(3) == 0 {
				require.Equal(t, had, r.Delete(topic), "seed %d step %d: Delete(%q)", seed, step, topic)
				if had {
					n--
				}
				model[ti] = -1
			} else {
				r.Set(topic, step)
				if !had {
					n++
				}
				model[ti] = step
			}
			v, ok := r.Get(topic)
			require.Equal(t, model[ti] >= 0, ok, "seed %d step %d: Get(%q) found", seed, step, topic)
			if ok {
				require.Equal(t, model[ti], v, "seed %d step %d: Get(%q)", seed, step, topic)
			}
			require.Equal(t, n, r.Len(), "seed %d step %d: Len", seed, step)
			fi := rng.IntN(len(filters))
			dst = r.Match(filters[fi], dst[:0])
			slices.Sort(dst)
			want = want[:0]
			for i, v := range model {
				if v >= 0 && match[fi][i] {
					want = append(want, v)
				}
			}
			slices.Sort(want)
			require.Equal(t, want, dst, "seed %d step %d: Match(%q)", seed, step, filters[fi])
		}
		for _, topic := range topics {
			r.Delete(topic)
		}
		require.Zero(t, r.Len(), "seed %d", seed)
		require.Zero(t, r.root.children.len(), "seed %d: trie not empty after deleting all", seed)
	}
}
