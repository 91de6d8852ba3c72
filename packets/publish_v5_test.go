package packets_test

import (
	"bytes"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// rawPacket is a fixed header and body, as ReadRaw returns them.
type rawPacket struct {
	fh   packets.FixedHeader
	body []byte
}

func encodeRaw(t testing.TB, p packets.Packet) rawPacket {
	wire, err := p.Append(nil)
	require.NoError(t, err)
	fh, n, err := packets.ParseFixedHeader(wire)
	require.NoError(t, err)
	return rawPacket{fh, wire[n:]}
}

// TestDecodePublishV5Allocations: an MQTT 5 PUBLISH decodes into a reused
// value with no more allocations than a 3.1.1 one (the topic string, when
// it changes): its raw properties alias the body and its Subscription
// Identifiers reuse their array. Only raw properties split by decoded ones
// on the wire need a copy.
func TestDecodePublishV5Allocations(t *testing.T) {
	pub := func(topic string, pp packets.PublishProps) *packets.Publish {
		return &packets.Publish{Version: 5, QoS: 1, PacketID: 7, Topic: topic, Props: pp, Payload: make([]byte, 64)}
	}
	all := packets.PublishProps{PayloadFormat: 1, HasPayloadFormat: true, MessageExpiry: 60, HasMessageExpiry: true,
		TopicAlias: 2, HasTopicAlias: true, SubscriptionIDs: []uint32{1, 2, 3},
		Raw: cat(pStr(packets.PropContentType, "a/b"), pStr(packets.PropResponseTopic, "r"), pStr(packets.PropCorrelationData, "c"), pUser("k", "v"))}
	users := packets.PublishProps{Raw: cat(pUser("k1", "v1"), pUser("k2", "v2"))}
	interleaved := rawPacket{packets.FixedHeader{Type: packets.TypePublish}, cat(str("t"),
		props(pUser("a", "1"), pU16(packets.PropTopicAlias, 3), pStr(packets.PropContentType, "ct")))}
	interleaved.fh.Remaining = len(interleaved.body)
	for _, tc := range []struct {
		name   string
		pkts   []rawPacket
		allocs float64
	}{
		{"no properties, topics alternate", []rawPacket{encodeRaw(t, pub("a/1", packets.PublishProps{})), encodeRaw(t, pub("a/2", packets.PublishProps{}))}, 1},
		{"no properties, same topic", []rawPacket{encodeRaw(t, pub("a/1", packets.PublishProps{}))}, 0},
		{"two user properties, same topic", []rawPacket{encodeRaw(t, pub("a/1", users))}, 0},
		{"every property, same topic", []rawPacket{encodeRaw(t, pub("a/1", all))}, 0},
		{"every property, topics alternate", []rawPacket{encodeRaw(t, pub("a/1", all)), encodeRaw(t, pub("a/2", all))}, 1},
		{"raw properties around a Topic Alias", []rawPacket{interleaved}, 1},
	} {
		into := packets.Publish{Version: 5}
		i := 0
		allocs := testing.AllocsPerRun(100, func() {
			pkt := tc.pkts[i%len(tc.pkts)]
			i++
			require.NoError(t, into.Decode(pkt.fh, pkt.body))
		})
		assert.Equal(t, tc.allocs, allocs, "%s: Decode allocations", tc.name)
	}
}

// TestPublishV5Raw: Raw aliases the body when its properties are together
// there, and is a copy when decoded properties split them; Subscription
// Identifiers reuse the slice's backing array.
func TestPublishV5Raw(t *testing.T) {
	raw := cat(pStr(packets.PropContentType, "ct"), pUser("k", "v"))
	body := cat(str("t"), props(pVBI(packets.PropSubscriptionID, 5), raw, pVBI(packets.PropSubscriptionID, 6)), []byte("pay"))
	ids := make([]uint32, 1, 8)
	p := packets.Publish{Version: 5, Props: packets.PublishProps{SubscriptionIDs: ids}}
	require.NoError(t, p.Decode(packets.FixedHeader{Type: packets.TypePublish, Remaining: len(body)}, body))
	assert.Equal(t, raw, p.Props.Raw)
	assert.Equal(t, []uint32{5, 6}, p.Props.SubscriptionIDs)
	assert.Same(t, &ids[:1][0], &p.Props.SubscriptionIDs[0], "SubscriptionIDs did not reuse the backing array")
	off := bytes.Index(body, raw)
	body[off+len(raw)-1] = 'w'
	assert.Equal(t, byte('w'), p.Props.Raw[len(raw)-1], "Raw does not alias the body")

	// More Subscription Identifiers than Decode keeps on its stack.
	many := cat(str("t"), props(pVBI(packets.PropSubscriptionID, 1), pVBI(packets.PropSubscriptionID, 2), pVBI(packets.PropSubscriptionID, 3),
		pVBI(packets.PropSubscriptionID, 128), pUser("k", "v"), pVBI(packets.PropSubscriptionID, 16384), pVBI(packets.PropSubscriptionID, 268435455)))
	require.NoError(t, p.Decode(packets.FixedHeader{Type: packets.TypePublish, Remaining: len(many)}, many))
	assert.Equal(t, []uint32{1, 2, 3, 128, 16384, 268435455}, p.Props.SubscriptionIDs)
	assert.Equal(t, pUser("k", "v"), p.Props.Raw)

	split := cat(str("t"), props(pStr(packets.PropContentType, "ct"), pByte(packets.PropPayloadFormat, 1), pUser("k", "v")))
	require.NoError(t, p.Decode(packets.FixedHeader{Type: packets.TypePublish, Remaining: len(split)}, split))
	assert.Equal(t, raw, p.Props.Raw)
	assert.Empty(t, p.Props.SubscriptionIDs)
	split[len(split)-1] = 'w'
	assert.Equal(t, raw, p.Props.Raw, "a split Raw is a copy")
}

// TestPublishPropsConversions: PublishProps.Properties gives the general
// form, and AppendPublishRaw builds a Raw from it, refusing the kinds that
// PublishProps decodes.
func TestPublishPropsConversions(t *testing.T) {
	general := packets.Properties{ContentType: "application/json", ResponseTopic: "re/ply", CorrelationData: []byte{},
		User: []packets.UserProperty{{"b", "2"}, {"a", "1"}}}
	raw, err := packets.AppendPublishRaw([]byte("x"), &general)
	require.NoError(t, err)
	assert.Equal(t, cat([]byte("x"), pStr(packets.PropContentType, "application/json"), pStr(packets.PropResponseTopic, "re/ply"),
		pStr(packets.PropCorrelationData, ""), pUser("b", "2"), pUser("a", "1")), raw)

	pp := packets.PublishProps{PayloadFormat: 1, HasPayloadFormat: true, MessageExpiry: 9, HasMessageExpiry: true,
		TopicAlias: 4, HasTopicAlias: true, SubscriptionIDs: []uint32{3, 3}, Raw: raw[1:]}
	got, err := pp.Properties()
	require.NoError(t, err)
	want := general
	want.PayloadFormat, want.MessageExpiry, want.TopicAlias, want.SubscriptionIDs = new(byte(1)), new(uint32(9)), new(uint16(4)), []uint32{3, 3}
	assert.Equal(t, want, got)
	got, err = (&packets.PublishProps{}).Properties()
	require.NoError(t, err)
	assert.Equal(t, packets.Properties{}, got)

	for _, bad := range []packets.Properties{
		{PayloadFormat: new(byte(0))}, {MessageExpiry: new(uint32(1))}, {TopicAlias: new(uint16(1))},
		{SubscriptionIDs: []uint32{1}}, {ReasonString: "not a PUBLISH property"}, {WillDelay: new(uint32(1))},
	} {
		got, err := packets.AppendPublishRaw([]byte{1}, &bad)
		wantV5(t, err, "2.2.2.2", packets.MalformedPacket, packets.ErrInvalidPacket)
		assert.Equal(t, []byte{1}, got)
	}
	_, err = packets.AppendPublishRaw(nil, &packets.Properties{ResponseTopic: "a/#"})
	wantV5(t, err, "MQTT-3.3.2-14", packets.ProtocolError, packets.ErrInvalidPacket)

	for name, r := range map[string][]byte{
		"a Topic Alias":  pU16(packets.PropTopicAlias, 1),
		"garbage":        {0xFF},
		"a cut-off User": pUser("k", "v")[:4],
	} {
		_, err := (&packets.PublishProps{Raw: r}).Properties()
		assert.ErrorIs(t, err, packets.ErrMalformed, "Raw holding %s", name)
	}
}

// TestAppendPublishV5Invalid: Append refuses an MQTT 5 PUBLISH a receiver
// would reject, Raw included [v5 MQTT-2.2.1-3, MQTT-3.3.1-2, MQTT-3.3.1-4,
// MQTT-3.3.2-2, MQTT-3.3.2-8, MQTT-3.3.2-14], sections 3.3.2.1, 3.3.2.3.2,
// 3.3.2.3.8, 3.3.2.3.9.
func TestAppendPublishV5Invalid(t *testing.T) {
	pub := func(p packets.Publish) *packets.Publish {
		p.Version = 5
		if p.Topic == "" && !p.Props.HasTopicAlias {
			p.Topic = "t"
		}
		return &p
	}
	tests := []struct {
		name string
		p    *packets.Publish
		rule string
		code packets.ReasonCode
	}{
		{"QoS 3", pub(packets.Publish{QoS: 3, PacketID: 1}), "MQTT-3.3.1-4", malformed},
		{"DUP at QoS 0", pub(packets.Publish{Dup: true}), "MQTT-3.3.1-2", malformed},
		{"QoS 1 without packet id", pub(packets.Publish{QoS: 1}), "MQTT-2.2.1-3", protocol},
		{"empty topic without a Topic Alias", &packets.Publish{Version: 5}, "3.3.2.1", protocol},
		{"topic wildcard", pub(packets.Publish{Topic: "a/#"}), "MQTT-3.3.2-2", protocol},
		{"topic not UTF-8", pub(packets.Publish{Topic: "\xff"}), "MQTT-1.5.4-1", malformed},
		{"Payload Format 2", pub(packets.Publish{Props: packets.PublishProps{PayloadFormat: 2, HasPayloadFormat: true}}), "3.3.2.3.2", protocol},
		{"Topic Alias 0", pub(packets.Publish{Props: packets.PublishProps{HasTopicAlias: true}}), "MQTT-3.3.2-8", packets.TopicAliasInvalid},
		{"Subscription Identifier 0", pub(packets.Publish{Props: packets.PublishProps{SubscriptionIDs: []uint32{1, 0}}}), "3.3.2.3.8", protocol},
		{"Subscription Identifier too large", pub(packets.Publish{Props: packets.PublishProps{SubscriptionIDs: []uint32{1 << 28}}}), "1.5.5", malformed},
		{"Raw with a Topic Alias", pub(packets.Publish{Props: packets.PublishProps{Raw: pU16(packets.PropTopicAlias, 1)}}), "2.2.2.2", malformed},
		{"Raw with an unknown property", pub(packets.Publish{Props: packets.PublishProps{Raw: []byte{0x7F, 0}}}), "2.2.2.2", malformed},
		{"Raw cut off", pub(packets.Publish{Props: packets.PublishProps{Raw: pUser("k", "v")[:5]}}), "2.2.2.2", malformed},
		{"Raw Response Topic with a wildcard", pub(packets.Publish{Props: packets.PublishProps{Raw: pStr(packets.PropResponseTopic, "+")}}), "MQTT-3.3.2-14", protocol},
		{"Raw Content Type twice", pub(packets.Publish{Props: packets.PublishProps{
			Raw: cat(pStr(packets.PropContentType, "a"), pStr(packets.PropContentType, "b"))}}), "3.3.2.3.9", protocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Append([]byte{1})
			wantV5(t, err, tc.rule, tc.code, packets.ErrInvalidPacket)
			assert.Equal(t, []byte{1}, got, "appended on failure")
			_, err = tc.p.AppendHeader(nil)
			wantV5(t, err, tc.rule, tc.code, packets.ErrInvalidPacket)
		})
	}
}

