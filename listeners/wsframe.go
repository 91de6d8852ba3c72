package listeners

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unicode/utf8"
)

// wsMaxControlPayload is the largest payload of a control frame (RFC 6455,
// section 5.5).
const wsMaxControlPayload = 125

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA
)

// wsMaxPooledWrite bounds the frame buffers kept for reuse by writes over
// TLS.
const wsMaxPooledWrite = 64 << 10

// wsWriteBufs holds buffers in which a frame written over TLS is put
// together, so that its header and payload make one TLS record.
var wsWriteBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

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

// parseWSHeader decodes a complete frame header b (RFC 6455, section 5.2).
func parseWSHeader(b []byte) (wsHeader, error) {
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
		l := binary.BigEndian.Uint64(b[2:])
		if l>>63 != 0 {
			return wsHeader{}, wsProtocolError("64-bit frame length with its most significant bit set (RFC 6455 section 5.2)")
		}
		h.length = int64(l)
	default:
		return wsHeader{}, wsProtocolError("truncated frame length")
	}
	return h, nil
}

// appendWSHeader appends the header of an unmasked frame with FIN set.
func appendWSHeader(b []byte, opcode byte, n int) []byte {
	b = append(b, 0x80|opcode)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// wsUnmask unmasks p, the payload bytes from offset pos (mod 4) of a frame
// masked with key, in place, and returns the offset after them.
func wsUnmask(p, key []byte, pos int) int {
	for i := range p {
		p[i] ^= key[(pos+i)&3]
	}
	return (pos + len(p)) & 3
}

// checkDataFrame applies the rules of RFC 6455 and [MQTT-6.0.0-1] to a
// data frame, given whether a fragmented message is in progress.
func checkDataFrame(h wsHeader, fragmented bool, maxFrame int64) error {
	if maxFrame > 0 && h.length > maxFrame {
		// RFC 6455 section 7.4.1: 1009, a message too big to process.
		return &wsFailure{wsCloseTooBig, fmt.Errorf("%w: %d bytes, over MaxFrameSize %d", ErrWebSocketFrameTooLarge, h.length, maxFrame)}
	}
	switch h.opcode {
	case wsOpContinuation:
		if !fragmented {
			return wsProtocolError("continuation frame without a fragmented message to continue (RFC 6455 section 5.4)")
		}
	case wsOpBinary, wsOpText:
		if fragmented {
			return wsProtocolError("new data frame inside a fragmented message (RFC 6455 section 5.4)")
		}
		if h.opcode == wsOpText {
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
	case wsOpClose, wsOpPing, wsOpPong:
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
