package auth_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

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
	require.NoError(t, err)
	hashes.Store(password, string(h))
	return string(h)
}

// file builds an auth file from lines; "HASH(pw)" is replaced by a hash of
// pw.
func file(t testing.TB, lines ...string) string {
	t.Helper()
	out := make([]string, len(lines))
	for i, l := range lines {
		for {
			start := strings.Index(l, "HASH(")
			if start < 0 {
				break
			}
			end := strings.Index(l[start:], ")")
			l = l[:start] + hash(t, l[start+5:start+end]) + l[start+end+1:]
		}
		out[i] = l
	}
	return strings.Join(out, "\n") + "\n"
}

func mustParse(t testing.TB, lines ...string) *auth.File {
	t.Helper()
	f, err := auth.Parse(strings.NewReader(file(t, lines...)), "test.conf")
	require.NoError(t, err, "Parse")
	return f
}

// writeFile writes file(lines) to a new file and returns its path.
func writeFile(t testing.TB, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.conf")
	writeTo(t, path, lines...)
	return path
}

func writeTo(t testing.TB, path string, lines ...string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(file(t, lines...)), 0o600))
}

func netipMustParse(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
