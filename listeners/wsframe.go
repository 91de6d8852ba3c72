package listeners

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"golang.org/x/net/websocket"
)

// wsMaxControlPayload is the largest payload of a control frame (RFC 6455,
// section 5.5).
const wsMaxControlPayload = 125

// wsFrame is the part of golang.org/x/net/websocket's frame reader that
// wsConn uses: the header bytes as read, and the unmasked payload.
type wsFrame interface {
	io.Reader
	HeaderReader() io.Reader
}

// wsHeader is the decoded header of a frame from the client.
type wsHeader struct {
	fin    bool
	rsv    byte // the RSV1, RSV2 and RSV3 bits, in place
	opcode byte
	masked bool
	length int64
}

// wsFailure is a frame that ends the connection: the close status to send,
// and the error Read returns.
type wsFailure struct {
	status int
	err    error
}

func (f *wsFailure) Error() string { return f.err.Error() }
func (f *wsFailure) Unwrap() error { return f.err }

func wsProtocolError(format string, args ...any) *wsFailure {
	return &wsFailure{wsCloseProtocolError, fmt.Errorf("%w: "+format, append([]any{ErrWebSocketProtocol}, args...)...)}
}

// parseWSHeader decodes the header bytes of fr (RFC 6455, section 5.2).
// golang.org/x/net/websocket has already read them; it has cleared the most
// significant bit of a 64-bit length, which the RFC requires to be 0.
func parseWSHeader(fr wsFrame) (wsHeader, error) {
	var b []byte
	if r := fr.HeaderReader(); r != nil {
		var err error
		if b, err = io.ReadAll(r); err != nil {
			return wsHeader{}, err
		}
	}
	if len(b) < 2 {
		return wsHeader{}, wsProtocolError("frame header of %d bytes", len(b))
	}
	h := wsHeader{
		fin:    b[0]&0x80 != 0,
		rsv:    b[0] & 0x70,
		opcode: b[0] & 0x0f,
		masked: b[1]&0x80 != 0,
	}
	switch n := b[1] & 0x7f; {
	case n < 126:
		h.length = int64(n)
	case n == 126 && len(b) >= 4:
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
	case n == 127 && len(b) >= 10:
		h.length = int64(binary.BigEndian.Uint64(b[2:]) &^ (1 << 63))
	default:
		return wsHeader{}, wsProtocolError("truncated frame length")
	}
	return h, nil
}

// checkDataFrame applies the rules of RFC 6455 and [MQTT-6.0.0-1] to a
// data frame, given whether a fragmented message is in progress.
func checkDataFrame(h wsHeader, fragmented bool, maxFrame int64) error {
	if maxFrame > 0 && h.length > maxFrame {
		// RFC 6455 section 7.4.1: 1009, a message too big to process.
		return &wsFailure{wsCloseTooBig, fmt.Errorf("%w: %d bytes, over MaxFrameSize %d", ErrWebSocketFrameTooLarge, h.length, maxFrame)}
	}
	switch h.opcode {
	case websocket.ContinuationFrame:
		if !fragmented {
			return wsProtocolError("continuation frame without a fragmented message to continue (RFC 6455 section 5.4)")
		}
	case websocket.BinaryFrame, websocket.TextFrame:
		if fragmented {
			return wsProtocolError("new data frame inside a fragmented message (RFC 6455 section 5.4)")
		}
		if h.opcode == websocket.TextFrame {
			// [MQTT-6.0.0-1] any other data frame than binary closes the
			// connection; RFC 6455 section 7.4.1: 1003, data of a type the
			// endpoint cannot accept.
			return &wsFailure{wsCloseUnsupported, ErrNotBinaryFrame}
		}
	default:
		return wsProtocolError("reserved opcode 0x%x (RFC 6455 section 5.2)", h.opcode)
	}
	return nil
}

// checkControlFrame applies RFC 6455 section 5.5 to a control frame.
func checkControlFrame(h wsHeader) error {
	switch h.opcode {
	case websocket.CloseFrame, websocket.PingFrame, websocket.PongFrame:
	default:
		return wsProtocolError("reserved control opcode 0x%x (RFC 6455 section 5.2)", h.opcode)
	}
	if !h.fin {
		return wsProtocolError("fragmented control frame (RFC 6455 section 5.5)")
	}
	if h.length > wsMaxControlPayload {
		return wsProtocolError("control frame payload of %d bytes, over 125 (RFC 6455 section 5.5)", h.length)
	}
	return nil
}

// closeStatus checks the body of a close frame from the client (RFC 6455
// sections 5.5.1 and 7.4) and returns the status to echo: the client's,
// or 1000 when the body is empty (1005, "no status", is never sent).
func closeStatus(body []byte) (int, error) {
	switch {
	case len(body) == 0:
		return wsCloseNormal, nil
	case len(body) == 1:
		return 0, wsProtocolError("close frame body of 1 byte (RFC 6455 section 5.5.1)")
	}
	status := int(binary.BigEndian.Uint16(body))
	if !sendableCloseStatus(status) {
		return 0, wsProtocolError("close status %d is not one an endpoint may send (RFC 6455 section 7.4)", status)
	}
	if !utf8.Valid(body[2:]) {
		// RFC 6455 section 7.4.1: 1007, data inconsistent with its type.
		return 0, &wsFailure{wsCloseInvalidPayload, fmt.Errorf("%w: close reason is not UTF-8 (RFC 6455 section 5.5.1)", ErrWebSocketProtocol)}
	}
	return status, nil
}

// sendableCloseStatus reports whether a close frame may carry status: the
// codes RFC 6455 section 7.4.1 and the IANA registry define for use in a
// close frame, and the ranges for libraries and applications. 1004 is
// reserved; 1005, 1006 and 1015 only report conditions locally.
func sendableCloseStatus(status int) bool {
	switch {
	case status >= 1000 && status <= 1003, status >= 1007 && status <= 1014:
		return true
	case status >= 3000 && status <= 4999:
		return true
	}
	return false
}

// wsControl is a control frame to send, for wsControlCodec.
type wsControl struct {
	opcode  byte
	payload []byte
}

// sendControl sends a control frame through the websocket package's
// writer, under its write lock.
func sendControl(ws *websocket.Conn, opcode byte, payload []byte) error {
	codec := websocket.Codec{
		Marshal: func(v any) ([]byte, byte, error) {
			f, ok := v.(wsControl)
			if !ok {
				return nil, 0, errors.New("listeners: websocket: sendControl needs a wsControl")
			}
			return f.payload, f.opcode, nil
		},
	}
	return codec.Send(ws, wsControl{opcode, payload})
}
