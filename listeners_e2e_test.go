package tern_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
			require.NoError(t, err)
			t.Cleanup(func() { os.RemoveAll(dir) })
			path := filepath.Join(dir, "mqtt.sock")
			l, err := listeners.Unix(path)
			require.NoError(t, err)
			return lisTransport{
				listener: l,
				dial:     func() (net.Conn, error) { return net.DialTimeout("unix", path, waitTimeout) },
				paho:     func(o *mqtt.ClientOptions) { o.AddBroker("unix://" + path) },
				after: func(t *testing.T) {
					_, err := os.Stat(path)
					assert.ErrorIs(t, err, os.ErrNotExist, "socket file after Close: want it removed")
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
	require.NoError(t, err)
	addr := l.Addr().String()
	return lisTransport{
		listener: l,
		dial:     func() (net.Conn, error) { return net.DialTimeout("tcp", addr, waitTimeout) },
		paho:     func(o *mqtt.ClientOptions) { o.AddBroker("tcp://" + addr) },
	}
}

func lisTLS(t *testing.T, server, client *tls.Config) lisTransport {
	l, err := listeners.TLS("127.0.0.1:0", server, listeners.TLSOptions{})
	require.NoError(t, err)
	addr := l.Addr().String()
	return lisTransport{
		listener: l,
		dial: func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, client)
		},
		paho: func(o *mqtt.ClientOptions) { o.AddBroker("ssl://" + addr).SetTLSConfig(client) },
		after: func(t *testing.T) {
			assert.Zero(t, l.HandshakeFailures(), "HandshakeFailures")
		},
	}
}

