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

// fuzzSeeds are valid packets of every type and a few malformed ones, in
// the 3.1.1 form.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, tc := range validPackets() {
		seeds = append(seeds, tc.wire)
	}
	return append(seeds,
		frame(0x10, str("MQTT"), []byte{5, 2}, u16(0), []byte{0}, str("c")), // MQTT 5
		frame(0x30, str("a/+")),
		frame(0x82, u16(1), str("a"), []byte{3}),
		[]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01},
	)
}

// fuzzSeeds5 are the MQTT 5 seeds.
func fuzzSeeds5() [][]byte {
	var seeds [][]byte
	for _, tc := range validPackets5() {
		seeds = append(seeds, tc.wire)
	}
	return append(seeds,
		frame(0x30, str("t"), props(pUser("a", "1"), pU16(packets.PropTopicAlias, 3), pStr(packets.PropContentType, "ct"))),
		frame(0x30, str(""), props(pU16(packets.PropTopicAlias, 0))),
		frame(0x82, u16(1), props(pVBI(packets.PropSubscriptionID, 1)), str("$share/g/a"), []byte{0x04}),
		[]byte{0x40, 3, 0, 1, 0},
		[]byte{0xE0, 1, 0x8E},
	)
}

// fuzzVersion is the version a fuzz input picks: odd for MQTT 5.
func fuzzVersion(v byte) byte {
	if v&1 == 1 {
		return packets.Level5
	}
	return packets.Level311
}

// isV5 reports whether p was decoded in its MQTT 5 form.
func isV5(p packets.Packet, version byte) bool {
	if c, ok := p.(*packets.Connect); ok {
		return c.ProtocolLevel == packets.Level5
	}
	return version == packets.Level5
}

// checkDecoded asserts that p, decoded from fh and body in the form
// version selects, survives encoding. A 3.1.1 packet encodes back to the
// same bytes (with the shortest Remaining Length) and decodes again to an
// equal value. An MQTT 5 packet may have been sent in a longer form than
// the one Append writes (a Reason Code or Property Length that holds the
// default, properties in another order), so it decodes again to an equal
// value, and encodes again to the same bytes.
func checkDecoded(t *testing.T, version byte, fh packets.FixedHeader, body []byte, p packets.Packet) {
	t.Helper()
	enc, err := p.Append(nil)
	require.NoError(t, err, "decoded %#v does not encode", p)
	if !isV5(p, version) {
		want, err := fh.Append(nil)
		require.NoError(t, err, "decoded header %+v does not encode", fh)
		require.Equal(t, append(want, body...), enc, "re-encoded")
	}
	r := packets.NewReader(bytes.NewReader(enc), 0)
	r.SetVersion(version)
	again, err := r.ReadPacket()
	require.NoError(t, err, "re-encoded packet does not decode")
	require.Equal(t, p, again, "decoded again")
	enc2, err := again.Append(nil)
	require.NoError(t, err)
	require.Equal(t, enc, enc2, "encoded again")
}

// wantDecodeError fails unless err is an *Error naming a rule of the
// version it was decoded in, with a Reason Code to answer.
func wantDecodeError(t *testing.T, version byte, fh packets.FixedHeader, err error) {
	t.Helper()
	var perr *packets.Error
	require.ErrorAs(t, err, &perr, "error %v (%T) is not an *Error", err, err)
	require.ErrorIs(t, err, packets.ErrMalformed)
	require.NotEmpty(t, perr.Rule)
	require.True(t, perr.Code.IsError(), "%v: Code %v", err, perr.Code)
	if version == packets.Level5 && fh.Type != packets.TypeConnect {
		require.Equal(t, packets.Level5, perr.Version, "%v", err)
	}
	if perr.Version != packets.Level5 {
		require.NotErrorIs(t, err, packets.ErrProtocolError)
	}
}

func FuzzDecode(f *testing.F) {
	add := func(version byte, s []byte) {
		_, n, err := packets.ParseFixedHeaderVersion(fuzzVersion(version), s)
		if err != nil || n == 0 {
			n = 2
		}
		f.Add(version, s[0], s[min(n, len(s)):])
	}
	for _, s := range fuzzSeeds() {
		add(0, s)
	}
	for _, s := range fuzzSeeds5() {
		add(1, s)
	}
	f.Fuzz(func(t *testing.T, version, b0 byte, body []byte) {
		version = fuzzVersion(version)
		fh := packets.FixedHeader{Type: packets.Type(b0 >> 4), Flags: b0 & 0x0f, Remaining: len(body)}
		p, err := packets.DecodeVersion(version, fh, body)
		if fh.Type >= packets.TypePuback && fh.Type <= packets.TypePubcomp {
			checkDecodeAckID(t, version, fh, body, p, err)
		}
		if err != nil {
			require.Nil(t, p, "DecodeVersion returned a packet with error %v", err)
			wantDecodeError(t, version, fh, err)
			return
		}
		require.Equal(t, fh.Type, p.Type(), "decoded the wrong type")
		checkDecoded(t, version, fh, body, p)
	})
}

