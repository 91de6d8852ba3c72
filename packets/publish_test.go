package packets_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/ternmq/tern/packets"
)

func TestAppendHeader(t *testing.T) {
	p := &packets.Publish{QoS: 1, Topic: "a/b", PacketID: 9, Payload: bytes.Repeat([]byte{7}, 300)}
	whole, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	head, err := p.AppendHeader(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(head, p.Payload...), whole) {
		t.Fatalf("AppendHeader + payload = % x\nAppend = % x", append(head, p.Payload...), whole)
	}
	if _, err := (&packets.Publish{QoS: 1, Topic: "t"}).AppendHeader(nil); err == nil {
		t.Error("AppendHeader accepted a zero packet identifier") // [MQTT-2.3.1-1]
	}
}

// TestPublishFanOut encodes once and patches the packet identifier and
// DUP flag per copy [MQTT-2.3.1-1, MQTT-3.3.1-1].
func TestPublishFanOut(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		p := &packets.Publish{QoS: qos, Retain: true, Topic: "fan/out", PacketID: 1, Payload: []byte("data")}
		shared, err := p.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		off, err := packets.PublishIDOffset(shared)
		if err != nil || off != 2+2+len(p.Topic) {
			t.Fatalf("PublishIDOffset = %d, %v; want %d", off, err, 2+2+len(p.Topic))
		}
		for _, id := range []uint16{2, 0xBEEF, 65535} {
			pkt := bytes.Clone(shared)
			if err := packets.SetPublishID(pkt, id); err != nil {
				t.Fatal(err)
			}
			if err := packets.SetPublishDup(pkt, id == 65535); err != nil {
				t.Fatal(err)
			}
			got, err := decodeWire(t, pkt)
			if err != nil {
				t.Fatal(err)
			}
			want := *p
			want.PacketID, want.Dup = id, id == 65535
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("patched packet decodes to %+v, want %+v", got, &want)
			}
		}
		// Clearing DUP again.
		if err := packets.SetPublishDup(shared, true); err != nil {
			t.Fatal(err)
		}
		if err := packets.SetPublishDup(shared, false); err != nil || shared[0]&0x08 != 0 {
			t.Errorf("SetPublishDup(false) left first byte %08b, %v", shared[0], err)
		}
	}
}

func TestPublishFanOutErrors(t *testing.T) {
	qos1, err := (&packets.Publish{QoS: 1, Topic: "t", PacketID: 1}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	qos0, err := (&packets.Publish{Topic: "t", Payload: []byte("xyz")}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
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
			if !bytes.Equal(tc.pkt, before) {
				t.Errorf("packet changed on failure: % x", tc.pkt)
			}
		})
	}
	wantRule(t, packets.SetPublishID(qos1, 0), "MQTT-2.3.1-1", packets.ErrInvalidPacket)
}
