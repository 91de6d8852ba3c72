package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

// testdata/mosquitto.passwd was made by Debian's mosquitto_passwd 2.0.11:
//
//	mosquitto_passwd -c -b mosquitto.passwd alice alice-password
//	mosquitto_passwd -b mosquitto.passwd bob 'bob pässword'
//	mosquitto_passwd -b -I 1000 mosquitto.passwd carol carol-password
//	mosquitto_passwd -H sha512 -b mosquitto.passwd dave dave-password
//	mosquitto_passwd -b mosquitto.passwd erin ''
//	mosquitto_passwd -b mosquitto.passwd 'frank smith' frank-password
//
// alice, bob, erin and frank have $7$ hashes with 101 iterations (the
// default), carol a $7$ hash with 1000, dave a $6$ hash.
var mosquittoPasswords = map[string]string{
	"alice":       "alice-password",
	"bob":         "bob pässword",
	"carol":       "carol-password",
	"dave":        "dave-password",
	"erin":        "",
	"frank smith": "frank-password",
}

const (
	passwdFile = "testdata/mosquitto.passwd"
	aclFile    = "testdata/mosquitto.acl"
)

func loadMosquitto(t *testing.T, files auth.MosquittoFiles) *auth.Mosquitto {
	t.Helper()
	m, err := auth.LoadMosquitto(files, auth.Options{})
	require.NoError(t, err)
	return m
}

// TestMosquittoPasswordFile logs in with each password of the file
// mosquitto_passwd made, and with wrong ones.
func TestMosquittoPasswordFile(t *testing.T) {
	m := loadMosquitto(t, auth.MosquittoFiles{PasswordFile: passwdFile})
	ctx := t.Context()
	for user, pw := range mosquittoPasswords {
		assert.NoError(t, m.Authenticate(ctx, login(user, pw, nil)), "%s with the right password", user)
		assert.ErrorIs(t, m.Authenticate(ctx, login(user, pw+"x", nil)), tern.ErrBadCredentials, "%s with a wrong password", user)
	}
	assert.ErrorIs(t, m.Authenticate(ctx, login("mallory", "alice-password", nil)), tern.ErrBadCredentials, "unknown user")
	assert.ErrorIs(t, m.Authenticate(ctx, login("Alice", "alice-password", nil)), tern.ErrBadCredentials, "user names are case-sensitive")
	noPassword := tern.ConnectInfo{ClientID: "c", Username: "erin", HasUsername: true}
	assert.ErrorIs(t, m.Authenticate(ctx, noPassword), tern.ErrBadCredentials,
		"no password is not the empty password, as in Mosquitto")
	// Mosquitto hashes a password up to its first NUL byte.
	assert.NoError(t, m.Authenticate(ctx, login("alice", "alice-password\x00junk", nil)))
	assert.Equal(t, uint64(0), m.Stats().RateLimited)
}

