package listeners

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/websocket"
)

// ErrNotBinaryFrame is returned by Read on a WebSocket connection when the
// client sent a data frame that is not binary; the connection is closed.
// [MQTT-6.0.0-1]
var ErrNotBinaryFrame = errors.New("listeners: websocket: MQTT must be carried in binary frames")

// WebSocket close status codes (RFC 6455, section 7.4.1).
const (
	wsCloseNormal      = 1000
	wsCloseGoingAway   = 1001
	wsCloseUnsupported = 1003
)

// wsCloseTimeout bounds the write of the closing frame, so that closing a
// connection to a peer that has stopped reading does not hang.
const wsCloseTimeout = time.Second

// wsFrame is the part of an incoming frame reader that wsConn uses.
type wsFrame interface {
	io.Reader
	PayloadType() byte
}

// wsConn adapts a server-side *websocket.Conn to a net.Conn carrying an MQTT
// byte stream. Read concatenates the payloads of binary frames, so packets
// may span frames and frames may hold several packets [MQTT-6.0.0-2]; each
// Write is sent as one binary frame [MQTT-6.0.0-1].
//
// The HTTP handler goroutine that upgraded the connection stays parked until
// the connection is closed, because golang.org/x/net/websocket closes the
// hijacked network connection when its handler returns.
type wsConn struct {
	ws            *websocket.Conn
	req           *http.Request
	local, remote net.Addr

	rmu   sync.Mutex
	frame wsFrame // the data frame being read, nil between frames

	closeSent   atomic.Bool
	releaseOnce sync.Once
	release     chan struct{} // closed to let the handler return
	exited      chan struct{} // closed once the handler returned (network conn closed)
	closeOnce   sync.Once
}

func newWSConn(ws *websocket.Conn, r *http.Request) *wsConn {
	ws.PayloadType = websocket.BinaryFrame // [MQTT-6.0.0-1]
	return &wsConn{
		ws:      ws,
		req:     r,
		local:   requestLocalAddr(r),
		remote:  requestRemoteAddr(r),
		release: make(chan struct{}),
		exited:  make(chan struct{}),
	}
}

// Read returns bytes from the payloads of the client's binary frames, as a
// byte stream without frame boundaries [MQTT-6.0.0-2]. Ping frames are
// answered; a close frame ends the stream with io.EOF. A text frame closes
// the connection and returns ErrNotBinaryFrame [MQTT-6.0.0-1].
//
// A read deadline that expires while a frame header is half read leaves the
// stream unusable; close the connection after a timeout, as the broker does
// when a keep-alive expires.
func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.frame == nil {
			fr, err := c.ws.NewFrameReader()
			if err != nil {
				return 0, err
			}
			// HandleFrame answers pings, reports a close frame as io.EOF,
			// and gives continuation frames the type of the frame they
			// continue.
			data, err := c.ws.HandleFrame(fr)
			if err != nil {
				return 0, err
			}
			if data == nil { // a control frame, already handled
				continue
			}
			if data.PayloadType() != websocket.BinaryFrame {
				// [MQTT-6.0.0-1] any other data frame closes the connection.
				c.sendClose(wsCloseUnsupported)
				c.releaseHandler()
				return 0, ErrNotBinaryFrame
			}
			c.frame = data
		}
		n, err := c.frame.Read(p)
		if err == io.EOF {
			c.frame = nil
			if n > 0 || len(p) == 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// Write sends p as one binary frame [MQTT-6.0.0-1].
func (c *wsConn) Write(p []byte) (int, error) {
	return c.ws.Write(p)
}

// sendClose writes a close frame with status, at most once per connection.
func (c *wsConn) sendClose(status int) {
	if c.closeSent.Swap(true) {
		return
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(wsCloseTimeout))
	_ = c.ws.WriteClose(status)
}

// releaseHandler lets the parked HTTP handler return, which closes the
// network connection.
func (c *wsConn) releaseHandler() {
	c.releaseOnce.Do(func() { close(c.release) })
}

// Close sends a normal close frame (bounded by a short write deadline) and
// closes the network connection. It returns once the connection is closed.
func (c *wsConn) Close() error {
	first := false
	c.closeOnce.Do(func() { first = true })
	c.sendClose(wsCloseNormal)
	c.releaseHandler()
	<-c.exited
	if !first {
		return &net.OpError{Op: "close", Net: c.local.Network(), Source: c.local, Addr: c.remote, Err: net.ErrClosed}
	}
	return nil
}

// closeGoingAway closes a connection that was never accepted.
func (c *wsConn) closeGoingAway() {
	c.sendClose(wsCloseGoingAway)
	c.releaseHandler()
}

// LocalAddr returns the server address the HTTP request arrived on.
func (c *wsConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the client's network address, taken from the HTTP
// request (golang.org/x/net/websocket would report the Origin URL instead).
func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

func (c *wsConn) SetDeadline(t time.Time) error      { return c.ws.SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

// Request returns the HTTP request that was upgraded to this connection.
func (c *wsConn) Request() *http.Request { return c.req }

// Subprotocol returns the WebSocket subprotocol the server selected.
func (c *wsConn) Subprotocol() string {
	if p := c.ws.Config().Protocol; len(p) > 0 {
		return p[0]
	}
	return ""
}

// wsAddr is an address that could not be parsed as an IP address and port.
type wsAddr struct{ network, addr string }

func (a wsAddr) Network() string { return a.network }
func (a wsAddr) String() string  { return a.addr }

// requestRemoteAddr parses r.RemoteAddr, which net/http sets from the
// connection's remote address.
func requestRemoteAddr(r *http.Request) net.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return wsAddr{network: "tcp", addr: r.RemoteAddr}
}

// requestLocalAddr returns the local address net/http stores in the request
// context.
func requestLocalAddr(r *http.Request) net.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && a != nil {
		return a
	}
	return wsAddr{network: "tcp", addr: r.Host}
}
