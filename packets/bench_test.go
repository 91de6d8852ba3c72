package packets_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

var benchSizes = []struct {
	name string
	n    int
}{{"64B", 64}, {"4KiB", 4096}}

func benchPublish(n int) *packets.Publish {
	return &packets.Publish{QoS: 1, PacketID: 42, Topic: "sensors/building-7/floor-3/temp", Payload: make([]byte, n)}
}

// BenchmarkDecodePublish decodes into a reused value, alternating two
// topics so that every decode allocates its topic string (the worst case;
// a repeated topic costs no allocation).
func BenchmarkDecodePublish(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			var fhs [2]packets.FixedHeader
			var bodies [2][]byte
			for i := range 2 {
				p := benchPublish(size.n)
				p.Topic = p.Topic[:len(p.Topic)-1] + string(rune('0'+i))
				wire, err := p.Append(nil)
				require.NoError(b, err)
				fh, n, err := packets.ParseFixedHeader(wire)
				require.NoError(b, err)
				fhs[i], bodies[i] = fh, wire[n:]
			}
			var p packets.Publish
			b.SetBytes(int64(fhs[0].Size()))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := p.Decode(fhs[i&1], bodies[i&1]); err != nil {
					require.NoError(b, err)
				}
				i++
			}
		})
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			p := benchPublish(size.n)
			dst := make([]byte, 0, size.n+64)
			b.SetBytes(int64(size.n + 2 + 2 + len(p.Topic) + 3))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = p.Append(dst[:0]); err != nil {
					require.NoError(b, err)
				}
			}
		})
	}
}

// BenchmarkReadPublish is the broker's read path: frame from a stream, then
// decode into a reused value (one topic, so no allocation).
func BenchmarkReadPublish(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			wire, err := benchPublish(size.n).Append(nil)
			require.NoError(b, err)
			r := packets.NewReader(&repeatReader{pkt: wire}, 0)
			var p packets.Publish
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				fh, body, err := r.ReadRaw()
				if err != nil {
					require.NoError(b, err)
				}
				if err := p.Decode(fh, body); err != nil {
					require.NoError(b, err)
				}
			}
		})
	}
}
