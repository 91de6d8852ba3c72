package nats

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ternmq/tern"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, m := range []tern.ClusterMessage{
		{Topic: "a", Payload: []byte("hello"), QoS: 1},
		{Topic: "a", QoS: 2, Retain: true, HasFormat: true, Format: 1, Props: []byte{3, 0, 4, 't', 'e', 'x', 't'},
			Expires: time.Now().Add(time.Hour).UnixNano(), From: "client-1", Published: time.Now().UnixNano(), Payload: []byte{0, 1, 2}},
		{Topic: "a"},
	} {
		id := msgID{origin: 42, seq: 7}
		data := appendEnvelope(nil, &m, id)
		var got tern.ClusterMessage
		gotID, err := decodeEnvelope(data, &got)
		require.NoError(t, err)
		got.Topic = m.Topic
		assert.Equal(t, id, gotID)
		if len(m.Payload) == 0 {
			assert.Empty(t, got.Payload)
			got.Payload = m.Payload
		}
		assert.Equal(t, m, got)
	}
}

func TestEnvelopeRefusesGarbage(t *testing.T) {
	m := tern.ClusterMessage{Topic: "a", Payload: []byte("x"), From: "someone", Props: []byte{1, 1}}
	data := appendEnvelope(nil, &m, msgID{1, 2})
	for _, bad := range [][]byte{nil, {9, 0, 0}, data[:5], {1, 3, 0, 0, 0, 0, 0, 0, 0}} {
		var got tern.ClusterMessage
		_, err := decodeEnvelope(bad, &got)
		assert.Error(t, err, "%v", bad)
	}
}

func TestDedupeOncePerIdentity(t *testing.T) {
	var d dedupe
	assert.True(t, d.first(msgID{1, 1}))
	assert.False(t, d.first(msgID{1, 1}))
	assert.True(t, d.first(msgID{2, 1}))
	for i := range uint64(dedupeGeneration) {
		d.first(msgID{3, i})
	}
	assert.False(t, d.first(msgID{3, dedupeGeneration - 1}), "the previous generation is remembered")
}
