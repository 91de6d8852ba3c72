package auth

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxLine is the longest line a file may have: room for a topic filter of
// the maximum MQTT length and the words before it.
const maxLine = 1 << 20

// maxErrors is how many line errors Parse reports before it gives up.
const maxErrors = 20

// ParseError is a mistake in an auth file, a Mosquitto password file or a
// Mosquitto ACL file. Its message names the file and the line, as in
// `auth.conf:12: unknown access "rw"`.
type ParseError struct {
	Name string // the name given to Parse, or the path of the file read
	Line int    // 1-based line number; 0 when the error is not about one line
	Err  error
}

// Error formats the error as name:line: message.
func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err)
}

// Unwrap returns the underlying error.
func (e *ParseError) Unwrap() error { return e.Err }

type subjectKind uint8

const (
	subjectAnonymous subjectKind = iota
	subjectUser
	subjectAll
)

// aclLine is one parsed acl directive.
type aclLine struct {
	subject subjectKind
	user    string // subjectUser
	rule    *rule
}

// parser collects the directives of one file.
type parser struct {
	name          string
	errs          []*ParseError
	anonymous     bool
	anonymousLine int
	users         map[string]*user
	named         map[string]bool // names on user lines, valid or not
	acls          []aclLine
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &ParseError{Name: p.name, Line: line, Err: fmt.Errorf(format, args...)})
}

// parse reads an auth file and compiles it into a table.
func parse(r io.Reader, name string) (*table, error) {
	p := &parser{name: name, users: map[string]*user{}, named: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() && len(p.errs) < maxErrors {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		p.line(n, line)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			p.errorf(n+1, "line longer than %d bytes", maxLine)
		} else {
			p.errs = append(p.errs, &ParseError{Name: name, Err: fmt.Errorf("read: %w", err)})
		}
	}
	if len(p.errs) >= maxErrors {
		p.errs = append(p.errs, &ParseError{Name: name, Err: errors.New("too many errors, stopped reading")})
		return nil, p.joined()
	}
	return p.build()
}

// joined returns the collected errors in line order as one error.
func (p *parser) joined() error { return joinErrors(p.errs) }

