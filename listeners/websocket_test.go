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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// dialWS connects a golang.org/x/net/websocket client to the endpoint at
// addr, offering protocols, over TLS when tlsCfg is set. It returns the
// client and its TCP connection.
func dialWS(t *testing.T, addr WebSocketAddr, tlsCfg *tls.Config, protocols ...string) (*websocket.Conn, net.Conn, error) {
	t.Helper()
	cfg, err := websocket.NewConfig(addr.String(), "http://localhost/")
	require.NoError(t, err)
	cfg.Protocol = protocols
	raw, err := net.DialTimeout("tcp", addr.Host, waitTimeout)
	require.NoError(t, err)
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
	require.NoError(t, err, "dial")
	server = receive(t, accepted)
	assert.Equal(t, raw.LocalAddr().String(), server.RemoteAddr().String(), "RemoteAddr: want the client's TCP address")
	assert.IsType(t, &net.TCPAddr{}, server.RemoteAddr(), "RemoteAddr")
	assert.Equal(t, raw.RemoteAddr().String(), server.LocalAddr().String(), "LocalAddr")
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
	require.NoError(t, err)
	addr := l.Addr().(WebSocketAddr)
	assert.True(t, strings.HasPrefix(addr.String(), "ws://127.0.0.1:") && strings.HasSuffix(addr.String(), DefaultWebSocketPath),
		"Addr = %q, want ws://127.0.0.1:port%s", addr, DefaultWebSocketPath)
	client, server := connectWS(t, l, addr, nil)
	exchange(t, client, server)
	if assert.NotNil(t, HTTPRequest(server), "HTTPRequest: want the upgraded request") {
		assert.Equal(t, DefaultWebSocketPath, HTTPRequest(server).URL.Path, "HTTPRequest: want the upgraded request")
	}
	assert.Nil(t, TLSState(server), "TLSState of a plain WebSocket connection")

	require.NoError(t, l.Close(), "Close")
	_, err = l.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Accept after Close")
	c, err := net.Dial("tcp", addr.Host)
	if err == nil {
		_ = c.Close()
	}
	assert.Error(t, err, "the HTTP server still accepts after Close")
	exchange(t, server, client) // accepted connections outlive the listener
	assert.Zero(t, l.HandshakeFailures(), "HandshakeFailures")

	// Closing the connection sends a normal close frame and ends the
	// client's stream.
	require.NoError(t, server.Close(), "conn Close")
	_, err = client.Read(make([]byte, 1))
	assert.Equal(t, io.EOF, err, "client read after server Close")
	assert.ErrorIs(t, server.Close(), net.ErrClosed, "second conn Close")
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
		_, err := client.Write(part)
		require.NoError(t, err)
	}
	_ = server.SetReadDeadline(time.Now().Add(waitTimeout))
	want := bytes.Join([][]byte{connectPacket, pingreqPacket, disconnectPacket}, nil)
	got := make([]byte, len(want))
	_, err := io.ReadFull(server, got)
	require.NoError(t, err, "server read")
	require.Equal(t, want, got, "server read")

	// The server's writes arrive as binary frames, one per Write.
	connack := []byte{0x20, 0x02, 0x00, 0x00}
	_, err = server.Write(append(connack, 0xD0, 0x00)) // CONNACK + PINGRESP
	require.NoError(t, err)
	var f frame
	require.NoError(t, frameCodec.Receive(client, &f))
	require.Equal(t, byte(websocket.BinaryFrame), f.payloadType, "client received a frame that is not binary")
	require.Equal(t, append(connack, 0xD0, 0x00), f.data, "want a binary frame with CONNACK and PINGRESP")
}

// [MQTT-6.0.0-2] A fragmented message (binary frame + continuation) is one
// stream too; a ping between the fragments is answered and skipped.
func TestWebSocketFragmentsAndPing(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	accepted := acceptOne(t, l)
	c, resp := dialRawWS(t, l.Addr().(WebSocketAddr).Host, DefaultWebSocketPath, SubprotocolMQTT)
	require.NotNil(t, c, "upgrade refused: %s", resp.Status)
	server := receive(t, accepted)

	c.writeFrame(t, false, wsOpBinary, connectPacket[:5])
	c.writeFrame(t, true, wsOpPing, []byte("hi"))
	c.writeFrame(t, false, wsOpContinuation, connectPacket[5:9])
	c.writeFrame(t, true, wsOpContinuation, connectPacket[9:])
	c.writeFrame(t, true, wsOpBinary, pingreqPacket)

	_ = server.SetReadDeadline(time.Now().Add(waitTimeout))
	want := append(append([]byte{}, connectPacket...), pingreqPacket...)
	got := make([]byte, len(want))
	_, err := io.ReadFull(server, got)
	require.NoError(t, err, "server read")
	require.Equal(t, want, got, "server read")
	op, payload, err := c.readFrame()
	require.NoError(t, err)
	require.Equal(t, byte(wsOpPong), op, "want a pong")
	require.Equal(t, "hi", string(payload), "pong payload")
}

// Close closes upgraded connections that Accept has not taken yet.
func TestWebSocketCloseClosesPending(t *testing.T) {
	checkGoroutines(t)
	l, err := ListenWebSocket("127.0.0.1:0", nil, WebSocketOptions{})
	require.NoError(t, err)
	c, resp := dialRawWS(t, l.Addr().(WebSocketAddr).Host, DefaultWebSocketPath, SubprotocolMQTT)
	require.NotNil(t, c, "upgrade refused: %s", resp.Status)
	require.NoError(t, l.Close())
	c.expectClose(t, wsCloseGoingAway)
}

func TestWebSocketReadDeadline(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	_, server := connectWS(t, l, l.Addr().(WebSocketAddr), nil)
	_ = server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := server.Read(make([]byte, 1))
	require.True(t, isTimeout(err), "Read past the deadline: %v, want a timeout", err)
}

// WebSocket over TLS, with a verified client certificate: TLSState and
// PeerCommonName work on the accepted connection, and a client without a
// certificate is refused and counted.
func TestWebSocketTLS(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	l, err := ListenWebSocket("127.0.0.1:0", certs.ServerConfig(tls.RequireAndVerifyClientCert), WebSocketOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	addr := l.Addr().(WebSocketAddr)
	assert.Equal(t, "wss", addr.Scheme, "Addr = %v, want a wss:// URL", addr)

	client, server := connectWS(t, l, addr, certs.ClientConfig(certs.Client))
	exchange(t, client, server)
	cs := TLSState(server)
	assert.True(t, cs != nil && cs.HandshakeComplete && len(cs.VerifiedChains) > 0, "TLSState = %+v, want a verified handshake", cs)
	cn, ok := PeerCommonName(server)
	assert.True(t, ok, "PeerCommonName ok")
	assert.Equal(t, testcert.ClientCommonName, cn, "PeerCommonName")

	_, _, err = dialWS(t, addr, certs.ClientConfig(), SubprotocolMQTT)
	require.Error(t, err, "client without a certificate completed the upgrade")
	waitFailures(t, l, 1)
	_ = server.Close()
}
