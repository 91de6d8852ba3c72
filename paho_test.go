package tern_test

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
)

// These tests drive the broker with Eclipse Paho, a widely used third-party
// client, to check that Tern interoperates with real client code and not
// only with the test suite's own packet writer.

// pahoMsg is what a Paho handler saw of one message.
type pahoMsg struct {
	topic   string
	payload string
	qos     byte
	retain  bool
}

// pahoOptions returns client options for addr with automatic reconnection
// off, so that a test controls every connection.
func pahoOptions(addr, id string, clean bool) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(id).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(waitTimeout)
}

// pahoConnect connects a Paho client and disconnects it at cleanup.
func pahoConnect(t *testing.T, opts *mqtt.ClientOptions) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(opts)
	pahoWait(t, "connect", c.Connect())
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(50)
		}
	})
	return c
}

// pahoWait waits for a Paho token, failing the test on timeout or error.
func pahoWait(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	require.True(t, tok.WaitTimeout(waitTimeout), "paho %s: timed out", what)
	require.NoError(t, tok.Error(), "paho %s", what)
}

// pahoCollector returns a handler that sends every message to the returned
// channel; the channel is large enough that the handler never blocks the
// client in these tests.
func pahoCollector() (mqtt.MessageHandler, chan pahoMsg) {
	ch := make(chan pahoMsg, 1024)
	return func(_ mqtt.Client, m mqtt.Message) {
		ch <- pahoMsg{topic: m.Topic(), payload: string(m.Payload()), qos: m.Qos(), retain: m.Retained()}
	}, ch
}

// pahoNext receives the next message or fails after waitTimeout.
func pahoNext(t *testing.T, ch <-chan pahoMsg) pahoMsg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitTimeout):
		require.FailNow(t, "timed out waiting for a message")
		return pahoMsg{}
	}
}

// [MQTT-3.3.5-1] [MQTT-4.3.1-1] [MQTT-4.3.2-1] [MQTT-4.3.2-2] [MQTT-4.3.3-1] [MQTT-4.3.3-2]
// [MQTT-7.0.0-2] a stock third-party client with default options works.
func TestPahoPublishSubscribeEachQoS(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	h, got := pahoCollector()
	sub := pahoConnect(t, pahoOptions(addr, "paho-sub", true))
	pahoWait(t, "subscribe", sub.Subscribe("paho/+/x", 2, h))
	pub := pahoConnect(t, pahoOptions(addr, "paho-pub", true))
	for qos := byte(0); qos <= 2; qos++ {
		payload := fmt.Sprintf("qos %d", qos)
		pahoWait(t, "publish", pub.Publish("paho/a/x", qos, false, payload))
		require.Equal(t, pahoMsg{topic: "paho/a/x", payload: payload, qos: qos}, pahoNext(t, got), "qos %d", qos)
	}
}

// [MQTT-3.3.5-1] the delivered QoS is the minimum of the published and the
// granted QoS.
func TestPahoDeliveredQoSIsTheMinimum(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	h, got := pahoCollector()
	sub := pahoConnect(t, pahoOptions(addr, "paho-sub", true))
	pahoWait(t, "subscribe", sub.Subscribe("min/qos", 1, h))
	pub := pahoConnect(t, pahoOptions(addr, "paho-pub", true))
	pahoWait(t, "publish", pub.Publish("min/qos", 2, false, "x"))
	assert.Equal(t, byte(1), pahoNext(t, got).qos, "delivered QoS")
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.3.1-9]
func TestPahoRetainedMessageReachesLaterSubscriber(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	pub := pahoConnect(t, pahoOptions(addr, "paho-pub", true))
	pahoWait(t, "publish", pub.Publish("state/lamp", 1, true, "on"))

	h, got := pahoCollector()
	sub := pahoConnect(t, pahoOptions(addr, "paho-sub", true))
	pahoWait(t, "subscribe", sub.Subscribe("state/#", 1, h))
	require.Equal(t, pahoMsg{topic: "state/lamp", payload: "on", qos: 1, retain: true}, pahoNext(t, got), "retained message")
	// A live message to an existing subscription has RETAIN 0, even when it
	// was published with RETAIN 1.
	pahoWait(t, "publish", pub.Publish("state/lamp", 1, true, "off"))
	m := pahoNext(t, got)
	assert.Equal(t, "off", m.payload, "live retained publish: got %+v", m)
	assert.False(t, m.retain, "live retained publish: got %+v", m)
}

