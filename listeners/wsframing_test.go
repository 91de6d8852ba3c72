package listeners

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RSV bits of a frame's first byte (RFC 6455, section 5.2).
const (
	wsRSV1 = 0x40
	wsRSV2 = 0x20
	wsRSV3 = 0x10
)

// writeRawFrame sends one frame whose first byte is b0 (FIN, RSV and
// opcode), masked or not, with payload.
func (r *rawWS) writeRawFrame(t *testing.T, b0 byte, masked bool, payload []byte) {
	t.Helper()
	_, err := r.conn.Write(rawFrame(b0, masked, payload))
	require.NoError(t, err, "write frame")
}

// rawFrame encodes one frame whose first byte is b0.
func rawFrame(b0 byte, masked bool, payload []byte) []byte {
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	frame := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		frame = append(frame, maskBit|byte(n))
	case n < 1<<16:
		frame = append(frame, maskBit|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, maskBit|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	if !masked {
		frame = append(frame, payload...)
	} else {
		mask := make([]byte, 4)
		_, _ = rand.Read(mask)
		frame = append(frame, mask...)
		for i, b := range payload {
			frame = append(frame, b^mask[i%4])
		}
	}
	return frame
}

// closePayload is the payload of a close frame with status and reason.
func closePayload(status uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, status), reason...)
}

// dialAccepted upgrades a raw client on l and returns it with the server
// side of the connection.
func dialAccepted(t *testing.T, l *WebSocket) (*rawWS, net.Conn) {
	t.Helper()
	accepted := acceptOne(t, l)
	c, resp := dialRawWS(t, l.Addr().(WebSocketAddr).Host, DefaultWebSocketPath, SubprotocolMQTT)
	require.NotNil(t, c, "upgrade refused: %v", resp)
	return c, receive(t, accepted)
}

// Frames that break RFC 6455 close the connection: the server's Read
// fails with the rule broken, and the client receives a close frame with
// the status the RFC names (section 7.4.1) before the TCP connection
// closes, without waiting for the broker.
func TestWebSocketFramingViolationsClose(t *testing.T) {
	checkGoroutines(t)
	l, err := ListenWebSocket("127.0.0.1:0", nil, WebSocketOptions{MaxFrameSize: 4096})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	const fin = 0x80
	tests := []struct {
		name   string
		send   func(t *testing.T, c *rawWS)
		err    error
		status uint16
		unread bool // the server closes with the frame unread: TCP may reset
	}{
		// Section 5.5: control frames carry at most 125 bytes.
		{"ping of 1000 bytes", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpPing, bytes.Repeat([]byte{'p'}, 1000))
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"pong of 126 bytes", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpPong, bytes.Repeat([]byte{'p'}, 126))
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"close of 126 bytes", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpClose, closePayload(1000, string(bytes.Repeat([]byte{'r'}, 124))))
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		// Section 5.5: control frames are not fragmented.
		{"fragmented ping", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, false, wsOpPing, []byte("hi"))
			c.writeFrame(t, true, wsOpContinuation, []byte("there"))
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		// Section 5.2: RSV bits are 0 unless an extension says otherwise;
		// none is negotiated.
		{"RSV1 on a binary frame", func(t *testing.T, c *rawWS) {
			c.writeRawFrame(t, fin|wsRSV1|wsOpBinary, true, pingreqPacket)
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"RSV2 on a ping", func(t *testing.T, c *rawWS) {
			c.writeRawFrame(t, fin|wsRSV2|wsOpPing, true, nil)
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"RSV3 on a continuation", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, false, wsOpBinary, connectPacket[:3])
			c.writeRawFrame(t, fin|wsRSV3|wsOpContinuation, true, connectPacket[3:])
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		// Section 5.1: a client masks every frame.
		{"unmasked binary frame", func(t *testing.T, c *rawWS) {
			c.writeRawFrame(t, fin|wsOpBinary, false, pingreqPacket)
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		// Section 5.2: reserved opcodes.
		{"reserved data opcode", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, 0x3, pingreqPacket)
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"reserved control opcode", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, 0xB, nil)
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		// Section 5.4: fragments of one message, in order, not interleaved
		// with other data frames.
		{"continuation without a first frame", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpContinuation, pingreqPacket)
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"continuation after a final frame", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpBinary, pingreqPacket)
			c.writeFrame(t, true, wsOpContinuation, pingreqPacket)
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"binary frame inside a fragmented message", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, false, wsOpBinary, connectPacket[:3])
			c.writeFrame(t, true, wsOpBinary, connectPacket[3:])
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"text frame inside a fragmented message", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, false, wsOpBinary, connectPacket[:3])
			c.writeFrame(t, true, wsOpText, connectPacket[3:])
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		// Section 5.5.1 and 7.4: a close frame's body is empty or a valid
		// status code, then UTF-8 text.
		{"close with a 1-byte body", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpClose, []byte{0x03})
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"close with status 1005", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpClose, closePayload(1005, ""))
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"close with status 999", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpClose, closePayload(999, ""))
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"close with status 2000", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpClose, closePayload(2000, ""))
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"close with status 5000", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpClose, closePayload(5000, ""))
		}, ErrWebSocketProtocol, wsCloseProtocolError, false},
		{"close with a reason that is not UTF-8", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpClose, closePayload(1000, "\xff\xfe"))
		}, ErrWebSocketProtocol, wsCloseInvalidPayload, false},
		// A frame larger than WebSocketOptions.MaxFrameSize (section 7.4.1:
		// 1009, message too big), refused before its payload is read.
		{"frame over MaxFrameSize", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpBinary, make([]byte, 1<<16))
		}, ErrWebSocketFrameTooLarge, wsCloseTooBig, true},
		// [MQTT-6.0.0-1] MQTT travels in binary frames; RFC 6455 section
		// 7.4.1: 1003 for a type of data the endpoint cannot accept.
		{"text frame", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpText, connectPacket)
		}, ErrNotBinaryFrame, wsCloseUnsupported, false},
		{"text after binary", func(t *testing.T, c *rawWS) {
			c.writeFrame(t, true, wsOpBinary, pingreqPacket)
			c.writeFrame(t, true, wsOpText, pingreqPacket)
		}, ErrNotBinaryFrame, wsCloseUnsupported, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, server := dialAccepted(t, l)
			tt.send(t, c)
			require.NoError(t, server.SetReadDeadline(time.Now().Add(waitTimeout)))
			_, err := io.ReadAll(server)
			require.ErrorIs(t, err, tt.err, "server Read")
			if tt.unread {
				c.expectCloseFrame(t, tt.status)
				_, err := c.br.ReadByte()
				assert.True(t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), "after the close frame: %v", err)
			} else {
				c.expectClose(t, tt.status)
			}
			_, err = server.Read(make([]byte, 1))
			assert.ErrorIs(t, err, tt.err, "the error sticks")
			_, err = server.Write(pingreqPacket)
			assert.Error(t, err, "no data frame after the close frame (RFC 6455 section 5.5.1)")
		})
	}
}

