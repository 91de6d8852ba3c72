package packets_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// TestRemainingLength checks the boundaries of Table 2.4 (section 2.2.3)
// both ways.
func TestRemainingLength(t *testing.T) {
	tests := []struct {
		n    int
		wire []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7F}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xFF, 0x7F}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xFF, 0xFF, 0x7F}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{268435455, []byte{0xFF, 0xFF, 0xFF, 0x7F}},
	}
	for _, tc := range tests {
		fh := packets.FixedHeader{Type: packets.TypePublish, Flags: 0b0011, Remaining: tc.n}
		want := append([]byte{0x33}, tc.wire...)
		got, err := fh.Append(nil)
		require.NoError(t, err, "Append(%d)", tc.n)
		assert.Equal(t, want, got, "Append(%d)", tc.n)
		assert.Equal(t, len(want)+tc.n, fh.Size(), "Size()")
		parsed, n, err := packets.ParseFixedHeader(append(want, 0xAA))
		require.NoError(t, err, "ParseFixedHeader(% x)", want)
		assert.Equal(t, len(want), n, "ParseFixedHeader(% x) length", want)
		assert.Equal(t, fh, parsed, "ParseFixedHeader(% x)", want)
		// Every proper prefix asks for more bytes.
		for i := range want {
			_, n, err := packets.ParseFixedHeader(want[:i])
			assert.NoError(t, err, "ParseFixedHeader(% x)", want[:i])
			assert.Zero(t, n, "ParseFixedHeader(% x) wants more bytes", want[:i])
		}
	}
}

// TestRemainingLengthNonMinimal: section 2.2.3 does not require the
// shortest encoding, so a padded one is accepted.
func TestRemainingLengthNonMinimal(t *testing.T) {
	fh, n, err := packets.ParseFixedHeader([]byte{0xC0, 0x80, 0x80, 0x00})
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.Equal(t, packets.FixedHeader{Type: packets.TypePingreq}, fh)
}

func TestFixedHeaderAppendInvalid(t *testing.T) {
	tests := []struct {
		fh   packets.FixedHeader
		rule string
	}{
		{packets.FixedHeader{Type: packets.TypeReserved}, "2.2.1"},
		{packets.FixedHeader{Type: packets.TypeReserved15}, "2.2.1"},
		{packets.FixedHeader{Type: packets.TypePubrel}, "MQTT-3.6.1-1"},
		{packets.FixedHeader{Type: packets.TypePublish, Flags: 0b0110}, "MQTT-3.3.1-4"},
		{packets.FixedHeader{Type: packets.TypePublish, Flags: 0b1000}, "MQTT-3.3.1-2"},
		{packets.FixedHeader{Type: packets.TypePingreq, Remaining: -1}, "2.2.3"},
		{packets.FixedHeader{Type: packets.TypePublish, Remaining: packets.MaxRemainingLength + 1}, "2.2.3"},
	}
	for _, tc := range tests {
		got, err := tc.fh.Append(nil)
		assert.Nil(t, got, "%+v: appended on failure", tc.fh)
		wantRule(t, err, tc.rule, packets.ErrInvalidPacket)
	}
}

// TestTypeString: type 15 is AUTH in MQTT 5; in a 3.1.1 error it is still
// the reserved type it is there.
func TestTypeString(t *testing.T) {
	names := []string{"reserved type 0", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
		"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
		"AUTH"}
	for i, want := range names {
		assert.Equal(t, want, packets.Type(i).String(), "Type(%d)", i)
	}
	_, err := packets.Decode(packets.FixedHeader{Type: packets.TypeReserved15}, nil)
	require.Error(t, err)
	assert.Equal(t, "mqtt: malformed reserved type 15: reserved control packet type 15 [2.2.1]", err.Error())
}
