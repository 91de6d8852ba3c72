package tern_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of the will message (sections 3.1.2.5 to 3.1.2.7 and
// 3.14.4): when it is published, with which QoS and retain flag, and when it
// is discarded.

// willConnect is a clean-session CONNECT carrying a will.
func willConnect(id, topic, payload string, qos byte, retain bool) *packets.Connect {
	return &packets.Connect{
		ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: true, KeepAlive: 60,
		WillFlag: true, WillTopic: topic, WillMessage: []byte(payload), WillQoS: qos, WillRetain: retain,
	}
}

// connectWithWill dials and connects with a will, requiring CONNACK 0.
func connectWithWill(t *testing.T, addr, id, topic, payload string, qos byte, retain bool) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	require.Zero(t, c.connectWith(willConnect(id, topic, payload, qos, retain)).ReturnCode, "CONNACK return code of %s", id)
	return c
}

// willWatcher connects a client subscribed at QoS 2 to filter.
func willWatcher(t *testing.T, addr, id, filter string) *rawClient {
	t.Helper()
	w := mustConnect(t, addr, id, true)
	w.subscribe(1, packets.Subscription{Filter: filter, QoS: 2})
	return w
}

// recvAcked receives a PUBLISH and completes its QoS flow as a subscriber.
func recvAcked(c *rawClient) *packets.Publish {
	c.t.Helper()
	p := c.recvPublish()
	switch p.QoS {
	case 1:
		c.send(&packets.Puback{PacketID: p.PacketID})
	case 2:
		c.send(&packets.Pubrec{PacketID: p.PacketID})
		rel, ok := c.recv().(*packets.Pubrel)
		require.True(c.t, ok && rel.PacketID == p.PacketID, "expected PUBREL %d", p.PacketID)
		c.send(&packets.Pubcomp{PacketID: p.PacketID})
	}
	return p
}

// expectNoWill publishes a marker on topic once the broker has finished
// with the connection of id, and requires it to be the next message the
// watcher gets: no will was published in between.
func expectNoWill(t *testing.T, b *tern.Broker, disc *disconnects, w *rawClient, id, topic string) error {
	t.Helper()
	reason := disc.wait(t, id)
	require.NoError(t, b.Publish(context.Background(), topic, []byte("marker"), 0, false))
	p := recvAcked(w)
	require.Equal(t, topic, p.Topic, "a will was published: %s %q", p.Topic, p.Payload)
	require.Equal(t, "marker", string(p.Payload), "a will was published: %s %q", p.Topic, p.Payload)
	return reason
}

func TestWillPublishedWithItsQoSAndRetainWhenTheConnectionDrops(t *testing.T) {
	// [MQTT-3.1.2-8] [MQTT-3.1.2-9] [MQTT-3.1.2-14] [MQTT-3.1.2-16]
	// [MQTT-3.1.2-17] [MQTT-3.1.3-10]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := willWatcher(t, addr, "watcher", "will/#")
	cases := []struct {
		qos     byte
		retain  bool
		payload string
	}{
		{0, false, "gone q0"},
		{1, false, "gone q1"},
		{2, false, "gone q2"},
		{0, true, "gone q0 retained"},
		{1, true, "gone q1 retained"},
		{2, true, "gone q2 retained"},
		{1, false, ""},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("qos %d retain %v payload %q", tc.qos, tc.retain, tc.payload), func(t *testing.T) {
			id := fmt.Sprintf("mortal-%d", i)
			topic := "will/" + id
			c := connectWithWill(t, addr, id, topic, tc.payload, tc.qos, tc.retain)
			c.conn.Close() // no DISCONNECT: the server sees the connection end
			require.Error(t, disc.wait(t, id), "disconnect reason nil, want a network error")
			p := recvAcked(w)
			// Forwarded live to an existing subscription, RETAIN is 0.
			require.Equal(t, topic, p.Topic, "will %+v", p)
			require.Equal(t, tc.payload, string(p.Payload), "will %+v", p)
			require.Equal(t, tc.qos, p.QoS, "will %+v", p)
			require.False(t, p.Retain, "will %+v: forwarded live, RETAIN 0", p)
			// A later subscriber gets it as a retained message only when
			// will retain was set.
			late := mustConnect(t, addr, "late-"+id, true)
			late.subscribe(1, packets.Subscription{Filter: topic, QoS: 2})
			if !tc.retain {
				pingOK(late) // a retained message would come before PINGRESP
				return
			}
			p = recvAcked(late)
			assert.Equal(t, topic, p.Topic, "retained will %+v", p)
			assert.Equal(t, tc.payload, string(p.Payload), "retained will %+v", p)
			assert.Equal(t, tc.qos, p.QoS, "retained will %+v", p)
			assert.True(t, p.Retain, "retained will %+v", p)
		})
	}
}

