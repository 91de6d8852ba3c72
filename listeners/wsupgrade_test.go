package listeners

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
				require.Nil(t, c, "status %s, want 400 Bad Request", resp.Status)
				require.Equal(t, http.StatusBadRequest, resp.StatusCode, "status")
				assert.Equal(t, uint64(1), l.HandshakeFailures(), "HandshakeFailures")
				return
			}
			require.NotNil(t, c, "status %s, want 101", resp.Status)
			require.Equal(t, []string{tt.want}, resp.Header.Values("Sec-WebSocket-Protocol"), "Sec-WebSocket-Protocol")
			server := receive(t, accepted)
			assert.Equal(t, tt.want, server.(*wsConn).Subprotocol(), "Subprotocol()")
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
	assert.Equal(t, "/broker", ws.Addr().String(), "Addr")
	assert.Equal(t, "websocket", ws.Addr().Network(), "Addr().Network()")

	resp, err := srv.Client().Get(srv.URL + "/hello")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, "hello", string(body), "application route")

	addr := WebSocketAddr{Scheme: "ws", Host: srv.Listener.Addr().String(), Path: ws.Path()}
	client, server := connectWS(t, ws, addr, nil)
	exchange(t, client, server)

	require.NoError(t, ws.Close())
	_, err = ws.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Accept after Close")
	c, resp := dialRawWS(t, addr.Host, ws.Path(), SubprotocolMQTT)
	assert.True(t, c == nil && resp.StatusCode == http.StatusServiceUnavailable, "upgrade after Close: %s, want 503", resp.Status)
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
	require.Equal(t, http.StatusHTTPVersionNotSupported, rec.Code, "status")
	assert.Equal(t, uint64(1), ws.HandshakeFailures(), "HandshakeFailures")
}

func TestWebSocketCheckOrigin(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") == "https://app.example"
	}})
	c, resp := dialRawWS(t, l.Addr().(WebSocketAddr).Host, DefaultWebSocketPath, SubprotocolMQTT)
	require.True(t, c == nil && resp.StatusCode == http.StatusForbidden, "upgrade without an allowed origin: %s, want 403", resp.Status)
	assert.Equal(t, uint64(1), l.HandshakeFailures(), "HandshakeFailures")
}

func TestWebSocketMalformedUpgradeCounted(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	req, err := http.NewRequest(http.MethodGet, "http://"+l.Addr().(WebSocketAddr).Host+DefaultWebSocketPath, nil)
	require.NoError(t, err)
	req.Header.Set("Sec-WebSocket-Protocol", SubprotocolMQTT) // but no Upgrade header
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain GET")
	waitFailures(t, l, 1)
}

func TestWebSocketPath(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{Path: "ws/mqtt"})
	require.Equal(t, "/ws/mqtt", l.Path(), "Path()")
	host := l.Addr().(WebSocketAddr).Host
	for _, path := range []string{"/mqtt", "/ws/mqtt/", "/"} {
		c, resp := dialRawWS(t, host, path, SubprotocolMQTT)
		assert.True(t, c == nil && resp.StatusCode == http.StatusNotFound, "upgrade at %s: %s, want 404", path, resp.Status)
	}
	accepted := acceptOne(t, l)
	c, resp := dialRawWS(t, host, "/ws/mqtt", SubprotocolMQTT)
	require.NotNil(t, c, "upgrade at the configured path: %s", resp.Status)
	receive(t, accepted)
}
