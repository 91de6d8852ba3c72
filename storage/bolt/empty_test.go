package bolt_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/storage/bolt"
)

// An empty file at the store's path is not a new store: Open never leaves
// its file empty, so starting silently with no state would hide a
// truncated file or a wrong path. Open fails, naming the file.
func TestOpenRefusesAnEmptyFileNamingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	st, err := bolt.Open(path, bolt.Options{})
	if err == nil {
		st.Close()
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, bolt.ErrCorrupt)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "empty")

	// A file Open created, and closed at once, opens again.
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	st, err = bolt.Open(fresh, bolt.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	st, err = bolt.Open(fresh, bolt.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Close())
}
