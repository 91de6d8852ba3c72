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

// ErrWebSocketProtocol is returned by Read on a WebSocket connection when
// the client broke the framing rules of RFC 6455; the error names the rule.
// The connection is closed with close status 1002 (protocol error), or
// 1007 for a close frame whose reason is not UTF-8.
var ErrWebSocketProtocol = errors.New("listeners: websocket: protocol error")

// ErrWebSocketFrameTooLarge is returned by Read on a WebSocket connection
// when the client sent a frame larger than WebSocketOptions.MaxFrameSize;
// the connection is closed with close status 1009 (message too big).
var ErrWebSocketFrameTooLarge = errors.New("listeners: websocket: frame too large")

// WebSocket close status codes (RFC 6455, section 7.4.1).
const (
	wsCloseNormal         = 1000
	wsCloseGoingAway      = 1001
	wsCloseProtocolError  = 1002
	wsCloseUnsupported    = 1003
	wsCloseInvalidPayload = 1007
	wsCloseTooBig         = 1009
)

// wsCloseTimeout bounds the write of the closing frame, so that closing a
// connection to a peer that has stopped reading does not hang.
const wsCloseTimeout = time.Second

// wsConn adapts a server-side *websocket.Conn to a net.Conn carrying an MQTT
// byte stream. Read concatenates the payloads of binary frames, so packets
// may span frames and frames may hold several packets [MQTT-6.0.0-2]; each
// Write is sent as one binary frame [MQTT-6.0.0-1].
//
// golang.org/x/net/websocket reads each frame's header and unmasks its
// payload; wsConn checks the frame against RFC 6455 itself, because the
// package's own frame handling accepts what the RFC refuses (reserved bits,
// fragmented or oversized control frames, stray continuations) and
// truncates pongs.
//
// The HTTP handler goroutine that upgraded the connection stays parked until
// the connection is closed, because golang.org/x/net/websocket closes the
// hijacked network connection when its handler returns.
type wsConn struct {
	ws            *websocket.Conn
	req           *http.Request
	local, remote net.Addr
	maxFrame      int64 // WebSocketOptions.MaxFrameSize; 0: no bound

	rmu        sync.Mutex
	frame      wsFrame // the data frame being read, nil between frames
	fragmented bool    // a data frame without FIN was read: continuations follow
	rerr       error   // the error that ended the stream, returned ever after
	control    [wsMaxControlPayload]byte

	wmu         sync.Mutex // orders data frames before the close frame
	closeSent   atomic.Bool
	releaseOnce sync.Once
	release     chan struct{} // closed to let the handler return
	exited      chan struct{} // closed once the handler returned (network conn closed)
	closeOnce   sync.Once
}

func newWSConn(ws *websocket.Conn, r *http.Request, maxFrame int64) *wsConn {
	ws.PayloadType = websocket.BinaryFrame // [MQTT-6.0.0-1]
	return &wsConn{
		ws:       ws,
		req:      r,
		local:    requestLocalAddr(r),
		remote:   requestRemoteAddr(r),
		maxFrame: max(maxFrame, 0),
		release:  make(chan struct{}),
		exited:   make(chan struct{}),
	}
}

// Read returns bytes from the payloads of the client's binary frames, as a
// byte stream without frame boundaries [MQTT-6.0.0-2]. Pings are answered
// with pongs carrying the same payload. A close frame is answered with a
// close frame echoing its status and ends the stream with io.EOF.
//
// A frame that breaks RFC 6455 (see checkDataFrame, checkControlFrame and
// closeStatus) closes the connection with the status the RFC names and
// returns an error wrapping ErrWebSocketProtocol; a text frame does so with
// status 1003 and ErrNotBinaryFrame [MQTT-6.0.0-1]; a frame over MaxFrameSize
// with status 1009 and ErrWebSocketFrameTooLarge. Read then returns the
// same error on every call.
//
// A read deadline that expires while a frame header or a control frame is
// half read leaves the stream unusable; close the connection after a
// timeout, as the broker does when a keep-alive expires.
func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return 0, c.rerr
	}
	for {
		if c.frame == nil {
			fr, err := c.ws.NewFrameReader()
			if err != nil {
				return 0, err
			}
			data, err := c.nextFrame(fr)
			if err != nil {
				return 0, c.fail(err)
			}
			if data == nil { // a control frame, already handled
				continue
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

// nextFrame checks the frame fr and returns it if it is a data frame to
// read; it handles a control frame itself and returns nil.
func (c *wsConn) nextFrame(fr wsFrame) (wsFrame, error) {
	h, err := parseWSHeader(fr)
	if err != nil {
		return nil, err
	}
	if h.rsv != 0 {
		// No extension is negotiated, so no RSV bit has a meaning.
		return nil, wsProtocolError("RSV bits 0x%02x set without a negotiated extension (RFC 6455 section 5.2)", h.rsv)
	}
	if !h.masked {
		return nil, wsProtocolError("unmasked frame from a client (RFC 6455 section 5.1)")
	}
	if h.opcode&0x8 != 0 {
		return nil, c.handleControl(h, fr)
	}
	if err := checkDataFrame(h, c.fragmented, c.maxFrame); err != nil {
		return nil, err
	}
	c.fragmented = !h.fin
	return fr, nil
}

// handleControl answers a ping, ignores a pong, and answers a close frame
// with one echoing its status (RFC 6455 section 5.5.1), then ends the
// stream with io.EOF.
func (c *wsConn) handleControl(h wsHeader, fr wsFrame) error {
	if err := checkControlFrame(h); err != nil {
		return err
	}
	payload := c.control[:h.length]
	if _, err := io.ReadFull(fr, payload); err != nil {
		return err
	}
	switch h.opcode {
	case websocket.PingFrame:
		// RFC 6455 section 5.5.3: the pong carries the ping's payload.
		return c.writeControl(websocket.PongFrame, payload)
	case websocket.CloseFrame:
		status, err := closeStatus(payload)
		if err != nil {
			return err
		}
		c.sendClose(status)
		return io.EOF
	}
	return nil
}

// fail ends the stream with err. A frame that broke the rules gets the
// close frame its rule names, and the network connection is closed without
// waiting for the broker.
func (c *wsConn) fail(err error) error {
	var f *wsFailure
	if errors.As(err, &f) {
		c.sendClose(f.status)
		c.releaseHandler()
		err = f.err
	}
	if errors.Is(err, io.EOF) || f != nil {
		c.rerr = err // the stream is over; other errors (timeouts) are not sticky
	}
	return err
}

// Write sends p as one binary frame [MQTT-6.0.0-1]. After the close frame
// it fails: no data frame follows a close frame (RFC 6455 section 5.5.1).
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent.Load() {
		return 0, c.opError("write", net.ErrClosed)
	}
	return c.ws.Write(p)
}

// writeControl sends a control frame unless the close frame was sent.
func (c *wsConn) writeControl(opcode byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent.Load() {
		return nil
	}
	return sendControl(c.ws, opcode, payload)
}

// sendClose writes a close frame with status, at most once per connection.
// The short write deadline also ends a Write blocked on a peer that stopped
// reading, so that the close frame can follow it.
func (c *wsConn) sendClose(status int) {
	if c.closeSent.Swap(true) {
		return
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(wsCloseTimeout))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.WriteClose(status)
}

func (c *wsConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.local.Network(), Source: c.local, Addr: c.remote, Err: err}
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
		return c.opError("close", net.ErrClosed)
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
