package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// Vectors from Debian's mosquitto_passwd 2.0.11 (testdata/mosquitto.passwd).
const (
	aliceHash7 = "$7$101$nHA4cqQOqBH9KKyY$X5/ldpY5TG8HtdyPplu9rkOduJfW7dL5beD1vQrvqq40+OPQLEEnhHLC/SZMwm5Txtc5I0RpecsB/O4pyN9M3g==" // alice-password
	daveHash6  = "$6$DGrjk1duO1fEhQZD$S2/BBUH5WM71m7lvIc0KD3AeKjLsSoNdKeT+mEUtrFYSC/Jrvw51M1BI6+b9QyvyC/wLBbYVdp/wRQerrm5LSg=="     // dave-password
)

func TestParseHashKinds(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte("bc-password"), bcrypt.MinCost)
	require.NoError(t, err)
	tests := []struct {
		hash, password string
		kind           hashKind
		cost           int
	}{
		{aliceHash7, "alice-password", kindPBKDF2, 101},
		{daveHash6, "dave-password", kindSHA512, 0},
		{string(bc), "bc-password", kindBcrypt, bcrypt.MinCost},
		{"$2y$" + string(bc[4:]), "bc-password", kindBcrypt, bcrypt.MinCost},
	}
	for _, tt := range tests {
		h, err := parseHash(tt.hash)
		require.NoError(t, err, tt.hash)
		assert.Equal(t, tt.kind, h.kind)
		assert.Equal(t, tt.cost, h.cost)
		assert.True(t, h.match([]byte(tt.password)), "%s matches its password", tt.hash)
		assert.False(t, h.match([]byte(tt.password+"x")), "%s matches another password", tt.hash)
		assert.False(t, h.match(nil), "%s matches no password", tt.hash)
		assert.Equal(t, tt.hash, h.String(), "formats back as read")
	}
}

// TestDummyForMixedHashes checks that the hash for unknown users has the
// most common kind and cost among the users', the costlier on a tie.
func TestDummyForMixedHashes(t *testing.T) {
	p7, err := parseHash(aliceHash7)
	require.NoError(t, err)
	p6, err := parseHash(daveHash6)
	require.NoError(t, err)
	b4, err := newHash(kindBcrypt, 4, []byte("x"))
	require.NoError(t, err)

	d, err := dummyFor(map[string]*pwHash{"a": p7, "b": p7, "c": b4})
	require.NoError(t, err)
	assert.Equal(t, kindPBKDF2, d.kind, "the most common kind")
	assert.Equal(t, 101, d.cost)
	assert.False(t, d.match([]byte("alice-password")))
	assert.NotEqual(t, p7.salt, d.salt, "a salt of its own")

	d, err = dummyFor(map[string]*pwHash{"a": p6, "b": p7, "c": b4})
	require.NoError(t, err)
	assert.Equal(t, kindBcrypt, d.kind, "a tie goes to the costlier")

	d, err = dummyFor(nil)
	require.NoError(t, err)
	assert.Nil(t, d)
}

func TestBcryptLongPasswords(t *testing.T) {
	long := strings.Repeat("p", 72)
	h, err := newHash(kindBcrypt, bcrypt.MinCost, []byte(long))
	require.NoError(t, err)
	assert.True(t, h.match([]byte(long)))
	assert.False(t, h.match([]byte(long+"x")), "a 73-byte password is refused, not cut")
}

// TestMatchFilterAgreesWithTopicMatches checks the matcher that takes
// bytes (for expanded patterns) against topicMatches, over every filter
// and topic of a small alphabet.
func TestMatchFilterAgreesWithTopicMatches(t *testing.T) {
	var filters []string
	for _, f := range universe([]string{"a", "$s", "+", "#", ""}, 3) {
		if validFilter(f) == nil {
			filters = append(filters, f)
		}
	}
	names := universe([]string{"a", "$s", "z", ""}, 4)
	for _, f := range filters {
		for _, n := range names {
			if !validName(n) {
				continue
			}
			want := topicMatches(f, n)
			if matchFilter(f, n) != want || matchFilter([]byte(f), n) != want {
				require.Equal(t, want, matchFilter(f, n), "matchFilter(%q, %q)", f, n)
				require.Equal(t, want, matchFilter([]byte(f), n), "matchFilter([]byte(%q), %q)", f, n)
			}
		}
	}
}

// TestPatternExpansion follows Mosquitto 2.0: %c and %u anywhere, any
// other '%' literal.
func TestPatternExpansion(t *testing.T) {
	tests := []struct {
		raw, user, id, want  string
		usesUser, usesClient bool
	}{
		{"a/%c/b", "u", "dev", "a/dev/b", false, true},
		{"x%cy/%u", "bob", "1", "x1y/bob", true, true},
		{"%%u", "bob", "1", "%bob", true, false},
		{"50%/%x/%", "u", "c", "50%/%x/%", false, false},
		{"%c%c", "u", "ab", "abab", false, true},
		{"home/%u/#", "org/alice", "c", "home/org/alice/#", true, false},
	}
	for _, tt := range tests {
		r := &mosqRule{filter: tt.raw}
		r.compilePattern()
		assert.Equal(t, tt.want, string(r.expand(nil, tt.user, tt.id)), tt.raw)
		assert.Equal(t, tt.usesUser, r.usesUser, tt.raw)
		assert.Equal(t, tt.usesClient, r.usesClient, tt.raw)
	}
}