// TestMosquittoAuthenticationModes covers allow_anonymous with and
// without a password file, as Mosquitto 2.0.11 decides.
func TestMosquittoAuthenticationModes(t *testing.T) {
	ctx := t.Context()
	anon := tern.ConnectInfo{ClientID: "c"}
	emptyName := tern.ConnectInfo{ClientID: "c", HasUsername: true}
	alice := login("alice", "alice-password", nil)
	stranger := login("whoever", "anything", nil)
	tests := []struct {
		name  string
		files auth.MosquittoFiles
		ci    tern.ConnectInfo
		want  error
	}{
		{"password file, anonymous allowed", auth.MosquittoFiles{PasswordFile: passwdFile, AllowAnonymous: true}, anon, nil},
		{"password file, empty user name is anonymous", auth.MosquittoFiles{PasswordFile: passwdFile, AllowAnonymous: true}, emptyName, nil},
		{"password file, user", auth.MosquittoFiles{PasswordFile: passwdFile, AllowAnonymous: true}, alice, nil},
		{"password file, unknown user", auth.MosquittoFiles{PasswordFile: passwdFile, AllowAnonymous: true}, stranger, tern.ErrBadCredentials},
		{"password file, anonymous refused", auth.MosquittoFiles{PasswordFile: passwdFile}, anon, tern.ErrNotAuthorized},
		{"password file, empty user name refused", auth.MosquittoFiles{PasswordFile: passwdFile}, emptyName, tern.ErrNotAuthorized},
		{"password file, user, no anonymous", auth.MosquittoFiles{PasswordFile: passwdFile}, alice, nil},
		{"no password file, anonymous allowed", auth.MosquittoFiles{AllowAnonymous: true}, anon, nil},
		{"no password file, any user name allowed", auth.MosquittoFiles{AllowAnonymous: true}, stranger, nil},
		{"no password file, anonymous refused", auth.MosquittoFiles{}, anon, tern.ErrNotAuthorized},
		{"no password file, every user refused", auth.MosquittoFiles{}, alice, tern.ErrNotAuthorized},
	}
	for _, tt := range tests {
		m := loadMosquitto(t, tt.files)
		err := m.Authenticate(ctx, tt.ci)
		if tt.want == nil {
			assert.NoError(t, err, tt.name)
		} else {
			assert.ErrorIs(t, err, tt.want, tt.name)
		}
	}

	// The bounds of Options apply as for a File.
	m, err := auth.LoadMosquitto(auth.MosquittoFiles{PasswordFile: passwdFile}, auth.Options{FailureBurst: 1, FailureRate: 1e-9})
	require.NoError(t, err)
	from := tcpAddr("192.0.2.9:1")
	assert.ErrorIs(t, m.Authenticate(ctx, login("alice", "guess", from)), tern.ErrBadCredentials)
	assert.ErrorIs(t, m.Authenticate(ctx, login("alice", "guess", from)), tern.ErrServerUnavailable)
	_, err = auth.LoadMosquitto(auth.MosquittoFiles{}, auth.Options{CacheSize: -1})
	assert.EqualError(t, err, "auth: Options.CacheSize must not be negative, got -1")
}

// Clients of the ACL decision tests.
var (
	mAnon  = tern.Client{ID: "anon1"}
	mAlice = tern.Client{ID: "al1", Username: "alice"}
	mBob   = tern.Client{ID: "b1", Username: "bob"}
	mCarol = tern.Client{ID: "c1", Username: "carol"} // no user section
	mAdmin = tern.Client{ID: "adm", Username: "admin"}
	mFrank = tern.Client{ID: "f1", Username: "frank smith"}
)

type mdecision struct {
	name  string
	c     tern.Client
	write bool
	topic string
	want  bool
}

func runMosquittoDecisions(t *testing.T, m *auth.Mosquitto, tests []mdecision) {
	t.Helper()
	for _, tt := range tests {
		var got bool
		if tt.write {
			err := m.AuthorizePublish(t.Context(), tt.c, tern.Message{Topic: tt.topic})
			if err != nil {
				assert.ErrorIs(t, err, tern.ErrNotAuthorized)
			}
			got = err == nil
		} else {
			got = m.AuthorizeRead(tt.c, tt.topic)
		}
		assert.Equal(t, tt.want, got, "%s: user %q id %q write=%v %q", tt.name, tt.c.Username, tt.c.ID, tt.write, tt.topic)
	}
}

