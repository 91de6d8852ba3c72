package tern_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

func TestNewRejectsBadOptionsNamingTheField(t *testing.T) {
	cases := []struct {
		field string
		opts  tern.Options
	}{
		{"ConnectTimeout", tern.Options{ConnectTimeout: -1}},
		{"MaxPacketSize", tern.Options{MaxPacketSize: -5}},
		{"MaxPacketSize", tern.Options{MaxPacketSize: 10}},
		{"MaxConnections", tern.Options{MaxConnections: -1}},
		{"MaxInflight", tern.Options{MaxInflight: 70000}},
		{"MaxQueued", tern.Options{MaxQueued: -2}},
		{"MaxPending", tern.Options{MaxPending: -1}},
		{"WriteTimeout", tern.Options{WriteTimeout: -time.Second}},
		{"HandlerQueue", tern.Options{HandlerQueue: -1}},
		{"MaxClientIDLength", tern.Options{MaxClientIDLength: 1 << 20}},
		{"ReleaseMemoryAfter", tern.Options{ReleaseMemoryAfter: -time.Millisecond}},
	}
	for _, tc := range cases {
		_, err := tern.New(tc.opts)
		assert.ErrorContains(t, err, "Options."+tc.field, "New(%+v) must fail naming the field", tc.opts)
	}
}

func TestCloseIsIdempotentAndStopsServe(t *testing.T) {
	b, err := tern.New(tern.Options{})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	c := mustConnect(t, l.Addr().String(), "c1", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, b.Close(ctx), "Close")
	require.NoError(t, b.Close(ctx), "second Close")
	require.ErrorIs(t, <-served, tern.ErrClosed, "Serve")
	c.expectClosed()
	assert.ErrorIs(t, b.Serve(l), tern.ErrClosed, "Serve after Close")
}

func TestPublishSubscribeEachQoS(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	ack := sub.subscribe(1, packets.Subscription{Filter: "a/+", QoS: 2})
	require.Equal(t, []byte{2}, ack.ReturnCodes, "SUBACK return codes")
	pub := mustConnect(t, addr, "pub", true)
	for qos := byte(0); qos <= 2; qos++ {
		pub.publishQoS(uint16(qos+1), "a/b", "hello", qos, false)
		got := sub.recvPublish()
		require.Equal(t, "a/b", got.Topic, "qos %d: topic", qos)
		require.Equal(t, "hello", string(got.Payload), "qos %d: payload", qos)
		require.Equal(t, qos, got.QoS, "qos %d: QoS", qos)
		require.False(t, got.Retain, "qos %d: RETAIN", qos)
		require.False(t, got.Dup, "qos %d: DUP", qos)
		switch qos {
		case 1:
			sub.send(&packets.Puback{PacketID: got.PacketID})
		case 2:
			sub.send(&packets.Pubrec{PacketID: got.PacketID})
			rel, ok := sub.recv().(*packets.Pubrel)
			require.True(t, ok, "expected PUBREL")
			require.Equal(t, got.PacketID, rel.PacketID, "PUBREL packet identifier")
			sub.send(&packets.Pubcomp{PacketID: got.PacketID})
		}
	}
}

func TestClientPublishToSysBrokerIsAcknowledgedButDropped(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "$SYS/#", QoS: 1}, packets.Subscription{Filter: "ok", QoS: 1})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "$SYS/broker/version", "forged", 1, true)
	pub.publishQoS(2, "$SYS/broker/uptime", "forged", 2, false)
	pub.publishQoS(3, "ok", "marker", 0, false)
	// The marker is the first thing the subscriber sees: nothing from $SYS.
	require.Equal(t, "ok", sub.recvPublish().Topic, "want only the marker")
	st := b.Stats()
	assert.Zero(t, st.Retained, "retained")
	assert.EqualValues(t, 2, st.PublishDropped, "dropped")
}

// A violation right behind an accepted CONNECT, in the same write, still
// lets the CONNACK out before the close [MQTT-3.2.0-1] [MQTT-4.8.0-1].
func TestConnackLeavesBeforeTheCloseOfAViolationInTheSameWrite(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	for i := 0; i < 20; i++ {
		c := dialRaw(t, addr)
		connect, _ := (&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "v", CleanSession: true}).Append(nil)
		c.sendRaw(append(connect, 0xC1, 0)) // PINGREQ with a reserved flag set
		p := c.recv()
		ack, ok := p.(*packets.Connack)
		require.True(t, ok, "run %d: expected CONNACK, got %v %+v", i, p.Type(), p)
		require.Zero(t, ack.ReturnCode, "run %d: CONNACK return code", i)
		c.expectClosed()
	}
}