// [MQTT-3.1.2-8] the will is published when the network connection ends
// without DISCONNECT.
func TestPahoWillDeliveredWhenConnectionDrops(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	h, got := pahoCollector()
	watcher := pahoConnect(t, pahoOptions(addr, "paho-watcher", true))
	pahoWait(t, "subscribe", watcher.Subscribe("status/+", 1, h))

	// Keep the will client's socket so that the test can cut it abruptly,
	// as a device losing power would.
	var mu sync.Mutex
	var raw net.Conn
	opts := pahoOptions(addr, "paho-device", true).
		SetWill("status/device", "offline", 1, false).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, waitTimeout)
			mu.Lock()
			raw = c
			mu.Unlock()
			return c, err
		})
	pahoConnect(t, opts)
	mu.Lock()
	raw.Close()
	mu.Unlock()

	m := pahoNext(t, got)
	assert.Equal(t, "status/device", m.topic, "will: got %+v", m)
	assert.Equal(t, "offline", m.payload, "will: got %+v", m)
	assert.Equal(t, byte(1), m.qos, "will: got %+v", m)
}

// [MQTT-3.1.2-8] [MQTT-3.14.4-3] a client that disconnects cleanly has its
// will discarded.
func TestPahoWillNotDeliveredAfterDisconnect(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	h, got := pahoCollector()
	watcher := pahoConnect(t, pahoOptions(addr, "paho-watcher", true))
	pahoWait(t, "subscribe", watcher.Subscribe("status/+", 1, h))
	dev := pahoConnect(t, pahoOptions(addr, "paho-device", true).SetWill("status/device", "offline", 1, false))
	dev.Disconnect(50)
	e := obs.next(t, "disconnect")
	require.Equal(t, "paho-device", e.client.ID, "OnDisconnect client")
	require.NoError(t, e.reason, "OnDisconnect reason: want none after DISCONNECT")
	// The connection has ended. A marker published now arrives first and
	// alone: had the will been published, it would precede the marker.
	pahoWait(t, "publish", watcher.Publish("status/marker", 1, false, "m"))
	m := pahoNext(t, got)
	assert.Equal(t, "status/marker", m.topic, "got %+v before the marker: the will was published after DISCONNECT", m)
}

// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-4.1.0-1] [MQTT-3.2.2-2] a persistent
// session keeps its subscription and queues QoS 1 messages while the client
// is offline, and delivers them on reconnection, with session present set.
func TestPahoPersistentSessionReceivesQueuedMessages(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	h, got := pahoCollector()
	sub := pahoConnect(t, pahoOptions(addr, "paho-durable", false))
	pahoWait(t, "subscribe", sub.Subscribe("jobs/#", 1, h))
	sub.Disconnect(50)
	eventually(t, "session offline", func() bool {
		cl := b.Clients()
		return len(cl) == 1 && !cl[0].Connected
	})

	const n = 5
	pub := pahoConnect(t, pahoOptions(addr, "paho-pub", true))
	for i := range n {
		pahoWait(t, "publish", pub.Publish("jobs/new", 1, false, fmt.Sprintf("job %d", i)))
	}

	// A new Paho client with the same identifier and clean session off:
	// the subscription is the broker's, so the default handler receives.
	opts := pahoOptions(addr, "paho-durable", false).SetDefaultPublishHandler(h)
	back := mqtt.NewClient(opts)
	tok := back.Connect()
	pahoWait(t, "reconnect", tok)
	t.Cleanup(func() { back.Disconnect(50) })
	ct, ok := tok.(*mqtt.ConnectToken)
	require.True(t, ok && ct.SessionPresent(), "session present not set on reconnection")
	for i := range n {
		m := pahoNext(t, got)
		want := fmt.Sprintf("job %d", i)
		require.Equal(t, want, m.payload, "message %d: got %+v", i, m)
		require.Equal(t, byte(1), m.qos, "message %d: got %+v", i, m)
		require.Equal(t, "jobs/new", m.topic, "message %d: got %+v", i, m)
	}
}
