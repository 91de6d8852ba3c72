package packets_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// benchProps5 are the property sets of the MQTT 5 PUBLISH benchmarks.
var benchProps5 = []struct {
	name string
	pp   packets.PublishProps
}{
	{"NoProps", packets.PublishProps{}},
	{"TwoUserProps", packets.PublishProps{Raw: cat(pUser("trace-id", "4bf92f3577b34da6"), pUser("tenant", "acme"))}},
	{"AllProps", packets.PublishProps{PayloadFormat: 1, HasPayloadFormat: true, MessageExpiry: 3600, HasMessageExpiry: true,
		TopicAlias: 7, HasTopicAlias: true, SubscriptionIDs: []uint32{42, 100000},
		Raw: cat(pStr(packets.PropContentType, "application/json"), pStr(packets.PropResponseTopic, "replies/building-7"),
			pStr(packets.PropCorrelationData, "0123456789abcdef"), pUser("trace-id", "4bf92f3577b34da6"), pUser("tenant", "acme"))}},
}

func benchPublish5(pp packets.PublishProps) *packets.Publish {
	return &packets.Publish{Version: packets.Level5, QoS: 1, PacketID: 42, Topic: "sensors/building-7/floor-3/temp",
		Props: pp, Payload: make([]byte, 64)}
}

// BenchmarkDecodePublishV5 decodes a 64-byte MQTT 5 PUBLISH into a reused
// value, one topic (the broker's steady state: no allocation).
func BenchmarkDecodePublishV5(b *testing.B) {
	for _, bp := range benchProps5 {
		b.Run(bp.name, func(b *testing.B) {
			pkt := encodeRaw(b, benchPublish5(bp.pp))
			p := packets.Publish{Version: packets.Level5}
			b.SetBytes(int64(pkt.fh.Size()))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Decode(pkt.fh, pkt.body); err != nil {
					require.NoError(b, err)
				}
			}
		})
	}
}

// BenchmarkEncodePublishV5 encodes a 64-byte MQTT 5 PUBLISH into a reused
// buffer.
func BenchmarkEncodePublishV5(b *testing.B) {
	for _, bp := range benchProps5 {
		b.Run(bp.name, func(b *testing.B) {
			p := benchPublish5(bp.pp)
			dst := make([]byte, 0, 512)
			wire, err := p.Append(nil)
			require.NoError(b, err)
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				if dst, err = p.Append(dst[:0]); err != nil {
					require.NoError(b, err)
				}
			}
		})
	}
}
