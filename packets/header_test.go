package packets_test

import (
	"bytes"
	"errors"
	"testing"

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
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Append(%d) = % x, %v; want % x", tc.n, got, err, want)
		}
		if fh.Size() != len(want)+tc.n {
			t.Errorf("Size() = %d, want %d", fh.Size(), len(want)+tc.n)
		}
		parsed, n, err := packets.ParseFixedHeader(append(want, 0xAA))
		if err != nil || n != len(want) || parsed != fh {
			t.Errorf("ParseFixedHeader(% x) = %+v, %d, %v", want, parsed, n, err)
		}
		// Every proper prefix asks for more bytes.
		for i := range want {
			if _, n, err := packets.ParseFixedHeader(want[:i]); n != 0 || err != nil {
				t.Errorf("ParseFixedHeader(% x) = %d, %v; want 0, nil", want[:i], n, err)
			}
		}
	}
}

// TestRemainingLengthNonMinimal: section 2.2.3 does not require the
// shortest encoding, so a padded one is accepted.
func TestRemainingLengthNonMinimal(t *testing.T) {
	fh, n, err := packets.ParseFixedHeader([]byte{0xC0, 0x80, 0x80, 0x00})
	if err != nil || n != 4 || fh.Remaining != 0 || fh.Type != packets.TypePingreq {
		t.Fatalf("ParseFixedHeader = %+v, %d, %v", fh, n, err)
	}
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
		if got != nil {
			t.Errorf("%+v: appended % x", tc.fh, got)
		}
		if !errors.Is(err, packets.ErrInvalidPacket) {
			t.Errorf("%+v: %v does not match ErrInvalidPacket", tc.fh, err)
		}
		wantRule(t, err, tc.rule, nil)
	}
}

func TestTypeString(t *testing.T) {
	names := []string{"reserved type 0", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
		"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
		"reserved type 15"}
	for i, want := range names {
		if got := packets.Type(i).String(); got != want {
			t.Errorf("Type(%d) = %q, want %q", i, got, want)
		}
	}
}
