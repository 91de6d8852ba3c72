package auth_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

// mosquitto7 is the form of mosquitto_passwd's $7$ hashes.
var mosquitto7 = regexp.MustCompile(`^\$7\$[0-9]+\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$`)

func TestHashPBKDF2(t *testing.T) {
	h, err := auth.HashPBKDF2([]byte("s3cret"), 0)
	require.NoError(t, err)
	assert.Regexp(t, mosquitto7, h)
	assert.True(t, strings.HasPrefix(h, "$7$210000$"), "the default iteration count: %s", h)
	h2, err := auth.HashPBKDF2([]byte("s3cret"), 0)
	require.NoError(t, err)
	assert.NotEqual(t, h, h2, "each hash has its own salt")

	low, err := auth.HashPBKDF2([]byte("s3cret"), 101)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(low, "$7$101$"))

	for _, bad := range []struct {
		pw   string
		iter int
		want string
	}{
		{"", 0, "auth: empty password"},
		{"a\x00b", 0, "auth: password contains a NUL byte, which Mosquitto would cut it at"},
		{"pw", -1, "auth: iterations must be from 1 to 2147483647, got -1"},
	} {
		_, err := auth.HashPBKDF2([]byte(bad.pw), bad.iter)
		assert.EqualError(t, err, bad.want)
	}
}

// TestSetPassword edits a password file as mosquitto_passwd does, and
// checks that the hook reads the result.
func TestSetPassword(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	ctx := t.Context()

	// A new file.
	require.NoError(t, auth.SetPassword(path, "alice", "alice-password"))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "a new file is the owner's only")
	m := loadMosquitto(t, auth.MosquittoFiles{PasswordFile: path})
	assert.NoError(t, m.Authenticate(ctx, login("alice", "alice-password", nil)))

	// Other lines stay as they are; a user is replaced where it stands.
	raw, err := os.ReadFile(passwdFile)
	require.NoError(t, err)
	before := "# Mosquitto users\n\n" + string(raw) + "  # the end, without a line end"
	require.NoError(t, os.WriteFile(path, []byte(before), 0o600))
	require.NoError(t, os.Chmod(path, 0o640))
	require.NoError(t, auth.SetPasswordHash(path, "bob", hashOf(t, "bob")))
	require.NoError(t, auth.SetPasswordHash(path, "zoe", hashOf(t, "zoe")))
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	wantLines := strings.Split(before, "\n")
	gotLines := strings.Split(strings.TrimSuffix(string(after), "\n"), "\n")
	require.Len(t, gotLines, len(wantLines)+1, "one line added:\n%s", after)
	for i, l := range wantLines {
		if strings.HasPrefix(l, "bob:") {
			assert.True(t, strings.HasPrefix(gotLines[i], "bob:$7$10$"), "bob's line replaced in place: %q", gotLines[i])
			continue
		}
		assert.Equal(t, l, gotLines[i], "line %d kept", i+1)
	}
	assert.True(t, strings.HasPrefix(gotLines[len(gotLines)-1], "zoe:$7$10$"), "zoe added at the end")
	fi, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o640), fi.Mode().Perm(), "the file keeps its mode")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")

	m = loadMosquitto(t, auth.MosquittoFiles{PasswordFile: path})
	for user, pw := range mosquittoPasswords {
		if user == "bob" {
			pw = "bob-password"
		}
		assert.NoError(t, m.Authenticate(ctx, login(user, pw, nil)), user)
	}
	assert.NoError(t, m.Authenticate(ctx, login("zoe", "zoe-password", nil)))
	assert.ErrorIs(t, m.Authenticate(ctx, login("bob", "bob pässword", nil)), tern.ErrBadCredentials, "bob's old password")

	// Deleting.
	require.NoError(t, auth.DeleteUser(path, "carol"))
	err = auth.DeleteUser(path, "carol")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.EqualError(t, err, "auth: "+path+` has no user "carol": file does not exist`)
	require.NoError(t, m.Reload())
	assert.ErrorIs(t, m.Authenticate(ctx, login("carol", "carol-password", nil)), tern.ErrBadCredentials)
	assert.NoError(t, m.Authenticate(ctx, login("dave", "dave-password", nil)))
	assert.ErrorIs(t, auth.DeleteUser(filepath.Join(dir, "missing"), "alice"), fs.ErrNotExist)

	// A bcrypt hash may go in too: Tern reads it.
	bc, err := auth.HashPassword([]byte("erin-bcrypt"))
	require.NoError(t, err)
	require.NoError(t, auth.SetPasswordHash(path, "erin", bc))
	require.NoError(t, m.Reload())
	assert.NoError(t, m.Authenticate(ctx, login("erin", "erin-bcrypt", nil)))
}

func TestSetPasswordRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	for _, tt := range []struct{ user, pw, want string }{
		{"", "pw", "auth: empty user name"},
		{"a:b", "pw", `auth: user name "a:b" contains ':', a line break or NUL, which a password file cannot hold`},
		{"a\nb", "pw", `auth: user name "a\nb" contains ':', a line break or NUL, which a password file cannot hold`},
		{" alice", "pw", `auth: user name " alice" starts or ends with a blank, which Mosquitto trims`},
		{"#alice", "pw", `auth: user name "#alice" starts with '#', which makes a comment line`},
		{"\xff", "pw", `auth: user name "\xff" is not valid UTF-8`},
		{"alice", "", "auth: empty password"},
	} {
		assert.EqualError(t, auth.SetPassword(path, tt.user, tt.pw), tt.want)
	}
	assert.EqualError(t, auth.SetPasswordHash(path, "alice", "plain"),
		"auth: unknown password hash: want $7$ or $6$ (mosquitto_passwd) or $2a$, $2b$, $2y$ (bcrypt)")
	_, err := os.Stat(path)
	assert.ErrorIs(t, err, fs.ErrNotExist, "nothing written")

	// A file with a mistake is not edited.
	require.NoError(t, os.WriteFile(path, []byte("alice:plain\n"), 0o600))
	err = auth.SetPassword(path, "bob", "bob-password")
	assert.ErrorContains(t, err, path+`:1: user "alice": unknown password hash`)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "alice:plain\n", string(raw))
}
