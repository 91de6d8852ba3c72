package topics

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		want  error // the rule sentinel, nil when valid
		rule  string
	}{
		{"plain", "sport/tennis/player1", nil, ""},
		{"only a separator is valid", "/", nil, ""},                                          // 4.7.3
		{"leading separator", "/finance", nil, ""},                                           // 4.7.3
		{"trailing separator", "finance/", nil, ""},                                          // 4.7.3
		{"empty levels", "a//b", nil, ""},                                                    // 4.7.1.1
		{"space", "Accounts payable", nil, ""},                                               // 4.7.3
		{"dollar prefix", "$SYS/broker/uptime", nil, ""},                                     // 4.7.2
		{"multi-byte UTF-8", "températures/°C/日本", nil, ""},                                  // 4.7.3
		{"BOM is an ordinary character", "\uFEFFa", nil, ""},                                 // [MQTT-1.5.3-3]
		{"U+FFFD encoded is well-formed", "a\uFFFD", nil, ""},                                // [MQTT-1.5.3-1]
		{"control characters are allowed", "a\x01b", nil, ""},                                // 1.5.3: SHOULD NOT, not MUST NOT
		{"max length", strings.Repeat("a", 65535), nil, ""},                                  // [MQTT-4.7.3-3]
		{"empty", "", ErrEmpty, "MQTT-4.7.3-1"},                                              // [MQTT-4.7.3-1]
		{"too long", strings.Repeat("a", 65536), ErrTooLong, "MQTT-4.7.3-3"},                 // [MQTT-4.7.3-3]
		{"null", "a\x00b", ErrNull, "MQTT-4.7.3-2"},                                          // [MQTT-4.7.3-2]
		{"plus", "sport/+", ErrWildcardInName, "MQTT-4.7.1-1"},                               // [MQTT-4.7.1-1]
		{"hash", "sport/#", ErrWildcardInName, "MQTT-4.7.1-1"},                               // [MQTT-4.7.1-1]
		{"plus inside a level", "sport+", ErrWildcardInName, "MQTT-4.7.1-1"},                 // [MQTT-4.7.1-1]
		{"hash inside a level", "a#b", ErrWildcardInName, "MQTT-4.7.1-1"},                    // [MQTT-4.7.1-1]
		{"truncated UTF-8", "a\xc3", ErrBadUTF8, "MQTT-1.5.3-1"},                             // [MQTT-1.5.3-1]
		{"invalid byte", "a\xffb", ErrBadUTF8, "MQTT-1.5.3-1"},                               // [MQTT-1.5.3-1]
		{"surrogate half", "a\xed\xa0\x80", ErrBadUTF8, "MQTT-1.5.3-1"},                      // [MQTT-1.5.3-1]
		{"overlong null", "a\xc0\x80", ErrBadUTF8, "MQTT-1.5.3-1"},                           // [MQTT-1.5.3-1]
		{"overlong slash", "a\xc0\xafb", ErrBadUTF8, "MQTT-1.5.3-1"},                         // [MQTT-1.5.3-1]
		{"too long with a wildcard", strings.Repeat("+", 65536), ErrTooLong, "MQTT-4.7.3-3"}, // [MQTT-4.7.3-3]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidation(t, ValidName(tt.topic), tt.want, tt.rule, ErrInvalidName, ErrInvalidFilter)
		})
	}
}

func TestValidFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		want   error
		rule   string
	}{
		// 4.7.1.2 multi-level wildcard examples.
		{"hash alone", "#", nil, ""},                                                                // [MQTT-4.7.1-2]
		{"sport/tennis/#", "sport/tennis/#", nil, ""},                                               // [MQTT-4.7.1-2]
		{"sport/tennis#", "sport/tennis#", ErrMultiLevelWildcard, "MQTT-4.7.1-2"},                   // [MQTT-4.7.1-2]
		{"sport/tennis/#/ranking", "sport/tennis/#/ranking", ErrMultiLevelWildcard, "MQTT-4.7.1-2"}, // [MQTT-4.7.1-2]
		{"hash then separator", "#/", ErrMultiLevelWildcard, "MQTT-4.7.1-2"},                        // [MQTT-4.7.1-2]
		{"hash hash", "##", ErrMultiLevelWildcard, "MQTT-4.7.1-2"},                                  // [MQTT-4.7.1-2]
		{"hash before hash", "a/#/#", ErrMultiLevelWildcard, "MQTT-4.7.1-2"},                        // [MQTT-4.7.1-2]
		{"hash after empty level", "a//#", nil, ""},                                                 // [MQTT-4.7.1-2]
		{"slash hash", "/#", nil, ""},                                                               // [MQTT-4.7.1-2]
		{"hash first in level", "a/#b", ErrMultiLevelWildcard, "MQTT-4.7.1-2"},                      // [MQTT-4.7.1-2]
		// 4.7.1.3 single-level wildcard examples.
		{"plus alone", "+", nil, ""},                                                  // [MQTT-4.7.1-3]
		{"+/tennis/#", "+/tennis/#", nil, ""},                                         // [MQTT-4.7.1-3]
		{"sport+", "sport+", ErrSingleLevelWildcard, "MQTT-4.7.1-3"},                  // [MQTT-4.7.1-3]
		{"sport/+/player1", "sport/+/player1", nil, ""},                               // [MQTT-4.7.1-3]
		{"plus first in level", "a/+b", ErrSingleLevelWildcard, "MQTT-4.7.1-3"},       // [MQTT-4.7.1-3]
		{"plus plus", "++", ErrSingleLevelWildcard, "MQTT-4.7.1-3"},                   // [MQTT-4.7.1-3]
		{"plus at every level", "+/+/+", nil, ""},                                     // [MQTT-4.7.1-3]
		{"plus then hash", "+/#", nil, ""},                                            // [MQTT-4.7.1-3]
		{"plus and hash in one level", "+#", ErrSingleLevelWildcard, "MQTT-4.7.1-3"},  // [MQTT-4.7.1-3]
		{"hash and plus in one level", "a/#+", ErrMultiLevelWildcard, "MQTT-4.7.1-2"}, // [MQTT-4.7.1-2]
		// 4.7.3 rules shared with names.
		{"only a separator", "/", nil, ""},                                   // 4.7.3
		{"empty levels", "a//b", nil, ""},                                    // 4.7.1.1
		{"leading empty level", "/a", nil, ""},                               // 4.7.1.1
		{"dollar", "$SYS/#", nil, ""},                                        // 4.7.2
		{"empty", "", ErrEmpty, "MQTT-4.7.3-1"},                              // [MQTT-4.7.3-1]
		{"null", "a/\x00", ErrNull, "MQTT-4.7.3-2"},                          // [MQTT-4.7.3-2]
		{"max length", strings.Repeat("/", 65535), nil, ""},                  // [MQTT-4.7.3-3]
		{"too long", strings.Repeat("/", 65536), ErrTooLong, "MQTT-4.7.3-3"}, // [MQTT-4.7.3-3]
		{"bad UTF-8", "a/\xe2\x82", ErrBadUTF8, "MQTT-1.5.3-1"},              // [MQTT-1.5.3-1]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidation(t, ValidFilter(tt.filter), tt.want, tt.rule, ErrInvalidFilter, ErrInvalidName)
		})
	}
}

// checkValidation asserts that err is nil when want is nil, and otherwise an
// *Error that names rule and matches want and umbrella but not other.
func checkValidation(t *testing.T, err, want error, rule string, umbrella, other error) {
	t.Helper()
	if want == nil {
		require.NoError(t, err)
		return
	}
	require.Error(t, err, "want %v", want)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, want)
	assert.ErrorIs(t, err, umbrella)
	assert.NotErrorIs(t, err, other)
	assert.Equal(t, rule, e.Rule)
	assert.Contains(t, err.Error(), "["+rule+"]")
	// A wrapped error keeps its rule.
	assert.ErrorIs(t, errors.Join(errors.New("subscribe"), err), want, "wrapped error lost its rule sentinel")
}

// TestValidateOffset checks that errors point at the offending byte.
func TestValidateOffset(t *testing.T) {
	tests := []struct {
		s      string
		filter bool
		offset int
	}{
		{"ab/+", false, 3},
		{"a/b#", true, 3},
		{"é\x00", false, 2},
		{"éé\xff", true, 4},
		{"", true, -1},
	}
	for _, tt := range tests {
		var e *Error
		if assert.ErrorAs(t, validate(tt.s, tt.filter), &e, "validate(%q, %v)", tt.s, tt.filter) {
			assert.Equal(t, tt.offset, e.Offset, "validate(%q, %v) offset", tt.s, tt.filter)
			assert.Equal(t, tt.filter, e.Filter, "validate(%q, %v) kind", tt.s, tt.filter)
		}
	}
}

func TestValidNameAllocs(t *testing.T) {
	name := "sport/tennis/player1/ranking/日本"
	valid := true
	n := testing.AllocsPerRun(100, func() {
		valid = valid && ValidName(name) == nil && ValidFilter("sport/+/player1/#") == nil
	})
	require.True(t, valid, "valid input refused")
	assert.Zero(t, n, "ValidName and ValidFilter allocations per call")
}

func TestLevels(t *testing.T) {
	for s, want := range map[string]int{
		"a": 1, "a/b": 2, "/": 2, "//": 3, "a//b/": 4, "+/#": 2,
		strings.Repeat("/", MaxLen): MaxLevels,
	} {
		assert.Equal(t, want, Levels(s), "Levels(%.20q)", s)
	}
}
