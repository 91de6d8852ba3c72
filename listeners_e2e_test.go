package tern_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/websocket"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/listeners/testcert"
	"github.com/ternmq/tern/packets"
)

// These tests run the broker behind every listener of package listeners and
// drive it with real clients over each transport: the suite's own packet
// writer and Eclipse Paho.

// lisTransport is one way to reach a broker in these tests.
type lisTransport struct {
	listener net.Listener
	dial     func() (net.Conn, error)    // a raw client connection
	paho     func(o *mqtt.ClientOptions) // points a Paho client at the listener
	// after, if set, runs once the broker is closed: checks on the
	// listener, and the stopping of servers the transport started.
	after func(t *testing.T)
}

// lisTransports lists every listener, each built on a loopback address.
func lisTransports() []struct {
	name  string
	setup func(t *testing.T) lisTransport
} {
	return []struct {
		name  string
		setup func(t *testing.T) lisTransport
	}{
		{"tcp", lisTCP},
		{"tls", func(t *testing.T) lisTransport {
			certs := testcert.New(t)
			return lisTLS(t, certs.ServerConfig(tls.NoClientCert), certs.ClientConfig())
		}},
		{"tls with required client certificates", func(t *testing.T) lisTransport {
			certs := testcert.New(t)
			return lisTLS(t, certs.ServerConfig(tls.RequireAndVerifyClientCert), certs.ClientConfig(certs.Client))
		}},
		{"websocket", func(t *testing.T) lisTransport {
			return lisWebSocket(t, nil, nil)
		}},
		{"websocket over tls", func(t *testing.T) lisTransport {
			certs := testcert.New(t)
			return lisWebSocket(t, certs.ServerConfig(tls.NoClientCert), certs.ClientConfig())
		}},
		{"websocket on the application's mux", lisSharedMux},
		{"unix", func(t *testing.T) lisTransport {
			// t.TempDir can exceed the 108 bytes a socket path may have.
			dir, err := os.MkdirTemp("", "tern")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			path := filepath.Join(dir, "mqtt.sock")
			l, err := listeners.Unix(path)
			if err != nil {
				t.Fatal(err)
			}
			return lisTransport{
				listener: l,
				dial:     func() (net.Conn, error) { return net.DialTimeout("unix", path, waitTimeout) },
				paho:     func(o *mqtt.ClientOptions) { o.AddBroker("unix://" + path) },
				after: func(t *testing.T) {
					if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("socket file after Close: %v, want it removed", err)
					}
				},
			}
		}},
		{"memory", func(t *testing.T) lisTransport {
			mem := listeners.NewMemory()
			return lisTransport{
				listener: mem,
				dial:     mem.Dial,
				paho: func(o *mqtt.ClientOptions) {
					o.AddBroker("tcp://memory").SetCustomOpenConnectionFn(
						func(*url.URL, mqtt.ClientOptions) (net.Conn, error) { return mem.Dial() })
				},
			}
		}},
	}
}

func lisTCP(t *testing.T) lisTransport {
	l, err := listeners.TCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	return lisTransport{
		listener: l,
		dial:     func() (net.Conn, error) { return net.DialTimeout("tcp", addr, waitTimeout) },
		paho:     func(o *mqtt.ClientOptions) { o.AddBroker("tcp://" + addr) },
	}
}

func lisTLS(t *testing.T, server, client *tls.Config) lisTransport {
	l, err := listeners.TLS("127.0.0.1:0", server, listeners.TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	return lisTransport{
		listener: l,
		dial: func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, client)
		},
		paho: func(o *mqtt.ClientOptions) { o.AddBroker("ssl://" + addr).SetTLSConfig(client) },
		after: func(t *testing.T) {
			if n := l.HandshakeFailures(); n != 0 {
				t.Errorf("HandshakeFailures = %d, want 0", n)
			}
		},
	}
}