func TestWillPublishedOnProtocolViolation(t *testing.T) {
	// [MQTT-3.1.2-8] [MQTT-4.8.0-1] [MQTT-3.1.0-2] [MQTT-3.14.1-1] [MQTT-2.2.2-2]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := willWatcher(t, addr, "watcher", "violator/#")
	second, err := willConnect("x", "violator/x", "x", 0, false).Append(nil)
	require.NoError(t, err)
	cases := []struct {
		name string
		raw  []byte
	}{
		{"second CONNECT", second},
		{"CONNACK from the client", []byte{0x20, 2, 0, 0}},
		{"reserved type 15", []byte{0xF0, 0}},
		{"PINGREQ with flags", []byte{0xC1, 0}},
		{"PUBLISH with QoS 3", packetBytes(0x36, mqttString("a"), []byte{0, 1})},
		{"DISCONNECT with flags", []byte{0xE1, 0}},
		{"DISCONNECT with a body", []byte{0xE0, 1, 0}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("violator-%d", i)
			c := connectWithWill(t, addr, id, "violator/"+id, "broke the rules", 1, false)
			c.sendRaw(tc.raw)
			c.expectClosed()
			err := disc.wait(t, id)
			require.True(t, errors.Is(err, tern.ErrProtocol) || errors.Is(err, packets.ErrMalformed),
				"disconnect reason %v, want a protocol violation", err)
			p := recvAcked(w)
			assert.Equal(t, "violator/"+id, p.Topic, "will %+v", p)
			assert.Equal(t, "broke the rules", string(p.Payload), "will %+v", p)
			assert.Equal(t, byte(1), p.QoS, "will %+v", p)
		})
	}
}

func TestWillDiscardedAfterDisconnect(t *testing.T) {
	// [MQTT-3.14.4-3] [MQTT-3.1.2-8] [MQTT-3.1.2-10]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := willWatcher(t, addr, "watcher", "polite/#")
	c := connectWithWill(t, addr, "polite", "polite/will", "unexpected", 1, true)
	c.send(&packets.Disconnect{})
	c.expectClosed()
	require.NoError(t, expectNoWill(t, b, disc, w, "polite", "polite/marker"), "disconnect reason: want nil after DISCONNECT")
	// Nor was it retained.
	late := mustConnect(t, addr, "late", true)
	late.subscribe(1, packets.Subscription{Filter: "polite/will"})
	pingOK(late)
}

func TestWillPublishedOnTakeover(t *testing.T) {
	// [MQTT-3.1.4-2] [MQTT-3.1.2-8]: the old connection is closed without
	// DISCONNECT, so its will is published (Tern's documented choice, as
	// Mosquitto 2.0.3 and later).
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := willWatcher(t, addr, "watcher", "twin/#")
	old := connectWithWill(t, addr, "twin", "twin/will", "old one closed", 1, false)
	c := dialRaw(t, addr)
	require.Zero(t, c.connect("twin", true).ReturnCode, "CONNACK return code")
	old.expectClosed()
	require.ErrorIs(t, disc.wait(t, "twin"), tern.ErrTakenOver, "disconnect reason")
	p := recvAcked(w)
	require.Equal(t, "twin/will", p.Topic, "will %+v", p)
	require.Equal(t, "old one closed", string(p.Payload), "will %+v", p)
	require.Equal(t, byte(1), p.QoS, "will %+v", p)
	// The new connection has no will: closing it publishes nothing.
	c.conn.Close()
	expectNoWill(t, b, disc, w, "twin", "twin/marker")
}

func TestWillPublishedOnBrokerDisconnect(t *testing.T) {
	// [MQTT-3.1.2-8]: Broker.Disconnect closes the connection without
	// DISCONNECT, so the will is published (Tern's documented choice).
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := willWatcher(t, addr, "watcher", "kicked/#")
	c := connectWithWill(t, addr, "kicked", "kicked/will", "kicked out", 0, false)
	require.NoError(t, b.Disconnect("kicked"))
	c.expectClosed()
	require.ErrorIs(t, disc.wait(t, "kicked"), tern.ErrKicked, "disconnect reason")
	p := recvAcked(w)
	assert.Equal(t, "kicked/will", p.Topic, "will %+v", p)
	assert.Equal(t, "kicked out", string(p.Payload), "will %+v", p)
}

