package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

// hashes caches one cheap bcrypt hash per password for the whole test run.
var hashes sync.Map

// hash returns a bcrypt hash of password at the lowest cost.
func hash(t testing.TB, password string) string {
	t.Helper()
	if h, ok := hashes.Load(password); ok {
		return h.(string)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hashes.Store(password, string(h))
	return string(h)
}

// file builds an auth file from lines; "HASH(pw)" is replaced by a hash of
// pw.
func file(t testing.TB, lines ...string) string {
	t.Helper()
	for i, l := range lines {
		for {
			start := strings.Index(l, "HASH(")
			if start < 0 {
				break
			}
			end := strings.Index(l[start:], ")")
			l = l[:start] + hash(t, l[start+5:start+end]) + l[start+end+1:]
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n") + "\n"
}

func mustParse(t testing.TB, lines ...string) *auth.File {
	t.Helper()
	f, err := auth.Parse(strings.NewReader(file(t, lines...)), "test.conf")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string // the whole message
	}{
		{"unknown directive", []string{"# c", "allow_anonymous true"},
			`test.conf:2: unknown directive "allow_anonymous" (want anonymous, user or acl)`},
		{"mosquitto topic", []string{"topic read a/b"},
			`test.conf:1: unknown directive "topic": this is not a Mosquitto acl_file; write "acl user NAME allow ACCESS FILTER", "acl anonymous ..." or "acl all ..." (see FORMAT.md)`},
		{"anonymous value", []string{"", "anonymous maybe"},
			`test.conf:2: want "anonymous on" or "anonymous off", got "maybe"`},
		{"anonymous missing", []string{"anonymous"},
			`test.conf:1: want "anonymous on" or "anonymous off", got ""`},
		{"anonymous extra", []string{"anonymous on off"},
			`test.conf:1: unexpected "off" after anonymous on`},
		{"anonymous twice", []string{"anonymous on", "anonymous off"},
			`test.conf:2: anonymous is already set on line 1`},
		{"user without hash", []string{"user alice"},
			`test.conf:1: user needs a name and a bcrypt hash: user NAME HASH`},
		{"user extra word", []string{"user alice HASH(pw) extra"},
			`test.conf:1: unexpected "extra" after the hash of user "alice" (user names cannot contain spaces)`},
		{"user bad hash", []string{"user alice secret"},
			`test.conf:1: user "alice": not a bcrypt hash: want $2a$, $2b$ or $2y$ at the start`},
		{"user short hash", []string{"user alice $2a$10$abc"},
			`test.conf:1: user "alice": invalid bcrypt hash: want 60 characters like $2a$10$..., got 10`},
		{"user hash with a bad cost", []string{"user alice $2a$99$" + strings.Repeat("x", 53)},
			`test.conf:1: user "alice": invalid bcrypt hash: crypto/bcrypt: cost 99 is outside allowed inclusive range 4..31`},
		{"user Mosquitto hash", []string{"user alice $7$101$" + strings.Repeat("x", 53)},
			`test.conf:1: user "alice": not a bcrypt hash: want $2a$, $2b$ or $2y$ at the start`},
		{"duplicate user", []string{"user alice HASH(a)", "user bob HASH(b)", "user alice HASH(c)"},
			`test.conf:3: duplicate user "alice" (first defined on line 1)`},
		{"acl no subject", []string{"acl"},
			`test.conf:1: acl needs a subject: anonymous, user NAME or all`},
		{"acl bad subject", []string{"acl pattern allow read a"},
			`test.conf:1: unknown acl subject "pattern" (want anonymous, user NAME or all)`},
		{"acl user without name", []string{"acl user"},
			`test.conf:1: acl user needs a user name`},
		{"acl verb", []string{"acl all permit read a"},
			`test.conf:1: want allow or deny after the acl subject, got "permit"`},
		{"acl access", []string{"", "", "acl all allow rw a/#"},
			`test.conf:3: unknown access "rw" (want read, write or readwrite)`},
		{"acl no filter", []string{"acl all allow read   "},
			`test.conf:1: acl needs a topic filter after allow read`},
		{"acl bad filter", []string{"acl all allow read a/#/b"},
			`test.conf:1: invalid topic filter "a/#/b": '#' must be the last level`},
		{"acl trailing comment", []string{"acl all allow read a/b # note"},
			`test.conf:1: invalid topic filter "a/b # note": wildcard inside level "b # note": '+' and '#' must stand alone in a level`},
		{"acl unknown substitution", []string{"acl all allow read a/%x"},
			`test.conf:1: unknown substitution "%x" (want %u, %c, or %% for a literal %)`},
		{"acl lone percent", []string{"acl all allow read a/50%"},
			`test.conf:1: lone "%" at the end of the topic filter (write %% for a literal %)`},
		{"acl %u for anonymous", []string{"acl anonymous allow read home/%u"},
			`test.conf:1: %u in a rule for anonymous clients, which have no user name`},
		{"acl unknown user", []string{"user alice HASH(a)", "acl user bob allow read a"},
			`test.conf:2: acl for user "bob", who has no user line`},
		{"unsafe user name with %u rules", []string{"user a/b HASH(a)", "acl all allow read home/%u/#"},
			`test.conf:1: user name "a/b" contains '+', '#' or '/', which the %u rules may not substitute: this user could do nothing`},
		{"acl for a user whose line is broken", []string{"user alice nohash", "acl user alice allow read a"},
			`test.conf:1: user "alice": not a bcrypt hash: want $2a$, $2b$ or $2y$ at the start`},
		{"invalid UTF-8", []string{"acl all allow read a/\xff"},
			`test.conf:1: line is not valid UTF-8`},
		{"several errors in line order", []string{"acl user bob allow read a", "bogus", "acl all allow rw a"},
			"test.conf:1: acl for user \"bob\", who has no user line\n" +
				"test.conf:2: unknown directive \"bogus\" (want anonymous, user or acl)\n" +
				"test.conf:3: unknown access \"rw\" (want read, write or readwrite)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := auth.Parse(strings.NewReader(file(t, tt.lines...)), "test.conf")
			if err == nil {
				t.Fatal("Parse accepted the file")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var pe *auth.ParseError
			if !errors.As(err, &pe) || pe.Name != "test.conf" || pe.Line == 0 {
				t.Errorf("errors.As(*ParseError) = %+v", pe)
			}
		})
	}
}

func TestParseTooManyErrors(t *testing.T) {
	lines := make([]string, 50)
	for i := range lines {
		lines[i] = "bogus"
	}
	_, err := auth.Parse(strings.NewReader(file(t, lines...)), "x")
	if err == nil {
		t.Fatal("Parse accepted the file")
	}
	msg := err.Error()
	if n := strings.Count(msg, "unknown directive"); n != 20 {
		t.Errorf("%d line errors reported, want 20", n)
	}
	if !strings.HasSuffix(msg, "x: too many errors, stopped reading") {
		t.Errorf("error does not end with the give-up note:\n%s", msg)
	}
}

func TestParseLongLine(t *testing.T) {
	long := "acl all allow read " + strings.Repeat("a", 2<<20)
	_, err := auth.Parse(strings.NewReader("anonymous on\n"+long+"\n"), "x")
	if err == nil || err.Error() != "x:2: line longer than 1048576 bytes" {
		t.Errorf("Parse = %v", err)
	}
}

// TestParseLayout checks what a valid file may look like: comments,
// blank lines, tabs, CRLF line ends, a byte order mark, and a topic filter
// with spaces.
func TestParseLayout(t *testing.T) {
	text := "\ufeff# comment\r\n" +
		"\r\n" +
		"   # indented comment\r\n" +
		"anonymous\ton\r\n" +
		"\tuser  alice \t" + hash(t, "pw") + "  \r\n" +
		"acl   user alice\tallow  readwrite   my topic/with spaces  \r\n" +
		"acl anonymous allow read public/#\r\n"
	f, err := auth.Parse(strings.NewReader(text), "layout.conf")
	if err != nil {
		t.Fatal(err)
	}
	alice := tern.Client{ID: "c", Username: "alice"}
	if !f.AuthorizeRead(alice, "my topic/with spaces") {
		t.Error("alice may not read the topic with spaces")
	}
	if f.AuthorizeRead(alice, "my topic/with spaces  ") {
		t.Error("trailing blanks were kept in the filter")
	}
	if err := f.Authenticate(t.Context(), tern.ConnectInfo{ClientID: "c"}); err != nil {
		t.Errorf("anonymous on: %v", err)
	}
	if err := f.Authenticate(t.Context(), tern.ConnectInfo{Username: "alice", HasUsername: true, Password: []byte("pw"), HasPassword: true}); err != nil {
		t.Errorf("alice: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.conf")
	write := func(lines ...string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(file(t, lines...)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("user alice HASH(pw)", "acl user alice allow read a/#")
	f, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	alice := tern.Client{ID: "c", Username: "alice"}
	if !f.AuthorizeRead(alice, "a/x") || f.AuthorizeRead(alice, "b/x") {
		t.Fatal("rules of the loaded file not in force")
	}

	// A valid new version replaces the old one.
	write("user alice HASH(pw)", "acl user alice allow read b/#")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if f.AuthorizeRead(alice, "a/x") || !f.AuthorizeRead(alice, "b/x") {
		t.Fatal("rules not replaced by Reload")
	}

	// A broken version is refused and the old one stays.
	write("user alice HASH(pw)", "acl user alice allow read b/#", "acl user alice allow rw c")
	err = f.Reload()
	if err == nil || !strings.HasPrefix(err.Error(), path+":3: unknown access") {
		t.Fatalf("Reload of a broken file = %v", err)
	}
	if !f.AuthorizeRead(alice, "b/x") {
		t.Fatal("a failed Reload changed the rules")
	}

	// Errors name the path.
	_, err = auth.Load(filepath.Join(dir, "missing.conf"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want os.ErrNotExist", err)
	}
	if err := os.WriteFile(path, []byte("bogus\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Load(path); err == nil || err.Error() != path+`:1: unknown directive "bogus" (want anonymous, user or acl)` {
		t.Errorf("Load = %v", err)
	}
}

func TestReloadOfParsedFile(t *testing.T) {
	f := mustParse(t, "anonymous on")
	if err := f.Reload(); err == nil {
		t.Error("Reload of a parsed file succeeded")
	}
}

// TestReloadConcurrentWithChecks runs checks while the file is reloaded;
// run with -race.
func TestReloadConcurrentWithChecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.conf")
	if err := os.WriteFile(path, []byte(file(t, "anonymous on", "acl anonymous allow read a/#")), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			if !f.AuthorizeRead(tern.Client{ID: "c"}, "a/b") {
				t.Error("read refused during reload")
				return
			}
		}
	}()
	for range 20 {
		if err := f.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

// TestDocumentedExamplesParse keeps the complete examples of FORMAT.md and
// of the package documentation valid.
func TestDocumentedExamplesParse(t *testing.T) {
	md, err := os.ReadFile("FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(md), "## A complete example\n\n```\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("no example block in FORMAT.md")
	}
	checkExample(t, "FORMAT.md", block, "monitor")

	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "// # A complete example\n//\n")
	rest, _, ok2 = strings.Cut(rest, "// # Directives")
	if !ok || !ok2 {
		t.Fatal("no example in doc.go")
	}
	var b strings.Builder
	for l := range strings.Lines(rest) {
		l = strings.TrimPrefix(strings.TrimPrefix(l, "//"), "\t")
		b.WriteString(l)
	}
	checkExample(t, "doc.go", b.String(), "")
}

func checkExample(t *testing.T, name, text, monitor string) {
	t.Helper()
	f, err := auth.Parse(strings.NewReader(text), name)
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	ctx := t.Context()
	if err := f.Authenticate(ctx, tern.ConnectInfo{Username: "alice", HasUsername: true, Password: []byte("alice-password")}); err != nil {
		t.Errorf("%s: alice cannot log in: %v", name, err)
	}
	alice := tern.Client{ID: "a1", Username: "alice"}
	bob := tern.Client{ID: "b1", Username: "bob"}
	anon := tern.Client{ID: "dev7"}
	checks := []struct {
		c     tern.Client
		write bool
		topic string
		want  bool
	}{
		{anon, false, "public/news", true},
		{anon, true, "public/news", false},
		{alice, true, "public/news", true},
		{anon, true, "devices/dev7/state", true},
		{anon, true, "devices/dev7/firmware", false},
		{anon, false, "devices/dev8/state", false},
		{alice, true, "home/alice/lamp", true},
		{bob, false, "home/carol/lamp", true},
		{bob, false, "home/alice/lamp", false},
		{bob, true, "home/bob/lamp", true},
	}
	for _, c := range checks {
		var got bool
		if c.write {
			got = f.AuthorizePublish(ctx, c.c, tern.Message{Topic: c.topic}) == nil
		} else {
			got = f.AuthorizeRead(c.c, c.topic)
		}
		if got != c.want {
			t.Errorf("%s: user %q write=%v %q: allowed=%v, want %v", name, c.c.Username, c.write, c.topic, got, c.want)
		}
	}
	if monitor != "" {
		m := tern.Client{ID: "m", Username: monitor}
		if !f.AuthorizeRead(m, "$SYS/broker/uptime") || !f.AuthorizeRead(m, "home/alice/x") {
			t.Errorf("%s: the monitor cannot read everything", name)
		}
	}
}
