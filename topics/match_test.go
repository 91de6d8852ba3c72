package topics

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// matchCases are (filter, topic, want) triples: the examples of MQTT 3.1.1
// sections 4.7.1.2, 4.7.1.3, 4.7.2 and 4.7.3, and more of our own. Every
// matcher (Matches, Index.Match, Retained.Match) must agree with them.
var matchCases = []struct {
	filter, topic string
	want          bool
	rule          string // the statement or section the case checks
}{
	// 4.7.1.2: "sport/tennis/player1/#" receives these.
	{"sport/tennis/player1/#", "sport/tennis/player1", true, "MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis/player2", false, "MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis", false, "MQTT-4.7.1-2"},
	// 4.7.1.2: "sport/#" also matches the singular "sport".
	{"sport/#", "sport", true, "MQTT-4.7.1-2"},
	{"sport/#", "sport/", true, "MQTT-4.7.1-2"},
	{"sport/#", "sport/tennis/player1", true, "MQTT-4.7.1-2"},
	{"sport/#", "sports", false, "MQTT-4.7.1-2"},
	{"sport/#", "/sport", false, "MQTT-4.7.1-2"},
	// 4.7.1.2: "#" receives every application message.
	{"#", "sport", true, "MQTT-4.7.1-2"},
	{"#", "/", true, "MQTT-4.7.1-2"},
	{"#", "a//b/", true, "MQTT-4.7.1-2"},
	{"/#", "/", true, "MQTT-4.7.1-2"},
	{"/#", "/a/b", true, "MQTT-4.7.1-2"},
	{"/#", "a", false, "MQTT-4.7.1-2"},
	{"a//#", "a/", true, "MQTT-4.7.1-2"}, // parent of "a//#" is "a/"
	{"a//#", "a//x", true, "MQTT-4.7.1-2"},
	{"a//#", "a", false, "MQTT-4.7.1-2"},
	{"a//#", "a/x", false, "MQTT-4.7.1-2"},
	// 4.7.1.3: "sport/tennis/+".
	{"sport/tennis/+", "sport/tennis/player1", true, "MQTT-4.7.1-3"},
	{"sport/tennis/+", "sport/tennis/player2", true, "MQTT-4.7.1-3"},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false, "MQTT-4.7.1-3"},
	// 4.7.1.3: "sport/+" does not match "sport" but does match "sport/".
	{"sport/+", "sport", false, "MQTT-4.7.1-3"},
	{"sport/+", "sport/", true, "MQTT-4.7.1-3"},
	// 4.7.1.3: "/finance" matches "+/+" and "/+", but not "+".
	{"+/+", "/finance", true, "MQTT-4.7.1-3"},
	{"/+", "/finance", true, "MQTT-4.7.1-3"},
	{"+", "/finance", false, "MQTT-4.7.1-3"},
	{"+", "finance", true, "MQTT-4.7.1-3"},
	{"+/tennis/#", "sport/tennis", true, "MQTT-4.7.1-3"},
	{"+/tennis/#", "sport/tennis/x/y", true, "MQTT-4.7.1-3"},
	{"+/tennis/#", "sport/golf", false, "MQTT-4.7.1-3"},
	{"sport/+/player1", "sport/tennis/player1", true, "MQTT-4.7.1-3"},
	{"sport/+/player1", "sport//player1", true, "MQTT-4.7.1-3"},
	{"sport/+/player1", "sport/tennis/player2", false, "MQTT-4.7.1-3"},
	{"+/+/+", "a/b", false, "MQTT-4.7.1-3"},
	{"+/+/+", "//", true, "MQTT-4.7.1-3"},
	{"+/#", "a", true, "MQTT-4.7.1-3"},
	{"+/#", "/", true, "MQTT-4.7.1-3"},
	// 4.7.2: topics beginning with '$'.
	{"#", "$SYS", false, "MQTT-4.7.2-1"},
	{"#", "$SYS/monitor/Clients", false, "MQTT-4.7.2-1"},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false, "MQTT-4.7.2-1"},
	{"+", "$SYS", false, "MQTT-4.7.2-1"},
	{"+/#", "$SYS/x", false, "MQTT-4.7.2-1"},
	{"$SYS/#", "$SYS/", true, "MQTT-4.7.2-1"},
	{"$SYS/#", "$SYS/x", true, "MQTT-4.7.2-1"},
	{"$SYS/#", "$SYS", true, "MQTT-4.7.2-1"},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true, "MQTT-4.7.2-1"},
	{"$SYS/monitor/Clients", "$SYS/monitor/Clients", true, "MQTT-4.7.2-1"},
	{"$SYS/#", "$SYSX/x", false, "MQTT-4.7.2-1"},
	{"+/$x", "a/$x", true, "MQTT-4.7.2-1"}, // only the first level counts
	{"a/#", "a/$x", true, "MQTT-4.7.2-1"},
	{"#", "a$", true, "MQTT-4.7.2-1"},
	{"/#", "/$x", true, "MQTT-4.7.2-1"}, // the topic starts with '/', not '$'
	{"+/+", "/$x", true, "MQTT-4.7.2-1"},
	// 4.7.3: case sensitive, spaces, leading and trailing separators.
	{"ACCOUNTS", "Accounts", false, "4.7.3"},
	{"Accounts", "Accounts", true, "4.7.3"},
	{"Accounts payable", "Accounts payable", true, "4.7.3"},
	{"finance", "/finance", false, "4.7.3"},
	{"/finance", "finance", false, "4.7.3"},
	{"finance", "finance/", false, "4.7.3"},
	{"/", "/", true, "4.7.3"},
	{"a//b", "a/b", false, "4.7.1.1"},
	{"a//b", "a//b", true, "4.7.1.1"},
	// [MQTT-4.7.3-4] no normalisation: NFC and NFD forms, a BOM, U+FFFD.
	{"caf\u00e9", "cafe\u0301", false, "MQTT-4.7.3-4"},
	{"cafe\u0301", "cafe\u0301", true, "MQTT-4.7.3-4"},
	{"a", "\uFEFFa", false, "MQTT-4.7.3-4"},
	{"+/\uFEFF", "x/\uFEFF", true, "MQTT-4.7.3-4"},
	{"a/b", "a/b\uFFFD", false, "MQTT-4.7.3-4"},
}