func lisWebSocket(t *testing.T, server, client *tls.Config) lisTransport {
	l, err := listeners.ListenWebSocket("127.0.0.1:0", server, listeners.WebSocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u := l.Addr().String()
	return lisTransport{
		listener: l,
		dial:     func() (net.Conn, error) { return lisDialWS(u, client, listeners.SubprotocolMQTT) },
		paho:     func(o *mqtt.ClientOptions) { o.AddBroker(u).SetTLSConfig(client) },
		after: func(t *testing.T) {
			if n := l.HandshakeFailures(); n != 0 {
				t.Errorf("HandshakeFailures = %d, want 0", n)
			}
		},
	}
}

// lisSharedMux mounts the WebSocket endpoint on an application's mux, next
// to an application handler, and checks that the application keeps working
// before and after the broker stops.
func lisSharedMux(t *testing.T) lisTransport {
	ws := listeners.NewWebSocket(listeners.WebSocketOptions{})
	mux := http.NewServeMux()
	mux.Handle(ws.Path(), ws)
	mux.HandleFunc("/app", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "application\n") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u := "ws://" + srv.Listener.Addr().String() + ws.Path()
	if code, body := lisGet(t, srv.URL+"/app"); code != http.StatusOK || body != "application\n" {
		t.Fatalf("GET /app before MQTT = %d %q", code, body)
	}
	return lisTransport{
		listener: ws,
		dial:     func() (net.Conn, error) { return lisDialWS(u, nil, listeners.SubprotocolMQTT) },
		paho:     func(o *mqtt.ClientOptions) { o.AddBroker(u) },
		after: func(t *testing.T) {
			if code, body := lisGet(t, srv.URL+"/app"); code != http.StatusOK || body != "application\n" {
				t.Errorf("GET /app after the broker closed = %d %q, want 200", code, body)
			}
			// The closed endpoint refuses upgrades; the server is the
			// application's and still runs.
			if code := lisUpgrade(t, u, listeners.SubprotocolMQTT).StatusCode; code != http.StatusServiceUnavailable {
				t.Errorf("upgrade after the broker closed = %d, want 503", code)
			}
			srv.Close()
		},
	}
}

// Over every listener: a raw client and a Paho client each connect,
// subscribe, publish to themselves, receive and disconnect; a third client
// is still connected when the broker closes and sees its connection end; no
// goroutine outlives Close. [MQTT-7.1.1-1] TCP, and every other ordered,
// lossless byte stream Tern offers.
func TestListenersEndToEnd(t *testing.T) {
	for _, tc := range lisTransports() {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			tr := tc.setup(t)
			b, err := tern.New(tern.Options{SysInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- b.Serve(tr.listener) }()
			t.Cleanup(func() { b.Close(context.Background()) }) // when a check failed early

			lisRawRoundTrip(t, tr.dial, "raw")
			lisPahoRoundTrip(t, tr.paho, "paho")
			eventually(t, "both clients gone", func() bool { return b.Stats().ClientsConnected == 0 })
			// A client still connected when the broker closes.
			stays := lisRaw(t, tr.dial)
			if ack := stays.connect("stays", true); ack.ReturnCode != packets.Accepted {
				t.Fatalf("CONNACK %d", ack.ReturnCode)
			}
			if n := b.Stats().Connects; n != 3 {
				t.Errorf("Stats().Connects = %d, want 3", n)
			}

			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := b.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := <-served; !errors.Is(err, tern.ErrClosed) {
				t.Errorf("Serve = %v, want ErrClosed", err)
			}
			stays.expectClosed()
			stays.conn.Close()
			if tr.after != nil {
				tr.after(t)
			}
			waitGoroutines(t, before)
		})
	}
}

// lisRawRoundTrip connects with the suite's packet writer, subscribes at
// QoS 1, publishes to its own subscription, receives the message and
// disconnects.
func lisRawRoundTrip(t *testing.T, dial func() (net.Conn, error), id string) {
	t.Helper()
	c := lisRaw(t, dial)
	if ack := c.connect(id, true); ack.ReturnCode != packets.Accepted || ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want accepted without a session", ack)
	}
	topic := "e2e/" + id
	if ack := c.subscribe(1, packets.Subscription{Filter: topic, QoS: 1}); !slices.Equal(ack.ReturnCodes, []byte{1}) {
		t.Fatalf("SUBACK %v, want [1]", ack.ReturnCodes)
	}
	c.send(&packets.Publish{Topic: topic, QoS: 1, PacketID: 2, Payload: []byte("hello " + id)})
	// The PUBACK of the publish and its delivery to the client's own
	// subscription may come in either order.
	var got *packets.Publish
	acks := 0
	for range 2 {
		switch p := c.recv().(type) {
		case *packets.Puback:
			if p.PacketID != 2 {
				t.Fatalf("PUBACK %d, want 2", p.PacketID)
			}
			acks++
		case *packets.Publish:
			if got != nil {
				t.Fatalf("second delivery %+v", p)
			}
			got = p
		default:
			t.Fatalf("unexpected %v", p.Type())
		}
	}
	if acks != 1 || got == nil {
		t.Fatalf("want one PUBACK and one PUBLISH, got %d PUBACK and %+v", acks, got)
	}
	if got.Topic != topic || string(got.Payload) != "hello "+id || got.QoS != 1 || got.Retain || got.Dup {
		t.Fatalf("delivered %+v", got)
	}
	c.send(&packets.Puback{PacketID: got.PacketID})
	c.send(&packets.Disconnect{})
	c.expectClosed()
}

