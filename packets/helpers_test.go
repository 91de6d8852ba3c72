package packets_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/ternmq/tern/packets"
)

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// str is a UTF-8 string field: a two byte length, then the bytes.
func str(s string) []byte { return cat(u16(uint16(len(s))), []byte(s)) }

// u16 is a two byte big-endian integer.
func u16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

// frame is a whole packet: first byte, Remaining Length (encoded here
// independently of the package, per section 2.2.3), body.
func frame(b0 byte, body ...[]byte) []byte {
	b := cat(body...)
	out := []byte{b0}
	n := len(b)
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		out = append(out, c)
		if n == 0 {
			break
		}
	}
	return append(out, b...)
}

// decodeWire reads one whole packet from wire with a Reader and decodes
// it. It fails the test if wire holds more than one packet.
func decodeWire(t *testing.T, wire []byte) (packets.Packet, error) {
	t.Helper()
	r := packets.NewReader(bytes.NewReader(wire), 0)
	fh, body, err := r.ReadRaw()
	if err != nil {
		return nil, err
	}
	if _, _, err := r.ReadRaw(); err != io.EOF {
		t.Fatalf("test packet is not exactly one packet: after it, ReadRaw = %v", err)
	}
	return packets.Decode(fh, body)
}

// wantRule fails the test unless err is an *Error naming rule that also
// matches ErrMalformed and, if not nil, kind.
func wantRule(t *testing.T, err error, rule string, kind error) {
	t.Helper()
	var perr *packets.Error
	if !errors.As(err, &perr) {
		t.Fatalf("error = %v (%T), want *packets.Error with rule %s", err, err, rule)
	}
	if perr.Rule != rule {
		t.Errorf("rule = %q (%v), want %q", perr.Rule, err, rule)
	}
	if !errors.Is(err, packets.ErrMalformed) {
		t.Errorf("errors.Is(%v, ErrMalformed) = false", err)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("errors.Is(%v, %v) = false", err, kind)
	}
}
