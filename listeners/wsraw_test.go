package listeners

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawWS is a minimal WebSocket client that writes and reads individual
// frames, to test what golang.org/x/net/websocket's client cannot send:
// fragmented messages, text frames, pings, and refused upgrades.
type rawWS struct {
	conn net.Conn
	br   *bufio.Reader
}

// dialRawWS sends an upgrade request offering protocols (none if empty) and
// returns the client and the server's response. The client is nil unless
// the server switched protocols.
func dialRawWS(t *testing.T, addr, path string, protocols ...string) (*rawWS, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	require.NoError(t, err)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	req.Header.Set("Sec-WebSocket-Version", "13")
	if len(protocols) > 0 {
		req.Header.Set("Sec-WebSocket-Protocol", strings.Join(protocols, ", "))
	}
	require.NoError(t, req.Write(conn))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	require.NoError(t, err, "reading the upgrade response")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_ = conn.Close()
		return nil, resp
	}
	return &rawWS{conn: conn, br: br}, resp
}

// writeFrame sends one masked frame, as a client must.
func (r *rawWS) writeFrame(t *testing.T, fin bool, opcode byte, payload []byte) {
	t.Helper()
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	frame := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	case n < 1<<16:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	frame = append(frame, mask...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	_, err := r.conn.Write(frame)
	require.NoError(t, err, "write frame")
}

// readFrame reads one unmasked server frame.
func (r *rawWS) readFrame() (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, payload, nil
}

// expectClose reads frames up to a close frame, checks its status code,
// and checks that the server then closes the connection.
func (r *rawWS) expectClose(t *testing.T, status uint16) {
	t.Helper()
	r.expectCloseFrame(t, status)
	_, err := r.br.ReadByte()
	require.Equal(t, io.EOF, err, "after the close frame: want io.EOF (connection closed)")
}

// expectCloseFrame reads frames up to a close frame and checks its status
// code.
func (r *rawWS) expectCloseFrame(t *testing.T, status uint16) {
	t.Helper()
	for {
		op, payload, err := r.readFrame()
		require.NoError(t, err, "waiting for a close frame")
		if op != wsOpClose {
			continue
		}
		require.GreaterOrEqual(t, len(payload), 2, "close frame payload %x, want status %d", payload, status)
		require.Equal(t, status, binary.BigEndian.Uint16(payload), "close frame status")
		break
	}
}
