package topics

import (
	"errors"
	"strconv"
)

// Error is a topic name or topic filter that breaks a rule of MQTT 3.1.1.
// Rule names the normative statement, for example "MQTT-4.7.1-2". Every
// *Error matches ErrInvalidName or ErrInvalidFilter (depending on what was
// validated) and the sentinel of its rule with errors.Is.
type Error struct {
	Filter bool   // true for a topic filter, false for a topic name
	Rule   string // the statement id the input broke
	Reason string // what was wrong, for logs
	Offset int    // byte offset of the offending character, -1 if none
	kind   error  // the rule's sentinel
}

func (e *Error) Error() string {
	what := "topic name"
	if e.Filter {
		what = "topic filter"
	}
	s := "topics: invalid " + what + ": " + e.Reason
	if e.Offset >= 0 {
		s += " at byte " + strconv.Itoa(e.Offset)
	}
	return s + " [" + e.Rule + "]"
}

// Is reports whether target is the error's rule sentinel, or ErrInvalidName
// (for a name) or ErrInvalidFilter (for a filter).
func (e *Error) Is(target error) bool {
	if target == e.kind && e.kind != nil {
		return true
	}
	if e.Filter {
		return target == ErrInvalidFilter
	}
	return target == ErrInvalidName
}

// Sentinel errors, for errors.Is.
var (
	// ErrInvalidName matches every error returned by ValidName.
	ErrInvalidName = errors.New("topics: invalid topic name")
	// ErrInvalidFilter matches every error returned by ValidFilter.
	ErrInvalidFilter = errors.New("topics: invalid topic filter")

	// ErrEmpty: the name or filter is empty [MQTT-4.7.3-1].
	ErrEmpty = errors.New("topics: empty [MQTT-4.7.3-1]")
	// ErrNull: the name or filter contains U+0000 [MQTT-4.7.3-2].
	ErrNull = errors.New("topics: contains U+0000 [MQTT-4.7.3-2]")
	// ErrTooLong: the name or filter exceeds 65535 bytes [MQTT-4.7.3-3].
	ErrTooLong = errors.New("topics: longer than 65535 bytes [MQTT-4.7.3-3]")
	// ErrBadUTF8: the name or filter is not well-formed UTF-8
	// [MQTT-1.5.3-1].
	ErrBadUTF8 = errors.New("topics: ill-formed UTF-8 [MQTT-1.5.3-1]")
	// ErrWildcardInName: a topic name contains '+' or '#' [MQTT-4.7.1-1].
	ErrWildcardInName = errors.New("topics: wildcard in a topic name [MQTT-4.7.1-1]")
	// ErrMultiLevelWildcard: a '#' that is not alone in the last level of
	// a filter [MQTT-4.7.1-2].
	ErrMultiLevelWildcard = errors.New("topics: misplaced '#' [MQTT-4.7.1-2]")
	// ErrSingleLevelWildcard: a '+' that does not occupy a whole level of a
	// filter [MQTT-4.7.1-3].
	ErrSingleLevelWildcard = errors.New("topics: misplaced '+' [MQTT-4.7.1-3]")
)
