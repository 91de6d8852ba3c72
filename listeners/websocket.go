package listeners

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/websocket"
)

// DefaultWebSocketPath is the URL path WebSocket clients connect to when
// WebSocketOptions leaves Path empty.
const DefaultWebSocketPath = "/mqtt"

// DefaultReadHeaderTimeout bounds the reading of the HTTP upgrade request on
// the server ListenWebSocket runs.
const DefaultReadHeaderTimeout = 10 * time.Second

// Subprotocols a WebSocket accepts by default, in order of preference.
const (
	// SubprotocolMQTT is the subprotocol MQTT 3.1.1 registers: clients
	// offer it [MQTT-6.0.0-3] and the server selects it [MQTT-6.0.0-4].
	SubprotocolMQTT = "mqtt"
	// SubprotocolMQTTv31 is the informal name used by MQTT 3.1 era clients
	// (older Paho JavaScript and MQTT.js releases). Mosquitto accepts it
	// too; it is selected only when the client does not offer "mqtt".
	SubprotocolMQTTv31 = "mqttv3.1"
)

// WebSocketOptions configures a WebSocket listener. The zero value is usable.
type WebSocketOptions struct {
	// Path is the URL path of the endpoint, DefaultWebSocketPath if empty;
	// a missing leading slash is added.
	// ListenWebSocket serves the endpoint there (other paths get 404). With
	// NewWebSocket, mount the handler on your mux at Path yourself:
	// ServeHTTP upgrades whatever request the mux routes to it.
	Path string

	// Subprotocols lists the WebSocket subprotocols accepted, in order of
	// preference; nil means {"mqtt", "mqttv3.1"}. The first one in this list
	// that the client offers is selected and returned. A client that offers
	// none of them is refused with 400 Bad Request before the upgrade, as
	// Mosquitto and other brokers do: a client that does not offer "mqtt"
	// does not speak MQTT 3.1.1 over WebSocket [MQTT-6.0.0-3]. Set
	// []string{"mqtt"} to accept MQTT 3.1.1 clients only.
	Subprotocols []string

	// CheckOrigin, if set, is called with each upgrade request; returning
	// false refuses it with 403 Forbidden. Nil accepts every origin: MQTT
	// clients outside browsers send no Origin header. Browser pages from
	// other sites can reach the endpoint with the user's cookies, so check
	// the Origin if your authentication relies on cookies.
	CheckOrigin func(r *http.Request) bool

	// ReadHeaderTimeout bounds the reading of the upgrade request on the
	// server ListenWebSocket runs; zero means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration

	// MaxFrameSize bounds the payload of one frame from a client, in
	// bytes; a larger frame closes the connection with close status 1009
	// (message too big) before its payload is read. Zero means no bound:
	// frames are streamed into the connection's byte stream, never
	// buffered whole, and one frame may carry several MQTT packets
	// [MQTT-6.0.0-2], so the broker's packet size limit applies to each
	// packet whatever the framing. Set it to refuse large frames early,
	// for example to the broker's MaxPacketSize when every client sends
	// one packet per frame.
	MaxFrameSize int64

	// TLS configures the TLS handshake when ListenWebSocket serves wss://.
	TLS TLSOptions

	// Logger receives the HTTP server's error log (ListenWebSocket) and a
	// Debug record for each refused upgrade. Nil means slog.Default().
	Logger *slog.Logger
}

// WebSocket is a net.Listener of MQTT connections carried over WebSocket,
// and the http.Handler that upgrades them.
//
// Serve it on its own port with ListenWebSocket, or share an application's
// HTTP server: create it with NewWebSocket, mount it on your mux, and serve
// it to the broker:
//
//	ws := listeners.NewWebSocket(listeners.WebSocketOptions{})
//	mux.Handle(ws.Path(), ws)
//	go b.Serve(ws)
//
// Each upgraded request is handed to Accept; the handler returns then, and
// the connection keeps no goroutine of the HTTP server.
type WebSocket struct {
	path        string
	protocols   []string
	checkOrigin func(*http.Request) bool
	logger      *slog.Logger
	maxFrame    int64
	server      websocket.Server

	conns     chan *wsConn
	done      chan struct{} // closed by Close
	mu        sync.Mutex    // guards closed and pending.Add
	closed    bool
	pending   sync.WaitGroup // upgrades not yet handed to Accept
	closeOnce sync.Once
	failures  atomic.Uint64

	// Set by ListenWebSocket only.
	httpServer *http.Server
	netLn      net.Listener
	tlsLn      *TLSListener
	served     chan struct{} // closed when httpServer.Serve returned
	serveErr   error
	closeErr   error
}

