package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// This file reads Mosquitto's acl_file and decides as Mosquitto 2.0 does
// (mosquitto_acl_check_default in src/security_default.c); FORMAT.md has
// the rules in a table.

// mosqRule is one topic or pattern line of an acl_file.
type mosqRule struct {
	line   int
	deny   bool   // "deny": refuses reading and writing
	access access // what an allow line grants
	filter string // as written
	// Patterns only: the filter cut at each %c and %u.
	parts                []mpart
	usesUser, usesClient bool
}

type mpartKind uint8

const (
	mpartText mpartKind = iota
	mpartClient
	mpartUser
)

type mpart struct {
	kind mpartKind
	text string
}

// mosqACL is a parsed acl_file. Each list holds its deny lines first, as
// Mosquitto puts them, then its allow lines in file order.
type mosqACL struct {
	anon     []*mosqRule            // topic lines before the first user line
	users    map[string][]*mosqRule // topic lines after "user NAME"
	patterns []*mosqRule            // pattern lines, wherever they are
	// patternsUseClient: some pattern substitutes %c.
	patternsUseClient bool
}

// add appends r to list, deny lines before allow lines.
func add(list []*mosqRule, r *mosqRule) []*mosqRule {
	if !r.deny {
		return append(list, r)
	}
	i := 0
	for i < len(list) && list[i].deny {
		i++
	}
	list = append(list, nil)
	copy(list[i+1:], list[i:])
	list[i] = r
	return list
}

