package tern_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

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
	if ack := c.connectWith(willConnect(id, topic, payload, qos, retain)); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
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
		if rel, ok := c.recv().(*packets.Pubrel); !ok || rel.PacketID != p.PacketID {
			c.t.Fatalf("expected PUBREL %d", p.PacketID)
		}
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
	if err := b.Publish(context.Background(), topic, []byte("marker"), 0, false); err != nil {
		t.Fatal(err)
	}
	if p := recvAcked(w); p.Topic != topic || string(p.Payload) != "marker" {
		t.Fatalf("a will was published: %s %q", p.Topic, p.Payload)
	}
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
			if err := disc.wait(t, id); err == nil {
				t.Fatal("disconnect reason nil, want a network error")
			}
			p := recvAcked(w)
			// Forwarded live to an existing subscription, RETAIN is 0.
			if p.Topic != topic || string(p.Payload) != tc.payload || p.QoS != tc.qos || p.Retain {
				t.Fatalf("will %+v, want topic %s payload %q QoS %d", p, topic, tc.payload, tc.qos)
			}
			// A later subscriber gets it as a retained message only when
			// will retain was set.
			late := mustConnect(t, addr, "late-"+id, true)
			late.subscribe(1, packets.Subscription{Filter: topic, QoS: 2})
			if !tc.retain {
				pingOK(late) // a retained message would come before PINGRESP
				return
			}
			if p := recvAcked(late); p.Topic != topic || string(p.Payload) != tc.payload || p.QoS != tc.qos || !p.Retain {
				t.Fatalf("retained will %+v", p)
			}
		})
	}
}

func TestWillPublishedOnProtocolViolation(t *testing.T) {
	// [MQTT-3.1.2-8] [MQTT-4.8.0-1] [MQTT-3.1.0-2] [MQTT-3.14.1-1] [MQTT-2.2.2-2]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := willWatcher(t, addr, "watcher", "violator/#")
	second, err := willConnect("x", "violator/x", "x", 0, false).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
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
			if err := disc.wait(t, id); !errors.Is(err, tern.ErrProtocol) && !errors.Is(err, packets.ErrMalformed) {
				t.Fatalf("disconnect reason %v, want a protocol violation", err)
			}
			if p := recvAcked(w); p.Topic != "violator/"+id || string(p.Payload) != "broke the rules" || p.QoS != 1 {
				t.Fatalf("will %+v", p)
			}
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
	if reason := expectNoWill(t, b, disc, w, "polite", "polite/marker"); reason != nil {
		t.Fatalf("disconnect reason %v, want nil after DISCONNECT", reason)
	}
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
	if ack := c.connect("twin", true); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
	old.expectClosed()
	if reason := disc.wait(t, "twin"); !errors.Is(reason, tern.ErrTakenOver) {
		t.Fatalf("disconnect reason %v, want ErrTakenOver", reason)
	}
	if p := recvAcked(w); p.Topic != "twin/will" || string(p.Payload) != "old one closed" || p.QoS != 1 {
		t.Fatalf("will %+v", p)
	}
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
	if err := b.Disconnect("kicked"); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	if reason := disc.wait(t, "kicked"); !errors.Is(reason, tern.ErrKicked) {
		t.Fatalf("disconnect reason %v, want ErrKicked", reason)
	}
	if p := recvAcked(w); p.Topic != "kicked/will" || string(p.Payload) != "kicked out" {
		t.Fatalf("will %+v", p)
	}
}

func TestRetainedWillWithEmptyMessageClearsTheRetainedMessage(t *testing.T) {
	// [MQTT-3.1.2-17] with [MQTT-3.3.1-10] [MQTT-3.3.1-11]: a retained will
	// is an ordinary retained publish; an empty one deletes the topic's
	// retained message and is not stored.
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	if err := b.Publish(context.Background(), "status/dev", []byte("online"), 1, true); err != nil {
		t.Fatal(err)
	}
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
	if ack := c.connectWith(p); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
	c.conn.Close()
	disc.wait(t, "once")
	if got := recvAcked(w); got.Topic != "once/will" || string(got.Payload) != "first" {
		t.Fatalf("will %+v", got)
	}
	c = dialRaw(t, addr)
	if ack := c.connect("once", false); ack.ReturnCode != 0 || !ack.SessionPresent {
		t.Fatalf("CONNACK %+v", ack)
	}
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
	if ack := c.connectWith(p); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
	if got := recvAcked(w); got.Topic != "silent/will" || string(got.Payload) != "timed out" || got.QoS != 2 {
		t.Fatalf("will %+v", got)
	}
	if err := env.disc.wait(t, "silent"); !errors.Is(err, tern.ErrKeepAliveTimeout) {
		t.Fatalf("disconnect reason %v, want ErrKeepAliveTimeout", err)
	}
	c.expectClosed()
}

func TestWillTopicTheClientMayNotPublishIsRefusedWithConnack05(t *testing.T) {
	// Tern's choice, as Mosquitto: a will the client could not publish
	// refuses the connection [MQTT-3.2.2-4] [MQTT-3.2.2-5].
	b, addr := startBroker(t, tern.Options{})
	if err := b.AddHook(publishGuard{}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, addr)
	raw, err := willConnect("guarded", "forbidden/will", "no", 0, false).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
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
	if p := recvAcked(w); !bytes.Equal(p.Payload, []byte(payload)) {
		t.Fatalf("payload % x, want % x", p.Payload, payload)
	}
}