func lisWebSocket(t *testing.T, server, client *tls.Config) lisTransport {
	l, err := listeners.ListenWebSocket("127.0.0.1:0", server, listeners.WebSocketOptions{})
	require.NoError(t, err)
	u := l.Addr().String()
	return lisTransport{
		listener: l,
		dial:     func() (net.Conn, error) { return lisDialWS(u, client, listeners.SubprotocolMQTT) },
		paho:     func(o *mqtt.ClientOptions) { o.AddBroker(u).SetTLSConfig(client) },
		after: func(t *testing.T) {
			assert.Zero(t, l.HandshakeFailures(), "HandshakeFailures")
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
	code, body := lisGet(t, srv.URL+"/app")
	require.Equal(t, http.StatusOK, code, "GET /app before MQTT: %q", body)
	require.Equal(t, "application\n", body, "GET /app before MQTT")
	return lisTransport{
		listener: ws,
		dial:     func() (net.Conn, error) { return lisDialWS(u, nil, listeners.SubprotocolMQTT) },
		paho:     func(o *mqtt.ClientOptions) { o.AddBroker(u) },
		after: func(t *testing.T) {
			code, body := lisGet(t, srv.URL+"/app")
			assert.Equal(t, http.StatusOK, code, "GET /app after the broker closed: %q", body)
			assert.Equal(t, "application\n", body, "GET /app after the broker closed")
			// The closed endpoint refuses upgrades; the server is the
			// application's and still runs.
			assert.Equal(t, http.StatusServiceUnavailable, lisUpgrade(t, u, listeners.SubprotocolMQTT).StatusCode, "upgrade after the broker closed")
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
			require.NoError(t, err)
			served := make(chan error, 1)
			go func() { served <- b.Serve(tr.listener) }()
			t.Cleanup(func() { b.Close(context.Background()) }) // when a check failed early

			lisRawRoundTrip(t, tr.dial, "raw")
			lisPahoRoundTrip(t, tr.paho, "paho")
			eventually(t, "both clients gone", func() bool { return b.Stats().ClientsConnected == 0 })
			// A client still connected when the broker closes.
			stays := lisRaw(t, tr.dial)
			require.Equal(t, packets.Accepted, stays.connect("stays", true).ReturnCode, "CONNACK return code")
			assert.EqualValues(t, 3, b.Stats().Connects, "Stats().Connects")

			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			require.NoError(t, b.Close(ctx), "Close")
			assert.ErrorIs(t, <-served, tern.ErrClosed, "Serve")
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
	ack := c.connect(id, true)
	require.Equal(t, packets.Accepted, ack.ReturnCode, "CONNACK: want accepted without a session")
	require.False(t, ack.SessionPresent, "CONNACK: want accepted without a session")
	topic := "e2e/" + id
	require.Equal(t, []byte{1}, c.subscribe(1, packets.Subscription{Filter: topic, QoS: 1}).ReturnCodes, "SUBACK return codes")
	c.send(&packets.Publish{Topic: topic, QoS: 1, PacketID: 2, Payload: []byte("hello " + id)})
	// The PUBACK of the publish and its delivery to the client's own
	// subscription may come in either order.
	var got *packets.Publish
	acks := 0
	for range 2 {
		switch p := c.recv().(type) {
		case *packets.Puback:
			require.Equal(t, uint16(2), p.PacketID, "PUBACK packet identifier")
			acks++
		case *packets.Publish:
			require.Nil(t, got, "second delivery %+v", p)
			got = p
		default:
			require.FailNow(t, "unexpected packet", "%v", p.Type())
		}
	}
	require.Equal(t, 1, acks, "want one PUBACK and one PUBLISH, got %d PUBACK and %+v", acks, got)
	require.NotNil(t, got, "want one PUBACK and one PUBLISH, got %d PUBACK and %+v", acks, got)
	require.Equal(t, topic, got.Topic, "delivered %+v", got)
	require.Equal(t, "hello "+id, string(got.Payload), "delivered %+v", got)
	require.Equal(t, byte(1), got.QoS, "delivered %+v", got)
	require.False(t, got.Retain, "delivered %+v", got)
	require.False(t, got.Dup, "delivered %+v", got)
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
	require.Equal(t, byte(1), sub.(*mqtt.SubscribeToken).Result()[topic], "granted QoS")
	lisWait(t, "publish", c.Publish(topic, 1, false, "hello "+id))
	select {
	case m := <-got:
		require.Equal(t, topic, m.Topic(), "delivered topic")
		require.Equal(t, "hello "+id, string(m.Payload()), "delivered payload")
		require.Equal(t, byte(1), m.Qos(), "delivered QoS")
		require.False(t, m.Retained(), "delivered retained")
	case <-time.After(waitTimeout):
		require.FailNow(t, "paho: no message")
	}
	c.Disconnect(250)
}

func lisWait(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	require.True(t, tok.WaitTimeout(waitTimeout), "paho %s: timed out", what)
	require.NoError(t, tok.Error(), "paho %s", what)
}

// lisRaw dials a raw client connection, closed at cleanup.
func lisRaw(t *testing.T, dial func() (net.Conn, error)) *rawClient {
	t.Helper()
	nc, err := dial()
	require.NoError(t, err, "dial")
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
	code, body, err := lisFetch(u)
	require.NoError(t, err)
	return code, body
}

// lisFetch is lisGet returning its failure instead of failing the test.
func lisFetch(u string) (int, string, error) {
	client := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(u)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", u, err)
	}
	return resp.StatusCode, string(body), nil
}

// lisUpgrade sends a WebSocket upgrade request for the ws:// URL u offering
// protocols (none when empty), and returns the response with its body
// closed.
func lisUpgrade(t *testing.T, u string, protocols ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http"+u[len("ws"):], nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for _, p := range protocols {
		req.Header.Add("Sec-WebSocket-Protocol", p)
	}
	client := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	require.NoError(t, err, "upgrade %s", u)
	resp.Body.Close()
	return resp
}

func TestTLSListenerRefusesClientsWithoutAValidCertificate(t *testing.T) {
	before := runtime.NumGoroutine()
	certs := testcert.New(t)
	l, err := listeners.TLS("127.0.0.1:0", certs.ServerConfig(tls.RequireAndVerifyClientCert), listeners.TLSOptions{})
	require.NoError(t, err)
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
				require.NoError(t, err)
				conn.SetWriteDeadline(time.Now().Add(waitTimeout))
				conn.Write(pkt) // may fail already: the alert can be there first
				p, err := c.tryRecv(waitTimeout)
				require.Error(t, err, "read after CONNECT = %+v; want the connection refused", p)
				var ne net.Error
				require.False(t, errors.As(err, &ne) && ne.Timeout(), "read after CONNECT: %v; want the connection refused", err)
			}
		})
		failures++
		eventually(t, "the handshake failure counted", func() bool { return l.HandshakeFailures() == failures })
		t.Run(tc.name+"/paho", func(t *testing.T) {
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("ssl://" + addr).SetTLSConfig(tc.cfg).
				SetClientID("paho-nocert").SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTimeout))
			tok := c.Connect()
			require.True(t, tok.WaitTimeout(waitTimeout), "paho connect: timed out")
			if !assert.Error(t, tok.Error(), "paho connected without a valid client certificate") {
				c.Disconnect(0)
			}
		})
		failures++
		eventually(t, "the handshake failure counted", func() bool { return l.HandshakeFailures() == failures })
	}
	assert.Zero(t, b.Stats().Connects, "Stats().Connects")
	// The listener still serves clients with a valid certificate.
	c := lisRaw(t, func() (net.Conn, error) {
		return tls.DialWithDialer(dialer, "tcp", addr, certs.ClientConfig(certs.Client))
	})
	assert.Equal(t, packets.Accepted, c.connect("withcert", true).ReturnCode, "CONNACK with a valid certificate")
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
			require.Equal(t, tc.wantCode, ack.ReturnCode, "CONNACK return code")
			if tc.wantUser == "" {
				c.expectClosed()
				select {
				case info := <-seen:
					require.FailNow(t, "the authenticator was called", "%+v", info)
				default:
				}
				return
			}
			info := <-seen // sent before CONNACK
			assert.Equal(t, tc.wantUser, info.Username, "ConnectInfo.Username")
			assert.True(t, info.HasUsername, "ConnectInfo.HasUsername")
			assert.Equal(t, "id", info.ClientID, "ConnectInfo.ClientID")
			require.Equal(t, tc.wantTLS, info.TLS != nil, "ConnectInfo.TLS = %v, want set %v", info.TLS, tc.wantTLS)
			if tc.wantTLS {
				assert.NotEmpty(t, info.TLS.VerifiedChains, "ConnectInfo.TLS lacks the verified certificate of %q", cn)
				if assert.NotEmpty(t, info.TLS.PeerCertificates, "ConnectInfo.TLS lacks the verified certificate of %q", cn) {
					assert.Equal(t, cn, info.TLS.PeerCertificates[0].Subject.CommonName, "ConnectInfo.TLS lacks the verified certificate of %q", cn)
				}
			}
			clients := b.Clients()
			if assert.Len(t, clients, 1, "Clients(): want one with user %q", tc.wantUser) {
				assert.Equal(t, tc.wantUser, clients[0].Username, "Clients(): want one with user %q", tc.wantUser)
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
			if !assert.Equal(f.t, byte(websocket.BinaryFrame), data.PayloadType(), "the broker sent a frame that is not binary [MQTT-6.0.0-1]") {
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
	require.NoError(t, err)
	b := lisServe(t, before, tern.Options{}, l)
	ws, err := lisDialWS(l.Addr().String(), nil, listeners.SubprotocolMQTT)
	require.NoError(t, err)
	t.Cleanup(func() { ws.Close() })
	// [MQTT-6.0.0-4] the server returns "mqtt" as the selected subprotocol.
	require.Equal(t, []string{"mqtt"}, ws.Config().Protocol, "selected subprotocol")
	return b, ws, &rawClient{t: t, conn: ws, r: packets.NewReader(&lisFrames{t: t, ws: ws}, 0)}
}

func lisEncode(t *testing.T, ps ...packets.Packet) []byte {
	t.Helper()
	var b []byte
	for _, p := range ps {
		var err error
		b, err = p.Append(b)
		require.NoError(t, err, "encode %v", p.Type())
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
	p := c.recv()
	ack, ok := p.(*packets.Connack)
	require.True(t, ok, "want CONNACK 0 to a CONNECT split over two frames, got %v %+v", p.Type(), p)
	require.Equal(t, packets.Accepted, ack.ReturnCode, "want CONNACK 0 to a CONNECT split over two frames")

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
	s := b.Stats()
	assert.EqualValues(t, 2, s.PublishReceived, "Stats().PublishReceived")
	assert.EqualValues(t, 1, s.Connects, "Stats().Connects")
}

// lisExpect reads one packet of each type in want, in any order, and checks
// each with its function.
func lisExpect(t *testing.T, c *rawClient, want map[packets.Type]func(packets.Packet) bool) {
	t.Helper()
	for range len(want) {
		p := c.recv()
		check, ok := want[p.Type()]
		require.True(t, ok, "unexpected %v %+v", p.Type(), p)
		require.True(t, check(p), "wrong %v: %+v", p.Type(), p)
		delete(want, p.Type())
	}
}

// A text frame closes the connection: no CONNACK. [MQTT-6.0.0-1]
func TestWebSocketTextFrameClosesTheConnection(t *testing.T) {
	b, ws, c := lisWSClient(t)
	ws.PayloadType = websocket.TextFrame
	c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "text", CleanSession: true, KeepAlive: 60})
	c.expectClosed()
	assert.Zero(t, b.Stats().Connects, "Stats().Connects")
}