// lisPahoRoundTrip does the same with Eclipse Paho.
func lisPahoRoundTrip(t *testing.T, configure func(*mqtt.ClientOptions), id string) {
	t.Helper()
	o := mqtt.NewClientOptions().SetClientID(id).SetCleanSession(true).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTimeout)
	configure(o)
	c := mqtt.NewClient(o)
	lisWait(t, "connect", c.Connect())
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(0)
		}
	})
	topic := "e2e/" + id
	got := make(chan mqtt.Message, 4)
	sub := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m })
	lisWait(t, "subscribe", sub)
	if q := sub.(*mqtt.SubscribeToken).Result()[topic]; q != 1 {
		t.Fatalf("granted QoS %d, want 1", q)
	}
	lisWait(t, "publish", c.Publish(topic, 1, false, "hello "+id))
	select {
	case m := <-got:
		if m.Topic() != topic || string(m.Payload()) != "hello "+id || m.Qos() != 1 || m.Retained() {
			t.Fatalf("delivered %s %q qos %d retained %v", m.Topic(), m.Payload(), m.Qos(), m.Retained())
		}
	case <-time.After(waitTimeout):
		t.Fatal("paho: no message")
	}
	c.Disconnect(250)
}

func lisWait(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("paho %s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho %s: %v", what, err)
	}
}

// lisRaw dials a raw client connection, closed at cleanup.
func lisRaw(t *testing.T, dial func() (net.Conn, error)) *rawClient {
	t.Helper()
	nc, err := dial()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, conn: nc, r: packets.NewReader(nc, 0)}
}

// lisDialWS connects a golang.org/x/net/websocket client offering
// protocols; each Write is one binary frame.
func lisDialWS(u string, tlsCfg *tls.Config, protocols ...string) (*websocket.Conn, error) {
	cfg, err := websocket.NewConfig(u, "http://localhost/")
	if err != nil {
		return nil, err
	}
	cfg.Protocol = protocols
	cfg.TlsConfig = tlsCfg
	cfg.Dialer = &net.Dialer{Timeout: waitTimeout}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		return nil, err
	}
	ws.PayloadType = websocket.BinaryFrame
	return ws, nil
}

// lisServe starts a broker with hooks serving l. At cleanup it closes the
// broker and checks that Serve returned ErrClosed and that the goroutines
// started since before (taken before the listener was made) have ended.
func lisServe(t *testing.T, before int, opts tern.Options, l net.Listener, hooks ...any) *tern.Broker {
	t.Helper()
	opts.SysInterval = -1
	return serveBroker(t, before, opts, l, hooks...)
}

// lisGet fetches u and returns the status and body.
func lisGet(t *testing.T, u string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, string(body)
}

// lisUpgrade sends a WebSocket upgrade request for the ws:// URL u offering
// protocols (none when empty), and returns the response with its body
// closed.
func lisUpgrade(t *testing.T, u string, protocols ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http"+u[len("ws"):], nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for _, p := range protocols {
		req.Header.Add("Sec-WebSocket-Protocol", p)
	}
	client := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("upgrade %s: %v", u, err)
	}
	resp.Body.Close()
	return resp
}

