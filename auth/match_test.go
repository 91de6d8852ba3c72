package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidFilter(t *testing.T) {
	tests := []struct {
		filter string
		ok     bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"/", true},
		{"a//b", true},
		{"#", true},
		{"a/#", true},
		{"+", true},
		{"+/+/#", true},
		{"a/+/c", true},
		{"$SYS/#", true},
		{"with space/x", true},
		{"", false},       // [MQTT-4.7.3-1]
		{"a/#/b", false},  // [MQTT-4.7.1-2]
		{"a#", false},     // [MQTT-4.7.1-2]
		{"a/b#", false},   // [MQTT-4.7.1-2]
		{"a+/b", false},   // [MQTT-4.7.1-3]
		{"a/+b", false},   // [MQTT-4.7.1-3]
		{"a\x00b", false}, // [MQTT-4.7.3-2]
		{"a\xffb", false}, // not UTF-8
		{"#/", false},     // [MQTT-4.7.1-2]
		{"##", false},     // [MQTT-4.7.1-2]
		{"++", false},     // [MQTT-4.7.1-3]
		{strings.Repeat("a", 65535), true},
		{strings.Repeat("a", 65536), false}, // [MQTT-4.7.3-3]
	}
	for _, tt := range tests {
		err := validFilter(tt.filter)
		if tt.ok {
			assert.NoError(t, err, "validFilter(%.20q)", tt.filter)
		} else {
			assert.Error(t, err, "validFilter(%.20q)", tt.filter)
		}
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a/b", true},
		{"/", true},
		{"$SYS/x", true},
		{"", false},                         // [MQTT-4.7.3-1]
		{"a/+", false},                      // [MQTT-4.7.1-1]
		{"a/#", false},                      // [MQTT-4.7.1-1]
		{"a\x00", false},                    // [MQTT-4.7.3-2]
		{strings.Repeat("a", 65536), false}, // [MQTT-4.7.3-3]
	}
	for _, tt := range tests {
		assert.Equal(t, tt.ok, validName(tt.name), "validName(%.20q)", tt.name)
	}
}

// The cases follow mosquitto_topic_matches_sub.
func TestTopicMatches(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b/c", "a/b/c", true},
		{"a/b/c", "a/b", false},
		{"a/b", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"+/+", "/", true},
		{"+", "/", false},
		{"/+", "/x", true},
		{"a/#", "a", true}, // '#' also matches the parent level
		{"a/#", "a/", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/b/#", "a", false},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"+/#", "a", true},
		{"a//b", "a//b", true},
		{"a//b", "a/b", false},
		{"A", "a", false},
		{"caf\u00e9", "cafe\u0301", false}, // [MQTT-4.7.3-4] no normalisation
		{"#", "$SYS/x", false},             // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false},           // [MQTT-4.7.2-1]
		{"+", "$SYS", false},               // [MQTT-4.7.2-1]
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/+", "$SYS/x", true},
		{"x/#", "x/$y", true}, // '$' matters only at the first level
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, topicMatches(tt.filter, tt.topic), "topicMatches(%q, %q)", tt.filter, tt.topic)
	}
}

func TestFiltersIntersect(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"#", "public/#", true},
		{"a/+", "+/b", true},
		{"a/b", "a/c", false},
		{"a", "a/#", true},
		{"a/+", "a", false},
		{"a/b/c", "a/#", true},
		{"+/+", "a", false},
		{"#", "$SYS/#", false},   // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"$SYS/#", "$SYS/+", true},
		{"$SYS/#", "$other/#", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, filtersIntersect(tt.a, tt.b), "filtersIntersect(%q, %q)", tt.a, tt.b)
		assert.Equal(t, tt.want, filtersIntersect(tt.b, tt.a), "filtersIntersect(%q, %q)", tt.b, tt.a)
	}
}

func TestFilterCovers(t *testing.T) {
	tests := []struct {
		outer, inner string
		want         bool
	}{
		{"#", "a/b", true},
		{"#", "#", true},
		{"a/#", "a", true},
		{"a/#", "a/+/c", true},
		{"a/#", "a/#", true},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/b", "a/+", false},
		{"a/+", "a", false},
		{"+", "a", true},
		{"a/b", "a/b/c", false},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/#", "#", false},
		{"+/#", "#", true},      // "#" has no parent level to match
		{"a/+/#", "a/#", false}, // "a/#" matches "a"
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, filterCovers(tt.outer, tt.inner), "filterCovers(%q, %q)", tt.outer, tt.inner)
	}
}

