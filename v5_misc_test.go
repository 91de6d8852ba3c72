package tern_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/websocket"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// [v5 MQTT-1.5.4-3] A U+FEFF (ZERO WIDTH NO-BREAK SPACE) in a string is an
// ordinary character: in a topic name and in a user property, it reaches
// the subscriber as it was sent, neither skipped nor stripped.
func TestV5ByteOrderMarkIsKept(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := a5Client(t, addr, "bom-sub")
	a5Subscribe(sub, 1, packets.Properties{}, packets.Subscription{Filter: "bom/#"})
	pub := a5Client(t, addr, "bom-pub")
	raw, err := packets.AppendPublishRaw(nil, &packets.Properties{User: []packets.UserProperty{{Key: "\uFEFFk", Value: "v\uFEFF"}}})
	require.NoError(t, err)
	pub.send(&packets.Publish{Version: packets.Level5, Topic: "bom/\uFEFFx", Props: packets.PublishProps{Raw: raw}})
	p := sub.recvPublish()
	assert.Equal(t, "bom/\uFEFFx", p.Topic)
	props, err := p.Props.Properties()
	require.NoError(t, err)
	assert.Equal(t, []packets.UserProperty{{Key: "\uFEFFk", Value: "v\uFEFF"}}, props.User)
}

// [v5 MQTT-6.0.0-1] [v5 MQTT-6.0.0-2] [v5 MQTT-6.0.0-4] MQTT 5 over
// WebSocket: the server selects "mqtt", reassembles packets split across
// binary frames and separates packets sharing one, and closes the
// connection on a text frame.
func TestV5WebSocketFraming(t *testing.T) {
	_, ws, c := lisWSClient(t) // checks the selected subprotocol
	c.r.SetVersion(packets.Level5)
	connect := lisEncode(t, &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: packets.Level5, ClientID: "ws5", CleanSession: true, KeepAlive: 60,
		Properties: packets.Properties{SessionExpiry: new(uint32(0))}})
	c.sendRaw(connect[:4])
	c.sendRaw(connect[4:])
	ack, ok := c.recv().(*packets.Connack)
	require.True(t, ok)
	require.Equal(t, byte(packets.Success), ack.ReturnCode, "CONNACK to a CONNECT in two frames")

	c.sendRaw(lisEncode(t,
		&packets.Subscribe{Version: packets.Level5, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "ws5/t"}}},
		&packets.Publish{Version: packets.Level5, Topic: "ws5/t", Payload: []byte("shared frame")}))
	_, ok = c.recv().(*packets.Suback)
	require.True(t, ok)
	p := c.recvPublish()
	assert.Equal(t, "shared frame", string(p.Payload))

	ws.PayloadType = websocket.TextFrame
	c.send(&packets.Pingreq{Version: packets.Level5})
	c.expectClosed()
}
