package nats

import (
	"errors"
	"fmt"
	"strings"
)

// Subject mapping.
//
// An MQTT topic becomes a NATS subject level by level: topic level i is
// subject token i, after a fixed prefix. NATS tokens cannot be empty and
// cannot hold '.', '*', '>' or white space, and KV keys (retained
// messages, sessions) allow only letters, digits, '-', '_', '/', '=' and
// '.'. So every byte of a level other than an ASCII letter, digit, '-' or
// '_' is written "=XX" (two upper-case hexadecimal digits), and an empty
// level is the lone token "=":
//
//	sensors/temp        -> sensors.temp
//	a.b/c d             -> a=2Eb.c=20d
//	/x//                -> =.x.=.=
//	$aws/things         -> =24aws.things
//	ünïcode             -> =C3=BCn=C3=AFcode
//
// The mapping is one to one, so a subject gives its topic back (a token
// never starts with "=" followed by anything but two hexadecimal digits,
// except the empty level). A filter maps the same way, with '+' as '*' and
// '#' as '>'. MQTT's "a/#" also matches "a" itself [MQTT-4.7.1-2], which
// NATS's "a.>" does not: such a filter becomes two subjects, "a" and
// "a.>". Filters that start with a wildcard must not match topics that
// start with '$' [MQTT-4.7.2-1]; NATS cannot say that, so the receiving
// node matches the topic again against its own subscriptions (the broker's
// index does it for ordinary subscriptions; shared ones are checked here).

// errEmptyTopic refuses a topic or filter with no levels.
var errEmptyTopic = errors.New("empty topic")

// appendLevel appends the token of one topic level to dst.
func appendLevel(dst []byte, level string) []byte {
	if level == "" {
		return append(dst, '=')
	}
	for i := 0; i < len(level); i++ {
		c := level[i]
		if plain(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '=', hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

const hexDigits = "0123456789ABCDEF"

// plain reports whether c stands for itself in a token.
func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// appendTopic appends the tokens of topic to dst, separated by dots.
func appendTopic(dst []byte, topic string) []byte {
	for i := 0; ; i++ {
		j := strings.IndexByte(topic, '/')
		if i > 0 {
			dst = append(dst, '.')
		}
		if j < 0 {
			return appendLevel(dst, topic)
		}
		dst = appendLevel(dst, topic[:j])
		topic = topic[j+1:]
	}
}

// topicToken is topic as NATS tokens: a subject without prefix, or a KV
// key.
func topicToken(topic string) string {
	return string(appendTopic(make([]byte, 0, len(topic)+8), topic))
}

// levelToken is one string as a single token (client identifiers, share
// group names).
func levelToken(s string) string {
	return string(appendLevel(make([]byte, 0, len(s)+8), s))
}

// tokenTopic is the topic of tokens (the inverse of topicToken).
func tokenTopic(tokens string) (string, error) {
	if tokens == "" {
		return "", errEmptyTopic
	}
	if simple(tokens) {
		// The common case: nothing escaped.
		return strings.ReplaceAll(tokens, ".", "/"), nil
	}
	b := make([]byte, 0, len(tokens))
	for i := 0; i < len(tokens); i++ {
		c := tokens[i]
		switch {
		case c == '.':
			b = append(b, '/')
		case c == '=':
			if (i+1 == len(tokens) || tokens[i+1] == '.') && (i == 0 || tokens[i-1] == '.') {
				continue // an empty level
			}
			if i+2 >= len(tokens) {
				return "", fmt.Errorf("subject tokens %q: truncated escape", tokens)
			}
			hi, lo := unhex(tokens[i+1]), unhex(tokens[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("subject tokens %q: bad escape", tokens)
			}
			b = append(b, byte(hi<<4|lo))
			i += 2
		case plain(c):
			b = append(b, c)
		default:
			return "", fmt.Errorf("subject tokens %q: byte %q not escaped", tokens, c)
		}
	}
	return string(b), nil
}

// simple reports whether tokens has only plain bytes and separators.
func simple(tokens string) bool {
	for i := 0; i < len(tokens); i++ {
		if c := tokens[i]; !plain(c) && c != '.' {
			return false
		}
	}
	return true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// filterTokens is an MQTT topic filter as NATS subject tokens: one
// pattern, or two when the filter ends in "/#" (the parent level, then
// everything below it).
func filterTokens(filter string) []string {
	levels := strings.Split(filter, "/")
	b := make([]byte, 0, len(filter)+8)
	for i, l := range levels {
		if i > 0 {
			b = append(b, '.')
		}
		switch l {
		case "+":
			b = append(b, '*')
		case "#":
			if i == 0 {
				return []string{">"}
			}
			// "a/#" matches "a" too [MQTT-4.7.1-2].
			parent := string(b[:len(b)-1])
			return []string{parent, parent + ".>"}
		default:
			b = appendLevel(b, l)
		}
	}
	return []string{string(b)}
}

// shareDollar reports whether a topic starting with '$' is kept from a
// filter that starts with a wildcard [MQTT-4.7.2-1].
func shareDollar(filter, topic string) bool {
	return strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#"))
}

// Subject pattern relations, for the stream consumer that replays a
// session: its filter subjects must not overlap.

// subsumes reports whether every subject that pattern b matches, pattern
// a matches too.
func subsumes(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, t := range at {
		if t == ">" {
			return len(bt) > i
		}
		if i >= len(bt) {
			return false
		}
		switch {
		case bt[i] == ">":
			return false
		case t == "*":
		case t != bt[i] || bt[i] == "*":
			return false
		}
	}
	return len(at) == len(bt)
}

// overlap reports whether some subject matches both patterns.
func overlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(at) || i == len(bt):
			return len(at) == len(bt)
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] == "*" || bt[i] == "*" || at[i] == bt[i]:
		default:
			return false
		}
	}
}

// disjoint reduces patterns to a set whose members do not overlap and
// match together what the patterns match, for a consumer's filter
// subjects: patterns another one subsumes go; if two of the rest still
// overlap, the result is all, the pattern that matches everything.
func disjoint(patterns []string, all string) []string {
	var out []string
next:
	for i, p := range patterns {
		for j, q := range patterns {
			if i != j && subsumes(q, p) && (!subsumes(p, q) || j < i) {
				continue next
			}
		}
		out = append(out, p)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if overlap(out[i], out[j]) {
				return []string{all}
			}
		}
	}
	return out
}
