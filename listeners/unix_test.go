package listeners

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// socketPath returns a short socket path in a fresh directory.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tern")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "mqtt.sock")
}

func TestUnixAcceptExchangeCloseRemovesFile(t *testing.T) {
	checkGoroutines(t)
	path := socketPath(t)
	l, err := Unix(path)
	require.NoError(t, err)
	accepted := acceptOne(t, l)
	client, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	server := receive(t, accepted)
	exchange(t, client, server)

	require.NoError(t, l.Close(), "Close")
	_, err = os.Lstat(path)
	assert.ErrorIs(t, err, fs.ErrNotExist, "socket file after Close: want it removed")
	_, err = l.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Accept after Close")
}

func TestUnixRemovesStaleSocket(t *testing.T) {
	path := socketPath(t)
	// A listener that dies without removing its file leaves a stale socket.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	old.SetUnlinkOnClose(false)
	_ = old.Close()
	fi, err := os.Lstat(path)
	require.NoError(t, err, "stale socket not in place")
	require.Equal(t, fs.ModeSocket, fi.Mode().Type(), "stale socket not in place")

	l, err := Unix(path)
	require.NoError(t, err, "Unix over a stale socket")
	t.Cleanup(func() { _ = l.Close() })
	accepted := acceptOne(t, l)
	client, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	exchange(t, client, receive(t, accepted))
}

func TestUnixRefusesLiveSocket(t *testing.T) {
	path := socketPath(t)
	live, err := Unix(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = live.Close() })
	go func() { // answer the probe dial
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()

	l, err := Unix(path)
	if l != nil {
		_ = l.Close()
	}
	require.ErrorIs(t, err, syscall.EADDRINUSE, "Unix on a served path")
	c, err := net.Dial("unix", path)
	require.NoError(t, err, "the live listener lost its socket")
	_ = c.Close()
}

func TestUnixRefusesRegularFile(t *testing.T) {
	path := socketPath(t)
	require.NoError(t, os.WriteFile(path, []byte("precious"), 0o600))
	l, err := Unix(path)
	if l != nil {
		_ = l.Close()
	}
	require.ErrorIs(t, err, fs.ErrExist, "Unix on a regular file")
	b, err := os.ReadFile(path)
	require.NoError(t, err, "regular file changed")
	require.Equal(t, "precious", string(b), "regular file changed")
}
