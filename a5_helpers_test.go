package tern_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// a5Dial connects an MQTT 5 raw client to addr: it reads MQTT 5 packets.
func a5Dial(t testing.TB, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.r.SetVersion(packets.Level5)
	return c
}

// a5Connect sends an MQTT 5 CONNECT for id (clean start), with props, and
// returns the CONNACK.
func a5Connect(c *rawClient, id string, props packets.Properties) *packets.Connack {
	c.t.Helper()
	return c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: packets.Level5, ClientID: id, CleanSession: true, KeepAlive: 60, Properties: props})
}

// a5Client dials and connects an MQTT 5 client, requiring success.
func a5Client(t testing.TB, addr, id string) *rawClient {
	t.Helper()
	c := a5Dial(t, addr)
	ack := a5Connect(c, id, packets.Properties{})
	require.Equal(t, byte(packets.Success), ack.ReturnCode, "CONNACK of %s", id)
	return c
}

// a5Subscribe subscribes an MQTT 5 client and returns the SUBACK.
func a5Subscribe(c *rawClient, id uint16, props packets.Properties, subs ...packets.Subscription) *packets.Suback {
	c.t.Helper()
	c.send(&packets.Subscribe{Version: packets.Level5, PacketID: id, Properties: props, Subscriptions: subs})
	ack, ok := c.recv().(*packets.Suback)
	require.True(c.t, ok, "expected SUBACK")
	return ack
}
