package auth

import (
	"errors"
	"fmt"
	"strings"
)

// access is a set of the rights an ACL rule talks about.
type access uint8

const (
	accessRead access = 1 << iota
	accessWrite
	accessReadWrite = accessRead | accessWrite
)

type levelKind uint8

const (
	levelLiteral levelKind = iota
	levelPlus
	levelHash
	levelTemplate // holds %u or %c
)

type partKind uint8

const (
	partText partKind = iota
	partUser
	partClient
)

// part is one piece of a template level: literal text, %u or %c.
type part struct {
	kind partKind
	text string
}

// level is one precompiled level of a rule's topic filter.
type level struct {
	kind  levelKind
	text  string // levelLiteral: the level, %% already unescaped
	parts []part // levelTemplate
}

// rule is one compiled acl line.
type rule struct {
	line       int
	deny       bool
	access     access
	filter     string // as written in the file
	levels     []level
	usesUser   bool // contains %u
	usesClient bool // contains %c
	// dollarOK is false when the first level is a wildcard or a template
	// that does not start with a literal '$': such a rule never matches a
	// topic that starts with '$', whatever %u or %c expand to.
	dollarOK bool
}

// compileFilter parses an ACL topic filter with its %u, %c and %%
// escapes into levels.
func compileFilter(raw string) (*rule, error) {
	// Validate the filter as MQTT sees it, with every escape replaced by
	// a character that cannot be a wildcard or a separator.
	var plain strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			plain.WriteByte(raw[i])
			continue
		}
		if i+1 == len(raw) {
			return nil, errors.New(`lone "%" at the end of the topic filter (write %% for a literal %)`)
		}
		switch raw[i+1] {
		case 'u', 'c', '%':
			plain.WriteByte('x')
			i++
		default:
			return nil, fmt.Errorf(`unknown substitution "%%%c" (want %%u, %%c, or %%%% for a literal %%)`, raw[i+1])
		}
	}
	if err := validFilter(plain.String()); err != nil {
		return nil, fmt.Errorf("invalid topic filter %q: %w", raw, err)
	}
	r := &rule{filter: raw}
	for lv := range strings.SplitSeq(raw, "/") {
		r.levels = append(r.levels, compileLevel(lv, r))
	}
	first := r.levels[0]
	r.dollarOK = first.kind == levelLiteral ||
		first.kind == levelTemplate && first.parts[0].kind == partText && strings.HasPrefix(first.parts[0].text, "$")
	return r, nil
}

