package tern

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
)

// TestRewriteAliasedAcrossLengthBoundaries: a PUBLISH rewritten with a
// Topic Alias decodes to the same message, with the topic name or without,
// where the Remaining Length or the Property Length changes its size
// (127/128, 16383/16384 bytes), at QoS 0 and 1, behind other packets in
// the buffer; aliasedLen predicts its size.
// [v5 MQTT-3.3.2-8]
func TestRewriteAliasedAcrossLengthBoundaries(t *testing.T) {
	const topic = "a/b/c"
	for _, qos := range []byte{0, 1} {
		for _, props := range []int{0, 120, 124, 125, 126, 127, 16380} {
			for _, payload := range []int{0, 100, 110, 111, 112, 113, 114, 115, 116, 117, 118, 16360, 16370, 16372, 16375} {
				for _, full := range []bool{true, false} {
					name := fmt.Sprintf("qos%d/props%d/payload%d/full=%v", qos, props, payload, full)
					m := session.Message{Topic: topic, Payload: bytes.Repeat([]byte{'x'}, payload)}
					if props > 0 {
						// One user property of the size wanted: 1 + 2 + 1 + 2 + value.
						raw, err := packets.AppendPublishRaw(nil, &packets.Properties{User: []packets.UserProperty{{Key: "k", Value: strings.Repeat("v", props-6)}}})
						require.NoError(t, err, name)
						require.Len(t, raw, props, name)
						m.Props = raw
					}
					out := []byte{0xC0, 0} // a PINGREQ before it
					start := len(out)
					out = appendPublish(out, &m, true, qos, true, false, 7, nil, 0)
					want := aliasedLen(out[start:], full)
					out = rewriteAliased(out, start, topic, aliasPick{alias: 300, full: full})
					require.Equal(t, want, len(out)-start, "%s: aliasedLen", name)

					r := packets.NewReader(bytes.NewReader(out), 0)
					r.SetVersion(packets.Level5)
					_, err := r.ReadPacket()
					require.NoError(t, err, name)
					p, err := r.ReadPacket()
					require.NoError(t, err, name)
					pub := p.(*packets.Publish)
					if full {
						assert.Equal(t, topic, pub.Topic, name)
					} else {
						assert.Empty(t, pub.Topic, name)
					}
					assert.True(t, pub.Props.HasTopicAlias, name)
					assert.Equal(t, uint16(300), pub.Props.TopicAlias, name)
					assert.Equal(t, qos, pub.QoS, name)
					assert.True(t, pub.Retain, name)
					if qos > 0 {
						assert.Equal(t, uint16(7), pub.PacketID, name)
					}
					assert.Equal(t, string(m.Payload), string(pub.Payload), name)
					assert.Equal(t, string(m.Props), string(pub.Props.Raw), name)
				}
			}
		}
	}
}

// BenchmarkKeepPublish is the broker's side of a QoS 0 delivery to an MQTT
// 5 connection once the shared encoding exists: appending it to the write
// buffer and keepPublish, without and with outbound topic aliases (eight
// 40-byte topics in turn, 16-byte payloads).
//
//	go test -run '^$' -bench KeepPublish -benchmem .
func BenchmarkKeepPublish(b *testing.B) {
	for _, aliases := range []uint16{0, 16} {
		b.Run(fmt.Sprintf("aliases=%d", aliases), func(b *testing.B) {
			c := &conn{}
			c.proto = proto{version: packets.Level5, aliasOut: aliases}
			c.proto.setPlainMax()
			var topics [8]string
			var encs [8][]byte
			for i := range encs {
				topics[i] = fmt.Sprintf("bench/alias/north/device-00%d/temperature", i)
				encs[i] = appendPublish(nil, &session.Message{Topic: topics[i], Payload: make([]byte, 16)}, true, 0, false, false, 0, nil, 0)
			}
			c.out = make([]byte, 0, 64<<10)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if len(c.out) > 60<<10 {
					c.out = c.out[:0]
				}
				start := len(c.out)
				c.out = append(c.out, encs[i%8]...)
				if !c.keepPublish(start, topics[i%8]) {
					b.Fatal("not kept")
				}
			}
		})
	}
}