// RFC 6455 section 5.5.1: a close frame from the client is answered with a
// close frame echoing its status (1000 when it has none) and ends the
// server's stream with io.EOF.
func TestWebSocketCloseFrameIsEchoed(t *testing.T) {
	checkGoroutines(t)
	l, err := ListenWebSocket("127.0.0.1:0", nil, WebSocketOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	tests := []struct {
		name    string
		payload []byte
		echo    uint16
	}{
		{"no status", nil, wsCloseNormal},
		{"going away", closePayload(wsCloseGoingAway, "bye"), wsCloseGoingAway},
		{"registered 1014", closePayload(1014, ""), 1014},
		{"application 4000", closePayload(4000, "app"), 4000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, server := dialAccepted(t, l)
			c.writeFrame(t, true, wsOpBinary, pingreqPacket)
			c.writeFrame(t, true, wsOpClose, tt.payload)
			require.NoError(t, server.SetReadDeadline(time.Now().Add(waitTimeout)))
			got, err := io.ReadAll(server)
			require.NoError(t, err, "the stream ends with io.EOF")
			assert.Equal(t, pingreqPacket, got)
			op, payload, err := c.readFrame()
			require.NoError(t, err)
			assert.Equal(t, byte(wsOpClose), op)
			require.Len(t, payload, 2)
			assert.Equal(t, tt.echo, binary.BigEndian.Uint16(payload))
			require.NoError(t, server.Close())
			_, err = c.br.ReadByte()
			assert.ErrorIs(t, err, io.EOF, "one close frame only, then the TCP close")
		})
	}
}

// RFC 6455 section 5.5.2 and 5.5.3: a ping of up to 125 bytes is answered
// by a pong with the same payload, even in the middle of a fragmented
// message (section 5.4); pongs are ignored.
func TestWebSocketPingOfMaximumSize(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	c, server := dialAccepted(t, l)
	ping := bytes.Repeat([]byte{0xA5}, 125)
	c.writeFrame(t, false, wsOpBinary, connectPacket[:4])
	c.writeFrame(t, true, wsOpPong, []byte("unsolicited"))
	c.writeFrame(t, true, wsOpPing, ping)
	c.writeFrame(t, true, wsOpContinuation, connectPacket[4:])

	require.NoError(t, server.SetReadDeadline(time.Now().Add(waitTimeout)))
	got := make([]byte, len(connectPacket))
	_, err := io.ReadFull(server, got)
	require.NoError(t, err)
	assert.Equal(t, connectPacket, got)
	op, payload, err := c.readFrame()
	require.NoError(t, err)
	assert.Equal(t, byte(wsOpPong), op)
	assert.Equal(t, ping, payload)
}

// Frames are streamed, never buffered whole: without MaxFrameSize a frame
// larger than any MQTT packet is accepted, and the broker's own packet
// limit applies to the packets inside [MQTT-6.0.0-2].
func TestWebSocketLargeFrameIsStreamed(t *testing.T) {
	l := listenWS(t, nil, WebSocketOptions{})
	c, server := dialAccepted(t, l)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB in one frame
	written := make(chan error, 1)
	go func() {
		_, err := c.conn.Write(rawFrame(0x80|wsOpBinary, true, big))
		written <- err
	}()
	require.NoError(t, server.SetReadDeadline(time.Now().Add(waitTimeout)))
	got := make([]byte, len(big))
	_, err := io.ReadFull(server, got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got))
	require.NoError(t, <-written)
}
