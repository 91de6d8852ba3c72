package listeners

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
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

// wsMaxDiscard bounds what is read and dropped from a connection closed
// for a framing error, so that it closes with a FIN rather than a reset.
const wsMaxDiscard = 64 << 10

// wsCloseTimeout bounds the write of the closing frame, so that closing a
// connection to a peer that has stopped reading does not hang.
const wsCloseTimeout = time.Second

// wsConn carries an MQTT byte stream over a WebSocket connection that
// golang.org/x/net/websocket upgraded. Read concatenates the payloads of
// the client's binary frames, so packets may span frames and frames may
// hold several packets [MQTT-6.0.0-2]; each Write is sent as one binary
// frame [MQTT-6.0.0-1].
//
// The frames are read and written here, on the hijacked network
// connection, and checked against RFC 6455 (golang.org/x/net/websocket's
// own frame handling accepts what the RFC refuses: reserved bits,
// fragmented or oversized control frames, stray continuations). The
// websocket package only answers the upgrade: its connection, the HTTP
// handler goroutine and their buffers are let go at once, so an idle
// WebSocket connection holds this struct and its network connection.
//
// Reading keeps its place in the frame across calls: a Read that times
// out, wherever it stopped (in a header, in a control frame, in a
// payload), leaves the stream usable. Only what the HTTP server read past
// the upgrade request is buffered here (pre), and a Read after the read
// deadline has passed returns it without touching the network connection,
// which is what lets the broker park an idle WebSocket connection on its
// socket (Socket).
type wsConn struct {
	nc            net.Conn // the hijacked connection: TCP, or TLS over TCP
	req           *http.Request
	local, remote net.Addr
	protocol      string // the subprotocol selected
	maxFrame      int64  // WebSocketOptions.MaxFrameSize; 0: no bound

	rmu        sync.Mutex
	pre        []byte // bytes the HTTP server read past the request, read first
	rerr       error  // the error that ended the stream, returned ever after
	remain     int64  // payload bytes of the data frame being read
	hdrLen     int    // bytes of the next frame's header read so far
	maskPos    int    // offset of the next payload byte in the frame, mod 4
	fragmented bool   // a data frame without FIN was read: continuations follow
	hdr        [wsMaxHeader]byte
	mask       [4]byte         // the masking key of the data frame being read
	control    *wsControlFrame // a control frame being read, nil between them

	wmu       sync.Mutex // orders data frames before the close frame
	closeSent atomic.Bool
	closeOnce sync.Once
}

// wsMaxHeader is the longest header of a client frame: 2 bytes, an 8-byte
// extended length, the 4-byte masking key.
const wsMaxHeader = 14

// wsControlFrame is a control frame whose payload is being read.
type wsControlFrame struct {
	h       wsHeader
	mask    [4]byte
	n       int // payload bytes read so far
	payload [wsMaxControlPayload]byte
}

func newWSConn(nc net.Conn, pre []byte, r *http.Request, protocol string, maxFrame int64) *wsConn {
	local := requestLocalAddr(r)
	// The request keeps what describes the client (headers, URL, TLS
	// state) but not the HTTP server's context, which ends with the
	// upgrade and holds the server's per-connection state.
	kept := r.WithContext(context.WithValue(context.Background(), http.LocalAddrContextKey, local))
	return &wsConn{
		nc:       nc,
		pre:      pre,
		req:      kept,
		local:    local,
		remote:   requestRemoteAddr(r, nc),
		protocol: protocol,
		maxFrame: max(maxFrame, 0),
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
func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return 0, c.rerr
	}
	if len(p) == 0 {
		return 0, nil
	}
	for c.remain == 0 {
		if err := c.nextFrame(); err != nil {
			return 0, c.fail(err)
		}
	}
	if int64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.readNet(p)
	c.maskPos = wsUnmask(p[:n], c.mask[:], c.maskPos)
	c.remain -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // inside a frame
	}
	if n > 0 {
		if err != nil && !timeoutErr(err) {
			c.rerr = err // returned by the next call
		}
		return n, nil
	}
	return 0, c.fail(err)
}

