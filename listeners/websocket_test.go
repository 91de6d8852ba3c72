package listeners

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
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