// TestMatches checks Matches against the spec examples.
func TestMatches(t *testing.T) {
	for _, tt := range matchCases {
		require.NoError(t, ValidFilter(tt.filter), "case filter %q", tt.filter)
		require.NoError(t, ValidName(tt.topic), "case topic %q", tt.topic)
		assert.Equal(t, tt.want, Matches(tt.filter, tt.topic), "[%s] Matches(%q, %q)", tt.rule, tt.filter, tt.topic)
	}
}

// TestIndexMatchSpec checks Index.Match against the spec examples, one
// subscription at a time and all of them at once.
func TestIndexMatchSpec(t *testing.T) {
	all := NewIndex[int]()
	for i, tt := range matchCases {
		one := NewIndex[int]()
		one.Subscribe(i, tt.filter, 1)
		all.Subscribe(i, tt.filter, 1)
		var want []Sub[int]
		if tt.want {
			want = []Sub[int]{{Key: i, Opts: 1}}
		}
		assert.Equal(t, want, one.Match(tt.topic, nil), "[%s] filter %q, topic %q", tt.rule, tt.filter, tt.topic)
	}
	for _, tt := range matchCases {
		var want []int
		for i, c := range matchCases {
			if Matches(c.filter, tt.topic) {
				want = append(want, i)
			}
		}
		var got []int
		for _, s := range all.Match(tt.topic, nil) {
			got = append(got, s.Key)
		}
		slices.Sort(got)
		assert.Equal(t, want, got, "topic %q: subscribers", tt.topic)
	}
}

// TestRetainedMatchSpec checks Retained.Match against the spec examples,
// one retained topic at a time and all of them at once.
func TestRetainedMatchSpec(t *testing.T) {
	all := NewRetained[string]()
	for _, tt := range matchCases {
		one := NewRetained[string]()
		one.Set(tt.topic, tt.topic)
		all.Set(tt.topic, tt.topic)
		var want []string
		if tt.want {
			want = []string{tt.topic}
		}
		assert.Equal(t, want, one.Match(tt.filter, nil), "[%s] filter %q, topic %q", tt.rule, tt.filter, tt.topic)
	}
	for _, tt := range matchCases {
		var want []string
		all.ForEach(func(topic string, _ string) bool {
			if Matches(tt.filter, topic) {
				want = append(want, topic)
			}
			return true
		})
		assert.ElementsMatch(t, want, all.Match(tt.filter, nil), "filter %q", tt.filter)
	}
}

// TestMatchesInvalidInput checks that Matches never panics and compares
// misplaced wildcards as ordinary characters.
func TestMatchesInvalidInput(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"", "a", false},
		{"a", "", false},
		{"#", "", false},
		{"", "", false},
		{"sport+", "sport+", true},
		{"sport+", "sportx", false},
		{"a/#/b", "a/#/b", true},
		{"a/#/b", "a/x/b", false},
		{"a/b#", "a/b", false},
		{"+", "+", true},
		{"a/+", "a/#", true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Matches(tt.filter, tt.topic), "Matches(%q, %q)", tt.filter, tt.topic)
	}
}

func TestMatchesAllocs(t *testing.T) {
	matched := true
	n := testing.AllocsPerRun(100, func() {
		matched = matched && Matches("sport/+/player1/#", "sport/tennis/player1/score/wimbledon")
	})
	require.True(t, matched, "no match")
	assert.Zero(t, n, "Matches allocations per call")
}
