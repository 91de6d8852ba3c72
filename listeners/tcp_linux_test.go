package listeners

import (
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sockopt reads an integer socket option of a TCP connection or listener.
func sockopt(t *testing.T, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	var v int
	var serr error
	require.NoError(t, rc.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), level, opt) }))
	require.NoError(t, serr, "getsockopt(%d, %d)", level, opt)
	return v
}

func TestTCPSocketOptions(t *testing.T) {
	l, err := TCP("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	accepted := acceptOne(t, l)
	client, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	server := receive(t, accepted).(*net.TCPConn)

	ka := TCPKeepAlive()
	tests := []struct {
		name       string
		conn       syscall.Conn
		level, opt int
		want       int
	}{
		{"SO_REUSEADDR on the listener", l.(*net.TCPListener), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1},
		{"SO_KEEPALIVE", server, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", server, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(ka.Idle.Seconds())},
		{"TCP_KEEPINTVL", server, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(ka.Interval.Seconds())},
		{"TCP_KEEPCNT", server, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, ka.Count},
		{"TCP_NODELAY", server, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, sockopt(t, tt.conn, tt.level, tt.opt), tt.name)
	}
}
