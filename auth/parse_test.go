package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

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
			require.Error(t, err, "Parse accepted the file")
			assert.EqualError(t, err, tt.want)
			var pe *auth.ParseError
			if assert.ErrorAs(t, err, &pe) {
				assert.Equal(t, "test.conf", pe.Name)
				assert.NotZero(t, pe.Line)
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
	require.Error(t, err, "Parse accepted the file")
	msg := err.Error()
	assert.Equal(t, 20, strings.Count(msg, "unknown directive"), "line errors reported")
	assert.True(t, strings.HasSuffix(msg, "x: too many errors, stopped reading"),
		"error does not end with the give-up note:\n%s", msg)
}

func TestParseLongLine(t *testing.T) {
	long := "acl all allow read " + strings.Repeat("a", 2<<20)
	_, err := auth.Parse(strings.NewReader("anonymous on\n"+long+"\n"), "x")
	assert.EqualError(t, err, "x:2: line longer than 1048576 bytes")
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
	require.NoError(t, err)
	alice := tern.Client{ID: "c", Username: "alice"}
	assert.True(t, f.AuthorizeRead(alice, "my topic/with spaces"), "alice may not read the topic with spaces")
	assert.False(t, f.AuthorizeRead(alice, "my topic/with spaces  "), "trailing blanks were kept in the filter")
	assert.NoError(t, f.Authenticate(t.Context(), tern.ConnectInfo{ClientID: "c"}), "anonymous on")
	assert.NoError(t, f.Authenticate(t.Context(), tern.ConnectInfo{Username: "alice", HasUsername: true, Password: []byte("pw"), HasPassword: true}), "alice")
}

func TestLoad(t *testing.T) {
	path := writeFile(t, "user alice HASH(pw)", "acl user alice allow read a/#")
	f, err := auth.Load(path)
	require.NoError(t, err)
	alice := tern.Client{ID: "c", Username: "alice"}
	require.True(t, f.AuthorizeRead(alice, "a/x") && !f.AuthorizeRead(alice, "b/x"), "rules of the loaded file not in force")

	// A valid new version replaces the old one.
	writeTo(t, path, "user alice HASH(pw)", "acl user alice allow read b/#")
	require.NoError(t, f.Reload())
	require.True(t, !f.AuthorizeRead(alice, "a/x") && f.AuthorizeRead(alice, "b/x"), "rules not replaced by Reload")

	// A broken version is refused and the old one stays.
	writeTo(t, path, "user alice HASH(pw)", "acl user alice allow read b/#", "acl user alice allow rw c")
	err = f.Reload()
	require.Error(t, err, "Reload of a broken file")
	require.True(t, strings.HasPrefix(err.Error(), path+":3: unknown access"), "Reload of a broken file = %v", err)
	require.True(t, f.AuthorizeRead(alice, "b/x"), "a failed Reload changed the rules")

	// Errors name the path.
	_, err = auth.Load(filepath.Join(filepath.Dir(path), "missing.conf"))
	assert.ErrorIs(t, err, os.ErrNotExist, "Load of a missing file")
	require.NoError(t, os.WriteFile(path, []byte("bogus\n"), 0o600))
	_, err = auth.Load(path)
	assert.EqualError(t, err, path+`:1: unknown directive "bogus" (want anonymous, user or acl)`)
}

func TestReloadOfParsedFile(t *testing.T) {
	f := mustParse(t, "anonymous on")
	assert.Error(t, f.Reload(), "Reload of a parsed file succeeded")
}

// TestReloadConcurrentWithChecks runs checks while the file is reloaded;
// run with -race.
func TestReloadConcurrentWithChecks(t *testing.T) {
	path := writeFile(t, "anonymous on", "acl anonymous allow read a/#")
	f, err := auth.Load(path)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			if !f.AuthorizeRead(tern.Client{ID: "c"}, "a/b") {
				assert.Fail(t, "read refused during reload")
				return
			}
		}
	}()
	for range 20 {
		require.NoError(t, f.Reload())
	}
	<-done
}

// TestDocumentedExamplesParse keeps the complete examples of FORMAT.md and
// of the package documentation valid.
func TestDocumentedExamplesParse(t *testing.T) {
	md, err := os.ReadFile("FORMAT.md")
	require.NoError(t, err)
	_, block, ok := strings.Cut(string(md), "## A complete example\n\n```\n")
	block, _, ok2 := strings.Cut(block, "```")
	require.True(t, ok && ok2, "no example block in FORMAT.md")
	checkExample(t, "FORMAT.md", block, "monitor")

	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "// # A complete example\n//\n")
	rest, _, ok2 = strings.Cut(rest, "// # Directives")
	require.True(t, ok && ok2, "no example in doc.go")
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
	require.NoError(t, err, "the example does not parse")
	ctx := t.Context()
	assert.NoError(t, f.Authenticate(ctx, tern.ConnectInfo{Username: "alice", HasUsername: true, Password: []byte("alice-password")}),
		"%s: alice cannot log in", name)
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
		assert.Equal(t, c.want, got, "%s: user %q write=%v %q", name, c.c.Username, c.write, c.topic)
	}
	if monitor != "" {
		m := tern.Client{ID: "m", Username: monitor}
		assert.True(t, f.AuthorizeRead(m, "$SYS/broker/uptime") && f.AuthorizeRead(m, "home/alice/x"),
			"%s: the monitor cannot read everything", name)
	}
}