// A client must offer "mqtt" [MQTT-6.0.0-3]; an upgrade that offers no
// subprotocol the listener accepts is refused with 400 Bad Request, as the
// listeners package documents. The server selects and returns "mqtt"
// [MQTT-6.0.0-4]; it still accepts "mqttv3.1" alone, from MQTT 3.1 era
// clients, as Mosquitto does.
func TestWebSocketSubprotocolNegotiation(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := listeners.ListenWebSocket("127.0.0.1:0", nil, listeners.WebSocketOptions{})
	require.NoError(t, err)
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
		assert.Equal(t, tc.wantCode, resp.StatusCode, "offering %q: status", tc.offered)
		assert.Equal(t, tc.wantSel, resp.Header.Get("Sec-WebSocket-Protocol"), "offering %q: selected subprotocol", tc.offered)
		if tc.wantCode != http.StatusSwitchingProtocols {
			refused++
		}
	}
	// A WebSocket client library sees the refusal as a failed handshake.
	ws, err := lisDialWS(u, nil)
	if !assert.Error(t, err, "a client offering no subprotocol was upgraded") {
		ws.Close()
	}
	refused++
	assert.Equal(t, refused, l.HandshakeFailures(), "HandshakeFailures")
	assert.Zero(t, b.Stats().Connects, "Stats().Connects")
}