// TestMosquittoACL checks testdata/mosquitto.acl against the decisions
// Mosquitto 2.0.11 made with the same file (publish by one client, receive
// by another), and the two places where Tern deliberately refuses more.
func TestMosquittoACL(t *testing.T) {
	m := loadMosquitto(t, auth.MosquittoFiles{PasswordFile: passwdFile, ACLFile: aclFile, AllowAnonymous: true})
	const r, w = false, true
	runMosquittoDecisions(t, m, []mdecision{
		{"anonymous lines", mAnon, r, "anon/x", true},
		{"read line does not grant write", mAnon, w, "anon/x", false},
		{"deny line", mAnon, r, "anon/secret", false},
		{"pattern for anonymous", mAnon, r, "c/anon1/z", true},
		{"another user's lines", mAnon, r, "a/x", false},
		{"anonymous lines are not for users", mAlice, r, "anon/x", false},
		{"user line read", mAlice, r, "a/x", true},
		{"user line write", mAlice, w, "a/x", true},
		{"deny refuses read", mAlice, r, "a/private", false},
		{"deny refuses write", mAlice, w, "a/private", false},
		{"a pattern before the user line is for everyone", mAlice, r, "c/al1/q", true},
		{"a user's allow line wins over a deny pattern", mAlice, w, "p/alice/blocked", true},
		{"deny pattern", mBob, w, "p/bob/blocked", false},
		{"%u pattern write", mBob, w, "p/bob/ok", true},
		{"%u pattern read", mBob, r, "p/bob/ok", true},
		{"%u pattern of another user", mBob, w, "p/carol/ok", false},
		{"user without a section: patterns", mCarol, r, "p/carol/x", true},
		{"user without a section: %c pattern", mCarol, r, "c/c1/x", true},
		{"user without a section: nothing else", mCarol, r, "a/x", false},
		{"%u pattern is not for anonymous", mAnon, r, "p//x", false},
		{"%c inside a level", mCarol, r, "xc1y/z", true},
		{"'#' matches the parent", mCarol, r, "xc1y", true},
		{"user name with a blank", mFrank, w, "frank/x", true},
		{"'+' in the id: user lines still apply", tern.Client{ID: "al+1", Username: "alice"}, r, "a/x", true},
		{"'+' in the id: no pattern applies", tern.Client{ID: "c+1", Username: "carol"}, r, "p/carol/x", false},
		{"'#' in the user name: no pattern applies", tern.Client{ID: "c2", Username: "ca#rol"}, r, "c/c2/x", false},
		{"$SYS by name", mAlice, r, "$SYS/broker/uptime", true},
		{"'#' does not reach $SYS", mAdmin, r, "$SYS/broker/uptime", false},
		{"$SYS is never written", mAdmin, w, "$SYS/broker/uptime", false},
		{"$SYS is never written, even by name", mAlice, w, "$SYS/x", false},
		{"$share is never written", mAdmin, w, "$share/g/x", false},
		{"admin", mAdmin, w, "any/topic", true},
		{"no client identifier", tern.Client{Username: "admin"}, r, "any/topic", false},
		{"internal", tern.Client{Internal: true}, w, "$SYS/x", true},
		{"invalid topic", mAdmin, w, "a/+", false},
		// Tern refuses a client identifier with '/' the patterns when a
		// pattern substitutes %c (Mosquitto 2.0 grants both).
		{"Tern: '/' in the id and a %c pattern", tern.Client{ID: "c/1", Username: "carol"}, r, "c/c/1/x", false},
		{"Tern: '/' in the id refuses every pattern", tern.Client{ID: "c/1", Username: "carol"}, r, "p/carol/x", false},
		{"'/' in the id: user lines still apply", tern.Client{ID: "a/1", Username: "alice"}, r, "a/x", true},
	})
	// Every subscription is granted, as in Mosquitto 2.0; deliveries are
	// checked one by one.
	for _, f := range []string{"#", "a/private", "$SYS/#", "nothing/here"} {
		assert.NoError(t, m.AuthorizeSubscribe(t.Context(), mAnon, f, 1), "subscribe to %q", f)
	}
	assert.ErrorIs(t, m.AuthorizeSubscribe(t.Context(), mAnon, "a/#/b", 1), tern.ErrNotAuthorized, "invalid filter")
}

// TestMosquittoACLDollar covers the '$' rules: a substituted %c never
// reaches a '$' topic (Tern; Mosquitto 2.0 lets client "$SYS" read $SYS/#
// through "pattern read %c/#"), and bridges' $SYS/broker/connection/+/state
// may be written when a line grants it.
func TestMosquittoACLDollar(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acl")
	require.NoError(t, os.WriteFile(path, []byte(
		"pattern read %c/#\n"+
			"pattern write $SYS/broker/connection/%c/state\n"+
			"topic read $x/#\n"), 0o600))
	m := loadMosquitto(t, auth.MosquittoFiles{ACLFile: path, AllowAnonymous: true})
	const r, w = false, true
	runMosquittoDecisions(t, m, []mdecision{
		{"own tree", tern.Client{ID: "dev"}, r, "dev/x", true},
		{"Tern: id $SYS", tern.Client{ID: "$SYS"}, r, "$SYS/broker/uptime", false},
		{"bridge state", tern.Client{ID: "br1"}, w, "$SYS/broker/connection/br1/state", true},
		{"another bridge's state", tern.Client{ID: "br1"}, w, "$SYS/broker/connection/br2/state", false},
		{"other $ topics by name", tern.Client{ID: "dev"}, r, "$x/y", true},
	})
}

