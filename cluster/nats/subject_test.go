package nats

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTopicTokensRoundTrip(t *testing.T) {
	for _, tc := range []struct{ topic, tokens string }{
		{"sensors/temp", "sensors.temp"},
		{"a.b/c d", "a=2Eb.c=20d"},
		{"/x//", "=.x.=.="},
		{"/", "=.="},
		{"$SYS/broker/uptime", "=24SYS.broker.uptime"},
		{"$aws/things", "=24aws.things"},
		{"ünïcode/日本", "=C3=BCn=C3=AFcode.=E6=97=A5=E6=9C=AC"},
		{"a*b/>c/=d", "a=2Ab.=3Ec.=3Dd"},
		{"tab\there", "tab=09here"},
		{"x", "x"},
		{"-_Az09", "-_Az09"},
		{"=", "=3D"},
		{"%/+x", "=25.=2Bx"},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			got := topicToken(tc.topic)
			assert.Equal(t, tc.tokens, got)
			for _, tok := range strings.Split(got, ".") {
				assert.NotEmpty(t, tok, "NATS tokens cannot be empty")
				assert.NotContains(t, tok, "*")
				assert.NotContains(t, tok, ">")
				assert.NotContains(t, tok, " ")
			}
			back, err := tokenTopic(got)
			require.NoError(t, err)
			assert.Equal(t, tc.topic, back)
		})
	}
}

func TestTokenTopicRefusesWhatTopicTokenNeverWrites(t *testing.T) {
	for _, bad := range []string{"", "a=", "a=4", "a=G1", "a b", "a*", "=zz"} {
		_, err := tokenTopic(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestLevelTokenKeepsSlashes(t *testing.T) {
	id := "client/with.dots and spaces"
	tok := levelToken(id)
	assert.NotContains(t, tok, ".")
	back, err := tokenTopic(tok)
	require.NoError(t, err)
	assert.Equal(t, id, back)
}

// A filter's subjects match exactly the topics the filter matches
// [MQTT-4.7.1-2, MQTT-4.7.1-3], but for topics starting with '$', which
// the receiving node filters again [MQTT-4.7.2-1].
func TestFilterTokens(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"a/b", []string{"a.b"}},
		{"a/+/c", []string{"a.*.c"}},
		{"a/#", []string{"a", "a.>"}},
		{"#", []string{">"}},
		{"+", []string{"*"}},
		{"+/#", []string{"*", "*.>"}},
		{"a//#", []string{"a.=", "a.=.>"}},
		{"a.b/+", []string{"a=2Eb.*"}},
		{"/#", []string{"=", "=.>"}},
	} {
		assert.Equal(t, tc.want, filterTokens(tc.filter), tc.filter)
	}
}

func TestFilterSubjectsMatchLikeMQTT(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		match         bool
	}{
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a/", true},
		{"+/+", "/x", true},
		{"#", "x/y", true},
		{"a/b.c", "a/b.c", true},
		{"a/b.c", "a/b/c", false},
		{"a/+/c", "a/x.y/c", true},
	} {
		matched := false
		for _, p := range filterTokens(tc.filter) {
			matched = matched || subjectMatch(p, topicToken(tc.topic))
		}
		assert.Equal(t, tc.match, matched, "%s ~ %s", tc.filter, tc.topic)
	}
}

// subjectMatch is NATS's matching of a literal subject against a pattern.
func subjectMatch(pattern, subject string) bool {
	return overlap(pattern, subject)
}

func TestShareDollar(t *testing.T) {
	assert.True(t, shareDollar("#", "$SYS/x"))
	assert.True(t, shareDollar("+/x", "$aws/x"))
	assert.False(t, shareDollar("$aws/#", "$aws/x"))
	assert.False(t, shareDollar("#", "a/x"))
}

func TestDisjointFilterSubjects(t *testing.T) {
	all := "p.>"
	assert.Equal(t, []string{"p.a.>"}, disjoint([]string{"p.a.>", "p.a.b", "p.a.*"}, all))
	assert.Equal(t, []string{"p.a.b"}, disjoint([]string{"p.a.b", "p.a.b"}, all))
	assert.Equal(t, []string{"p.a", "p.b.*"}, disjoint([]string{"p.a", "p.b.*"}, all))
	assert.Equal(t, []string{all}, disjoint([]string{"p.a.*.c", "p.a.b.*"}, all))
	assert.Equal(t, []string{"p.>"}, disjoint([]string{"p.x", "p.>"}, all))
}

func TestSubsumesAndOverlap(t *testing.T) {
	assert.True(t, subsumes("a.>", "a.b.c"))
	assert.True(t, subsumes("a.*", "a.b"))
	assert.False(t, subsumes("a.*", "a.>"))
	assert.False(t, subsumes("a.b", "a.*"))
	assert.False(t, subsumes("a.>", "a"))
	assert.True(t, overlap("a.*.c", "a.b.*"))
	assert.False(t, overlap("a.b", "a.c"))
	assert.False(t, overlap("a.b", "a.b.c"))
	assert.True(t, overlap(">", "x"))
}
