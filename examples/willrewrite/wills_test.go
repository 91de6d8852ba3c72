package main

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/brokertest"
	"github.com/ternmq/tern/listeners"
)

const timeout = 5 * time.Second

// offline is when the tests' clock says a will was published.
var offline = time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)

// disconnects tells the test when the broker is done with a connection:
// its will has been published (or suppressed) by then.
type disconnects chan string

func (d disconnects) OnDisconnect(c tern.Client, _ error) { d <- c.ID }

// start runs a broker with the will stamp (its clock fixed), following the
// maintenance topics.
func start(t *testing.T) (*brokertest.Server, *willStamp, disconnects) {
	t.Helper()
	wills := newWillStamp()
	wills.now = func() time.Time { return offline }
	gone := make(disconnects, 16)
	srv := brokertest.New(t, brokertest.WithHook(wills), brokertest.WithHook(gone))
	cancel, err := wills.follow(srv.Broker)
	require.NoError(t, err, "follow the maintenance topics")
	t.Cleanup(cancel)
	return srv, wills, gone
}

// connectV5 connects an MQTT 5 device with a will, and disconnects it at
// cleanup (a no-op once the broker cut it off).
func connectV5(t *testing.T, srv *brokertest.Server, id string, will *paho.WillMessage, props *paho.WillProperties) *paho.Client {
	t.Helper()
	conn, err := srv.Dial()
	require.NoError(t, err, "Dial")
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	_, err = c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: "alice", WillMessage: will, WillProperties: props})
	require.NoError(t, err, "connect %s", id)
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// drop ends the client's connection without DISCONNECT, so that its will
// is due, and waits until the broker is done with it.
func drop(t *testing.T, srv *brokertest.Server, gone disconnects, id string) {
	t.Helper()
	require.NoError(t, srv.Broker.Disconnect(id), "Disconnect(%s)", id)
	for {
		select {
		case got := <-gone:
			if got == id {
				return
			}
		case <-time.After(timeout):
			require.FailNow(t, "the broker did not end the connection of "+id)
		}
	}
}

// TestWillStamped: an MQTT 5 device's will gets the client id, the user
// name and the time; the device's own properties stay, except those it
// forged under the stamp's names.
func TestWillStamped(t *testing.T) {
	srv, _, gone := start(t)
	connectV5(t, srv, "dev1", &paho.WillMessage{Topic: "devices/dev1/status", Payload: []byte("offline"), QoS: 1},
		&paho.WillProperties{User: paho.UserProperties{{Key: "reason", Value: "power"}, {Key: propClientID, Value: "someone-else"}}})
	drop(t, srv, gone, "dev1")

	m := srv.Next(t, "devices/dev1/status")
	assert.Equal(t, "offline", string(m.Payload), "will payload")
	assert.Equal(t, []tern.UserProperty{
		{Key: "reason", Value: "power"},
		{Key: propClientID, Value: "dev1"},
		{Key: propUsername, Value: "alice"},
		{Key: propOfflineAt, Value: "2025-03-01T12:30:00Z"},
	}, m.UserProperties, "will user properties")
}

// TestWillOfMQTT311DeviceStamped: a will from an MQTT 3.1.1 device, which
// has no properties, reaches MQTT 5 subscribers with the stamp.
func TestWillOfMQTT311DeviceStamped(t *testing.T) {
	srv, _, gone := start(t)
	conn, err := srv.Dial()
	require.NoError(t, err, "Dial")
	got := make(chan *paho.Publish, 1)
	sub := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(r paho.PublishReceived) (bool, error) { got <- r.Packet; return true, nil },
	}})
	_, err = sub.Connect(t.Context(), &paho.Connect{ClientID: "monitor", KeepAlive: 30, CleanStart: true})
	require.NoError(t, err, "connect the MQTT 5 monitor")
	t.Cleanup(func() { _ = sub.Disconnect(&paho.Disconnect{}) })
	_, err = sub.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/+/status", QoS: 1}}})
	require.NoError(t, err, "subscribe the monitor")

	old := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(srv.URL()).SetClientID("dev3").SetProtocolVersion(4).
		SetWill("devices/dev3/status", "offline", 1, false).SetAutoReconnect(false).SetConnectTimeout(timeout))
	tok := old.Connect()
	require.True(t, tok.WaitTimeout(timeout), "MQTT 3.1.1 connect timed out")
	require.NoError(t, tok.Error(), "MQTT 3.1.1 connect")
	t.Cleanup(func() { old.Disconnect(0) })
	drop(t, srv, gone, "dev3")

	select {
	case p := <-got:
		assert.Equal(t, "devices/dev3/status", p.Topic, "will topic")
		require.NotNil(t, p.Properties, "will properties the monitor got")
		assert.Equal(t, "dev3", p.Properties.User.Get(propClientID), "client-id the monitor got")
		assert.Equal(t, "2025-03-01T12:30:00Z", p.Properties.User.Get(propOfflineAt), "offline-at the monitor got")
		assert.Empty(t, p.Properties.User.GetAll(propUsername), "username of a client that gave none")
	case <-time.After(timeout):
		require.FailNow(t, "the monitor got no will")
	}
}

// TestMaintenanceSuppressesWill: the will of a client in maintenance is
// suppressed; out of maintenance, it is published again.
func TestMaintenanceSuppressesWill(t *testing.T) {
	srv, wills, gone := start(t)
	will := &paho.WillMessage{Topic: "devices/dev2/status", Payload: []byte("offline"), QoS: 1}
	c := connectV5(t, srv, "dev2", will, nil)
	// The device announces its maintenance itself, before a planned
	// restart.
	_, err := c.Publish(t.Context(), &paho.Publish{Topic: "maintenance/dev2", QoS: 1, Retain: true, Payload: []byte("on")})
	require.NoError(t, err, "publish maintenance on")
	require.Eventually(t, func() bool { return wills.inMaintenance("dev2") }, timeout, 10*time.Millisecond, "dev2 in maintenance")
	drop(t, srv, gone, "dev2")
	// Messages reach the recorder in the order they are routed: once this
	// one is in, the will would be too.
	srv.Publish("devices/dev2/status", "marker")
	srv.Expect(t, "devices/dev2/status", "marker")
	assert.Len(t, srv.Messages("devices/dev2/status"), 1, "messages on dev2's status: the will was not suppressed")

	srv.PublishMessage(tern.Message{Topic: "maintenance/dev2", Payload: []byte("off"), Retain: true, QoS: 1})
	require.Eventually(t, func() bool { return !wills.inMaintenance("dev2") }, timeout, 10*time.Millisecond, "dev2 out of maintenance")
	connectV5(t, srv, "dev2", will, nil)
	drop(t, srv, gone, "dev2")
	srv.Expect(t, "devices/dev2/status", "offline")
}

// TestRun serves a client on a listener and stops when the context ends.
func TestRun(t *testing.T) {
	l := listeners.NewMemory()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, l) }()
	conn, err := l.Dial()
	require.NoError(t, err, "Dial")
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	_, err = c.Connect(t.Context(), &paho.Connect{ClientID: "dev1", KeepAlive: 30, CleanStart: true})
	require.NoError(t, err, "connect")
	require.NoError(t, c.Disconnect(&paho.Disconnect{}), "disconnect")
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "run")
	case <-time.After(timeout):
		require.FailNow(t, "run did not return after its context ended")
	}
}