func TestMosquittoNoOrEmptyACL(t *testing.T) {
	const r, w = false, true
	none := loadMosquitto(t, auth.MosquittoFiles{AllowAnonymous: true})
	runMosquittoDecisions(t, none, []mdecision{
		{"no acl_file: read", mAnon, r, "a/b", true},
		{"no acl_file: write", mAnon, w, "a/b", true},
		{"no acl_file: $SYS read", mAnon, r, "$SYS/broker/uptime", true},
		{"no acl_file: $SYS write", mAnon, w, "$SYS/broker/uptime", false},
	})
	path := filepath.Join(t.TempDir(), "acl")
	require.NoError(t, os.WriteFile(path, []byte("# nothing\n\n"), 0o600))
	empty := loadMosquitto(t, auth.MosquittoFiles{ACLFile: path, AllowAnonymous: true})
	runMosquittoDecisions(t, empty, []mdecision{
		{"empty acl_file: read", mAnon, r, "a/b", false},
		{"empty acl_file: write", mAlice, w, "a/b", false},
	})
	assert.NoError(t, empty.AuthorizeSubscribe(t.Context(), mAnon, "a/b", 0), "subscriptions are granted anyway")
}

// TestMosquittoACLLayout covers what Mosquitto reads: readwrite when the
// access is left out, filters with blanks, repeated user sections, CRLF.
func TestMosquittoACLLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acl")
	require.NoError(t, os.WriteFile(path, []byte(
		"user alice\r\n"+
			"topic a/#\r\n"+
			"topic read   my topic/with spaces  \r\n"+
			"  topic read indented\r\n"+
			"\t# an indented comment\r\n"+
			"user bob\n"+
			"topic read b/#\n"+
			"user alice\n"+
			"topic write again/#\n"+
			"topic read\n"), 0o600))
	m := loadMosquitto(t, auth.MosquittoFiles{ACLFile: path})
	const r, w = false, true
	runMosquittoDecisions(t, m, []mdecision{
		{"no access word: readwrite", mAlice, w, "a/x", true},
		{"no access word: readwrite", mAlice, r, "a/x", true},
		{"filter with blanks", mAlice, r, "my topic/with spaces", true},
		{"indented line", mAlice, r, "indented", true},
		{"second section of the same user", mAlice, w, "again/x", true},
		{"bob's section", mBob, r, "b/x", true},
		{"bob's section is not alice's", mAlice, r, "b/x", false},
		{`"topic read" is the topic "read"`, mAlice, w, "read", true},
	})
}

