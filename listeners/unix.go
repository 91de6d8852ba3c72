package listeners

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"
)

// unixProbeTimeout bounds the dial that checks whether an existing socket
// file still has a listener behind it.
const unixProbeTimeout = time.Second

// Unix listens on the unix domain socket at path and returns a plain
// *net.UnixListener, which removes the socket file when it is closed.
//
// A socket file left behind by a process that died without closing its
// listener is removed first, but only when it is a socket and nothing answers
// on it: Unix dials it, and a refused connection marks it stale. Unix refuses
// to start when another listener answers on path, and it never deletes a
// file that is not a socket.
//
// The check and the removal are not atomic: two processes starting on the
// same path at the same moment can race. Give each broker its own path.
func Unix(path string) (net.Listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listeners: unix listen %s: %w", path, err)
	}
	return l, nil
}

// removeStaleSocket removes the socket file at path if no listener answers
// on it. A missing file is not an error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listeners: unix %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listeners: unix %s: file exists and is not a socket (%v): %w",
			path, fi.Mode().Type(), fs.ErrExist)
	}
	c, err := net.DialTimeout("unix", path, unixProbeTimeout)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("listeners: unix %s: another listener is serving this socket: %w",
			path, syscall.EADDRINUSE)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listeners: unix %s: cannot tell whether the socket is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listeners: unix %s: removing stale socket: %w", path, err)
	}
	return nil
}