// TestPublishV5FanOut: an MQTT 5 PUBLISH is encoded once and patched per
// copy like a 3.1.1 one: the packet identifier comes before the properties
// [v5 MQTT-2.2.1-4, MQTT-3.3.1-1].
func TestPublishV5FanOut(t *testing.T) {
	p := &packets.Publish{Version: 5, QoS: 2, Topic: "fan/out", PacketID: 1,
		Props: packets.PublishProps{MessageExpiry: 30, HasMessageExpiry: true, Raw: pUser("k", "v")}, Payload: bytes.Repeat([]byte("d"), 200)}
	shared, err := p.Append(nil)
	require.NoError(t, err)
	head, err := p.AppendHeader(nil)
	require.NoError(t, err)
	assert.Equal(t, shared, append(head, p.Payload...), "AppendHeader + payload differs from Append")
	off, err := packets.PublishIDOffset(shared)
	require.NoError(t, err)
	assert.Equal(t, 3+2+len(p.Topic), off, "two byte Remaining Length")
	pkt := bytes.Clone(shared)
	require.NoError(t, packets.SetPublishID(pkt, 0xBEEF))
	require.NoError(t, packets.SetPublishDup(pkt, true))
	got, err := decodeWireV(t, packets.Level5, pkt)
	require.NoError(t, err)
	want := *p
	want.PacketID, want.Dup = 0xBEEF, true
	assert.Equal(t, &want, got)
}

