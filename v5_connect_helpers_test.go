package tern_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Helpers shared by the v5_ tests of connections, sessions, wills,
// enhanced authentication and errors (prefix c5): a raw MQTT 5 client
// built on rawClient, and checks of what the server answers.

// c5Dial dials addr with a client that reads packets in their MQTT 5 form.
func c5Dial(t testing.TB, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.r.SetVersion(packets.Level5)
	return c
}

// c5Conn is an MQTT 5 CONNECT with keepalive 60 and no properties.
func c5Conn(id string, clean bool) *packets.Connect {
	return &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: packets.Level5, ClientID: id, CleanSession: clean, KeepAlive: 60}
}

// c5Persistent is c5Conn with a Session Expiry Interval.
func c5Persistent(id string, clean bool, expiry uint32) *packets.Connect {
	cp := c5Conn(id, clean)
	cp.Properties.SessionExpiry = new(expiry)
	return cp
}

// c5Connack sends cp and requires a CONNACK as the answer.
func c5Connack(c *rawClient, cp *packets.Connect) *packets.Connack {
	c.t.Helper()
	c.send(cp)
	p := c.recv()
	ack, ok := p.(*packets.Connack)
	require.Truef(c.t, ok, "expected CONNACK, got %v %+v", p.Type(), p)
	return ack
}

// c5Connect dials and connects with cp, requiring CONNACK 0x00
// [v5 MQTT-3.1.4-5].
func c5Connect(t testing.TB, addr string, cp *packets.Connect) (*rawClient, *packets.Connack) {
	t.Helper()
	c := c5Dial(t, addr)
	ack := c5Connack(c, cp)
	require.Equalf(t, byte(packets.Success), ack.ReturnCode, "CONNACK for %q: %s", cp.ClientID, packets.ReasonCode(ack.ReturnCode))
	return c, ack
}

// c5Must connects a clean MQTT 5 client with no properties.
func c5Must(t testing.TB, addr, id string) *rawClient {
	t.Helper()
	c, _ := c5Connect(t, addr, c5Conn(id, true))
	return c
}

// c5Refused requires the next packet to be a CONNACK with code and session
// present 0 [v5 MQTT-3.2.2-6], then the connection to close
// [v5 MQTT-3.2.2-7, MQTT-4.13.2-1]. It returns the CONNACK.
func c5Refused(c *rawClient, code packets.ReasonCode) *packets.Connack {
	c.t.Helper()
	p := c.recv()
	ack, ok := p.(*packets.Connack)
	require.Truef(c.t, ok, "expected CONNACK %s, got %v %+v", code, p.Type(), p)
	assert.Equalf(c.t, code, packets.ReasonCode(ack.ReturnCode), "CONNACK reason code: %s", packets.ReasonCode(ack.ReturnCode))
	assert.False(c.t, ack.SessionPresent, "session present with a refusal")
	c.expectClosed()
	return ack
}

// c5Disconnected requires the next packet to be a DISCONNECT from the
// server with code, without a Session Expiry Interval [v5 MQTT-3.14.2-2],
// then the connection to close with nothing after the DISCONNECT
// [v5 MQTT-3.14.4-1, MQTT-3.14.4-2, MQTT-4.13.2-1]. Its reason code is
// one of the DISCONNECT codes, or the codec would refuse it
// [v5 MQTT-3.14.2-1]. It returns the DISCONNECT.
func c5Disconnected(c *rawClient, code packets.ReasonCode) *packets.Disconnect {
	c.t.Helper()
	p := c.recv()
	d, ok := p.(*packets.Disconnect)
	require.Truef(c.t, ok, "expected DISCONNECT %s, got %v %+v", code, p.Type(), p)
	assert.Equalf(c.t, code, d.ReasonCode, "DISCONNECT reason code: %s", d.ReasonCode)
	assert.Nil(c.t, d.Properties.SessionExpiry, "a server DISCONNECT carries no Session Expiry Interval")
	c.expectClosed()
	return d
}

// c5Subscribe subscribes c to filter at qos and requires it granted.
func c5Subscribe(c *rawClient, id uint16, filter string, qos byte) {
	c.t.Helper()
	c.send(&packets.Subscribe{Version: packets.Level5, PacketID: id, Subscriptions: []packets.Subscription{{Filter: filter, QoS: qos}}})
	p := c.recv()
	ack, ok := p.(*packets.Suback)
	require.Truef(c.t, ok, "expected SUBACK, got %v %+v", p.Type(), p)
	require.Equal(c.t, []byte{qos}, ack.ReturnCodes, "SUBACK codes")
}

// c5Recv receives a PUBLISH and acknowledges it as its QoS requires.
func c5Recv(c *rawClient) *packets.Publish {
	c.t.Helper()
	p := c.recv()
	pub, ok := p.(*packets.Publish)
	require.Truef(c.t, ok, "expected PUBLISH, got %v %+v", p.Type(), p)
	switch pub.QoS {
	case 1:
		c.send(&packets.Puback{Version: packets.Level5, PacketID: pub.PacketID})
	case 2:
		c.send(&packets.Pubrec{Version: packets.Level5, PacketID: pub.PacketID})
		rel, ok := c.recv().(*packets.Pubrel)
		require.True(c.t, ok && rel.PacketID == pub.PacketID, "expected PUBREL")
		c.send(&packets.Pubcomp{Version: packets.Level5, PacketID: pub.PacketID})
	}
	return pub
}

// c5Ping checks that c is connected and served: PINGREQ gets PINGRESP
// [v5 MQTT-3.12.4-1].
func c5Ping(c *rawClient) {
	c.t.Helper()
	c.send(&packets.Pingreq{Version: packets.Level5})
	p := c.recv()
	require.Equalf(c.t, packets.TypePingresp, p.Type(), "expected PINGRESP, got %+v", p)
}

// c5Publish publishes a QoS 1 message from the application and waits
// until it is routed.
func c5Publish(t testing.TB, b *tern.Broker, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, b.Publish(ctx, topic, []byte(payload), 1, false))
}

// c5Session reports whether the broker holds a session for id.
func c5Session(b *tern.Broker, id string) bool {
	for _, ci := range b.Clients() {
		if ci.ID == id {
			return true
		}
	}
	return false
}

// c5DisconnectedByBroker is c5Disconnected for a DISCONNECT that
// Broker.Disconnect or Broker.Close sends from outside the connection's
// reader, also while its writer runs (see
// TestV5ServerDisconnectWhileAWriteIsInFlight).
func c5DisconnectedByBroker(c *rawClient, code packets.ReasonCode) {
	c.t.Helper()
	p, err := c.tryRecv(waitTimeout)
	require.NoError(c.t, err, "the broker closed without the DISCONNECT")
	d, ok := p.(*packets.Disconnect)
	require.Truef(c.t, ok, "expected DISCONNECT %s, got %v %+v", code, p.Type(), p)
	assert.Equal(c.t, code, d.ReasonCode)
	assert.Nil(c.t, d.Properties.SessionExpiry, "a server DISCONNECT carries no Session Expiry Interval")
	c.expectClosed()
}