// universe enumerates every topic name of up to depth levels drawn from
// levels.
func universe(levels []string, depth int) []string {
	var out, cur []string
	cur = []string{""}
	for d := 1; d <= depth; d++ {
		var next []string
		for _, prefix := range cur {
			for _, lv := range levels {
				s := lv
				if d > 1 {
					s = prefix + "/" + lv
				}
				next = append(next, s)
			}
		}
		out = append(out, next...)
		cur = next
	}
	return out
}

// TestFilterRelationsBruteForce checks filtersIntersect and filterCovers
// against their definitions over every topic of a small alphabet: one
// level deeper than the filters and with one level no filter names.
func TestFilterRelationsBruteForce(t *testing.T) {
	var filters []string
	for _, f := range universe([]string{"a", "$s", "+", "#"}, 3) {
		if validFilter(f) == nil {
			filters = append(filters, f)
		}
	}
	topics := universe([]string{"a", "$s", "z"}, 4)
	matches := make(map[string][]bool, len(filters))
	for _, f := range filters {
		m := make([]bool, len(topics))
		for i, tp := range topics {
			m[i] = topicMatches(f, tp)
		}
		matches[f] = m
	}
	for _, a := range filters {
		for _, b := range filters {
			ma, mb := matches[a], matches[b]
			meet, covers := false, true
			for i := range topics {
				meet = meet || ma[i] && mb[i]
				covers = covers && (!mb[i] || ma[i])
			}
			assert.Equal(t, meet, filtersIntersect(a, b), "filtersIntersect(%q, %q) against brute force", a, b)
			assert.Equal(t, covers, filterCovers(a, b), "filterCovers(%q, %q) against brute force", a, b)
		}
	}
}

// TestCompiledMatchAgreesWithExpansion checks that the allocation-free
// matcher of a compiled rule agrees with topicMatches on the expanded
// filter, except that a substituted first level never matches '$' topics.
func TestCompiledMatchAgreesWithExpansion(t *testing.T) {
	var raws []string
	for _, f := range universe([]string{"a", "%u", "x%c", "$s", "+", "#", "%%"}, 3) {
		if _, err := compileFilter(f); err == nil {
			raws = append(raws, f)
		}
	}
	values := []string{"a", "$s", "z", "xz", ""}
	topics := universe([]string{"a", "$s", "z", "xz", "xa", "%", ""}, 4)
	for _, raw := range raws {
		r, err := compileFilter(raw)
		require.NoError(t, err)
		for _, user := range values {
			for _, id := range values {
				if !r.appliesTo(user, id) {
					continue
				}
				exp, ok := r.expand(user, id)
				for _, tp := range topics {
					want := ok && topicMatches(exp, tp) && (tp[0] != '$' || r.dollarOK)
					// Millions of cases: compare first, let require report.
					if got := r.matchTopic(user, id, tp); got != want {
						require.Equal(t, want, got, "rule %q user %q id %q topic %q: matchTopic against the expanded %q",
							raw, user, id, tp, exp)
					}
				}
			}
		}
	}
}

func TestCompileFilter(t *testing.T) {
	tests := []struct {
		raw        string
		user, id   string
		want       string
		usesUser   bool
		usesClient bool
		dollarOK   bool
	}{
		{"a/b", "u", "c", "a/b", false, false, true},
		{"home/%u/#", "alice", "c1", "home/alice/#", true, false, true},
		{"d/%c/x-%u-%c", "bob", "42", "d/42/x-bob-42", true, true, true},
		{"rate/50%%", "u", "c", "rate/50%", false, false, true},
		{"%%u/%u", "bob", "c", "%u/bob", true, false, true},
		{"%c/#", "u", "dev", "dev/#", false, true, false},
		{"$%c/#", "u", "dev", "$dev/#", false, true, true},
		{"+/%u", "bob", "c", "+/bob", true, false, false},
	}
	for _, tt := range tests {
		r, err := compileFilter(tt.raw)
		if !assert.NoError(t, err, "compileFilter(%q)", tt.raw) {
			continue
		}
		got, _ := r.expand(tt.user, tt.id)
		assert.Equal(t, tt.want, got, "compileFilter(%q): expand", tt.raw)
		assert.Equal(t, tt.usesUser, r.usesUser, "compileFilter(%q): uses %%u", tt.raw)
		assert.Equal(t, tt.usesClient, r.usesClient, "compileFilter(%q): uses %%c", tt.raw)
		assert.Equal(t, tt.dollarOK, r.dollarOK, "compileFilter(%q): dollarOK", tt.raw)
	}
}