// TestReaderV5: a Reader set to MQTT 5 frames AUTH, refuses a Remaining
// Length longer than it needs [v5 MQTT-1.5.5-1], and ReadPacket copies the
// raw properties with the payload.
func TestReaderV5(t *testing.T) {
	var want []packets.Packet
	var wire []byte
	for _, tc := range validPackets5() {
		want = append(want, tc.p)
		wire = append(wire, tc.wire...)
	}
	r := packets.NewReader(iotest.HalfReader(bytes.NewReader(wire)), 0)
	r.SetVersion(packets.Level5)
	for i, w := range want {
		p, err := r.ReadPacket()
		require.NoError(t, err, "packet %d", i)
		require.Equal(t, w, p, "packet %d", i)
	}

	pub := frame(0x30, str("t"), props(pUser("k", "v")), []byte("x"))
	r = packets.NewReader(bytes.NewReader(cat(pub, pub)), 0)
	r.SetVersion(packets.Level5)
	first, err := r.ReadPacket()
	require.NoError(t, err)
	_, err = r.ReadPacket()
	require.NoError(t, err)
	assert.Equal(t, pUser("k", "v"), first.(*packets.Publish).Props.Raw)

	for _, v := range []byte{0, packets.Level311, packets.Level5} {
		r := packets.NewReader(bytes.NewReader([]byte{0xF0, 0x80, 0x00}), 0)
		r.SetVersion(v)
		for range 2 { // sticky
			_, _, err := r.ReadRaw()
			if v == packets.Level5 {
				wantV5(t, err, "MQTT-1.5.5-1", malformed, nil)
			} else {
				wantRule(t, err, "2.2.1", nil) // type 15 is reserved in 3.1.1
			}
		}
	}
}
