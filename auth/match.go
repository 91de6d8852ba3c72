package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ternmq/tern/topics"
)

// This file holds the MQTT topic matching the ACL needs: filter validation,
// filter-against-name matching (the topics package's), and two
// filter-against-filter relations used to judge a SUBSCRIBE.

// maxTopicLen is the longest topic name or filter an MQTT string can carry.
const maxTopicLen = 65535

// validFilter reports whether f is a well-formed topic filter: at least one
// character, valid UTF-8 without U+0000, at most 65535 bytes, '#' only as
// the whole last level and '+' only as a whole level [MQTT-4.7.1-2],
// [MQTT-4.7.1-3], [MQTT-4.7.3-1], [MQTT-4.7.3-2], [MQTT-4.7.3-3].
func validFilter(f string) error {
	if err := validString(f); err != nil {
		return err
	}
	rest := f
	for {
		lv, tail, more := strings.Cut(rest, "/")
		switch {
		case lv == "#":
			if more {
				return errors.New("'#' must be the last level")
			}
		case lv == "+":
		case strings.ContainsAny(lv, "+#"):
			return fmt.Errorf("wildcard inside level %q: '+' and '#' must stand alone in a level", lv)
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// validName reports whether t is a well-formed topic name: a valid string
// without wildcard characters [MQTT-4.7.1-1], [MQTT-4.7.3-1].
// It is on the delivery path, so it makes one pass over the bytes.
func validName(t string) bool {
	if t == "" || len(t) > maxTopicLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c == 0 || c == '+' || c == '#' {
			return false
		}
	}
	return utf8.ValidString(t)
}

func validString(s string) error {
	switch {
	case s == "":
		return errors.New("empty topic") // [MQTT-4.7.3-1]
	case len(s) > maxTopicLen:
		return fmt.Errorf("topic longer than %d bytes", maxTopicLen) // [MQTT-4.7.3-3]
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("topic contains U+0000") // [MQTT-4.7.3-2]
	case !utf8.ValidString(s):
		return errors.New("topic is not valid UTF-8")
	}
	return nil
}

// topicMatches reports whether the valid filter f matches the topic name t,
// as mosquitto_topic_matches_sub does: '+' matches exactly one level, '#'
// matches any number of levels including none (so "a/#" matches "a"), and a
// filter starting with a wildcard does not match a topic starting with '$'
// [MQTT-4.7.2-1]. Levels are compared byte for byte, without any Unicode
// normalisation [MQTT-4.7.3-4].
func topicMatches(f, t string) bool { return topics.Matches(f, t) }

// dollarExcluded reports whether a filter's first level excludes topics
// that start with '$': it does when it is a wildcard [MQTT-4.7.2-1].
func dollarExcluded(level string) bool { return level == "+" || level == "#" }

// filtersIntersect reports whether some topic name matches both valid
// filters a and b.
func filtersIntersect(a, b string) bool {
	// A '$' topic needs a literal '$' first level in both filters.
	if strings.HasPrefix(a, "$") && dollarExcluded(firstLevel(b)) ||
		strings.HasPrefix(b, "$") && dollarExcluded(firstLevel(a)) {
		return false
	}
	for {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		if al == "#" || bl == "#" {
			return true
		}
		if al != "+" && bl != "+" && al != bl {
			return false
		}
		switch {
		case !amore && !bmore:
			return true
		case !amore:
			return brest == "#" // "a" meets "a/#"
		case !bmore:
			return arest == "#"
		}
		a, b = arest, brest
	}
}

// filterCovers reports whether every topic name that the valid filter inner
// matches is also matched by the valid filter outer.
func filterCovers(outer, inner string) bool {
	if strings.HasPrefix(inner, "$") && dollarExcluded(firstLevel(outer)) {
		return false // outer cannot match the '$' topics inner matches
	}
	for depth := 0; ; depth++ {
		ol, orest, omore := strings.Cut(outer, "/")
		il, irest, imore := strings.Cut(inner, "/")
		switch {
		case ol == "#":
			return true
		case il == "#":
			// inner matches every deeper topic and, below the first
			// level, its parent too: only "#" follows all that, but a
			// first-level "#" has no parent, so "+/#" covers it as well.
			return depth == 0 && ol == "+" && orest == "#"
		case il == "+" && ol != "+":
			return false
		case il != "+" && ol != "+" && ol != il:
			return false
		}
		switch {
		case !omore && !imore:
			return true
		case !imore:
			return orest == "#" // "a/#" covers "a"
		case !omore:
			return false
		}
		outer, inner = orest, irest
	}
}

func firstLevel(f string) string {
	lv, _, _ := strings.Cut(f, "/")
	return lv
}
