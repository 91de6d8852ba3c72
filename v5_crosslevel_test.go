package tern_test

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/packets"
)

// A message crosses protocol levels: what an MQTT 5 client publishes
// reaches 3.1.1 subscribers as a 3.1.1 PUBLISH, without properties, and
// what a 3.1.1 client publishes reaches MQTT 5 subscribers without
// properties. And MQTT 5 over WebSocket.

// m5RawPublishOf reads the next packet on c as raw bytes, requires a
// PUBLISH, and returns its flags and body.
func m5RawPublishOf(c *rawClient) (byte, []byte) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	fh, body, err := c.r.ReadRaw()
	require.NoError(c.t, err)
	require.Equal(c.t, packets.TypePublish, fh.Type)
	return fh.Flags, slices.Clone(body)
}

// TestV5CrossLevelToMQTT311: a message an MQTT 5 client publishes with
// every property, at QoS 0, 1 and 2, reaches a 3.1.1 subscriber as a 3.1.1
// PUBLISH of the topic, packet identifier and payload only; an MQTT 5
// subscriber of the same topic gets the properties.
func TestV5CrossLevelToMQTT311(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	old := mustConnect(t, addr, "x-311", true)
	old.subscribe(1, packets.Subscription{Filter: "x/#", QoS: 2})
	v5 := m5Connect(t, addr, "x-5")
	m5Sub(v5, "x/#", 2)
	pub := m5Connect(t, addr, "x-pub")
	raw := m5RawProps(t, &packets.Properties{ContentType: "text/plain", ResponseTopic: "x/reply",
		CorrelationData: []byte("corr"), User: []packets.UserProperty{{Key: "a", Value: "b"}}})
	for qos := byte(0); qos <= 2; qos++ {
		p := &packets.Publish{Topic: "x/t", QoS: qos, Payload: []byte("payload"), Props: packets.PublishProps{
			HasPayloadFormat: true, PayloadFormat: 1, HasMessageExpiry: true, MessageExpiry: 100, Raw: raw}}
		if qos > 0 {
			p.PacketID = 3
		}
		require.Equal(t, packets.Success, m5Publish(pub, p))

		flags, body := m5RawPublishOf(old)
		assert.Equal(t, qos<<1, flags, "QoS %d, DUP 0, RETAIN 0", qos)
		want := mqttString("x/t")
		var id uint16
		if qos > 0 {
			id = uint16(body[len(want)])<<8 | uint16(body[len(want)+1])
			want = append(want, body[len(want):len(want)+2]...)
		}
		assert.Equal(t, string(append(want, "payload"...)), string(body), "QoS %d: topic, identifier, payload; no properties", qos)
		switch qos {
		case 1:
			old.send(&packets.Puback{PacketID: id})
		case 2:
			old.send(&packets.Pubrec{PacketID: id})
			require.Equal(t, id, recvAs[*packets.Pubrel](old).PacketID)
			old.send(&packets.Pubcomp{PacketID: id})
		}

		got := m5Expect(v5, "x/t", "payload", qos)
		props := m5Props(t, got)
		assert.Equal(t, "text/plain", props.ContentType)
		assert.Equal(t, "x/reply", props.ResponseTopic)
	}
	expectQuiet(old)
	m5Quiet(v5)
}

// TestV5CrossLevelFromMQTT311: a message a 3.1.1 client publishes at QoS
// 0, 1 and 2, live or retained, reaches an MQTT 5 subscriber with no
// properties: a Property Length of 0.
// [v5 MQTT-2.2.2-1]
func TestV5CrossLevelFromMQTT311(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	v5 := m5Connect(t, addr, "y-5")
	m5Sub(v5, "y/#", 2)
	old := mustConnect(t, addr, "y-311", true)
	for qos := byte(0); qos <= 2; qos++ {
		old.publishQoS(5, "y/t", "from 3.1.1", qos, false)
		flags, body := m5RawPublishOf(v5)
		assert.Equal(t, qos<<1, flags)
		want := mqttString("y/t")
		var id uint16
		if qos > 0 {
			id = uint16(body[len(want)])<<8 | uint16(body[len(want)+1])
			want = append(want, body[len(want):len(want)+2]...)
		}
		want = append(want, 0) // Property Length 0
		assert.Equal(t, string(append(want, "from 3.1.1"...)), string(body), "QoS %d", qos)
		m5Ack(v5, &packets.Publish{QoS: qos, PacketID: id})
	}
	old.publishQoS(6, "y/r", "retained", 1, true)
	got := m5Expect(v5, "y/r", "retained", 1)
	assert.False(t, got.Retain, "live, without Retain As Published")
	late := m5Connect(t, addr, "y-late")
	m5Sub(late, "y/r", 1)
	got = m5Expect(late, "y/r", "retained", 1)
	assert.True(t, got.Retain)
	assert.False(t, got.Props.HasPayloadFormat)
	assert.False(t, got.Props.HasMessageExpiry)
	assert.Empty(t, got.Props.Raw)
	m5Quiet(v5)
}

// TestV5OverWebSocket: an MQTT 5 client over a WebSocket endpoint mounted
// on an application's HTTP server (listeners.NewWebSocket) subscribes with
// a Subscription Identifier, publishes with properties, and gets its
// message back with them; the server selects the "mqtt" subprotocol.
// [v5 MQTT-6.0.0-4]
func TestV5OverWebSocket(t *testing.T) {
	ws := listeners.NewWebSocket(listeners.WebSocketOptions{})
	mux := http.NewServeMux()
	mux.Handle(ws.Path(), ws)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close) // after the broker's cleanup, which counts the server's goroutines as before
	serveBroker(t, runtime.NumGoroutine(), tern.Options{}, ws)
	conn, err := lisDialWS("ws://"+srv.Listener.Addr().String()+ws.Path(), nil, listeners.SubprotocolMQTT)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	assert.Equal(t, []string{"mqtt"}, conn.Config().Protocol)
	c := &rawClient{t: t, conn: conn, r: packets.NewReader(&lisFrames{t: t, ws: conn}, 0)}
	c.r.SetVersion(packets.Level5)
	ack := c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: packets.Level5, ClientID: "ws5", CleanSession: true, KeepAlive: 60})
	require.Equal(t, byte(packets.Success), ack.ReturnCode)
	m5Subscribe(c, 1, 42, packets.Subscription{Filter: "ws5/#", QoS: 2, RetainHandling: 2})
	raw := m5RawProps(t, &packets.Properties{CorrelationData: []byte{1, 2}, User: []packets.UserProperty{{Key: "over", Value: "ws"}}})
	m5Send(c, &packets.Publish{Topic: "ws5/t", QoS: 1, PacketID: 9, Payload: []byte("hello"), Props: packets.PublishProps{Raw: raw}})
	var got *packets.Publish
	acked := false
	for got == nil || !acked {
		switch p := c.recv().(type) {
		case *packets.Puback:
			assert.Equal(t, uint16(9), p.PacketID)
			assert.Equal(t, packets.Success, p.ReasonCode)
			acked = true
		case *packets.Publish:
			got = p
		default:
			t.Fatalf("unexpected %s", describePackets(p))
		}
	}
	assert.Equal(t, "hello", string(got.Payload))
	props := m5Props(t, got)
	assert.Equal(t, []byte{1, 2}, props.CorrelationData)
	assert.Equal(t, []packets.UserProperty{{Key: "over", Value: "ws"}}, props.User)
	assert.Equal(t, []uint32{42}, props.SubscriptionIDs)
	m5Ack(c, got)
	m5Bye(c)
}
