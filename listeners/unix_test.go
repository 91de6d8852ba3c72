package listeners

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// socketPath returns a short socket path in a fresh directory.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tern")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "mqtt.sock")
}

func TestUnixAcceptExchangeCloseRemovesFile(t *testing.T) {
	checkGoroutines(t)
	path := socketPath(t)
	l, err := Unix(path)
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptOne(t, l)
	client, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server := receive(t, accepted)
	exchange(t, client, server)

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

func TestUnixRemovesStaleSocket(t *testing.T) {
	path := socketPath(t)
	// A listener that dies without removing its file leaves a stale socket.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	_ = old.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("stale socket not in place: %v", err)
	}

	l, err := Unix(path)
	if err != nil {
		t.Fatalf("Unix over a stale socket: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	accepted := acceptOne(t, l)
	client, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	exchange(t, client, receive(t, accepted))
}

func TestUnixRefusesLiveSocket(t *testing.T) {
	path := socketPath(t)
	live, err := Unix(path)
	if err != nil {
		t.Fatal(err)
	}
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

	if l, err := Unix(path); !errors.Is(err, syscall.EADDRINUSE) {
		if l != nil {
			_ = l.Close()
		}
		t.Fatalf("Unix on a served path: %v, want EADDRINUSE", err)
	}
	if c, err := net.Dial("unix", path); err != nil {
		t.Fatalf("the live listener lost its socket: %v", err)
	} else {
		_ = c.Close()
	}
}

func TestUnixRefusesRegularFile(t *testing.T) {
	path := socketPath(t)
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := Unix(path); !errors.Is(err, fs.ErrExist) {
		if l != nil {
			_ = l.Close()
		}
		t.Fatalf("Unix on a regular file: %v, want fs.ErrExist", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
		t.Fatalf("regular file changed: %q, %v", b, err)
	}
}
