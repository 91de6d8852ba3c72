package listeners

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/ternmq/tern/listeners/testcert"
)

// MQTT-shaped byte sequences.
var (
	connectPacket    = []byte("\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04tern")
	pingreqPacket    = []byte{0xC0, 0x00}
	disconnectPacket = []byte{0xE0, 0x00}
)

// listenWS starts ListenWebSocket on a loopback port, closed at cleanup.
func listenWS(t *testing.T, tlsCfg *tls.Config, opts WebSocketOptions) *WebSocket {
	t.Helper()
	l, err := ListenWebSocket("127.0.0.1:0", tlsCfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// dialWS connects a golang.org/x/net/websocket client to the endpoint at
// addr, offering protocols, over TLS when tlsCfg is set. It returns the
// client and its TCP connection.
func dialWS(t *testing.T, addr WebSocketAddr, tlsCfg *tls.Config, protocols ...string) (*websocket.Conn, net.Conn, error) {
	t.Helper()
	cfg, err := websocket.NewConfig(addr.String(), "http://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = protocols
	raw, err := net.DialTimeout("tcp", addr.Host, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	_ = raw.SetDeadline(time.Now().Add(waitTimeout))
	rwc := raw
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone()
		tlsCfg.ServerName = "localhost"
		rwc = tls.Client(raw, tlsCfg)
	}
	ws, err := websocket.NewClient(cfg, rwc)
	if err != nil {
		return nil, raw, err
	}
	ws.PayloadType = websocket.BinaryFrame
	return ws, raw, nil
}

// connectWS dials addr, waits for the listener to accept, and checks that
// the accepted connection reports the client's TCP address.
func connectWS(t *testing.T, l *WebSocket, addr WebSocketAddr, tlsCfg *tls.Config) (client *websocket.Conn, server net.Conn) {
	t.Helper()
	accepted := acceptOne(t, l)
	client, raw, err := dialWS(t, addr, tlsCfg, SubprotocolMQTT)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	server = receive(t, accepted)
	if server.RemoteAddr().String() != raw.LocalAddr().String() {
		t.Errorf("RemoteAddr = %v, want the client's TCP address %v", server.RemoteAddr(), raw.LocalAddr())
	}
	if _, ok := server.RemoteAddr().(*net.TCPAddr); !ok {
		t.Errorf("RemoteAddr is %T, want *net.TCPAddr", server.RemoteAddr())
	}
	if server.LocalAddr().String() != raw.RemoteAddr().String() {
		t.Errorf("LocalAddr = %v, want %v", server.LocalAddr(), raw.RemoteAddr())
	}
	return client, server
}

// frame is one WebSocket message as received by a client.
type frame struct {
	payloadType byte
	data        []byte
}

// frameCodec receives one data frame and keeps its type.
var frameCodec = websocket.Codec{
	Unmarshal: func(data []byte, payloadType byte, v any) error {
		f, ok := v.(*frame)
		if !ok {
			return errors.New("frameCodec needs a *frame")
		}
		*f = frame{payloadType, data}
		return nil
	},
}

func TestWebSocketAcceptExchangeClose(t *testing.T) {
	checkGoroutines(t)
	l, err := ListenWebSocket("127.0.0.1:0", nil, WebSocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(WebSocketAddr)
	if !strings.HasPrefix(addr.String(), "ws://127.0.0.1:") || !strings.HasSuffix(addr.String(), DefaultWebSocketPath) {
		t.Errorf("Addr = %q, want ws://127.0.0.1:port%s", addr, DefaultWebSocketPath)
	}
	client, server := connectWS(t, l, addr, nil)
	exchange(t, client, server)
	if HTTPRequest(server) == nil || HTTPRequest(server).URL.Path != DefaultWebSocketPath {
		t.Errorf("HTTPRequest = %v, want the upgraded request", HTTPRequest(server))
	}
	if TLSState(server) != nil {
		t.Error("TLSState of a plain WebSocket connection is not nil")
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if c, err := net.Dial("tcp", addr.Host); err == nil {
		_ = c.Close()
		t.Error("the HTTP server still accepts after Close")
	}
	exchange(t, server, client) // accepted connections outlive the listener
	if got := l.HandshakeFailures(); got != 0 {
		t.Errorf("HandshakeFailures = %d, want 0", got)
	}

	// Closing the connection sends a normal close frame and ends the
	// client's stream.
	if err := server.Close(); err != nil {
		t.Fatalf("conn Close: %v", err)
	}
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read after server Close: %v, want io.EOF", err)
	}
	if err := server.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second conn Close: %v, want net.ErrClosed", err)
	}
}

// [MQTT-6.0.0-2] Frame boundaries are not packet boundaries: a packet split
// over two frames and two packets in one frame arrive as one byte stream.
// [MQTT-6.0.0-1] The server sends binary frames.
func TestWebSocketFramesAreNotPackets(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	client, server := connectWS(t, l, l.Addr().(WebSocketAddr), nil)

	// One Write of the x/net client is one frame.
	half := len(connectPacket) / 2
	for _, part := range [][]byte{connectPacket[:half], connectPacket[half:], append(pingreqPacket, disconnectPacket...)} {
		if _, err := client.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	_ = server.SetReadDeadline(time.Now().Add(waitTimeout))
	want := bytes.Join([][]byte{connectPacket, pingreqPacket, disconnectPacket}, nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("server read %x (%v), want %x", got, err, want)
	}

	// The server's writes arrive as binary frames, one per Write.
	connack := []byte{0x20, 0x02, 0x00, 0x00}
	if _, err := server.Write(append(connack, 0xD0, 0x00)); err != nil { // CONNACK + PINGRESP
		t.Fatal(err)
	}
	var f frame
	if err := frameCodec.Receive(client, &f); err != nil {
		t.Fatal(err)
	}
	if f.payloadType != websocket.BinaryFrame || !bytes.Equal(f.data, append(connack, 0xD0, 0x00)) {
		t.Fatalf("client received type %d payload %x, want a binary frame with CONNACK and PINGRESP", f.payloadType, f.data)
	}
}

// [MQTT-6.0.0-2] A fragmented message (binary frame + continuation) is one
// stream too; a ping between the fragments is answered and skipped.
func TestWebSocketFragmentsAndPing(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	accepted := acceptOne(t, l)
	c, resp := dialRawWS(t, l.Addr().(WebSocketAddr).Host, DefaultWebSocketPath, SubprotocolMQTT)
	if c == nil {
		t.Fatalf("upgrade refused: %s", resp.Status)
	}
	server := receive(t, accepted)

	c.writeFrame(t, false, wsOpBinary, connectPacket[:5])
	c.writeFrame(t, true, wsOpPing, []byte("hi"))
	c.writeFrame(t, false, wsOpContinuation, connectPacket[5:9])
	c.writeFrame(t, true, wsOpContinuation, connectPacket[9:])
	c.writeFrame(t, true, wsOpBinary, pingreqPacket)

	_ = server.SetReadDeadline(time.Now().Add(waitTimeout))
	want := append(append([]byte{}, connectPacket...), pingreqPacket...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("server read %x (%v), want %x", got, err, want)
	}
	op, payload, err := c.readFrame()
	if err != nil || op != wsOpPong || string(payload) != "hi" {
		t.Fatalf("client got opcode %d payload %q (%v), want pong \"hi\"", op, payload, err)
	}
}

// [MQTT-6.0.0-1] A data frame that is not binary closes the connection.
func TestWebSocketTextFrameClosesConnection(t *testing.T) {
	checkGoroutines(t)
	l, err := ListenWebSocket("127.0.0.1:0", nil, WebSocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	tests := []struct {
		name   string
		frames func(c *rawWS)
	}{
		{"text frame", func(c *rawWS) { c.writeFrame(t, true, wsOpText, connectPacket) }},
		{"text after binary", func(c *rawWS) {
			c.writeFrame(t, true, wsOpBinary, pingreqPacket)
			c.writeFrame(t, true, wsOpText, pingreqPacket)
		}},
		{"continuation without a first frame", func(c *rawWS) { c.writeFrame(t, true, wsOpContinuation, pingreqPacket) }},
		{"reserved data opcode", func(c *rawWS) { c.writeFrame(t, true, 0x3, pingreqPacket) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			accepted := acceptOne(t, l)
			c, resp := dialRawWS(t, l.Addr().(WebSocketAddr).Host, DefaultWebSocketPath, SubprotocolMQTT)
			if c == nil {
				t.Fatalf("upgrade refused: %s", resp.Status)
			}
			server := receive(t, accepted)
			tt.frames(c)
			_ = server.SetReadDeadline(time.Now().Add(waitTimeout))
			_, err := io.ReadAll(server)
			if !errors.Is(err, ErrNotBinaryFrame) {
				t.Fatalf("server read: %v, want ErrNotBinaryFrame", err)
			}
			c.expectClose(t, wsCloseUnsupported) // closed without waiting for the broker
		})
	}
}

// [MQTT-6.0.0-3] [MQTT-6.0.0-4] The server selects "mqtt" whenever the
// client offers it, accepts the legacy "mqttv3.1" only without "mqtt", and
// refuses an upgrade that offers neither.
func TestWebSocketSubprotocol(t *testing.T) {
	tests := []struct {
		name     string
		accepted []string // WebSocketOptions.Subprotocols
		offered  []string
		want     string // selected subprotocol, "" when refused
	}{
		{"mqtt", nil, []string{"mqtt"}, "mqtt"},
		{"mqtt among others", nil, []string{"wamp", "mqtt"}, "mqtt"},
		{"mqtt preferred over legacy", nil, []string{"mqttv3.1", "mqtt"}, "mqtt"},
		{"legacy only", nil, []string{"mqttv3.1"}, "mqttv3.1"},
		{"none offered", nil, nil, ""},
		{"unrelated protocol", nil, []string{"wamp"}, ""},
		{"case matters", nil, []string{"MQTT"}, ""},
		{"strict server, legacy client", []string{"mqtt"}, []string{"mqttv3.1"}, ""},
		{"strict server, mqtt client", []string{"mqtt"}, []string{"mqttv3.1", "mqtt"}, "mqtt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listenWS(t, nil, WebSocketOptions{Subprotocols: tt.accepted})
			accepted := make(chan net.Conn, 1)
			go func() {
				if c, err := l.Accept(); err == nil {
					accepted <- c
				}
			}()
			c, resp := dialRawWS(t, l.Addr().(WebSocketAddr).Host, DefaultWebSocketPath, tt.offered...)
			if tt.want == "" {
				if c != nil || resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("status %s, want 400 Bad Request", resp.Status)
				}
				if got := l.HandshakeFailures(); got != 1 {
					t.Errorf("HandshakeFailures = %d, want 1", got)
				}
				return
			}
			if c == nil {
				t.Fatalf("status %s, want 101", resp.Status)
			}
			if got := resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("Sec-WebSocket-Protocol = %q, want %q", got, tt.want)
			}
			server := receive(t, accepted)
			if got := server.(*wsConn).Subprotocol(); got != tt.want {
				t.Errorf("Subprotocol() = %q, want %q", got, tt.want)
			}
		})
	}
}

// A WebSocket shares the application's mux and HTTP server.
func TestWebSocketSharedMux(t *testing.T) {
	checkGoroutines(t)
	ws := NewWebSocket(WebSocketOptions{Path: "/broker"})
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hello")) })
	mux.Handle(ws.Path(), ws)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(srv.Client().CloseIdleConnections)
	if got := ws.Addr().String(); got != "/broker" || ws.Addr().Network() != "websocket" {
		t.Errorf("Addr = %s %q, want websocket /broker", ws.Addr().Network(), got)
	}

	resp, err := srv.Client().Get(srv.URL + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("application route answered %q", body)
	}

	addr := WebSocketAddr{Scheme: "ws", Host: srv.Listener.Addr().String(), Path: ws.Path()}
	client, server := connectWS(t, ws, addr, nil)
	exchange(t, client, server)

	if err := ws.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if c, resp := dialRawWS(t, addr.Host, ws.Path(), SubprotocolMQTT); c != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade after Close: %s, want 503", resp.Status)
	}
	_ = server.Close()
}

// Close closes upgraded connections that Accept has not taken yet.
func TestWebSocketCloseClosesPending(t *testing.T) {
	checkGoroutines(t)
	l, err := ListenWebSocket("127.0.0.1:0", nil, WebSocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, resp := dialRawWS(t, l.Addr().(WebSocketAddr).Host, DefaultWebSocketPath, SubprotocolMQTT)
	if c == nil {
		t.Fatalf("upgrade refused: %s", resp.Status)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	c.expectClose(t, wsCloseGoingAway)
}

func TestWebSocketReadDeadline(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	_, server := connectWS(t, l, l.Addr().(WebSocketAddr), nil)
	_ = server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := server.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("Read past the deadline: %v, want a timeout", err)
	}
}

// WebSocket over TLS, with a verified client certificate: TLSState and
// PeerCommonName work on the accepted connection, and a client without a
// certificate is refused and counted.
func TestWebSocketTLS(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	l, err := ListenWebSocket("127.0.0.1:0", certs.ServerConfig(tls.RequireAndVerifyClientCert), WebSocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	addr := l.Addr().(WebSocketAddr)
	if addr.Scheme != "wss" {
		t.Errorf("Addr = %v, want a wss:// URL", addr)
	}

	client, server := connectWS(t, l, addr, certs.ClientConfig(certs.Client))
	exchange(t, client, server)
	if cs := TLSState(server); cs == nil || !cs.HandshakeComplete || len(cs.VerifiedChains) == 0 {
		t.Errorf("TLSState = %+v, want a verified handshake", cs)
	}
	if cn, ok := PeerCommonName(server); !ok || cn != testcert.ClientCommonName {
		t.Errorf("PeerCommonName = %q, %v; want %q, true", cn, ok, testcert.ClientCommonName)
	}

	if _, _, err := dialWS(t, addr, certs.ClientConfig(), SubprotocolMQTT); err == nil {
		t.Fatal("client without a certificate completed the upgrade")
	}
	waitFailures(t, l, 1)
	_ = server.Close()
}

// unwrappingWriter is middleware's ResponseWriter wrapper: it hides
// http.Hijacker but exposes the original through Unwrap.
type unwrappingWriter struct{ rw http.ResponseWriter }

func (u unwrappingWriter) Header() http.Header         { return u.rw.Header() }
func (u unwrappingWriter) Write(b []byte) (int, error) { return u.rw.Write(b) }
func (u unwrappingWriter) WriteHeader(code int)        { u.rw.WriteHeader(code) }
func (u unwrappingWriter) Unwrap() http.ResponseWriter { return u.rw }

func TestWebSocketBehindMiddleware(t *testing.T) {
	ws := NewWebSocket(WebSocketOptions{})
	t.Cleanup(func() { _ = ws.Close() })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws.ServeHTTP(unwrappingWriter{w}, r)
	}))
	t.Cleanup(srv.Close)
	addr := WebSocketAddr{Scheme: "ws", Host: srv.Listener.Addr().String(), Path: ws.Path()}
	client, server := connectWS(t, ws, addr, nil)
	exchange(t, client, server)
}

