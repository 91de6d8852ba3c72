package tern_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"testing"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

// The broker driven by Eclipse Paho's MQTT 5 client (paho.golang and its
// autopaho connection manager) over TCP and WebSocket: client code Tern did
// not write. testdata/interop/paho5client runs more of these checks against
// cmd/tern.

// h5PahoClient is an autopaho connection and the messages it received.
type h5PahoClient struct {
	cm   *autopaho.ConnectionManager
	msgs chan *paho.Publish
}

// h5Paho connects an MQTT 5 Paho client that does not reconnect, and
// disconnects it at cleanup.
func h5Paho(t *testing.T, u *url.URL, id string) *h5PahoClient {
	t.Helper()
	c := &h5PahoClient{msgs: make(chan *paho.Publish, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                waitTimeout,
		OnConnectionDown:              func() bool { return false },
		ClientConfig: paho.ClientConfig{
			ClientID: id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
				c.msgs <- r.Packet
				return true, nil
			}},
		},
	})
	require.NoError(t, err)
	c.cm = cm
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), waitTimeout)
		defer dcancel()
		_ = cm.Disconnect(dctx)
		cancel()
		<-cm.Done()
	})
	actx, acancel := context.WithTimeout(context.Background(), waitTimeout)
	defer acancel()
	require.NoError(t, cm.AwaitConnection(actx), "connect %s", id)
	return c
}

// h5PahoWait returns a context bounded by waitTimeout.
func h5PahoWait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// next waits for the client's next message.
func (c *h5PahoClient) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-h5PahoWait(t).Done():
		t.Fatal("no message within the deadline")
		return nil
	}
}

// TestH5PahoGolangMQTT5 checks, over TCP and WebSocket, that the properties
// a Paho publisher sets reach a Paho subscriber unaltered and in order
// [v5 MQTT-3.3.2-4] [v5 MQTT-3.3.2-15] [v5 MQTT-3.3.2-16] [v5 MQTT-3.3.2-17]
// [v5 MQTT-3.3.2-18] [v5 MQTT-3.3.2-20], with the subscriber's
// Subscription Identifier [v5 MQTT-3.3.4-3]; that a publish no one
// subscribed to gets PUBACK 0x10 (section 3.4.2.1); and that a shared
// subscription gives each message to one member (section 4.8.2).
func TestH5PahoGolangMQTT5(t *testing.T) {
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			before := runtime.NumGoroutine()
			var l net.Listener
			var u *url.URL
			if tr == "tcp" {
				var err error
				l, err = net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				u = &url.URL{Scheme: "mqtt", Host: l.Addr().String()}
			} else {
				ws, err := listeners.ListenWebSocket("127.0.0.1:0", nil, listeners.WebSocketOptions{})
				require.NoError(t, err)
				l = ws
				u, err = url.Parse(ws.Addr().String()) // the endpoint's URL
				require.NoError(t, err)
			}
			serveBroker(t, before, tern.Options{}, l)
			ctx := h5PahoWait(t)

			sub := h5Paho(t, u, "h5-paho-sub")
			subID := 7
			ack, err := sub.cm.Subscribe(ctx, &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &subID},
				Subscriptions: []paho.SubscribeOptions{{Topic: "h5/paho/+", QoS: 1}}})
			require.NoError(t, err)
			require.Equal(t, []byte{1}, ack.Reasons)
			pub := h5Paho(t, u, "h5-paho-pub")
			format, expiry := byte(1), uint32(30)
			sent := &paho.PublishProperties{CorrelationData: []byte{0, 0xff}, ContentType: "text/plain", ResponseTopic: "h5/reply",
				PayloadFormat: &format, MessageExpiry: &expiry,
				User: paho.UserProperties{{Key: "k", Value: "1"}, {Key: "z", Value: "x"}, {Key: "k", Value: "2"}}}
			resp, err := pub.cm.Publish(ctx, &paho.Publish{Topic: "h5/paho/props", QoS: 1, Payload: []byte("p"), Properties: sent})
			require.NoError(t, err)
			assert.Equal(t, byte(0), resp.ReasonCode, "PUBACK with a subscriber")
			m := sub.next(t)
			require.NotNil(t, m.Properties)
			got := m.Properties
			assert.Equal(t, sent.CorrelationData, got.CorrelationData)
			assert.Equal(t, sent.ContentType, got.ContentType)
			assert.Equal(t, sent.ResponseTopic, got.ResponseTopic)
			assert.Equal(t, sent.PayloadFormat, got.PayloadFormat)
			assert.Equal(t, sent.User, got.User, "user properties unaltered, in order")
			if assert.NotNil(t, got.MessageExpiry) {
				assert.LessOrEqual(t, *got.MessageExpiry, expiry)
			}
			assert.Equal(t, &subID, got.SubscriptionIdentifier)

			resp, err = pub.cm.Publish(ctx, &paho.Publish{Topic: "h5/nobody", QoS: 1, Payload: []byte("x")})
			require.NoError(t, err)
			assert.Equal(t, byte(0x10), resp.ReasonCode, "PUBACK when no one subscribed: no matching subscribers")

			members := []*h5PahoClient{h5Paho(t, u, "h5-paho-m0"), h5Paho(t, u, "h5-paho-m1")}
			for _, mem := range members {
				_, err := mem.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/h5/shared", QoS: 1}}})
				require.NoError(t, err)
			}
			const n = 4
			for i := range n {
				_, err := pub.cm.Publish(ctx, &paho.Publish{Topic: "h5/shared", QoS: 1, Payload: fmt.Appendf(nil, "s%d", i)})
				require.NoError(t, err)
			}
			seen := map[string]int{}
			for range n {
				select {
				case m := <-members[0].msgs:
					seen[string(m.Payload)]++
				case m := <-members[1].msgs:
					seen[string(m.Payload)]++
				case <-ctx.Done():
					t.Fatalf("shared subscription: %d of %d messages", len(seen), n)
				}
			}
			assert.Equal(t, map[string]int{"s0": 1, "s1": 1, "s2": 1, "s3": 1}, seen, "each message to one member")
		})
	}
}