// parseACL reads an acl_file. Like Mosquitto, it takes "topic|pattern
// [read|write|readwrite|deny] FILTER" (readwrite when the access is left
// out), "user NAME" (the rest of the line, blanks trimmed), comments
// starting with '#' and blank lines. Unlike Mosquitto, a tab separates
// words as a space does, a comment may be indented, and every mistake is
// reported, not only the first.
func parseACL(r io.Reader, name string) (*mosqACL, error) {
	a := &mosqACL{users: map[string][]*mosqRule{}}
	var errs []*ParseError
	errorf := func(n int, format string, args ...any) {
		errs = append(errs, &ParseError{Name: name, Line: n, Err: fmt.Errorf(format, args...)})
	}
	var user string // "" before the first user line: anonymous clients
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() && len(errs) < maxErrors {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r\n\v\f")
		rest := strings.TrimLeft(line, " \t")
		if rest == "" || rest[0] == '#' {
			continue
		}
		word, rest := cutField(rest)
		switch word {
		case "user":
			if rest == "" {
				errorf(n, "user needs a user name")
				continue
			}
			user = rest // names may hold blanks; Mosquitto trims the ends
		case "topic", "pattern":
			rule, err := parseACLRule(word, rest)
			if err != nil {
				errorf(n, "%w", err)
				continue
			}
			rule.line = n
			switch {
			case word == "pattern":
				a.patterns = add(a.patterns, rule)
				a.patternsUseClient = a.patternsUseClient || rule.usesClient
			case user == "":
				a.anon = add(a.anon, rule)
			default:
				a.users[user] = add(a.users[user], rule)
			}
		case "acl", "anonymous":
			errorf(n, "unknown directive %q: this looks like a Tern auth file, which auth.Load reads; an acl_file has topic, pattern and user lines", word)
		default:
			errorf(n, "unknown directive %q (want topic, pattern or user)", word)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			errorf(n+1, "line longer than %d bytes", maxLine)
		} else {
			errs = append(errs, &ParseError{Name: name, Err: fmt.Errorf("read: %w", err)})
		}
	}
	if len(errs) >= maxErrors {
		errs = append(errs, &ParseError{Name: name, Err: errors.New("too many errors, stopped reading")})
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return a, nil
}

// parseACLRule reads what follows "topic" or "pattern".
func parseACLRule(word, rest string) (*mosqRule, error) {
	acc, filter := cutField(rest)
	if acc == "" {
		return nil, fmt.Errorf("%s needs a topic filter", word)
	}
	r := &mosqRule{}
	if filter == "" {
		// "topic FILTER": readwrite. (So "topic read" alone grants
		// readwrite on the topic "read", as in Mosquitto.)
		filter, r.access = acc, accessReadWrite
	} else {
		switch acc {
		case "read":
			r.access = accessRead
		case "write":
			r.access = accessWrite
		case "readwrite":
			r.access = accessReadWrite
		case "deny":
			r.deny = true
		default:
			return nil, fmt.Errorf("unknown access %q (want read, write, readwrite or deny)", acc)
		}
	}
	r.filter = filter
	if err := validFilter(filter); err != nil {
		return nil, fmt.Errorf("invalid topic filter %q: %w", filter, err)
	}
	if word == "pattern" {
		r.compilePattern()
	}
	return r, nil
}

// compilePattern cuts the filter at each %c and %u. As in Mosquitto, they
// may stand anywhere, not only as a whole level, and any other '%' is
// literal.
func (r *mosqRule) compilePattern() {
	f := r.filter
	start := 0
	for i := 0; i+1 < len(f); i++ {
		if f[i] != '%' || f[i+1] != 'c' && f[i+1] != 'u' {
			continue
		}
		if start < i {
			r.parts = append(r.parts, mpart{kind: mpartText, text: f[start:i]})
		}
		if f[i+1] == 'c' {
			r.parts = append(r.parts, mpart{kind: mpartClient})
			r.usesClient = true
		} else {
			r.parts = append(r.parts, mpart{kind: mpartUser})
			r.usesUser = true
		}
		i++
		start = i + 1
	}
	if start < len(f) {
		r.parts = append(r.parts, mpart{kind: mpartText, text: f[start:]})
	}
}

// expand appends the pattern's filter with %c and %u replaced by id and
// user to dst.
func (r *mosqRule) expand(dst []byte, user, id string) []byte {
	for _, p := range r.parts {
		switch p.kind {
		case mpartText:
			dst = append(dst, p.text...)
		case mpartClient:
			dst = append(dst, id...)
		case mpartUser:
			dst = append(dst, user...)
		}
	}
	return dst
}

// matches reports whether the rule's filter (a pattern's expanded with
// user and id) matches the topic name t.
func (r *mosqRule) matches(user, id, t string) bool {
	if r.parts == nil {
		return matchFilter(r.filter, t)
	}
	var buf [256]byte // most expansions fit: no allocation
	return matchFilter(r.expand(buf[:0], user, id), t)
}

// allow decides, as Mosquitto 2.0 does, whether the client with user name
// user ("" for an anonymous client) and client identifier id may read or
// write (acc) the topic name t.
func (a *mosqACL) allow(user, id, t string, acc access) bool {
	if id == "" {
		return false // Mosquitto refuses a client without an identifier
	}
	// 1. The client's own topic lines: those after "user NAME", or those
	// before the first user line for an anonymous client. The first that
	// matches decides: a deny line refuses, an allow line grants when its
	// access covers acc.
	list := a.anon
	if user != "" {
		list = a.users[user]
	}
	for _, r := range list {
		if t[0] == '$' && r.filter[0] != '$' {
			continue
		}
		if r.matches(user, id, t) {
			if r.deny {
				return false
			}
			if r.access&acc != 0 {
				return true
			}
		}
	}
	if len(a.patterns) == 0 {
		return false
	}
	// 2. The patterns, for every client. A user name or client identifier
	// with '+' or '#' could turn a pattern into a wildcard: such a client
	// gets nothing from the patterns. Tern also refuses a client
	// identifier with '/' when a pattern substitutes %c, so that client
	// "x/y" cannot reach into client "x"'s tree (Mosquitto 1.4.12 to 1.6
	// and 2.1 do the same; 2.0 does not).
	if strings.ContainsAny(user, "+#") || strings.ContainsAny(id, "+#") ||
		a.patternsUseClient && strings.IndexByte(id, '/') >= 0 {
		return false
	}
	for _, r := range a.patterns {
		if r.usesUser && user == "" {
			continue // %u does not concern anonymous clients
		}
		// Tern: a substituted value never makes a pattern reach a '$'
		// topic (client id "$SYS" and "%c/#").
		if t[0] == '$' && r.filter[0] != '$' {
			continue
		}
		if r.matches(user, id, t) {
			if r.deny {
				return false
			}
			if r.access&acc != 0 {
				return true
			}
		}
	}
	return false
}

// matchFilter reports whether the valid filter f matches the topic name t,
// as topicMatches does; it takes f as a string or as bytes, so that an
// expanded pattern needs no string.
func matchFilter[F ~string | ~[]byte](f F, t string) bool {
	if len(t) == 0 || len(f) == 0 {
		return false
	}
	if t[0] == '$' && (f[0] == '+' || f[0] == '#') {
		return false // [MQTT-4.7.2-1]
	}
	for {
		fl, frest, fmore := cutLevel(f)
		if len(fl) == 1 && fl[0] == '#' {
			return true // '#' also matches the parent level
		}
		tl, trest, tmore := strings.Cut(t, "/")
		if !(len(fl) == 1 && fl[0] == '+') && !sameBytes(fl, tl) {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			// The topic ends here; only a trailing "/#" still matches.
			return len(frest) == 1 && frest[0] == '#'
		}
		f, t = frest, trest
	}
}

func cutLevel[F ~string | ~[]byte](f F) (level, rest F, more bool) {
	for i := 0; i < len(f); i++ {
		if f[i] == '/' {
			return f[:i], f[i+1:], true
		}
	}
	return f, f[len(f):], false
}

func sameBytes[F ~string | ~[]byte](a F, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