// A ResponseWriter that cannot hand over its connection (HTTP/2, or a
// recorder) gets 505 instead of a panic.
func TestWebSocketWithoutHijacker(t *testing.T) {
	ws := NewWebSocket(WebSocketOptions{})
	t.Cleanup(func() { _ = ws.Close() })
	req := httptest.NewRequest(http.MethodGet, DefaultWebSocketPath, nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Protocol", SubprotocolMQTT)
	rec := httptest.NewRecorder()
	ws.ServeHTTP(rec, req)
	if rec.Code != http.StatusHTTPVersionNotSupported {
		t.Fatalf("status %d, want 505", rec.Code)
	}
	if got := ws.HandshakeFailures(); got != 1 {
		t.Errorf("HandshakeFailures = %d, want 1", got)
	}
}

func TestWebSocketCheckOrigin(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") == "https://app.example"
	}})
	c, resp := dialRawWS(t, l.Addr().(WebSocketAddr).Host, DefaultWebSocketPath, SubprotocolMQTT)
	if c != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upgrade without an allowed origin: %s, want 403", resp.Status)
	}
	if got := l.HandshakeFailures(); got != 1 {
		t.Errorf("HandshakeFailures = %d, want 1", got)
	}
}

func TestWebSocketMalformedUpgradeCounted(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	req, err := http.NewRequest(http.MethodGet, "http://"+l.Addr().(WebSocketAddr).Host+DefaultWebSocketPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-WebSocket-Protocol", SubprotocolMQTT) // but no Upgrade header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %s, want 400", resp.Status)
	}
	waitFailures(t, l, 1)
}

func TestWebSocketPath(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{Path: "ws/mqtt"})
	if l.Path() != "/ws/mqtt" {
		t.Fatalf("Path() = %q, want /ws/mqtt", l.Path())
	}
	host := l.Addr().(WebSocketAddr).Host
	for _, path := range []string{"/mqtt", "/ws/mqtt/", "/"} {
		if c, resp := dialRawWS(t, host, path, SubprotocolMQTT); c != nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("upgrade at %s: %s, want 404", path, resp.Status)
		}
	}
	accepted := acceptOne(t, l)
	if c, resp := dialRawWS(t, host, "/ws/mqtt", SubprotocolMQTT); c == nil {
		t.Fatalf("upgrade at the configured path: %s", resp.Status)
	}
	receive(t, accepted)
}