// nextFrame reads the next frame's header and, for a control frame, its
// payload, which it handles. It returns nil with c.remain set when a data
// frame's payload follows (nil with c.remain 0 for an empty one, or after
// a control frame). On a timeout it keeps the bytes read so far.
func (c *wsConn) nextFrame() error {
	if c.control == nil {
		h, done, err := c.readHeader()
		if !done {
			return err
		}
		if h.opcode&0x8 == 0 {
			if err := checkDataFrame(h, c.fragmented, c.maxFrame); err != nil {
				return err
			}
			c.fragmented = !h.fin
			c.remain, c.maskPos = h.length, 0
			copy(c.mask[:], c.hdr[c.hdrLen-4:c.hdrLen])
			c.hdrLen = 0
			return nil
		}
		if err := checkControlFrame(h); err != nil {
			return err
		}
		c.control = &wsControlFrame{h: h}
		copy(c.control.mask[:], c.hdr[c.hdrLen-4:c.hdrLen])
		c.hdrLen = 0
	}
	f := c.control
	for f.n < int(f.h.length) {
		n, err := c.readNet(f.payload[f.n:f.h.length])
		f.n += n
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	c.control = nil
	payload := f.payload[:f.h.length]
	wsUnmask(payload, f.mask[:], 0)
	return c.handleControl(f.h, payload)
}

// readHeader reads the next frame's header into c.hdr and decodes it;
// done is false while it is incomplete (with the read's error), and the
// caller resets c.hdrLen once it has taken the masking key.
func (c *wsConn) readHeader() (h wsHeader, done bool, err error) {
	for {
		need := 2
		if c.hdrLen >= 2 {
			need = c.headerLen()
		}
		if c.hdrLen >= need {
			break
		}
		n, err := c.readNet(c.hdr[c.hdrLen:need])
		c.hdrLen += n
		if err != nil {
			if err == io.EOF && c.hdrLen > 0 {
				err = io.ErrUnexpectedEOF
			}
			return wsHeader{}, false, err
		}
	}
	h, err = parseWSHeader(c.hdr[:c.hdrLen])
	if err != nil {
		return wsHeader{}, false, err
	}
	if h.rsv != 0 {
		// No extension is negotiated, so no RSV bit has a meaning.
		return wsHeader{}, false, wsProtocolError("RSV bits 0x%02x set without a negotiated extension (RFC 6455 section 5.2)", h.rsv)
	}
	if !h.masked {
		return wsHeader{}, false, wsProtocolError("unmasked frame from a client (RFC 6455 section 5.1)")
	}
	return h, true, nil
}

// headerLen is the length of the header whose first two bytes are in
// c.hdr.
func (c *wsConn) headerLen() int {
	n := 2
	switch c.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if c.hdr[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// readNet reads what the HTTP server had read past the request, then from
// the network connection.
func (c *wsConn) readNet(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil
		}
		return n, nil
	}
	return c.nc.Read(p)
}

// handleControl answers a ping, ignores a pong, and answers a close frame
// with one echoing its status (RFC 6455 section 5.5.1), then ends the
// stream with io.EOF.
func (c *wsConn) handleControl(h wsHeader, payload []byte) error {
	switch h.opcode {
	case wsOpPing:
		// RFC 6455 section 5.5.3: the pong carries the ping's payload.
		return c.writeControl(wsOpPong, payload)
	case wsOpClose:
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
// waiting for the broker. A timeout is not sticky: the next Read resumes.
func (c *wsConn) fail(err error) error {
	var f *wsFailure
	if errors.As(err, &f) {
		c.sendClose(f.status)
		discardReceived(c.nc, wsMaxDiscard)
		_ = c.nc.Close()
		err = f.err
	}
	if !timeoutErr(err) {
		c.rerr = err // the stream is over
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
	return c.writeFrame(wsOpBinary, p)
}

// writeControl sends a control frame unless the close frame was sent.
func (c *wsConn) writeControl(opcode byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent.Load() {
		return nil
	}
	_, err := c.writeFrame(opcode, payload)
	return err
}

// writeFrame writes one unmasked frame (a server does not mask, RFC 6455
// section 5.1) and returns how many payload bytes were written; c.wmu is
// held. The header and the payload go out in one write (over TLS, one
// record), put together in a pooled buffer, unless the frame is large.
func (c *wsConn) writeFrame(opcode byte, payload []byte) (int, error) {
	var hdr [10]byte
	h := appendWSHeader(hdr[:0], opcode, len(payload))
	if len(h)+len(payload) > wsMaxPooledWrite {
		if _, err := c.nc.Write(h); err != nil {
			return 0, err
		}
		return c.nc.Write(payload)
	}
	bp := wsWriteBufs.Get().(*[]byte)
	buf := append(append((*bp)[:0], h...), payload...)
	n, err := c.nc.Write(buf)
	*bp = buf[:0]
	wsWriteBufs.Put(bp)
	return max(n-len(h), 0), err
}

// sendClose writes a close frame with status, at most once per connection.
// The short write deadline also ends a Write blocked on a peer that stopped
// reading, so that the close frame can follow it.
func (c *wsConn) sendClose(status int) {
	if c.closeSent.Swap(true) {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(wsCloseTimeout))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var body [2]byte
	binary.BigEndian.PutUint16(body[:], uint16(status))
	_, _ = c.writeFrame(wsOpClose, body[:])
}

func (c *wsConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.local.Network(), Source: c.local, Addr: c.remote, Err: err}
}

// Close sends a normal close frame (bounded by a short write deadline) and
// closes the network connection.
func (c *wsConn) Close() error {
	first := false
	c.closeOnce.Do(func() { first = true })
	c.sendClose(wsCloseNormal)
	_ = c.nc.Close()
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	return nil
}

// closeGoingAway closes a connection that was never accepted.
func (c *wsConn) closeGoingAway() {
	c.sendClose(wsCloseGoingAway)
	_ = c.nc.Close()
}

// LocalAddr returns the server address the HTTP request arrived on.
func (c *wsConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the client's network address, taken from the HTTP
// request (golang.org/x/net/websocket would report the Origin URL instead).
func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

func (c *wsConn) SetDeadline(t time.Time) error      { return c.nc.SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.nc.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// Request returns the HTTP request that was upgraded to this connection.
func (c *wsConn) Request() *http.Request { return c.req }

// Subprotocol returns the WebSocket subprotocol the server selected.
func (c *wsConn) Subprotocol() string { return c.protocol }

// timeoutErr reports whether err is a deadline's.
func timeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// wsAddr is an address that could not be parsed as an IP address and port.
type wsAddr struct{ network, addr string }

func (a wsAddr) Network() string { return a.network }
func (a wsAddr) String() string  { return a.addr }

// requestRemoteAddr parses r.RemoteAddr, which net/http sets from the
// connection's remote address and middleware may rewrite (to the client
// behind a proxy); the connection's own address when they are the same.
func requestRemoteAddr(r *http.Request, nc net.Conn) net.Addr {
	if a := nc.RemoteAddr(); a != nil && a.String() == r.RemoteAddr {
		return a
	}
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