// NewWebSocket returns a WebSocket handler and listener for use on an HTTP
// server you run. Its Addr is a WebSocketAddr without a host.
func NewWebSocket(opts WebSocketOptions) *WebSocket {
	if opts.Path == "" {
		opts.Path = DefaultWebSocketPath
	}
	if !strings.HasPrefix(opts.Path, "/") {
		opts.Path = "/" + opts.Path
	}
	if opts.Subprotocols == nil {
		opts.Subprotocols = []string{SubprotocolMQTT, SubprotocolMQTTv31}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &WebSocket{
		path:        opts.Path,
		protocols:   slices.Clone(opts.Subprotocols),
		checkOrigin: opts.CheckOrigin,
		logger:      opts.Logger,
		maxFrame:    opts.MaxFrameSize,
		conns:       make(chan *wsConn),
		done:        make(chan struct{}),
	}
	w.server = websocket.Server{Handshake: w.selectProtocol, Handler: w.handle}
	return w
}

// ListenWebSocket listens on the TCP address addr (see TCP) and serves the
// WebSocket endpoint at opts.Path on its own HTTP server: ws:// when tlsCfg
// is nil, wss:// otherwise (see TLS; client certificates work as there, and
// PeerCommonName and TLSState work on the accepted connections). Close shuts
// that server down.
func ListenWebSocket(addr string, tlsCfg *tls.Config, opts WebSocketOptions) (*WebSocket, error) {
	if tlsCfg != nil {
		if err := checkServerConfig(tlsCfg); err != nil {
			return nil, err
		}
	}
	ln, err := TCP(addr)
	if err != nil {
		return nil, err
	}
	w := NewWebSocket(opts)
	w.netLn = ln
	if tlsCfg != nil {
		cfg := tlsCfg.Clone()
		// WebSocket upgrades need HTTP/1.1; do not negotiate HTTP/2.
		cfg.NextProtos = []string{"http/1.1"}
		w.tlsLn, err = NewTLS(ln, cfg, opts.TLS)
		if err != nil {
			return nil, err
		}
		w.netLn = w.tlsLn
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	w.httpServer = &http.Server{
		Handler:           http.HandlerFunc(w.serveEndpoint),
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(w.logger.Handler(), slog.LevelWarn),
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	// One request per connection: the upgrade. Nothing idles in keep-alive.
	w.httpServer.SetKeepAlivesEnabled(false)
	w.served = make(chan struct{})
	go func() {
		defer close(w.served)
		w.serveErr = w.httpServer.Serve(w.netLn)
	}()
	return w, nil
}

// serveEndpoint is the handler of ListenWebSocket's server: the endpoint at
// its path, 404 elsewhere.
func (w *WebSocket) serveEndpoint(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != w.path {
		http.NotFound(rw, r)
		return
	}
	w.ServeHTTP(rw, r)
}

// Accept returns the next upgraded connection. Its RemoteAddr is the
// client's TCP address; HTTPRequest returns the upgraded request. After
// Close, Accept returns an error wrapping net.ErrClosed; if the server of
// ListenWebSocket fails, Accept returns its error.
func (w *WebSocket) Accept() (net.Conn, error) {
	select {
	case <-w.done:
		return nil, w.closedError()
	default:
	}
	select {
	case c := <-w.conns:
		return c, nil
	case <-w.done:
		return nil, w.closedError()
	case <-w.servedChan():
		if w.isClosed() {
			return nil, w.closedError()
		}
		return nil, fmt.Errorf("listeners: websocket server stopped: %w", w.serveErr)
	}
}

// servedChan returns the channel closed when ListenWebSocket's server
// stops, or nil (never ready) for a handler created with NewWebSocket.
func (w *WebSocket) servedChan() <-chan struct{} {
	if w.served == nil {
		return nil
	}
	return w.served
}

func (w *WebSocket) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

func (w *WebSocket) closedError() error {
	a := w.Addr()
	return &net.OpError{Op: "accept", Net: a.Network(), Addr: a, Err: net.ErrClosed}
}

// Close stops the listener: Accept returns, upgraded connections not yet
// accepted are closed (with close status 1001, going away), later upgrade
// requests get 503, and the HTTP server of ListenWebSocket is shut down.
// Connections already returned by Accept stay open. Close waits for the
// goroutines it stops.
func (w *WebSocket) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.done)
		w.mu.Unlock()
		if w.httpServer != nil {
			w.closeErr = w.httpServer.Close()
			<-w.served
			if w.tlsLn != nil {
				_ = w.tlsLn.Close() // waits for its handshake goroutines
			}
		}
		w.pending.Wait()
	})
	return w.closeErr
}

// Addr returns a WebSocketAddr: with ListenWebSocket its String is the
// endpoint URL, such as ws://127.0.0.1:8080/mqtt.
func (w *WebSocket) Addr() net.Addr {
	a := WebSocketAddr{Path: w.path}
	if w.netLn != nil {
		a.Host = w.netLn.Addr().String()
		a.Scheme = "ws"
		if w.tlsLn != nil {
			a.Scheme = "wss"
		}
	}
	return a
}

// Path returns the URL path of the endpoint.
func (w *WebSocket) Path() string { return w.path }

// HandshakeFailures returns how many connection attempts failed before
// reaching Accept: refused WebSocket upgrades and, with ListenWebSocket
// over TLS, failed TLS handshakes.
func (w *WebSocket) HandshakeFailures() uint64 {
	n := w.failures.Load()
	if w.tlsLn != nil {
		n += w.tlsLn.HandshakeFailures()
	}
	return n
}

// WebSocketAddr is the address of a WebSocket listener. Its Network is
// "websocket"; its String is the endpoint URL when the host is known, the
// path otherwise.
type WebSocketAddr struct {
	Scheme string // "ws" or "wss"; empty when the host is unknown
	Host   string // host:port; empty for a handler served by the application
	Path   string
}

// Network returns "websocket".
func (a WebSocketAddr) Network() string { return "websocket" }

// String returns the endpoint URL, or the path when the host is unknown.
func (a WebSocketAddr) String() string {
	if a.Host == "" {
		return a.Path
	}
	return a.Scheme + "://" + a.Host + a.Path
}

// HTTPRequest returns the HTTP request that was upgraded to the WebSocket
// connection c (its headers, cookies, URL and TLS state), or nil when c is
// not a WebSocket connection from this package. Its context is not the
// HTTP server's, which ends with the upgrade: it carries only
// http.LocalAddrContextKey.
func HTTPRequest(c net.Conn) *http.Request {
	if wc, ok := c.(*wsConn); ok {
		return wc.req
	}
	return nil
}
