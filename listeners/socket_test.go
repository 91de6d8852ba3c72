package listeners

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/listeners/testcert"
)

// longAgo is a read deadline that has passed.
var longAgo = time.Unix(1, 0)

// fdOf returns the descriptor raw controls.
func fdOf(t *testing.T, raw syscall.RawConn) uintptr {
	t.Helper()
	var fd uintptr
	require.NoError(t, raw.Control(func(s uintptr) { fd = s }))
	return fd
}

// Socket finds the socket under each connection this package accepts: the
// connection itself for TCP and unix sockets, the TCP socket under the
// layers for TLS and WebSocket; none for in-memory connections.
func TestSocket(t *testing.T) {
	certs := testcert.New(t)
	tcpPair := func(t *testing.T) (server, client net.Conn) {
		l, err := TCP("127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		accepted := acceptOne(t, l)
		client, err = net.DialTimeout("tcp", l.Addr().String(), waitTimeout)
		require.NoError(t, err)
		t.Cleanup(func() { _ = client.Close() })
		return receive(t, accepted), client
	}
	tests := []struct {
		name    string
		conn    func(t *testing.T) (server net.Conn, under net.Conn)
		layered bool
	}{
		{"tcp", func(t *testing.T) (net.Conn, net.Conn) {
			s, _ := tcpPair(t)
			return s, s
		}, false},
		{"unix", func(t *testing.T) (net.Conn, net.Conn) {
			path := socketPath(t)
			l, err := Unix(path)
			require.NoError(t, err)
			t.Cleanup(func() { _ = l.Close() })
			accepted := acceptOne(t, l)
			client, err := net.Dial("unix", path)
			require.NoError(t, err)
			t.Cleanup(func() { _ = client.Close() })
			s := receive(t, accepted)
			return s, s
		}, false},
		{"tls", func(t *testing.T) (net.Conn, net.Conn) {
			l := newTLS(t, certs.ServerConfig(tls.NoClientCert), TLSOptions{})
			accepted := acceptOne(t, l)
			_, err := dialTLS(t, l, certs.ClientConfig())
			require.NoError(t, err)
			s := receive(t, accepted)
			return s, s.(*tls.Conn).NetConn()
		}, true},
		{"websocket", func(t *testing.T) (net.Conn, net.Conn) {
			l := listenWS(t, nil, WebSocketOptions{})
			_, s := connectWS(t, l, l.Addr().(WebSocketAddr), nil)
			return s, s.(*wsConn).nc
		}, true},
		{"websocket over tls", func(t *testing.T) (net.Conn, net.Conn) {
			l := listenWS(t, certs.ServerConfig(tls.NoClientCert), WebSocketOptions{})
			_, s := connectWS(t, l, l.Addr().(WebSocketAddr), certs.ClientConfig())
			return s, s.(*wsConn).nc.(*tls.Conn).NetConn()
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, under := tt.conn(t)
			raw, layered, ok := Socket(server)
			require.True(t, ok, "Socket(%T) found no socket", server)
			assert.Equal(t, tt.layered, layered, "layered")
			want, err := under.(syscall.Conn).SyscallConn()
			require.NoError(t, err)
			assert.Equal(t, fdOf(t, want), fdOf(t, raw), "the socket under the layers")
		})
	}
	t.Run("memory", func(t *testing.T) {
		_, server := memPair(t, NewMemory())
		_, _, ok := Socket(server)
		assert.False(t, ok, "an in-memory connection has no socket")
	})
	t.Run("pipe", func(t *testing.T) {
		a, b := net.Pipe()
		t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
		_, _, ok := Socket(a)
		assert.False(t, ok, "net.Pipe has no socket")
	})
}

// heldWriter is a connection whose writes are held until flush, which sends
// them in one write.
type heldWriter struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	held []byte
}

func (c *heldWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *heldWriter) start() {
	c.mu.Lock()
	c.hold = true
	c.mu.Unlock()
}

func (c *heldWriter) flush(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	_, err := c.Conn.Write(c.held)
	require.NoError(t, err)
	c.held = nil
}

// readPassed reads from c with its read deadline passed.
func readPassed(t *testing.T, c net.Conn, p []byte) (int, error) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(longAgo))
	return c.Read(p)
}