func TestTLSListenerRefusesClientsWithoutAValidCertificate(t *testing.T) {
	before := runtime.NumGoroutine()
	certs := testcert.New(t)
	l, err := listeners.TLS("127.0.0.1:0", certs.ServerConfig(tls.RequireAndVerifyClientCert), listeners.TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := lisServe(t, before, tern.Options{}, l)
	addr := l.Addr().String()
	dialer := &net.Dialer{Timeout: waitTimeout}

	refused := []struct {
		name string
		cfg  *tls.Config
	}{
		{"no certificate", certs.ClientConfig()},
		{"certificate of another authority", certs.ClientConfig(testcert.New(t).Client)},
	}
	failures := uint64(0)
	for _, tc := range refused {
		t.Run(tc.name+"/raw", func(t *testing.T) {
			// Refused either by the handshake itself (TLS 1.2) or by an
			// alert on the first read.
			conn, err := tls.DialWithDialer(dialer, "tcp", addr, tc.cfg)
			if err == nil {
				// With TLS 1.3 the client finishes its side of the handshake
				// before the server has checked its certificate: the refusal
				// arrives as an alert instead of a CONNACK.
				defer conn.Close()
				c := &rawClient{t: t, conn: conn, r: packets.NewReader(conn, 0)}
				pkt, err := (&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "nocert", CleanSession: true}).Append(nil)
				if err != nil {
					t.Fatal(err)
				}
				conn.SetWriteDeadline(time.Now().Add(waitTimeout))
				conn.Write(pkt) // may fail already: the alert can be there first
				p, err := c.tryRecv(waitTimeout)
				var ne net.Error
				if err == nil || errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("read after CONNECT = %v, %v; want the connection refused", p, err)
				}
			}
		})
		failures++
		eventually(t, "the handshake failure counted", func() bool { return l.HandshakeFailures() == failures })
		t.Run(tc.name+"/paho", func(t *testing.T) {
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("ssl://" + addr).SetTLSConfig(tc.cfg).
				SetClientID("paho-nocert").SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTimeout))
			tok := c.Connect()
			if !tok.WaitTimeout(waitTimeout) {
				t.Fatal("paho connect: timed out")
			}
			if tok.Error() == nil {
				c.Disconnect(0)
				t.Fatal("paho connected without a valid client certificate")
			}
		})
		failures++
		eventually(t, "the handshake failure counted", func() bool { return l.HandshakeFailures() == failures })
	}
	if n := b.Stats().Connects; n != 0 {
		t.Errorf("Stats().Connects = %d, want 0", n)
	}
	// The listener still serves clients with a valid certificate.
	c := lisRaw(t, func() (net.Conn, error) {
		return tls.DialWithDialer(dialer, "tcp", addr, certs.ClientConfig(certs.Client))
	})
	if ack := c.connect("withcert", true); ack.ReturnCode != packets.Accepted {
		t.Fatalf("CONNACK %d with a valid certificate", ack.ReturnCode)
	}
}

// lisAuth is an Authenticator that reports every ConnectInfo it sees.
type lisAuth chan tern.ConnectInfo

func (a lisAuth) Authenticate(_ context.Context, c tern.ConnectInfo) error {
	a <- c
	return nil
}