// checkDecodeAckID checks that DecodeAckID accepts what DecodeVersion
// accepts, with the same identifier and Reason Code, and refuses what it
// refuses, with the same error.
func checkDecodeAckID(t *testing.T, version byte, fh packets.FixedHeader, body []byte, p packets.Packet, err error) {
	t.Helper()
	id, code, idErr := packets.DecodeAckID(version, fh, body)
	if err != nil {
		require.Error(t, idErr, "DecodeAckID accepted what DecodeVersion refused with %v", err)
		require.Equal(t, err.Error(), idErr.Error())
		return
	}
	require.NoError(t, idErr)
	var wantID uint16
	var wantCode packets.ReasonCode
	switch a := p.(type) {
	case *packets.Puback:
		wantID, wantCode = a.PacketID, a.ReasonCode
	case *packets.Pubrec:
		wantID, wantCode = a.PacketID, a.ReasonCode
	case *packets.Pubrel:
		wantID, wantCode = a.PacketID, a.ReasonCode
	case *packets.Pubcomp:
		wantID, wantCode = a.PacketID, a.ReasonCode
	default:
		require.Failf(t, "not an acknowledgement", "%T", p)
	}
	require.Equal(t, wantID, id)
	require.Equal(t, wantCode, code)
}

// chunked returns at most n bytes a Read.
type chunked struct {
	data []byte
	n    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[n:]
	return n, nil
}

func FuzzReader(f *testing.F) {
	all := cat(fuzzSeeds()[:len(validPackets())]...)
	f.Add(all, uint8(0), uint16(0), byte(0))
	f.Add(all, uint8(3), uint16(64), byte(0))
	for _, s := range fuzzSeeds() {
		f.Add(cat(s, s), uint8(1), uint16(len(s)), byte(0))
	}
	all5 := cat(fuzzSeeds5()[:len(validPackets5())]...)
	f.Add(all5, uint8(0), uint16(0), byte(1))
	f.Add(all5, uint8(5), uint16(128), byte(1))
	for _, s := range fuzzSeeds5() {
		f.Add(cat(s, s), uint8(2), uint16(len(s)), byte(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, max uint16, version byte) {
		version = fuzzVersion(version)
		// The Reader first reads part of another stream (the same bytes,
		// in other chunks) and is Reset, as a reader goroutine's is
		// between connections: nothing of that stream may show.
		r := packets.NewReader(&chunked{data: data, n: int(chunk)%5 + 1}, 0)
		if version != packets.Level5 {
			r.SetVersion(packets.Level5) // Reset returns to the 3.1.1 form
		}
		r.ReadRaw()
		r.Reset(&chunked{data: data, n: int(chunk)%17 + 1}, int(max))
		require.False(t, r.Pending(), "after Reset")
		if version == packets.Level5 {
			r.SetVersion(version) // 3.1.1 is Reset's
		}
		limit := int(max)
		if limit == 0 {
			limit = packets.MaxPacketSize
		}
		off := 0
		for {
			fh, body, err := r.ReadRaw()
			rest := data[off:]
			hfh, n, herr := packets.ParseFixedHeaderVersion(version, rest)
			if err != nil {
				switch {
				case err == io.EOF:
					require.Empty(t, rest, "io.EOF with bytes unread")
				case err == io.ErrUnexpectedEOF:
					if herr != nil || len(rest) == 0 || n != 0 && n+hfh.Remaining <= len(rest) {
						require.FailNow(t, "io.ErrUnexpectedEOF before a whole packet", "% x", rest)
					}
				case errors.Is(err, packets.ErrPacketTooLarge):
					if herr != nil || n == 0 || n+hfh.Remaining <= limit {
						require.FailNow(t, "ErrPacketTooLarge", "%v for a packet of %d bytes (limit %d)", err, n+hfh.Remaining, limit)
					}
				default:
					wantDecodeError(t, version, hfh, err)
					require.Error(t, herr, "ReadRaw: %v, but the header % x parses", err, rest[:min(len(rest), 5)])
				}
				return
			}
			require.NoError(t, herr)
			require.NotZero(t, n)
			require.Equal(t, hfh, fh)
			require.Equal(t, rest[n:n+fh.Remaining], body)
			assert.LessOrEqual(t, n+fh.Remaining, limit, "read a packet over the limit")
			off += n + fh.Remaining
			p, err := packets.DecodeVersion(version, fh, body)
			if err != nil {
				wantDecodeError(t, version, fh, err)
				continue
			}
			checkDecoded(t, version, fh, body, p)
		}
	})
}
