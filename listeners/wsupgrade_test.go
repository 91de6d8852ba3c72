package listeners

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

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