func TestAuthenticatorSeesTLSStateAndCertificateCommonName(t *testing.T) {
	const cn = "device-42"
	cases := []struct {
		name     string
		listen   func(t *testing.T, certs *testcert.Certs) lisTransport
		useCN    bool
		wantCode byte
		wantUser string // "" when the authenticator must not be called
		wantTLS  bool
	}{
		{"tls with UseCertCNAsUsername", lisCertTLS, true, packets.Accepted, cn, true},
		{"websocket over tls with UseCertCNAsUsername", lisCertWSS, true, packets.Accepted, cn, true},
		{"tls", lisCertTLS, false, packets.Accepted, "mallory", true},
		{"tcp", lisPlainTCP, false, packets.Accepted, "mallory", false},
		// No certificate to take a user name from: refused before the
		// authenticator runs.
		{"tcp with UseCertCNAsUsername", lisPlainTCP, true, packets.RefusedNotAuthorized, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			certs := testcert.New(t)
			tr := tc.listen(t, certs)
			seen := make(lisAuth, 1)
			b := lisServe(t, before, tern.Options{UseCertCNAsUsername: tc.useCN}, tr.listener, seen)
			c := lisRaw(t, tr.dial)
			ack := c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "id", CleanSession: true,
				KeepAlive: 60, UsernameFlag: true, Username: "mallory"})
			if ack.ReturnCode != tc.wantCode {
				t.Fatalf("CONNACK %d, want %d", ack.ReturnCode, tc.wantCode)
			}
			if tc.wantUser == "" {
				c.expectClosed()
				if len(seen) != 0 {
					t.Fatalf("the authenticator saw %+v", <-seen)
				}
				return
			}
			info := <-seen // sent before CONNACK
			if info.Username != tc.wantUser || !info.HasUsername || info.ClientID != "id" {
				t.Errorf("ConnectInfo user %q (has %v) id %q, want %q", info.Username, info.HasUsername, info.ClientID, tc.wantUser)
			}
			if (info.TLS != nil) != tc.wantTLS {
				t.Fatalf("ConnectInfo.TLS = %v, want set %v", info.TLS, tc.wantTLS)
			}
			if tc.wantTLS {
				if len(info.TLS.PeerCertificates) == 0 || len(info.TLS.VerifiedChains) == 0 ||
					info.TLS.PeerCertificates[0].Subject.CommonName != cn {
					t.Errorf("ConnectInfo.TLS lacks the verified certificate of %q: %+v", cn, info.TLS.PeerCertificates)
				}
			}
			clients := b.Clients()
			if len(clients) != 1 || clients[0].Username != tc.wantUser {
				t.Errorf("Clients() = %+v, want one with user %q", clients, tc.wantUser)
			}
		})
	}
}

func lisCertTLS(t *testing.T, certs *testcert.Certs) lisTransport {
	return lisTLS(t, certs.ServerConfig(tls.RequireAndVerifyClientCert), certs.ClientConfig(certs.ClientCert("device-42")))
}

func lisCertWSS(t *testing.T, certs *testcert.Certs) lisTransport {
	return lisWebSocket(t, certs.ServerConfig(tls.RequireAndVerifyClientCert), certs.ClientConfig(certs.ClientCert("device-42")))
}

func lisPlainTCP(t *testing.T, _ *testcert.Certs) lisTransport { return lisTCP(t) }

// lisFrames reads a WebSocket client's incoming frames as one byte stream,
// failing the test on any data frame that is not binary [MQTT-6.0.0-1].
type lisFrames struct {
	t     *testing.T
	ws    *websocket.Conn
	frame io.Reader // the data frame being read
}