func TestMosquittoParseErrors(t *testing.T) {
	acl := []struct{ text, want string }{
		{"topic\n", "ACL:1: topic needs a topic filter"},
		{"pattern\n", "ACL:1: pattern needs a topic filter"},
		{"\n\ntopic rw a/b\n", `ACL:3: unknown access "rw" (want read, write, readwrite or deny)`},
		{"topic read a/#/b\n", `ACL:1: invalid topic filter "a/#/b": '#' must be the last level`},
		{"user\n", "ACL:1: user needs a user name"},
		{"users alice\n", `ACL:1: unknown directive "users" (want topic, pattern or user)`},
		{"acl all allow read a\n", `ACL:1: unknown directive "acl": this looks like a Tern auth file, which auth.Load reads; an acl_file has topic, pattern and user lines`},
		{"topic read a\nbogus\ntopic x y\n", "ACL:2: unknown directive \"bogus\" (want topic, pattern or user)\n" +
			"ACL:3: unknown access \"x\" (want read, write, readwrite or deny)"},
	}
	dir := t.TempDir()
	for _, tt := range acl {
		path := filepath.Join(dir, "acl")
		require.NoError(t, os.WriteFile(path, []byte(tt.text), 0o600))
		_, err := auth.LoadMosquitto(auth.MosquittoFiles{ACLFile: path}, auth.Options{})
		assert.EqualError(t, err, strings.ReplaceAll(tt.want, "ACL", path), "%q", tt.text)
	}

	hash7 := "$7$101$nHA4cqQOqBH9KKyY$X5/ldpY5TG8HtdyPplu9rkOduJfW7dL5beD1vQrvqq40+OPQLEEnhHLC/SZMwm5Txtc5I0RpecsB/O4pyN9M3g=="
	pw := []struct{ text, want string }{
		{"alice\n", "PW:1: want user:hash, found no ':'"},
		{":" + hash7 + "\n", "PW:1: empty user name before ':'"},
		{"alice:\n", `PW:1: user "alice" has no password hash`},
		{"alice:secret\n", `PW:1: user "alice": unknown password hash: want $7$ or $6$ (mosquitto_passwd) or $2a$, $2b$, $2y$ (bcrypt) (a plain-text password? mosquitto_passwd -U hashes them)`},
		{"alice:" + hash7 + ":x\n", `PW:1: user "alice": unexpected ':' after the hash`},
		{"alice:$7$x$nHA4cqQOqBH9KKyY$X5==\n", `PW:1: user "alice": invalid $7$ hash: iteration count "x" is not a number from 1 to 2147483647`},
		{"alice:$7$0$nHA4cqQOqBH9KKyY$X5==\n", `PW:1: user "alice": invalid $7$ hash: iteration count "0" is not a number from 1 to 2147483647`},
		{"alice:$7$101$c2hvcnQ=$X5==\n", `PW:1: user "alice": invalid salt "c2hvcnQ=": want 12 bytes in base64`},
		{"alice:$7$101$nHA4cqQOqBH9KKyY$X5==\n", `PW:1: user "alice": invalid hash "X5==": want 64 bytes in base64`},
		{"alice:$7$101$nHA4cqQOqBH9KKyY\n", `PW:1: user "alice": invalid $7$ hash: want $7$ITERATIONS$SALT$HASH`},
		{"alice:$6$nHA4cqQOqBH9KKyY\n", `PW:1: user "alice": invalid $6$ hash: want $6$SALT$HASH`},
		{"alice:$2a$10$abc\n", `PW:1: user "alice": invalid bcrypt hash: want 60 characters like $2a$10$..., got 10`},
		{"alice:" + hash7 + "\n# c\nalice:" + hash7 + "\n", `PW:3: duplicate user "alice" (first defined on line 1)`},
		{"\xff:" + hash7 + "\n", "PW:1: user name is not valid UTF-8"},
	}
	for _, tt := range pw {
		path := filepath.Join(dir, "passwd")
		require.NoError(t, os.WriteFile(path, []byte(tt.text), 0o600))
		_, err := auth.LoadMosquitto(auth.MosquittoFiles{PasswordFile: path}, auth.Options{})
		assert.EqualError(t, err, strings.ReplaceAll(tt.want, "PW", path), "%q", tt.text)
		var pe *auth.ParseError
		assert.ErrorAs(t, err, &pe)
	}

	_, err := auth.LoadMosquitto(auth.MosquittoFiles{PasswordFile: filepath.Join(dir, "missing")}, auth.Options{})
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = auth.LoadMosquitto(auth.MosquittoFiles{ACLFile: filepath.Join(dir, "missing")}, auth.Options{})
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestMosquittoPasswordLayout covers what a password file may hold
// besides user lines.
func TestMosquittoPasswordLayout(t *testing.T) {
	raw, err := os.ReadFile(passwdFile)
	require.NoError(t, err)
	alice, _, _ := strings.Cut(string(raw), "\n")
	_, hash, _ := strings.Cut(alice, ":")
	path := filepath.Join(t.TempDir(), "passwd")
	require.NoError(t, os.WriteFile(path, []byte("# users\r\n\r\n   \n  # indented comment\n al ice :  "+hash+"  \r\n"), 0o600))
	m := loadMosquitto(t, auth.MosquittoFiles{PasswordFile: path})
	assert.NoError(t, m.Authenticate(t.Context(), login("al ice", "alice-password", nil)), "blanks around the name and hash are trimmed")
}

// TestMosquittoReload checks that Reload replaces both files at once and
// keeps the old content when either has a mistake.
func TestMosquittoReload(t *testing.T) {
	dir := t.TempDir()
	pw, acl := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	require.NoError(t, auth.SetPasswordHash(pw, "alice", hashOf(t, "alice")))
	require.NoError(t, os.WriteFile(acl, []byte("user alice\ntopic read a/#\n"), 0o600))
	m := loadMosquitto(t, auth.MosquittoFiles{PasswordFile: pw, ACLFile: acl})
	ctx := t.Context()
	aliceIn := login("alice", "alice-password", nil)
	require.NoError(t, m.Authenticate(ctx, aliceIn))
	require.True(t, m.AuthorizeRead(mAlice, "a/x"))

	// Both change.
	require.NoError(t, auth.SetPasswordHash(pw, "alice", hashOf(t, "alice2")))
	require.NoError(t, os.WriteFile(acl, []byte("user alice\ntopic read b/#\n"), 0o600))
	require.NoError(t, m.Reload())
	assert.ErrorIs(t, m.Authenticate(ctx, aliceIn), tern.ErrBadCredentials, "the old password, cached before, no longer works")
	assert.NoError(t, m.Authenticate(ctx, login("alice", "alice2-password", nil)))
	assert.False(t, m.AuthorizeRead(mAlice, "a/x"))
	assert.True(t, m.AuthorizeRead(mAlice, "b/x"))

	// A broken ACL file: nothing changes, not even the password file.
	require.NoError(t, auth.SetPasswordHash(pw, "alice", hashOf(t, "alice3")))
	require.NoError(t, os.WriteFile(acl, []byte("user alice\ntopic read c/#\ntopic rw d\n"), 0o600))
	err := m.Reload()
	assert.EqualError(t, err, acl+`:3: unknown access "rw" (want read, write, readwrite or deny)`)
	assert.NoError(t, m.Authenticate(ctx, login("alice", "alice2-password", nil)), "the old password file stays")
	assert.True(t, m.AuthorizeRead(mAlice, "b/x"), "the old ACL stays")

	// A broken password file, a missing ACL file: both errors.
	require.NoError(t, os.WriteFile(pw, []byte("alice:$7$x\n"), 0o600))
	require.NoError(t, os.Remove(acl))
	err = m.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), pw+`:1: user "alice": invalid $7$ hash`)
	assert.ErrorIs(t, err, os.ErrNotExist)
	var pe *auth.ParseError
	assert.ErrorAs(t, err, &pe)
	assert.True(t, m.AuthorizeRead(mAlice, "b/x"), "the old ACL stays")
}

