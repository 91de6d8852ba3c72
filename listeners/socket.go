package listeners

import (
	"crypto/tls"
	"net"
	"syscall"
)

// Socket returns the socket that carries c, for a server that waits for
// c's next bytes with its own poller (as Tern's broker parks idle
// connections on epoll) rather than with a goroutine blocked in Read.
//
//   - A *net.TCPConn or *net.UnixConn is its own socket: layered is false.
//   - A *tls.Conn over one of those, and a WebSocket connection of this
//     package (over TCP or TLS), are layered: they may hold bytes already
//     read from the socket and not yet returned by Read, which a poller of
//     the socket does not see. A Read after the read deadline has passed
//     returns such bytes without touching the socket, or a timeout error
//     that leaves the connection usable (crypto/tls keeps no timeout
//     error: net's deadline errors are temporary). Once such a Read has
//     timed out, whatever comes next comes through the socket.
//
// ok is false for any other connection. Layered connections must have
// completed their handshake before the socket is watched: a server does
// that after it has read the first bytes through them.
func Socket(c net.Conn) (raw syscall.RawConn, layered, ok bool) {
	for depth := 0; depth < maxUnwrap; depth++ {
		switch v := c.(type) {
		case *net.TCPConn:
			rc, err := v.SyscallConn()
			return rc, depth > 0, err == nil
		case *net.UnixConn:
			rc, err := v.SyscallConn()
			return rc, depth > 0, err == nil
		case *tls.Conn:
			c = v.NetConn()
		case *wsConn:
			c = v.nc
		default:
			return nil, false, false
		}
	}
	return nil, false, false
}
