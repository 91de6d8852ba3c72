package topics

import (
	"slices"
	"testing"
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
		if ValidFilter(tt.filter) != nil || ValidName(tt.topic) != nil {
			t.Fatalf("case %q %q is not valid input", tt.filter, tt.topic)
		}
		if got := Matches(tt.filter, tt.topic); got != tt.want {
			t.Errorf("[%s] Matches(%q, %q) = %v, want %v", tt.rule, tt.filter, tt.topic, got, tt.want)
		}
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
		got := one.Match(tt.topic, nil)
		if want := tt.want; (len(got) == 1) != want || (want && got[0] != (Sub[int]{Key: i, QoS: 1})) {
			t.Errorf("[%s] filter %q, topic %q: got %v, want match %v", tt.rule, tt.filter, tt.topic, got, tt.want)
		}
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
		if !slices.Equal(got, want) {
			t.Errorf("topic %q: got subscribers %v, want %v", tt.topic, got, want)
		}
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
		got := one.Match(tt.filter, nil)
		if (len(got) == 1) != tt.want || (tt.want && got[0] != tt.topic) {
			t.Errorf("[%s] filter %q, topic %q: got %q, want match %v", tt.rule, tt.filter, tt.topic, got, tt.want)
		}
	}
	for _, tt := range matchCases {
		var want []string
		all.ForEach(func(topic string, _ string) bool {
			if Matches(tt.filter, topic) {
				want = append(want, topic)
			}
			return true
		})
		got := all.Match(tt.filter, nil)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("filter %q: got %q, want %q", tt.filter, got, want)
		}
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
		if got := Matches(tt.filter, tt.topic); got != tt.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestMatchesAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if !Matches("sport/+/player1/#", "sport/tennis/player1/score/wimbledon") {
			t.Fatal("no match")
		}
	}); n != 0 {
		t.Errorf("Matches allocates %v times per call, want 0", n)
	}
}