// hashOf returns a cheap $7$ hash of name+"-password".
func hashOf(t *testing.T, name string) string {
	t.Helper()
	h, err := auth.HashPBKDF2([]byte(name+"-password"), 10)
	require.NoError(t, err)
	return h
}

func TestMosquittoAuthorizeReadDoesNotAllocate(t *testing.T) {
	m := loadMosquitto(t, auth.MosquittoFiles{ACLFile: aclFile})
	var sink bool
	for _, tc := range []struct {
		c     tern.Client
		topic string
	}{
		{mAlice, "a/x/y"},
		{mBob, "p/bob/ok"},
		{mCarol, "xc1y/z"},
		{mAnon, "nothing/matches/here"},
	} {
		n := testing.AllocsPerRun(100, func() { sink = m.AuthorizeRead(tc.c, tc.topic) })
		assert.Zero(t, n, "AuthorizeRead(%q, %q) allocates", tc.c.Username, tc.topic)
	}
	_ = sink
}

func TestMosquittoHonoursContext(t *testing.T) {
	m := loadMosquitto(t, auth.MosquittoFiles{PasswordFile: passwdFile})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := m.Authenticate(ctx, login("alice", "alice-password", nil))
	assert.ErrorIs(t, err, tern.ErrServerUnavailable)
	assert.ErrorIs(t, err, context.Canceled)
}