// What Socket promises of a TLS connection, as crypto/tls behaves: records
// that arrived in one read wait in the connection, where the socket no
// longer shows them, and a Read with its deadline passed returns them
// without touching the socket; once it times out, the connection is still
// usable (crypto/tls keeps no timeout error).
func TestTLSReadWithDeadlinePassed(t *testing.T) {
	certs := testcert.New(t)
	l := newTLS(t, certs.ServerConfig(tls.NoClientCert), TLSOptions{})
	accepted := acceptOne(t, l)
	raw, err := net.DialTimeout("tcp", l.Addr().String(), waitTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	hw := &heldWriter{Conn: raw}
	cfg := certs.ClientConfig()
	cfg.ServerName = "localhost"
	client := tls.Client(hw, cfg)
	require.NoError(t, client.Handshake())
	server := receive(t, accepted)

	hw.start()
	for _, m := range []string{"first", "second", "third"} {
		_, err := client.Write([]byte(m)) // a record each
		require.NoError(t, err)
	}
	hw.flush(t)
	buf := make([]byte, 64)
	require.NoError(t, server.SetReadDeadline(time.Now().Add(waitTimeout)))
	n, err := server.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "first", string(buf[:n]), "one record per Read")
	// A Read with its deadline passed does not read the socket: the other
	// records were read from it with the first one.
	for _, want := range []string{"second", "third"} {
		n, err := readPassed(t, server, buf)
		require.NoError(t, err, "a buffered record, read with the deadline passed")
		assert.Equal(t, want, string(buf[:n]))
	}
	_, err = readPassed(t, server, buf)
	require.True(t, isTimeout(err), "nothing buffered: %v, want a timeout", err)

	_, err = client.Write([]byte("fourth"))
	require.NoError(t, err)
	require.NoError(t, server.SetReadDeadline(time.Now().Add(waitTimeout)))
	n, err = server.Read(buf)
	require.NoError(t, err, "a Read after the timeout")
	assert.Equal(t, "fourth", string(buf[:n]))
}

// A WebSocket Read keeps its place in the frame when its deadline passes,
// wherever that is (the header, its extended length, the masking key, a
// control frame, the payload): the bytes after it complete the frame.
func TestWebSocketReadResumesAfterTimeout(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	c, server := dialAccepted(t, l)
	payload := bytes.Repeat([]byte("0123456789"), 20) // a 16-bit extended length
	ping := rawFrame(0x80|wsOpPing, true, []byte("are you there"))
	stream := append(ping, rawFrame(0x80|wsOpBinary, true, payload)...)
	p := len(ping)
	for _, cut := range []int{1, p - 3, p + 1, p + 3, p + 6, p + 20} {
		_, err := c.conn.Write(stream[:cut])
		require.NoError(t, err)
		// The Read takes what arrived, then times out waiting for more
		// (or returns the start of the payload).
		var got []byte
		buf := make([]byte, len(payload))
		require.NoError(t, server.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		n, err := server.Read(buf)
		if err != nil {
			require.True(t, isTimeout(err), "cut at %d: %v, want a timeout", cut, err)
		}
		got = append(got, buf[:n]...)

		_, err = c.conn.Write(stream[cut:])
		require.NoError(t, err)
		require.NoError(t, server.SetReadDeadline(time.Now().Add(waitTimeout)))
		for len(got) < len(payload) {
			n, err := server.Read(buf)
			require.NoError(t, err, "cut at %d", cut)
			got = append(got, buf[:n]...)
		}
		assert.Equal(t, payload, got, "cut at %d", cut)
		op, pong, err := c.readFrame()
		require.NoError(t, err)
		assert.Equal(t, byte(wsOpPong), op, "cut at %d", cut)
		assert.Equal(t, "are you there", string(pong), "cut at %d", cut)
	}
}

// Frames a client sends right behind its upgrade request, before the
// response, arrive with the request in the HTTP server's buffer: they are
// read first, and a Read with its deadline passed returns them (as Socket
// promises), then times out.
func TestWebSocketFramesBehindTheUpgradeRequest(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	accepted := acceptOne(t, l)
	addr := l.Addr().(WebSocketAddr).Host
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+DefaultWebSocketPath, nil)
	require.NoError(t, err)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Protocol", SubprotocolMQTT)
	var out bytes.Buffer
	require.NoError(t, req.Write(&out))
	out.Write(rawFrame(0x80|wsOpBinary, true, connectPacket))
	_, err = conn.Write(out.Bytes())
	require.NoError(t, err)
	server := receive(t, accepted)

	got := make([]byte, 0, len(connectPacket))
	buf := make([]byte, 64)
	for len(got) < len(connectPacket) {
		n, err := readPassed(t, server, buf)
		require.NoError(t, err, "the frame sent with the request")
		got = append(got, buf[:n]...)
	}
	assert.Equal(t, connectPacket, got)
	_, err = readPassed(t, server, buf)
	assert.True(t, isTimeout(err), "nothing more: %v, want a timeout", err)
}
