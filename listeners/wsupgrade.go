package listeners

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"
)

// ServeHTTP upgrades a WebSocket request and hands the connection to
// Accept. It answers 400 Bad Request when the client offers no accepted
// subprotocol, 403 Forbidden when CheckOrigin refuses the request, and 503
// Service Unavailable once the listener is closed. It does not look at the
// URL path.
func (w *WebSocket) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		http.Error(rw, "MQTT over WebSocket is shut down", http.StatusServiceUnavailable)
		return
	}
	w.pending.Add(1) // Done by upgradeState.handedOff
	w.mu.Unlock()
	state := &upgradeState{pending: &w.pending, req: r}
	defer state.handedOff()

	if _, ok := offeredProtocol(r, w.protocols); !ok {
		w.refuse(rw, r, http.StatusBadRequest, fmt.Sprintf(
			"WebSocket subprotocol must be one of %s", strings.Join(w.protocols, ", ")))
		return
	}
	if w.checkOrigin != nil && !w.checkOrigin(r) {
		w.refuse(rw, r, http.StatusForbidden, "WebSocket origin not allowed")
		return
	}
	if r.ProtoMajor != 1 || !canHijack(rw) {
		// The upgrade needs the HTTP/1.1 connection itself.
		w.refuse(rw, r, http.StatusHTTPVersionNotSupported, "WebSocket needs HTTP/1.1")
		return
	}
	w.server.ServeHTTP(hijackCapture{rw, state}, r.WithContext(context.WithValue(r.Context(), upgradeKey{}, state)))
	if state.conn == nil {
		w.failures.Add(1) // the websocket package refused the handshake
		w.logger.Debug("websocket upgrade refused", "remote", r.RemoteAddr)
	}
}

// upgradeKey is the request context key of the *upgradeState.
type upgradeKey struct{}

// upgradeState links one ServeHTTP call to the handler the websocket package
// calls for it.
type upgradeState struct {
	req      *http.Request
	hijacked *hijackedConn     // the connection, once the websocket package hijacked it
	brw      *bufio.ReadWriter // and the HTTP server's buffers
	conn     *wsConn           // set by handle once the upgrade succeeded
	pending  *sync.WaitGroup
	once     sync.Once
}

// handedOff marks the upgrade as no longer pending (handed to Accept, or
// finished), once.
func (s *upgradeState) handedOff() { s.once.Do(s.pending.Done) }

// canHijack reports whether rw, or a ResponseWriter it wraps, can hijack the
// connection.
func canHijack(rw http.ResponseWriter) bool {
	for range 16 {
		if _, ok := rw.(http.Hijacker); ok {
			return true
		}
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		rw = u.Unwrap()
	}
	return false
}

// refuse answers a request that cannot be upgraded and counts it.
func (w *WebSocket) refuse(rw http.ResponseWriter, r *http.Request, code int, msg string) {
	w.failures.Add(1)
	w.logger.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "status", code, "reason", msg)
	http.Error(rw, msg, code)
}

// offeredProtocol returns the first protocol of accepted that the request
// offers in its Sec-WebSocket-Protocol header(s).
func offeredProtocol(r *http.Request, accepted []string) (string, bool) {
	var offered []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			offered = append(offered, strings.TrimSpace(p))
		}
	}
	for _, p := range accepted {
		if slices.Contains(offered, p) {
			return p, true
		}
	}
	return "", false
}

// selectProtocol is the websocket.Server handshake hook: it selects the one
// subprotocol the response names. [MQTT-6.0.0-4]
func (w *WebSocket) selectProtocol(cfg *websocket.Config, r *http.Request) error {
	p, ok := offeredProtocol(r, w.protocols)
	if !ok { // ServeHTTP checked already; kept for safety
		return fmt.Errorf("listeners: websocket: no accepted subprotocol offered")
	}
	cfg.Protocol = []string{p}
	return nil
}

// handle runs on the HTTP handler goroutine once the upgrade succeeded. It
// takes the hijacked network connection over from the websocket package,
// hands it to Accept and returns: the websocket package's connection and
// buffers, and the handler goroutine, are not kept.
func (w *WebSocket) handle(ws *websocket.Conn) {
	state, ok := ws.Request().Context().Value(upgradeKey{}).(*upgradeState)
	if !ok || state.hijacked == nil { // not reached through ServeHTTP
		return
	}
	h := state.hijacked
	h.kept = true // the websocket package's Close leaves it open
	// The HTTP server may have left deadlines on the hijacked connection.
	_ = h.Conn.SetDeadline(time.Time{})
	// Frames a client sent right behind its request may sit in the HTTP
	// server's read buffer; they are read first.
	var pre []byte
	if n := state.brw.Reader.Buffered(); n > 0 {
		pre = make([]byte, n)
		_, _ = io.ReadFull(state.brw.Reader, pre)
	}
	var protocol string
	if p := ws.Config().Protocol; len(p) > 0 {
		protocol = p[0]
	}
	c := newWSConn(h.Conn, pre, state.req, protocol, w.maxFrame)
	state.conn = c
	select {
	case w.conns <- c:
		state.handedOff()
	case <-w.done:
		c.closeGoingAway()
	}
}

// hijackCapture gives the websocket package the connection to hijack, and
// keeps it for handle. It hijacks through ResponseWriter wrappers
// (middleware) that expose the original with an Unwrap method, the
// convention of http.ResponseController.
type hijackCapture struct {
	http.ResponseWriter
	state *upgradeState
}

func (h hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.state.hijacked, h.state.brw = &hijackedConn{Conn: nc}, brw
	return h.state.hijacked, brw, nil
}

func (h hijackCapture) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// hijackedConn is the hijacked connection as the websocket package sees
// it: the package closes it when the handler returns, which must not close
// a connection handle has taken over.
type hijackedConn struct {
	net.Conn
	kept bool // set by handle, on the goroutine that later calls Close
}

func (c *hijackedConn) Close() error {
	if c.kept {
		return nil
	}
	return c.Conn.Close()
}
