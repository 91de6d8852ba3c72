package packets_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

func TestAppendHeader(t *testing.T) {
	p := &packets.Publish{QoS: 1, Topic: "a/b", PacketID: 9, Payload: bytes.Repeat([]byte{7}, 300)}
	whole, err := p.Append(nil)
	require.NoError(t, err)
	head, err := p.AppendHeader(nil)
	require.NoError(t, err)
	assert.Equal(t, whole, append(head, p.Payload...), "AppendHeader + payload differs from Append")
	_, err = (&packets.Publish{QoS: 1, Topic: "t"}).AppendHeader(nil)
	assert.Error(t, err, "AppendHeader accepted a zero packet identifier") // [MQTT-2.3.1-1]
}

// TestPublishFanOut encodes once and patches the packet identifier and
// DUP flag per copy [MQTT-2.3.1-1, MQTT-3.3.1-1].
func TestPublishFanOut(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		p := &packets.Publish{QoS: qos, Retain: true, Topic: "fan/out", PacketID: 1, Payload: []byte("data")}
		shared, err := p.Append(nil)
		require.NoError(t, err)
		off, err := packets.PublishIDOffset(shared)
		require.NoError(t, err)
		require.Equal(t, 2+2+len(p.Topic), off, "PublishIDOffset")
		for _, id := range []uint16{2, 0xBEEF, 65535} {
			pkt := bytes.Clone(shared)
			require.NoError(t, packets.SetPublishID(pkt, id))
			require.NoError(t, packets.SetPublishDup(pkt, id == 65535))
			got, err := decodeWire(t, pkt)
			require.NoError(t, err)
			want := *p
			want.PacketID, want.Dup = id, id == 65535
			assert.Equal(t, &want, got, "patched packet")
		}
		// Clearing DUP again.
		require.NoError(t, packets.SetPublishDup(shared, true))
		require.NoError(t, packets.SetPublishDup(shared, false))
		assert.Zero(t, shared[0]&0x08, "SetPublishDup(false) left first byte %08b", shared[0])
	}
}

func TestPublishFanOutErrors(t *testing.T) {
	qos1, err := (&packets.Publish{QoS: 1, Topic: "t", PacketID: 1}).Append(nil)
	require.NoError(t, err)
	qos0, err := (&packets.Publish{Topic: "t", Payload: []byte("xyz")}).Append(nil)
	require.NoError(t, err)
	tests := []struct {
		name string
		pkt  []byte
		rule string
	}{
		{"QoS 0 has no identifier", qos0, "MQTT-2.3.1-5"},
		{"not a PUBLISH", []byte{0x40, 2, 0, 1}, "2.2.1"},
		{"empty", nil, "2.2.3"},
		{"topic length missing", qos1[:3], "2.2.3"},
		{"identifier cut off", qos1[:len(qos1)-1], "2.2.3"},
		{"Remaining Length too short for the identifier", append([]byte{0x32, 3}, qos1[2:]...), "2.2.3"},
		{"reserved type", []byte{0xF0, 0}, "2.2.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := bytes.Clone(tc.pkt)
			_, err := packets.PublishIDOffset(tc.pkt)
			wantRule(t, err, tc.rule, nil)
			wantRule(t, packets.SetPublishID(tc.pkt, 5), tc.rule, nil)
			wantRule(t, packets.SetPublishDup(tc.pkt, true), tc.rule, nil)
			assert.Equal(t, before, tc.pkt, "packet changed on failure")
		})
	}
	wantRule(t, packets.SetPublishID(qos1, 0), "MQTT-2.3.1-1", packets.ErrInvalidPacket)
}
