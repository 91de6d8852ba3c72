package auth_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

func TestAuthenticate(t *testing.T) {
	lines := []string{"user alice HASH(right)", "user bob HASH()"}
	on := mustParse(t, append([]string{"anonymous on"}, lines...)...)
	off := mustParse(t, append([]string{"anonymous off"}, lines...)...)
	dflt := mustParse(t, lines...)
	long := strings.Repeat("p", 72)
	longUser := mustParse(t, "user long HASH("+long+")")
	noUsers := mustParse(t, "anonymous on")

	login := func(user, pw string) tern.ConnectInfo {
		return tern.ConnectInfo{ClientID: "c", Username: user, HasUsername: true, Password: []byte(pw), HasPassword: true}
	}
	tests := []struct {
		name string
		f    *auth.File
		ci   tern.ConnectInfo
		want error
	}{
		{"good password", off, login("alice", "right"), nil},
		{"bad password", off, login("alice", "wrong"), tern.ErrBadCredentials},
		{"no password", off, tern.ConnectInfo{Username: "alice", HasUsername: true}, tern.ErrBadCredentials},
		{"unknown user", off, login("mallory", "right"), tern.ErrBadCredentials},
		{"user names are case-sensitive", off, login("Alice", "right"), tern.ErrBadCredentials},
		{"empty password hash", off, tern.ConnectInfo{Username: "bob", HasUsername: true}, nil},
		{"known user, anonymous on", on, login("alice", "right"), nil},
		{"bad password, anonymous on", on, login("alice", "wrong"), tern.ErrBadCredentials},
		{"unknown user, anonymous on", on, login("mallory", "x"), tern.ErrBadCredentials},
		{"anonymous on", on, tern.ConnectInfo{ClientID: "c"}, nil},
		{"anonymous off", off, tern.ConnectInfo{ClientID: "c"}, tern.ErrNotAuthorized},
		{"anonymous off by default", dflt, tern.ConnectInfo{ClientID: "c"}, tern.ErrNotAuthorized},
		{"empty user name is anonymous (on)", on, login("", ""), nil},
		{"empty user name is anonymous (off)", off, login("", "x"), tern.ErrNotAuthorized},
		{"72-byte password", longUser, login("long", long), nil},
		{"73-byte password is refused, not cut", longUser, login("long", long+"x"), tern.ErrBadCredentials},
		{"no users at all", noUsers, login("alice", "right"), tern.ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Authenticate(t.Context(), tt.ci)
			if tt.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.want)
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	h, err := auth.HashPassword([]byte("s3cret"))
	require.NoError(t, err)
	f, err := auth.Parse(strings.NewReader("user u "+h+"\n"), "x")
	require.NoError(t, err, "a HashPassword hash is not accepted in a user line")
	ok := tern.ConnectInfo{Username: "u", HasUsername: true, Password: []byte("s3cret"), HasPassword: true}
	assert.NoError(t, f.Authenticate(t.Context(), ok), "Authenticate with the hashed password")
	ok.Password = []byte("S3cret")
	assert.ErrorIs(t, f.Authenticate(t.Context(), ok), tern.ErrBadCredentials, "Authenticate with another password")
	for _, bad := range []string{"", strings.Repeat("x", 73)} {
		_, err := auth.HashPassword([]byte(bad))
		assert.Error(t, err, "HashPassword of a %d-byte password succeeded", len(bad))
	}
}

// policy is used by the decision tests below.
var policy = []string{
	"anonymous on",
	"user alice HASH(a)",
	"user bob HASH(b)",
	"user admin HASH(c)",
	"acl anonymous allow read public/#",
	"acl user alice allow readwrite home/alice/#",
	"acl user alice allow write public/alice",
	"acl user bob allow read home/#",
	"acl user bob deny read home/alice/#",
	"acl all allow readwrite devices/%c/#",
	"acl all allow read users/%u/inbox",
	"acl all allow write users/+/inbox",
	"acl all deny write devices/+/firmware",
	"acl user admin allow readwrite #",
	"acl user admin allow read $SYS/#",
	"acl all deny write $SYS/#",
}

type op int

const (
	pub op = iota
	read
	sub
)

func (o op) String() string { return [...]string{"publish", "read", "subscribe"}[o] }

func allowed(t *testing.T, f *auth.File, c tern.Client, o op, topic string) bool {
	t.Helper()
	switch o {
	case pub:
		err := f.AuthorizePublish(t.Context(), c, tern.Message{Topic: topic, QoS: 1})
		if err != nil {
			assert.ErrorIs(t, err, tern.ErrNotAuthorized, "AuthorizePublish error does not wrap ErrNotAuthorized")
		}
		return err == nil
	case read:
		return f.AuthorizeRead(c, topic)
	default:
		err := f.AuthorizeSubscribe(t.Context(), c, topic, 1)
		if err != nil {
			assert.ErrorIs(t, err, tern.ErrNotAuthorized, "AuthorizeSubscribe error does not wrap ErrNotAuthorized")
		}
		return err == nil
	}
}

type decision struct {
	name  string
	c     tern.Client
	op    op
	topic string
	want  bool
}

func runDecisions(t *testing.T, f *auth.File, tests []decision) {
	t.Helper()
	for _, tt := range tests {
		assert.Equal(t, tt.want, allowed(t, f, tt.c, tt.op, tt.topic), "%s: %s %q by user %q id %q: allowed",
			tt.name, tt.op, tt.topic, tt.c.Username, tt.c.ID)
	}
}

var (
	anon  = tern.Client{ID: "anon1"}
	alice = tern.Client{ID: "alice-phone", Username: "alice"}
	bob   = tern.Client{ID: "bob-pc", Username: "bob"}
	admin = tern.Client{ID: "console", Username: "admin"}
)

func TestDecisions(t *testing.T) {
	f := mustParse(t, policy...)
	runDecisions(t, f, []decision{
		{"anonymous reads public", anon, read, "public/news", true},
		{"anonymous cannot write public", anon, pub, "public/news", false},
		{"anonymous rules are not for users", alice, read, "public/news", false},
		{"own rule", alice, pub, "home/alice/lamp", true},
		{"own rule read", alice, read, "home/alice/lamp", true},
		{"write-only rule", alice, pub, "public/alice", true},
		{"write-only rule does not grant read", alice, read, "public/alice", false},
		{"no matching rule", alice, pub, "home/bob/lamp", false},
		{"'#' covers the parent", alice, read, "home/alice", true},
		{"deny wins over allow", bob, read, "home/alice/lamp", false},
		{"deny only narrows", bob, read, "home/carol/lamp", true},
		{"deny for read leaves write alone", bob, pub, "home/bob/x", false},
		{"all rule write", bob, pub, "users/alice/inbox", true},
		{"all rule for anonymous", anon, pub, "users/alice/inbox", true},
		{"%u read", bob, read, "users/bob/inbox", true},
		{"%u read of another user", bob, read, "users/alice/inbox", false},
		{"%u rule not for anonymous", anon, read, "users//inbox", false},
		{"%c", anon, pub, "devices/anon1/state", true},
		{"%c read", alice, read, "devices/alice-phone/cmd", true},
		{"%c of another client", anon, pub, "devices/alice-phone/state", false},
		{"all deny over own %c allow", anon, pub, "devices/anon1/firmware", false},
		{"all deny over user allow", admin, pub, "devices/x/firmware", false},
		{"admin reads everything", admin, read, "home/alice/lamp", true},
		{"'#' does not reach $SYS", alice, read, "$SYS/broker/uptime", false},
		{"$SYS by name", admin, read, "$SYS/broker/uptime", true},
		{"$SYS write denied for all", admin, pub, "$SYS/broker/uptime", false},
		{"admin writes elsewhere", admin, pub, "anything/at/all", true},
	})
}

func TestSubscribeDecisions(t *testing.T) {
	f := mustParse(t, policy...)
	runDecisions(t, f, []decision{
		{"exact", anon, sub, "public/news", true},
		{"within the rule", anon, sub, "public/+/x", true},
		{"wider than the rule", anon, sub, "#", true},
		{"'+' meeting the rule", anon, sub, "+/news", true},
		{"nothing readable", anon, sub, "private/#", false},
		{"write-only topic", alice, sub, "public/alice", false},
		{"own %u", bob, sub, "users/bob/inbox", true},
		{"'+' over users meets own %u", bob, sub, "users/+/inbox", true},
		{"another user's %u", bob, sub, "users/alice/inbox", false},
		{"own %c", anon, sub, "devices/anon1/#", true},
		{"deny covers all of it", bob, sub, "home/alice/#", false},
		{"deny covers exact", bob, sub, "home/alice/lamp", false},
		{"deny covers part only", bob, sub, "home/+/lamp", true},
		{"wider than the deny", bob, sub, "home/#", true},
		{"'#' is not $SYS", alice, sub, "$SYS/#", false},
		{"$SYS by name", admin, sub, "$SYS/broker/+", true},
		{"invalid filter", admin, sub, "a/#/b", false},
		{"empty filter", admin, sub, "", false},
	})
	// A granted wildcard subscription delivers only readable topics.
	for _, topic := range []string{"public/news", "private/x", "devices/anon1/x", "$SYS/x"} {
		want := topic == "public/news" || topic == "devices/anon1/x"
		assert.Equal(t, want, f.AuthorizeRead(anon, topic), "delivery of %q to an anonymous '#' subscriber", topic)
	}
}

// TestSubstitutionEscapes tries user names and client identifiers that
// would widen a %u or %c rule if they were substituted.
func TestSubstitutionEscapes(t *testing.T) {
	f := mustParse(t,
		"anonymous on",
		"user alice HASH(a)",
		"acl all allow readwrite devices/%c/#",
		"acl all allow read public/#",
	)
	runDecisions(t, f, []decision{
		{"baseline", anon, pub, "devices/anon1/x", true},
		{"id '#'", tern.Client{ID: "#"}, pub, "devices/other/x", false},
		{"id '#' own literal", tern.Client{ID: "#"}, pub, "devices/#/x", false},
		{"id '+'", tern.Client{ID: "+"}, read, "devices/other/x", false},
		{"id 'a/#'", tern.Client{ID: "a/#"}, sub, "devices/a/#", false},
		{"id 'x/y' reaching into device x", tern.Client{ID: "x/y"}, pub, "devices/x/y/z", false},
		{"unsafe id is refused everything", tern.Client{ID: "x/y"}, read, "public/news", false},
		{"unsafe id subscribe", tern.Client{ID: "x/y"}, sub, "public/#", false},
		{"empty id: %c rule does not apply", tern.Client{}, pub, "devices//x", false},
		{"empty id: other rules apply", tern.Client{}, read, "public/news", true},
		{"id $SYS does not reach $SYS", tern.Client{ID: "$SYS"}, read, "$SYS/x", false},
		{"id $SYS subscribe", tern.Client{ID: "$SYS"}, sub, "$SYS/#", false},
		{"id $SYS has its normal rights", tern.Client{ID: "$SYS"}, read, "public/x", true},
	})

	u := mustParse(t,
		"anonymous on",
		"user alice HASH(a)",
		"acl all allow readwrite home/%u/#",
		"acl all allow read public/#",
	)
	runDecisions(t, u, []decision{
		{"baseline", alice, pub, "home/alice/x", true},
		// User names come from the file, but another hook may let
		// others connect; their names are checked the same way.
		{"user '#'", tern.Client{ID: "c", Username: "#"}, read, "home/bob/x", false},
		{"user 'a/#'", tern.Client{ID: "c", Username: "a/#"}, read, "home/a/x", false},
		{"user '+'", tern.Client{ID: "c", Username: "+"}, sub, "home/+/x", false},
		{"user 'alice/x'", tern.Client{ID: "c", Username: "alice/x"}, read, "home/alice/x/y", false},
		{"unsafe user refused everything", tern.Client{ID: "c", Username: "a+"}, read, "public/x", false},
		{"unsafe id is fine without %c rules", tern.Client{ID: "a/#", Username: "alice"}, pub, "home/alice/x", true},
		{"anonymous skips %u", anon, read, "public/x", true},
	})
}

// TestUnlistedUser covers a user name the file does not list (accepted by
// another Authenticator): only the "all" rules count.
func TestUnlistedUser(t *testing.T) {
	f := mustParse(t, policy...)
	carol := tern.Client{ID: "carol-1", Username: "carol"}
	runDecisions(t, f, []decision{
		{"all %u rule", carol, read, "users/carol/inbox", true},
		{"all %c rule", carol, pub, "devices/carol-1/x", true},
		{"anonymous rule", carol, read, "public/news", false},
		{"other user's rule", carol, read, "home/x", false},
	})
}

func TestNoACLAllowsEverything(t *testing.T) {
	f := mustParse(t, "anonymous on", "user alice HASH(a)")
	for _, c := range []tern.Client{anon, alice} {
		for _, o := range []op{pub, read, sub} {
			for _, topic := range []string{"a/b", "$SYS/x"} {
				assert.True(t, allowed(t, f, c, o, topic), "%s %q by %q refused by a file without acl lines", o, topic, c.Username)
			}
		}
	}
	// Malformed input is still refused.
	assert.False(t, f.AuthorizeRead(anon, "a/+"), "malformed topic allowed")
	assert.False(t, allowed(t, f, anon, pub, ""), "empty topic allowed")
	assert.False(t, allowed(t, f, anon, sub, "a/#/b"), "malformed filter allowed")
}

func TestOnlyDenyRulesDenyEverything(t *testing.T) {
	f := mustParse(t, "anonymous on", "acl all deny write secret/#")
	assert.False(t, allowed(t, f, anon, pub, "public/x"), "a file with acl lines allowed what no rule allows")
	assert.False(t, allowed(t, f, anon, read, "public/x"), "a file with acl lines allowed what no rule allows")
}

func TestInternalClientsAreNotChecked(t *testing.T) {
	f := mustParse(t, "acl all deny readwrite #")
	in := tern.Client{Internal: true}
	for _, o := range []op{pub, read, sub} {
		assert.True(t, allowed(t, f, in, o, "x/y"), "internal %s refused", o)
	}
}

func TestRuleOrderDoesNotMatter(t *testing.T) {
	a := mustParse(t, "acl all allow read a/#", "acl all deny read a/b")
	b := mustParse(t, "acl all deny read a/b", "acl all allow read a/#")
	c := tern.Client{ID: "x"}
	for _, f := range []*auth.File{a, b} {
		assert.False(t, f.AuthorizeRead(c, "a/b"), "deny did not win regardless of order")
		assert.True(t, f.AuthorizeRead(c, "a/c"), "allow lost to a deny that does not match")
	}
}

func TestACLBeforeUserLine(t *testing.T) {
	f := mustParse(t, "acl user alice allow read a/#", "user alice HASH(a)")
	assert.True(t, f.AuthorizeRead(alice, "a/b"), "a rule written before its user line does not apply")
}

func TestPercentEscape(t *testing.T) {
	f := mustParse(t, "acl all allow read rate/50%%/%%u")
	assert.True(t, f.AuthorizeRead(tern.Client{ID: "x", Username: "u"}, "rate/50%/%u"), "%% is not a literal %")
	assert.False(t, f.AuthorizeRead(tern.Client{ID: "x", Username: "u"}, "rate/50%/u"), "%%u was substituted")
}

func TestAuthorizeReadDoesNotAllocate(t *testing.T) {
	f := mustParse(t, policy...)
	var sink bool
	for _, tc := range []struct {
		c     tern.Client
		topic string
	}{
		{bob, "home/carol/lamp"},
		{anon, "devices/anon1/state/deep/er"},
		{bob, "users/bob/inbox"},
		{alice, "nothing/matches/here"},
	} {
		n := testing.AllocsPerRun(100, func() { sink = f.AuthorizeRead(tc.c, tc.topic) })
		assert.Zero(t, n, "AuthorizeRead(%q, %q) allocates", tc.c.Username, tc.topic)
	}
	_ = sink
}

func BenchmarkAuthorizeRead(b *testing.B) {
	f := mustParse(b, policy...)
	for _, bc := range []struct {
		name  string
		c     tern.Client
		topic string
	}{
		{"user-allow", bob, "home/carol/lamp"},
		{"user-deny", bob, "home/alice/lamp"},
		{"pattern", anon, "devices/anon1/state"},
		{"no-match", alice, "nothing/matches/here"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.AuthorizeRead(bc.c, bc.topic)
			}
		})
	}
}
