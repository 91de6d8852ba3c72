//go:build unix

package tern

import (
	"errors"
	"net"
	"syscall"
)

// shedMax bounds the connections one shed call refuses, so that a flood of
// new connections cannot hold the accept loop in it.
const shedMax = 1024

// fdReserve is one open descriptor (on /dev/null) that an accept loop holds
// for the moment the process runs out of descriptors. Accept then fails
// with EMFILE (or ENFILE) and leaves the connections waiting in the
// listener's backlog, where their clients would hang until they time out.
// Giving the reserve up lets the loop accept them and close them at once,
// so their clients see a clean close, and the reserve is taken back: the
// technique of libuv and nginx.
type fdReserve struct {
	fd int // -1 while released or lost
}

// newFDReserve takes a reserve descriptor. Without one (the process is
// already out of descriptors), shed tries to take it later.
func newFDReserve() *fdReserve {
	r := &fdReserve{fd: -1}
	r.take()
	return r
}

func (r *fdReserve) take() {
	if r.fd >= 0 {
		return
	}
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err == nil {
		r.fd = fd
	}
}

func (r *fdReserve) release() {
	if r.fd >= 0 {
		_ = syscall.Close(r.fd)
		r.fd = -1
	}
}

// close gives the reserve up for good.
func (r *fdReserve) close() { r.release() }

// shed refuses the connections waiting on l after its Accept failed with
// err, and returns how many it refused. It acts only when err is EMFILE or
// ENFILE and l exposes its socket (syscall.Conn: *net.TCPListener and
// *net.UnixListener do): it releases the reserve, accepts every waiting
// connection without blocking and closes it at once, and takes the reserve
// back.
func (r *fdReserve) shed(l net.Listener, err error) int {
	if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
		return 0
	}
	sc, ok := l.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, rerr := sc.SyscallConn()
	if rerr != nil {
		return 0
	}
	r.release()
	defer r.take()
	n := 0
	_ = rc.Control(func(lfd uintptr) {
		for n < shedMax {
			// The fork lock keeps the descriptor, opened without
			// close-on-exec, from leaking into a child process.
			syscall.ForkLock.RLock()
			fd, _, aerr := syscall.Accept(int(lfd))
			if aerr == nil {
				_ = syscall.Close(fd)
			}
			syscall.ForkLock.RUnlock()
			switch {
			case aerr == nil:
				n++
			case errors.Is(aerr, syscall.EINTR) || errors.Is(aerr, syscall.ECONNABORTED):
			default:
				// EAGAIN: nothing left to refuse (the socket does
				// not block). EMFILE: something else took the released
				// descriptor.
				return
			}
		}
	})
	return n
}

// loadErrno reports the errors accept(2) returns under load or for a
// connection that failed before it was accepted, which Serve retries:
// buffers or memory exhausted, and the network errors Linux passes on from
// a pending connection.
func loadErrno(err error) bool {
	for _, e := range []syscall.Errno{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO,
		syscall.ENETDOWN, syscall.ENETUNREACH, syscall.EHOSTDOWN,
		syscall.EHOSTUNREACH, syscall.ENOPROTOOPT, syscall.EOPNOTSUPP,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// fileLimit returns the process's RLIMIT_NOFILE soft limit, if it has one.
func fileLimit() (uint64, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return uint64(lim.Cur), true
}
