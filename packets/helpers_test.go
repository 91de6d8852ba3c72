package packets_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

// u32 is a four byte big-endian integer.
func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// vbi is a Variable Byte Integer, encoded here independently of the
// package, per section 2.2.3 (1.5.5 of MQTT 5).
func vbi(n int) []byte {
	var out []byte
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		out = append(out, c)
		if n == 0 {
			return out
		}
	}
}

// frame is a whole packet: first byte, Remaining Length, body.
func frame(b0 byte, body ...[]byte) []byte {
	b := cat(body...)
	return cat([]byte{b0}, vbi(len(b)), b)
}

// props is an MQTT 5 property block: its Property Length, then the
// properties.
func props(ps ...[]byte) []byte {
	b := cat(ps...)
	return cat(vbi(len(b)), b)
}

// Properties, each its identifier and value (section 2.2.2.2).
func pByte(id packets.PropID, v byte) []byte     { return []byte{byte(id), v} }
func pU16(id packets.PropID, v uint16) []byte    { return cat([]byte{byte(id)}, u16(v)) }
func pU32(id packets.PropID, v uint32) []byte    { return cat([]byte{byte(id)}, u32(v)) }
func pVBI(id packets.PropID, v int) []byte       { return cat([]byte{byte(id)}, vbi(v)) }
func pStr(id packets.PropID, s string) []byte    { return cat([]byte{byte(id)}, str(s)) }
func pUser(k, v string) []byte                   { return cat([]byte{byte(packets.PropUserProperty)}, str(k), str(v)) }
func pRaw(id packets.PropID, raw ...byte) []byte { return cat([]byte{byte(id)}, raw) }

// decodeWire reads one whole packet from wire with a 3.1.1 Reader and
// decodes it. It fails the test if wire holds more than one packet.
func decodeWire(t *testing.T, wire []byte) (packets.Packet, error) {
	t.Helper()
	return decodeWireV(t, 0, wire)
}

// decodeWireV is decodeWire for the form version selects.
func decodeWireV(t *testing.T, version byte, wire []byte) (packets.Packet, error) {
	t.Helper()
	r := packets.NewReader(bytes.NewReader(wire), 0)
	r.SetVersion(version)
	fh, body, err := r.ReadRaw()
	if err != nil {
		return nil, err
	}
	_, _, err = r.ReadRaw()
	require.Equal(t, io.EOF, err, "test packet is not exactly one packet")
	return packets.DecodeVersion(version, fh, body)
}

// wantRule asserts that err is an *Error naming rule that also matches
// ErrMalformed and, if not nil, kind, and returns it.
func wantRule(t *testing.T, err error, rule string, kind error) *packets.Error {
	t.Helper()
	var perr *packets.Error
	require.ErrorAs(t, err, &perr, "want *packets.Error with rule %s", rule)
	assert.Equal(t, rule, perr.Rule, "%v", err)
	assert.ErrorIs(t, err, packets.ErrMalformed)
	if kind != nil {
		assert.ErrorIs(t, err, kind)
	}
	return perr
}

// wantV5 asserts that err is an MQTT 5 *Error naming rule, with the Reason
// Code a receiver answers: MalformedPacket for a Malformed Packet, which
// does not match ErrProtocolError, and any other for a Protocol Error,
// which does. kind, if not nil, is a sentinel err must match too.
func wantV5(t *testing.T, err error, rule string, code packets.ReasonCode, kind error) *packets.Error {
	t.Helper()
	perr := wantRule(t, err, rule, kind)
	assert.Equal(t, packets.Level5, perr.Version, "%v is not an MQTT 5 error", err)
	assert.Equal(t, code, perr.Code, "%v", err)
	if kind == packets.ErrInvalidPacket {
		assert.NotErrorIs(t, err, packets.ErrProtocolError)
	} else {
		assert.Equal(t, code != packets.MalformedPacket, errors.Is(err, packets.ErrProtocolError), "%v", err)
	}
	return perr
}