func (f *lisFrames) Read(p []byte) (int, error) {
	for {
		if f.frame == nil {
			fr, err := f.ws.NewFrameReader()
			if err != nil {
				return 0, err
			}
			data, err := f.ws.HandleFrame(fr) // answers pings; io.EOF on close
			if err != nil {
				return 0, err
			}
			if data == nil {
				continue
			}
			if data.PayloadType() != websocket.BinaryFrame {
				f.t.Errorf("the broker sent a frame of type %d, want binary [MQTT-6.0.0-1]", data.PayloadType())
				return 0, errors.New("not a binary frame")
			}
			f.frame = data
		}
		n, err := f.frame.Read(p)
		if err == io.EOF {
			f.frame = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// lisWSClient starts a broker on ListenWebSocket and connects a WebSocket
// client offering "mqtt", checking that the server selected it.
func lisWSClient(t *testing.T) (*tern.Broker, *websocket.Conn, *rawClient) {
	t.Helper()
	before := runtime.NumGoroutine()
	l, err := listeners.ListenWebSocket("127.0.0.1:0", nil, listeners.WebSocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := lisServe(t, before, tern.Options{}, l)
	ws, err := lisDialWS(l.Addr().String(), nil, listeners.SubprotocolMQTT)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	// [MQTT-6.0.0-4] the server returns "mqtt" as the selected subprotocol.
	if p := ws.Config().Protocol; !slices.Equal(p, []string{"mqtt"}) {
		t.Fatalf("selected subprotocol %q, want mqtt", p)
	}
	return b, ws, &rawClient{t: t, conn: ws, r: packets.NewReader(&lisFrames{t: t, ws: ws}, 0)}
}

func lisEncode(t *testing.T, ps ...packets.Packet) []byte {
	t.Helper()
	var b []byte
	for _, p := range ps {
		var err error
		if b, err = p.Append(b); err != nil {
			t.Fatalf("encode %v: %v", p.Type(), err)
		}
	}
	return b
}

// The broker reassembles MQTT packets whatever the WebSocket framing: a
// packet split over frames, several packets in one frame, packets straddling
// frame boundaries. [MQTT-6.0.0-2]
func TestWebSocketPacketsSpanAndShareFrames(t *testing.T) {
	b, _, c := lisWSClient(t)

	// One CONNECT in two frames (each Write is one binary frame).
	connect := lisEncode(t, &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "frames", CleanSession: true, KeepAlive: 60})
	c.sendRaw(connect[:3])
	c.sendRaw(connect[3:])
	if ack, ok := c.recv().(*packets.Connack); !ok || ack.ReturnCode != packets.Accepted {
		t.Fatalf("want CONNACK 0 to a CONNECT split over two frames, got %+v", ack)
	}

	// SUBSCRIBE and a PUBLISH to it in one frame.
	c.sendRaw(lisEncode(t,
		&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "ws/t", QoS: 0}}},
		&packets.Publish{Topic: "ws/t", Payload: []byte("one frame")}))
	lisExpect(t, c, map[packets.Type]func(packets.Packet) bool{
		packets.TypeSuback: func(p packets.Packet) bool {
			s := p.(*packets.Suback)
			return s.PacketID == 1 && slices.Equal(s.ReturnCodes, []byte{0})
		},
		packets.TypePublish: func(p packets.Packet) bool {
			m := p.(*packets.Publish)
			return m.Topic == "ws/t" && string(m.Payload) == "one frame"
		},
	})

	// A QoS 1 PUBLISH and a PINGREQ cut across three frames, the middle one
	// holding the end of one and the start of the other.
	both := lisEncode(t, &packets.Publish{Topic: "ws/t", QoS: 1, PacketID: 7, Payload: []byte("straddling")}, &packets.Pingreq{})
	cut := len(both) - 1 // inside the 2-byte PINGREQ
	c.sendRaw(both[:4])
	c.sendRaw(both[4:cut])
	c.sendRaw(both[cut:])
	lisExpect(t, c, map[packets.Type]func(packets.Packet) bool{
		packets.TypePuback: func(p packets.Packet) bool { return p.(*packets.Puback).PacketID == 7 },
		packets.TypePublish: func(p packets.Packet) bool {
			m := p.(*packets.Publish)
			return m.Topic == "ws/t" && string(m.Payload) == "straddling" && m.QoS == 0
		},
		packets.TypePingresp: func(packets.Packet) bool { return true },
	})

	// A 2-byte DISCONNECT in two frames ends the connection.
	c.sendRaw([]byte{0xE0})
	c.sendRaw([]byte{0x00})
	c.expectClosed()
	if s := b.Stats(); s.PublishReceived != 2 || s.Connects != 1 {
		t.Errorf("Stats PublishReceived %d Connects %d, want 2 and 1", s.PublishReceived, s.Connects)
	}
}

// lisExpect reads one packet of each type in want, in any order, and checks
// each with its function.
func lisExpect(t *testing.T, c *rawClient, want map[packets.Type]func(packets.Packet) bool) {
	t.Helper()
	for range len(want) {
		p := c.recv()
		check, ok := want[p.Type()]
		if !ok {
			t.Fatalf("unexpected %v %+v", p.Type(), p)
		}
		if !check(p) {
			t.Fatalf("wrong %v: %+v", p.Type(), p)
		}
		delete(want, p.Type())
	}
}

// A text frame closes the connection: no CONNACK. [MQTT-6.0.0-1]
func TestWebSocketTextFrameClosesTheConnection(t *testing.T) {
	b, ws, c := lisWSClient(t)
	ws.PayloadType = websocket.TextFrame
	c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "text", CleanSession: true, KeepAlive: 60})
	c.expectClosed()
	if n := b.Stats().Connects; n != 0 {
		t.Errorf("Stats().Connects = %d, want 0", n)
	}
}

