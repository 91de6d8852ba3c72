package topics

import (
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest topic name or filter in bytes: an MQTT UTF-8 string
// has a two-byte length prefix [MQTT-4.7.3-3].
const MaxLen = 65535

// MaxLevels is the most levels a topic name or filter can have: one more
// than the separators that fit in MaxLen bytes.
const MaxLevels = MaxLen + 1

// Levels returns the number of levels of a topic name or filter: one more
// than its '/' separators ("a/b" has 2, "/" has 2, "a" has 1).
func Levels(s string) int { return strings.Count(s, "/") + 1 }

// ValidName reports whether name is a valid topic name for PUBLISH: at least
// one character [MQTT-4.7.3-1], no wildcards [MQTT-4.7.1-1], no U+0000
// [MQTT-4.7.3-2], at most 65535 bytes [MQTT-4.7.3-3], well-formed UTF-8
// [MQTT-1.5.3-1]. It returns nil when name is valid and an *Error otherwise.
//
// The code points that MQTT says SHOULD NOT appear (controls, non-characters)
// are accepted; a U+FEFF is an ordinary character [MQTT-1.5.3-3].
func ValidName(name string) error {
	return validate(name, false)
}

// ValidFilter reports whether filter is a valid topic filter for SUBSCRIBE
// and UNSUBSCRIBE: the rules of ValidName, except that wildcards are allowed
// where they occupy a whole level: '#' only as the last level
// [MQTT-4.7.1-2] and '+' at any level [MQTT-4.7.1-3]. Empty levels are
// allowed ("a//b", "/a", "/"). It returns nil when filter is valid and an
// *Error otherwise.
func ValidFilter(filter string) error {
	return validate(filter, true)
}

// validate checks s as a filter (wildcards allowed where they occupy a
// whole level) or as a name (no wildcards) in one pass.
func validate(s string, filter bool) error {
	if len(s) == 0 {
		return &Error{Filter: filter, Rule: "MQTT-4.7.3-1", Reason: "empty", Offset: -1, kind: ErrEmpty} // [MQTT-4.7.3-1]
	}
	if len(s) > MaxLen {
		return &Error{Filter: filter, Rule: "MQTT-4.7.3-3", Reason: "longer than 65535 bytes", Offset: -1, kind: ErrTooLong} // [MQTT-4.7.3-3]
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			// Go's decoder refuses overlong forms and surrogates (U+D800 to
			// U+DFFF), as MQTT requires [MQTT-1.5.3-1].
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return &Error{Filter: filter, Rule: "MQTT-1.5.3-1", Reason: "ill-formed UTF-8", Offset: i, kind: ErrBadUTF8}
			}
			i += size
			continue
		}
		switch c {
		case 0:
			return &Error{Filter: filter, Rule: "MQTT-4.7.3-2", Reason: "U+0000", Offset: i, kind: ErrNull} // [MQTT-4.7.3-2]
		case '#', '+':
			if !filter {
				return &Error{Filter: false, Rule: "MQTT-4.7.1-1", Reason: "wildcard '" + string(c) + "'", Offset: i, kind: ErrWildcardInName} // [MQTT-4.7.1-1]
			}
			startsLevel := i == 0 || s[i-1] == '/'
			endsLevel := i == len(s)-1 || s[i+1] == '/'
			if c == '#' && (!startsLevel || i != len(s)-1) {
				// [MQTT-4.7.1-2] '#' on its own or after '/', and last.
				return &Error{Filter: true, Rule: "MQTT-4.7.1-2", Reason: "'#' not alone in the last level", Offset: i, kind: ErrMultiLevelWildcard}
			}
			if c == '+' && (!startsLevel || !endsLevel) {
				// [MQTT-4.7.1-3] '+' occupies an entire level.
				return &Error{Filter: true, Rule: "MQTT-4.7.1-3", Reason: "'+' not alone in its level", Offset: i, kind: ErrSingleLevelWildcard}
			}
		}
		i++
	}
	return nil
}