func compileLevel(lv string, r *rule) level {
	switch lv {
	case "+":
		return level{kind: levelPlus}
	case "#":
		return level{kind: levelHash}
	}
	if !strings.Contains(lv, "%") {
		return level{kind: levelLiteral, text: lv}
	}
	var parts []part
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			parts = append(parts, part{kind: partText, text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(lv); i++ {
		if lv[i] != '%' {
			text.WriteByte(lv[i])
			continue
		}
		i++ // compileFilter has checked that a known letter follows
		switch lv[i] {
		case '%':
			text.WriteByte('%')
		case 'u':
			flush()
			parts = append(parts, part{kind: partUser})
			r.usesUser = true
		case 'c':
			flush()
			parts = append(parts, part{kind: partClient})
			r.usesClient = true
		}
	}
	flush()
	if len(parts) == 1 && parts[0].kind == partText {
		return level{kind: levelLiteral, text: parts[0].text} // only %% escapes
	}
	return level{kind: levelTemplate, parts: parts}
}

// appliesTo reports whether the rule concerns a client: a rule with %u does
// not concern a client without a user name, nor one with %c a client with
// an empty client identifier.
func (r *rule) appliesTo(user, id string) bool {
	return !(r.usesUser && user == "") && !(r.usesClient && id == "")
}

// matchTopic reports whether the rule's filter, with %u and %c replaced by
// user and id, matches the topic name t. It does not allocate.
func (r *rule) matchTopic(user, id, t string) bool {
	if t == "" {
		return false
	}
	if t[0] == '$' && !r.dollarOK {
		return false // [MQTT-4.7.2-1]
	}
	for i := 0; ; {
		lv := &r.levels[i]
		if lv.kind == levelHash {
			return true
		}
		tl, trest, tmore := strings.Cut(t, "/")
		switch lv.kind {
		case levelLiteral:
			if lv.text != tl {
				return false
			}
		case levelTemplate:
			if !lv.matchTemplate(user, id, tl) {
				return false
			}
		}
		i++
		last := i == len(r.levels)
		switch {
		case last:
			return !tmore
		case !tmore:
			// The topic ends here; only a trailing "/#" still matches.
			return i == len(r.levels)-1 && r.levels[i].kind == levelHash
		}
		t = trest
	}
}

// matchTemplate reports whether the topic level tl equals the template
// level expanded with user and id.
func (lv *level) matchTemplate(user, id, tl string) bool {
	for _, p := range lv.parts {
		s := p.text
		switch p.kind {
		case partUser:
			s = user
		case partClient:
			s = id
		}
		if !strings.HasPrefix(tl, s) {
			return false
		}
		tl = tl[len(s):]
	}
	return tl == ""
}

// expand returns the rule's filter with %u and %c replaced by user and id,
// and false when the result cannot match anything the rule may match (a
// template first level that expands to a '$' name).
func (r *rule) expand(user, id string) (string, bool) {
	if !r.usesUser && !r.usesClient && !strings.Contains(r.filter, "%%") {
		return r.filter, true
	}
	var b strings.Builder
	for i, lv := range r.levels {
		if i > 0 {
			b.WriteByte('/')
		}
		switch lv.kind {
		case levelPlus:
			b.WriteByte('+')
		case levelHash:
			b.WriteByte('#')
		case levelLiteral:
			b.WriteString(lv.text)
		case levelTemplate:
			for _, p := range lv.parts {
				switch p.kind {
				case partText:
					b.WriteString(p.text)
				case partUser:
					b.WriteString(user)
				case partClient:
					b.WriteString(id)
				}
			}
		}
	}
	s := b.String()
	return s, r.dollarOK || !strings.HasPrefix(s, "$")
}

// ruleSet is the compiled ACL for one kind of client, split by access and
// by allow or deny so that a check reads only the rules it needs.
type ruleSet struct {
	readDeny, readAllow   []*rule
	writeDeny, writeAllow []*rule
	usesUser, usesClient  bool
}

func (rs *ruleSet) add(r *rule) {
	if r.access&accessRead != 0 {
		if r.deny {
			rs.readDeny = append(rs.readDeny, r)
		} else {
			rs.readAllow = append(rs.readAllow, r)
		}
	}
	if r.access&accessWrite != 0 {
		if r.deny {
			rs.writeDeny = append(rs.writeDeny, r)
		} else {
			rs.writeAllow = append(rs.writeAllow, r)
		}
	}
	rs.usesUser = rs.usesUser || r.usesUser
	rs.usesClient = rs.usesClient || r.usesClient
}

// unsafeClient reports whether user or id contains a character that a
// substitution in this rule set may not receive; such a client is refused
// everything, as Mosquitto does.
func (rs *ruleSet) unsafeClient(user, id string) bool {
	return rs.usesUser && unsafeValue(user) || rs.usesClient && unsafeValue(id)
}

// unsafeValue reports whether v contains a character that %u or %c may
// not substitute: '+' and '#' would turn it into a wildcard, and '/' would
// let it reach into another client's part of the tree (client id "a/b" in
// "devices/%c/#").
func unsafeValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '+' || c == '#' || c == '/' {
			return true
		}
	}
	return false
}

// allowTopic decides an access to the topic name t: refused when a deny
// rule matches, granted when an allow rule matches, refused otherwise.
func (rs *ruleSet) allowTopic(a access, user, id, t string) bool {
	if rs.unsafeClient(user, id) {
		return false
	}
	deny, allow := rs.readDeny, rs.readAllow
	if a == accessWrite {
		deny, allow = rs.writeDeny, rs.writeAllow
	}
	for _, r := range deny {
		if r.appliesTo(user, id) && r.matchTopic(user, id, t) {
			return false
		}
	}
	for _, r := range allow {
		if r.appliesTo(user, id) && r.matchTopic(user, id, t) {
			return true
		}
	}
	return false
}

// allowSubscribe decides a SUBSCRIBE to the valid filter f: refused when a
// read deny rule covers every topic f matches, granted when some read allow
// rule could grant a topic f matches, refused otherwise. Each delivery is
// then checked with allowTopic.
func (rs *ruleSet) allowSubscribe(user, id, f string) bool {
	if rs.unsafeClient(user, id) {
		return false
	}
	for _, r := range rs.readDeny {
		if !r.appliesTo(user, id) {
			continue
		}
		if d, ok := r.expand(user, id); ok && filterCovers(d, f) {
			return false
		}
	}
	for _, r := range rs.readAllow {
		if !r.appliesTo(user, id) {
			continue
		}
		if a, ok := r.expand(user, id); ok && filtersIntersect(a, f) {
			return true
		}
	}
	return false
}
