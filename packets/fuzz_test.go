package packets_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/ternmq/tern/packets"
)

// fuzzSeeds are valid packets of every type and a few malformed ones.
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

// checkDecoded asserts that p, decoded from fh and body, encodes back to
// the same bytes (with the shortest Remaining Length) and decodes again to
// an equal value.
func checkDecoded(t *testing.T, fh packets.FixedHeader, body []byte, p packets.Packet) {
	t.Helper()
	enc, err := p.Append(nil)
	if err != nil {
		t.Fatalf("decoded %#v does not encode: %v", p, err)
	}
	want, err := fh.Append(nil)
	if err != nil {
		t.Fatalf("decoded header %+v does not encode: %v", fh, err)
	}
	if want = append(want, body...); !bytes.Equal(enc, want) {
		t.Fatalf("re-encoded % x\nfrom       % x", enc, want)
	}
	again, err := packets.NewReader(bytes.NewReader(enc), 0).ReadPacket()
	if err != nil {
		t.Fatalf("re-encoded packet does not decode: %v", err)
	}
	if !reflect.DeepEqual(again, p) {
		t.Fatalf("decoded again %#v\nfirst         %#v", again, p)
	}
}

// wantDecodeError fails unless err is an *Error.
func wantDecodeError(t *testing.T, err error) {
	t.Helper()
	var perr *packets.Error
	if !errors.As(err, &perr) || !errors.Is(err, packets.ErrMalformed) || perr.Rule == "" {
		t.Fatalf("error %v (%T) is not an *Error naming a rule", err, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		_, n, err := packets.ParseFixedHeader(s)
		if err != nil || n == 0 {
			n = 2
		}
		f.Add(s[0], s[min(n, len(s)):])
	}
	f.Fuzz(func(t *testing.T, b0 byte, body []byte) {
		fh := packets.FixedHeader{Type: packets.Type(b0 >> 4), Flags: b0 & 0x0f, Remaining: len(body)}
		p, err := packets.Decode(fh, body)
		if err != nil {
			if p != nil {
				t.Fatalf("Decode returned %#v with error %v", p, err)
			}
			wantDecodeError(t, err)
			return
		}
		if p.Type() != fh.Type {
			t.Fatalf("decoded a %v from a %v header", p.Type(), fh.Type)
		}
		checkDecoded(t, fh, body, p)
	})
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
	f.Add(all, uint8(0), uint16(0))
	f.Add(all, uint8(3), uint16(64))
	for _, s := range fuzzSeeds() {
		f.Add(cat(s, s), uint8(1), uint16(len(s)))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, max uint16) {
		r := packets.NewReader(&chunked{data: data, n: int(chunk)%17 + 1}, int(max))
		limit := int(max)
		if limit == 0 {
			limit = packets.MaxPacketSize
		}
		off := 0
		for {
			fh, body, err := r.ReadRaw()
			rest := data[off:]
			hfh, n, herr := packets.ParseFixedHeader(rest)
			if err != nil {
				switch {
				case err == io.EOF:
					if len(rest) != 0 {
						t.Fatalf("io.EOF with %d bytes unread", len(rest))
					}
				case err == io.ErrUnexpectedEOF:
					if herr != nil || len(rest) == 0 || n != 0 && n+hfh.Remaining <= len(rest) {
						t.Fatalf("io.ErrUnexpectedEOF before a whole packet % x", rest)
					}
				case errors.Is(err, packets.ErrPacketTooLarge):
					if herr != nil || n == 0 || n+hfh.Remaining <= limit {
						t.Fatalf("%v for a packet of %d bytes (limit %d)", err, n+hfh.Remaining, limit)
					}
				default:
					wantDecodeError(t, err)
					if herr == nil {
						t.Fatalf("ReadRaw: %v, but the header % x parses", err, rest[:min(len(rest), 5)])
					}
				}
				return
			}
			if herr != nil || n == 0 || hfh != fh || !bytes.Equal(body, rest[n:n+fh.Remaining]) {
				t.Fatalf("ReadRaw = %+v % x from % x", fh, body, rest)
			}
			if n+fh.Remaining > limit {
				t.Fatalf("read a packet of %d bytes over the limit %d", n+fh.Remaining, limit)
			}
			off += n + fh.Remaining
			p, err := packets.Decode(fh, body)
			if err != nil {
				wantDecodeError(t, err)
				continue
			}
			checkDecoded(t, fh, body, p)
		}
	})
}