// joinErrors returns errs in line order as one error: the error itself
// when there is one.
func joinErrors(errs []*ParseError) error {
	key := func(e *ParseError) int {
		if e.Line == 0 {
			return math.MaxInt // errors about the whole file come last
		}
		return e.Line
	}
	slices.SortStableFunc(errs, func(a, b *ParseError) int { return cmp.Compare(key(a), key(b)) })
	if len(errs) == 1 {
		return errs[0]
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

// line parses one line.
func (p *parser) line(n int, line string) {
	line = strings.TrimRight(line, " \t\r")
	rest := strings.TrimLeft(line, " \t")
	if rest == "" || rest[0] == '#' {
		return
	}
	if !utf8.ValidString(rest) {
		p.errorf(n, "line is not valid UTF-8")
		return
	}
	word, rest := cutField(rest)
	switch word {
	case "anonymous":
		p.setAnonymous(n, rest)
	case "user":
		p.user(n, rest)
	case "acl":
		p.acl(n, rest)
	case "topic", "pattern":
		p.errorf(n, `unknown directive %q: this is not a Mosquitto acl_file; write "acl user NAME allow ACCESS FILTER", "acl anonymous ..." or "acl all ..." (see FORMAT.md)`, word)
	default:
		p.errorf(n, "unknown directive %q (want anonymous, user or acl)", word)
	}
}

func (p *parser) setAnonymous(n int, rest string) {
	v, extra := cutField(rest)
	if extra != "" {
		p.errorf(n, "unexpected %q after anonymous %s", extra, v)
		return
	}
	var on bool
	switch v {
	case "on", "true":
		on = true
	case "off", "false":
	default:
		p.errorf(n, `want "anonymous on" or "anonymous off", got %q`, v)
		return
	}
	if p.anonymousLine != 0 {
		p.errorf(n, "anonymous is already set on line %d", p.anonymousLine)
		return
	}
	p.anonymous, p.anonymousLine = on, n
}

func (p *parser) user(n int, rest string) {
	name, rest := cutField(rest)
	hash, extra := cutField(rest)
	p.named[name] = true
	switch {
	case name == "" || hash == "":
		p.errorf(n, "user needs a name and a bcrypt hash: user NAME HASH")
		return
	case extra != "":
		p.errorf(n, "unexpected %q after the hash of user %q (user names cannot contain spaces)", extra, name)
		return
	case strings.IndexByte(name, 0) >= 0:
		p.errorf(n, "user name contains U+0000")
		return
	}
	h, err := checkHash(hash)
	if err != nil {
		p.errorf(n, "user %q: %w", name, err)
		return
	}
	if prev, ok := p.users[name]; ok {
		p.errorf(n, "duplicate user %q (first defined on line %d)", name, prev.line)
		return
	}
	p.users[name] = &user{line: n, hash: h}
}

// checkHash parses a bcrypt hash, the only kind an auth file takes.
func checkHash(hash string) (*pwHash, error) {
	if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
		return nil, errors.New("not a bcrypt hash: want $2a$, $2b$ or $2y$ at the start")
	}
	return parseHash(hash)
}

func (p *parser) acl(n int, rest string) {
	var a aclLine
	subject, rest := cutField(rest)
	switch subject {
	case "anonymous":
		a.subject = subjectAnonymous
	case "all":
		a.subject = subjectAll
	case "user":
		a.subject = subjectUser
		a.user, rest = cutField(rest)
		if a.user == "" {
			p.errorf(n, "acl user needs a user name")
			return
		}
	case "":
		p.errorf(n, "acl needs a subject: anonymous, user NAME or all")
		return
	default:
		p.errorf(n, "unknown acl subject %q (want anonymous, user NAME or all)", subject)
		return
	}
	verb, rest := cutField(rest)
	var deny bool
	switch verb {
	case "allow":
	case "deny":
		deny = true
	default:
		p.errorf(n, "want allow or deny after the acl subject, got %q", verb)
		return
	}
	word, rest := cutField(rest)
	var acc access
	switch word {
	case "read":
		acc = accessRead
	case "write":
		acc = accessWrite
	case "readwrite":
		acc = accessReadWrite
	default:
		p.errorf(n, "unknown access %q (want read, write or readwrite)", word)
		return
	}
	filter := strings.Trim(rest, " \t")
	if filter == "" {
		p.errorf(n, "acl needs a topic filter after %s %s", verb, word)
		return
	}
	r, err := compileFilter(filter)
	if err != nil {
		p.errorf(n, "%w", err)
		return
	}
	if a.subject == subjectAnonymous && r.usesUser {
		p.errorf(n, "%%u in a rule for anonymous clients, which have no user name")
		return
	}
	r.line, r.deny, r.access = n, deny, acc
	a.rule = r
	p.acls = append(p.acls, a)
}

// cutField returns the first space- or tab-separated word of s and what
// follows it, with the separating blanks removed.
func cutField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// build checks the directives against each other and compiles the table.
func (p *parser) build() (*table, error) {
	t := &table{
		anonymous: p.anonymous,
		noACL:     len(p.acls) == 0,
		users:     p.users,
		anon:      &ruleSet{},
		other:     &ruleSet{},
	}
	for _, u := range p.users {
		u.rules = &ruleSet{}
	}
	for _, a := range p.acls {
		switch a.subject {
		case subjectAnonymous:
			t.anon.add(a.rule)
		case subjectUser:
			u, ok := p.users[a.user]
			if !ok && !p.named[a.user] {
				p.errorf(a.rule.line, "acl for user %q, who has no user line", a.user)
			}
			if !ok {
				continue // reported here or at the broken user line
			}
			u.rules.add(a.rule)
		case subjectAll:
			if !a.rule.usesUser {
				t.anon.add(a.rule)
			}
			t.other.add(a.rule)
			for _, u := range p.users {
				u.rules.add(a.rule)
			}
		}
	}
	// A user whose name %u may not substitute would be refused everything.
	for _, name := range slices.Sorted(maps.Keys(p.users)) {
		u := p.users[name]
		if u.rules.usesUser && unsafeValue(name) {
			p.errorf(u.line, "user name %q contains '+', '#' or '/', which the %%u rules may not substitute: this user could do nothing", name)
		}
	}
	if len(p.errs) > 0 {
		return nil, p.joined()
	}
	if err := t.makeDummy(); err != nil {
		return nil, &ParseError{Name: p.name, Err: err}
	}
	return t, nil
}
