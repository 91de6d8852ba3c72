package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

// passwdRun runs tern passwd with args and stdin.
func passwdRun(stdin string, args ...string) (string, error) {
	var stderr bytes.Buffer
	err := run(context.Background(), append([]string{"passwd"}, args...), env{stdin: strings.NewReader(stdin), stdout: &stderr, stderr: &stderr})
	return stderr.String(), err
}

// checkLogin reports whether the password file accepts user's password,
// as the broker would.
func checkLogin(t *testing.T, file, user, password string) error {
	t.Helper()
	m, err := auth.LoadMosquitto(auth.MosquittoFiles{PasswordFile: file}, auth.Options{})
	require.NoError(t, err)
	return m.Authenticate(context.Background(), tern.ConnectInfo{
		ClientID: "c", Username: user, HasUsername: true, Password: []byte(password), HasPassword: true,
		RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)},
	})
}

// TestPasswd: tern passwd creates, updates and deletes users as
// mosquitto_passwd does, keeping the users it does not touch (here, those
// Debian's mosquitto_passwd wrote).
func TestPasswd(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")

	_, err := passwdRun("", "-b", file, "alice", "pw")
	require.ErrorContains(t, err, "-c creates a new file", "no file without -c")

	_, err = passwdRun("", "-c", "-b", file, "alice", "alice-pw")
	require.NoError(t, err)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	assert.NoError(t, checkLogin(t, file, "alice", "alice-pw"))

	// Asked twice, read from standard input when it is not a terminal.
	_, err = passwdRun("bob-pw\nbob-pw\n", file, "bob")
	require.NoError(t, err)
	assert.NoError(t, checkLogin(t, file, "bob", "bob-pw"))
	assert.NoError(t, checkLogin(t, file, "alice", "alice-pw"), "other users are kept")

	_, err = passwdRun("one\ntwo\n", file, "bob")
	assert.ErrorContains(t, err, "passwords do not match")
	_, err = passwdRun("\n\n", file, "bob")
	assert.ErrorContains(t, err, "empty password")
	_, err = passwdRun("only-once\n", file, "bob")
	assert.ErrorContains(t, err, "reading the password")
	assert.NoError(t, checkLogin(t, file, "bob", "bob-pw"), "a failed change changes nothing")

	// Update with another iteration count.
	_, err = passwdRun("", "-I", "1000", "-b", file, "bob", "new-bob-pw")
	require.NoError(t, err)
	assert.NoError(t, checkLogin(t, file, "bob", "new-bob-pw"))
	assert.Contains(t, readFile(t, file), "bob:$7$1000$")

	_, err = passwdRun("", "-D", file, "alice")
	require.NoError(t, err)
	assert.ErrorIs(t, checkLogin(t, file, "alice", "alice-pw"), tern.ErrBadCredentials)
	_, err = passwdRun("", "-D", file, "alice")
	assert.ErrorContains(t, err, `user "alice" not in`)

	// -c replaces the file.
	_, err = passwdRun("", "-c", "-b", file, "carol", "carol-pw")
	require.NoError(t, err)
	assert.ErrorIs(t, checkLogin(t, file, "bob", "new-bob-pw"), tern.ErrBadCredentials)
	assert.NoError(t, checkLogin(t, file, "carol", "carol-pw"))

	// A file mosquitto_passwd wrote keeps its users.
	debian := filepath.Join(dir, "debian.passwd")
	orig, err := os.ReadFile("../../auth/testdata/mosquitto.passwd")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(debian, orig, 0o600))
	_, err = passwdRun("", "-b", debian, "newbie", "newbie-pw")
	require.NoError(t, err)
	assert.NoError(t, checkLogin(t, debian, "newbie", "newbie-pw"))
	assert.NoError(t, checkLogin(t, debian, "alice", "alice-password"))
	assert.True(t, strings.HasPrefix(readFile(t, debian), string(orig)), "the other lines are kept as they were")

	for _, bad := range [][]string{
		{file},                                 // no user
		{"-b", file, "x"},                      // no password
		{"-c", "-D", file, "x"},                // both
		{"-D", "-b", file, "x", "y"},           // delete with a password
		{"-H", "sha512", "-b", file, "x", "y"}, // Mosquitto 1.x hashes
	} {
		_, err := passwdRun("", bad...)
		assert.Error(t, err, "%v", bad)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