func TestHTTPHandlerHealthzAndStats(t *testing.T) {
	before := runtime.NumGoroutine()
	mem := listeners.NewMemory()
	b := lisServe(t, before, tern.Options{}, mem)
	ops := httptest.NewServer(listeners.HTTPHandler(func() any { return b.Stats() }, b.Serving))
	t.Cleanup(ops.Close)

	code, body := lisGet(t, ops.URL+"/healthz")
	require.Equal(t, http.StatusOK, code, "/healthz while serving: %q", body)
	require.Equal(t, "ok\n", body, "/healthz while serving")

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
	var fetchErr error // fails the test at once, as lisStats would
	eventually(t, "the delivery counted", func() bool {
		s, fetchErr = lisFetchStats(ops.URL + "/stats")
		return fetchErr != nil || s.PublishSent == 1 && s.BytesSent == int64(sent)
	})
	require.NoError(t, fetchErr)
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
	assert.Equal(t, want, s, "/stats")
	assert.Positive(t, s.Uptime, "/stats uptime")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, b.Close(ctx))
	code, body = lisGet(t, ops.URL+"/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, code, "/healthz after Close: %q", body)
	assert.Equal(t, "unavailable\n", body, "/healthz after Close")
}

// lisFetchStats fetches u and decodes it as tern.Stats, refusing unknown
// fields. It returns its failure rather than failing the test, so that an
// eventually condition (on a goroutine of its own) may call it.
func lisFetchStats(u string) (tern.Stats, error) {
	var s tern.Stats
	code, body, err := lisFetch(u)
	if err != nil {
		return s, err
	}
	if code != http.StatusOK {
		return s, fmt.Errorf("GET %s = %d %q", u, code, body)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("GET %s: %w in %s", u, err, body)
	}
	return s, nil
}