// A client must offer "mqtt" [MQTT-6.0.0-3]; an upgrade that offers no
// subprotocol the listener accepts is refused with 400 Bad Request, as the
// listeners package documents. The server selects and returns "mqtt"
// [MQTT-6.0.0-4]; it still accepts "mqttv3.1" alone, from MQTT 3.1 era
// clients, as Mosquitto does.
func TestWebSocketSubprotocolNegotiation(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := listeners.ListenWebSocket("127.0.0.1:0", nil, listeners.WebSocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := lisServe(t, before, tern.Options{}, l)
	u := l.Addr().String()
	cases := []struct {
		offered  []string
		wantCode int
		wantSel  string
	}{
		{nil, http.StatusBadRequest, ""},
		{[]string{"chat"}, http.StatusBadRequest, ""},
		{[]string{"MQTT"}, http.StatusBadRequest, ""}, // subprotocol names are case-sensitive
		{[]string{"mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{[]string{"chat, mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{[]string{"mqttv3.1", "mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{[]string{"mqttv3.1"}, http.StatusSwitchingProtocols, "mqttv3.1"},
	}
	refused := uint64(0)
	for _, tc := range cases {
		resp := lisUpgrade(t, u, tc.offered...)
		if resp.StatusCode != tc.wantCode || resp.Header.Get("Sec-WebSocket-Protocol") != tc.wantSel {
			t.Errorf("offering %q: %d selecting %q, want %d selecting %q", tc.offered, resp.StatusCode,
				resp.Header.Get("Sec-WebSocket-Protocol"), tc.wantCode, tc.wantSel)
		}
		if tc.wantCode != http.StatusSwitchingProtocols {
			refused++
		}
	}
	// A WebSocket client library sees the refusal as a failed handshake.
	if ws, err := lisDialWS(u, nil); err == nil {
		ws.Close()
		t.Error("a client offering no subprotocol was upgraded")
	}
	refused++
	if n := l.HandshakeFailures(); n != refused {
		t.Errorf("HandshakeFailures = %d, want %d", n, refused)
	}
	if n := b.Stats().Connects; n != 0 {
		t.Errorf("Stats().Connects = %d, want 0", n)
	}
}

func TestHTTPHandlerHealthzAndStats(t *testing.T) {
	before := runtime.NumGoroutine()
	mem := listeners.NewMemory()
	b := lisServe(t, before, tern.Options{}, mem)
	ops := httptest.NewServer(listeners.HTTPHandler(func() any { return b.Stats() }, b.Serving))
	t.Cleanup(ops.Close)

	if code, body := lisGet(t, ops.URL+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz while serving = %d %q, want 200", code, body)
	}

	c := lisRaw(t, mem.Dial)
	connect := &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "ops", CleanSession: true, KeepAlive: 60}
	sub := &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "ops/#", QoS: 0}}}
	pub := &packets.Publish{Topic: "ops/t", Payload: []byte("up"), Retain: true}
	c.connectWith(connect)
	c.send(sub)
	c.recv()
	c.send(pub)
	got := c.recvPublish()
	received := len(lisEncode(t, connect, sub, pub))
	sent := len(lisEncode(t, &packets.Connack{}, &packets.Suback{PacketID: 1, ReturnCodes: []byte{0}}, got))

	var s tern.Stats
	eventually(t, "the delivery counted", func() bool {
		s = lisStats(t, ops.URL+"/stats")
		return s.PublishSent == 1 && s.BytesSent == int64(sent)
	})
	want := tern.Stats{
		Version:          tern.Version,
		Uptime:           s.Uptime,
		ClientsConnected: 1,
		ClientsTotal:     1,
		Connects:         1,
		MessagesReceived: 3, // CONNECT, SUBSCRIBE, PUBLISH
		PublishReceived:  1,
		PublishSent:      1,
		BytesReceived:    int64(received),
		BytesSent:        int64(sent),
		Subscriptions:    1,
		Retained:         1,
	}
	if s != want {
		t.Errorf("/stats = %+v\nwant %+v", s, want)
	}
	if s.Uptime <= 0 {
		t.Errorf("/stats uptime %v, want positive", s.Uptime)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := lisGet(t, ops.URL+"/healthz"); code != http.StatusServiceUnavailable || body != "unavailable\n" {
		t.Errorf("/healthz after Close = %d %q, want 503", code, body)
	}
}

// lisStats fetches u and decodes it as tern.Stats, refusing unknown fields.
func lisStats(t *testing.T, u string) tern.Stats {
	t.Helper()
	code, body := lisGet(t, u)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %q", u, code, body)
	}
	var s tern.Stats
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("GET %s: %v in %s", u, err, body)
	}
	return s
}
