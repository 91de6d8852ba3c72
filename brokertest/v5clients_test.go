package brokertest_test

import (
	"context"
	"net"
	"net/url"
	"testing"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/brokertest"
)

// TestPahoGolangOverTCP drives the server with an MQTT 5 client over Addr:
// messages flow both ways with their properties, and the recorded message
// has them.
func TestPahoGolangOverTCP(t *testing.T) {
	srv := brokertest.New(t)
	conn, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err, "dial Addr()")
	got := make(chan *paho.Publish, 1)
	c := pahoV5Connect(t, conn, "v5-tcp", func(p *paho.Publish) { got <- p })
	ctx := t.Context()
	_, err = c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/1/cmd", QoS: 1}}})
	require.NoError(t, err, "subscribe")

	srv.PublishMessage(tern.Message{
		Topic: "devices/1/cmd", Payload: []byte("reboot"), QoS: 1,
		ContentType: "text/plain", ResponseTopic: "devices/1/replies", CorrelationData: []byte("c-1"),
		UserProperties: []tern.UserProperty{{Key: "origin", Value: "test"}},
	})
	p := receive(t, got, "message for the client")
	assert.Equal(t, "reboot", string(p.Payload), "payload the client got")
	if assert.NotNil(t, p.Properties, "properties the client got") {
		assert.Equal(t, "text/plain", p.Properties.ContentType, "Content Type the client got")
		assert.Equal(t, "devices/1/replies", p.Properties.ResponseTopic, "Response Topic the client got")
		assert.Equal(t, []byte("c-1"), p.Properties.CorrelationData, "Correlation Data the client got")
		assert.Equal(t, "test", p.Properties.User.Get("origin"), "user property the client got")
	}

	_, err = c.Publish(ctx, &paho.Publish{
		Topic: "devices/1/status", QoS: 1, Payload: []byte("up"),
		Properties: &paho.PublishProperties{
			ResponseTopic: "devices/1/ack",
			User:          paho.UserProperties{{Key: "firmware", Value: "1.2"}, {Key: "site", Value: "north"}},
		},
	})
	require.NoError(t, err, "publish")
	m := srv.Next(t, "devices/1/status")
	assert.Equal(t, "up", string(m.Payload), "recorded payload")
	assert.Equal(t, "devices/1/ack", m.ResponseTopic, "recorded Response Topic")
	v, ok := brokertest.UserProperty(m, "firmware")
	assert.True(t, ok, "recorded message has no user property firmware: %+v", m.UserProperties)
	assert.Equal(t, "1.2", v, "recorded user property firmware")
	_, ok = brokertest.UserProperty(m, "absent")
	assert.False(t, ok, "UserProperty found a property the message does not have")
}

// TestPahoGolangInMemory connects an MQTT 5 client through Dial: no
// network at all.
func TestPahoGolangInMemory(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	conn, err := srv.Dial()
	require.NoError(t, err, "Dial")
	c := pahoV5Connect(t, conn, "v5-mem", nil)
	_, err = c.Publish(t.Context(), &paho.Publish{Topic: "sensors/1/temp", QoS: 1, Payload: []byte("21.5")})
	require.NoError(t, err, "publish")
	srv.Expect(t, "sensors/+/temp", "21.5")
	ids := srv.Broker.Clients()
	if assert.Len(t, ids, 1, "Clients() = %+v, want v5-mem only", ids) {
		assert.Equal(t, "v5-mem", ids[0].ID, "Clients() = %+v, want v5-mem only", ids)
	}
}

// autopahoConnect starts autopaho with cfg, waits for its connection and
// stops it in a cleanup. Messages it receives go to got.
func autopahoConnect(t *testing.T, cfg autopaho.ClientConfig, got chan<- *paho.Publish) *autopaho.ConnectionManager {
	t.Helper()
	cfg.KeepAlive = 30
	cfg.ConnectTimeout = waitTimeout
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
		func(r paho.PublishReceived) (bool, error) { got <- r.Packet; return true, nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, cfg)
	require.NoError(t, err, "autopaho.NewConnection")
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), waitTimeout)
		defer dcancel()
		assert.NoError(t, cm.Disconnect(dctx), "autopaho disconnect")
		cancel()
	})
	actx, acancel := context.WithTimeout(ctx, waitTimeout)
	defer acancel()
	require.NoError(t, cm.AwaitConnection(actx), "autopaho: no connection")
	return cm
}

// roundTrip subscribes cm to a topic, checks that what the server
// publishes there reaches it, and that what it publishes is recorded.
func roundTrip(t *testing.T, srv *brokertest.Server, cm *autopaho.ConnectionManager, got <-chan *paho.Publish) {
	t.Helper()
	ctx := t.Context()
	_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "auto/in", QoS: 1}}})
	require.NoError(t, err, "subscribe")
	srv.PublishMessage(tern.Message{Topic: "auto/in", Payload: []byte("ping"), QoS: 1,
		UserProperties: []tern.UserProperty{{Key: "k", Value: "v"}}})
	p := receive(t, got, "message for autopaho")
	assert.Equal(t, "ping", string(p.Payload), "payload autopaho got")
	if assert.NotNil(t, p.Properties, "properties autopaho got") {
		assert.Equal(t, "v", p.Properties.User.Get("k"), "user property autopaho got")
	}
	_, err = cm.Publish(ctx, &paho.Publish{Topic: "auto/out", QoS: 1, Payload: []byte("pong")})
	require.NoError(t, err, "publish")
	srv.Expect(t, "auto/out", "pong")
}

// TestAutopahoURL: autopaho takes URL() (parsed) and ServerURL() as
// ServerUrls.
func TestAutopahoURL(t *testing.T) {
	srv := brokertest.New(t)
	u, err := url.Parse(srv.URL())
	require.NoError(t, err, "URL() = %q", srv.URL())
	assert.Equal(t, u, srv.ServerURL(), "ServerURL() is URL() parsed")

	got := make(chan *paho.Publish, 1)
	cm := autopahoConnect(t, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, ClientConfig: paho.ClientConfig{ClientID: "auto-url"}}, got)
	roundTrip(t, srv, cm, got)

	got2 := make(chan *paho.Publish, 1)
	autopahoConnect(t, autopaho.ClientConfig{ServerUrls: []*url.URL{srv.ServerURL()}, ClientConfig: paho.ClientConfig{ClientID: "auto-server-url"}}, got2)
	assert.Eventually(t, func() bool { return srv.Broker.Stats().ClientsConnected == 2 }, waitTimeout, waitTick,
		"both autopaho clients connected")
}

// TestAutopahoInMemory connects autopaho through DialContext with a custom
// connection: no network at all.
func TestAutopahoInMemory(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	got := make(chan *paho.Publish, 1)
	cm := autopahoConnect(t, autopaho.ClientConfig{
		// The URL names no address: AttemptConnection decides where to connect.
		ServerUrls: []*url.URL{{Scheme: "mqtt", Host: "in-memory"}},
		AttemptConnection: func(ctx context.Context, _ autopaho.ClientConfig, _ *url.URL) (net.Conn, error) {
			return srv.DialContext(ctx)
		},
		ClientConfig: paho.ClientConfig{ClientID: "auto-mem"},
	}, got)
	roundTrip(t, srv, cm, got)
}