func TestRetainedWillWithEmptyMessageClearsTheRetainedMessage(t *testing.T) {
	// [MQTT-3.1.2-17] with [MQTT-3.3.1-10] [MQTT-3.3.1-11]: a retained will
	// is an ordinary retained publish; an empty one deletes the topic's
	// retained message and is not stored.
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	require.NoError(t, b.Publish(context.Background(), "status/dev", []byte("online"), 1, true))
	c := connectWithWill(t, addr, "dev", "status/dev", "", 1, true)
	c.conn.Close()
	disc.wait(t, "dev")
	late := mustConnect(t, addr, "late", true)
	late.subscribe(1, packets.Subscription{Filter: "status/dev", QoS: 1})
	pingOK(late) // a retained message would come before PINGRESP
}

func TestNoWillPublishedWithoutTheWillFlag(t *testing.T) {
	// [MQTT-3.1.2-12]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := willWatcher(t, addr, "watcher", "#")
	c := mustConnect(t, addr, "willless", true)
	c.conn.Close()
	expectNoWill(t, b, disc, w, "willless", "willless/marker")
}

func TestWillPublishedOnlyOnce(t *testing.T) {
	// [MQTT-3.1.2-10]: once published, the will is gone; the next
	// connection of the same persistent session has none unless it brings one.
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := willWatcher(t, addr, "watcher", "once/#")
	p := willConnect("once", "once/will", "first", 1, false)
	p.CleanSession = false
	c := dialRaw(t, addr)
	require.Zero(t, c.connectWith(p).ReturnCode, "CONNACK return code")
	c.conn.Close()
	disc.wait(t, "once")
	got := recvAcked(w)
	require.Equal(t, "once/will", got.Topic, "will %+v", got)
	require.Equal(t, "first", string(got.Payload), "will %+v", got)
	c = dialRaw(t, addr)
	ack := c.connect("once", false)
	require.Zero(t, ack.ReturnCode, "CONNACK return code")
	require.True(t, ack.SessionPresent, "CONNACK: want session present 1")
	c.conn.Close()
	expectNoWill(t, b, disc, w, "once", "once/marker")
}

// testWillOnKeepAliveExpiry runs in TestTimers, in parallel with the other
// tests that wait on the broker's timers.
func testWillOnKeepAliveExpiry(t *testing.T, env timerEnv) {
	// [MQTT-3.1.2-8] [MQTT-3.1.2-24]: a client that stops talking is treated
	// as if the network had failed. One second keepalive: about 1.5 s.
	w := willWatcher(t, env.addr, "silent-watcher", "silent/#")
	p := willConnect("silent", "silent/will", "timed out", 2, false)
	p.KeepAlive = 1
	c := dialRaw(t, env.addr)
	require.Zero(t, c.connectWith(p).ReturnCode, "CONNACK return code")
	got := recvAcked(w)
	require.Equal(t, "silent/will", got.Topic, "will %+v", got)
	require.Equal(t, "timed out", string(got.Payload), "will %+v", got)
	require.Equal(t, byte(2), got.QoS, "will %+v", got)
	require.ErrorIs(t, env.disc.wait(t, "silent"), tern.ErrKeepAliveTimeout, "disconnect reason")
	c.expectClosed()
}

func TestWillTopicTheClientMayNotPublishIsRefusedWithConnack05(t *testing.T) {
	// Tern's choice, as Mosquitto: a will the client could not publish
	// refuses the connection [MQTT-3.2.2-4] [MQTT-3.2.2-5].
	b, addr := startBroker(t, tern.Options{})
	require.NoError(t, b.AddHook(publishGuard{}))
	c := dialRaw(t, addr)
	raw, err := willConnect("guarded", "forbidden/will", "no", 0, false).Append(nil)
	require.NoError(t, err)
	c.sendRaw(raw)
	expectRefused(c, packets.RefusedNotAuthorized)
	connectWithWill(t, addr, "allowed", "allowed/will", "yes", 0, false)
}

// publishGuard refuses publishing under forbidden/.
type publishGuard struct{}

func (publishGuard) AuthorizePublish(_ context.Context, _ tern.Client, m tern.Message) error {
	if strings.HasPrefix(m.Topic, "forbidden/") {
		return tern.ErrNotAuthorized
	}
	return nil
}

// Ensure the will payload is published byte for byte, binary included
// (section 3.1.3.3: only the data portion).
func TestWillPayloadIsPublishedByteForByte(t *testing.T) {
	// [MQTT-3.1.2-8]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := willWatcher(t, addr, "watcher", "bin/#")
	payload := string([]byte{0, 1, 0xff, 0xfe, 'x', 0})
	c := connectWithWill(t, addr, "binary", "bin/will", payload, 0, false)
	c.conn.Close()
	disc.wait(t, "binary")
	assert.Equal(t, []byte(payload), recvAcked(w).Payload, "will payload")
}
