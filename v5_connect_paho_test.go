package tern_test

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
)

// Interoperability of Tern's MQTT 5 CONNECT, session and will with the
// Eclipse Paho Go client (paho.golang): its low-level paho.Client and its
// reconnecting autopaho.ConnectionManager.

// c5PahoClient connects a paho.Client to addr with session state sess
// (shared between the connections of one client, as a client keeps its
// session state), delivering received messages to msgs.
func c5PahoClient(t *testing.T, addr string, sess *state.State, msgs chan<- *paho.Publish, cp *paho.Connect) (*paho.Client, *paho.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	cli := paho.NewClient(paho.ClientConfig{
		Conn:    nc,
		Session: sess,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			msgs <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ack, err := cli.Connect(ctx, cp)
	require.NoError(t, err)
	t.Cleanup(func() {
		cli.Disconnect(&paho.Disconnect{})
		<-cli.Done()
	})
	return cli, ack
}

// c5PahoNext waits for the next message on msgs.
func c5PahoNext(t *testing.T, msgs <-chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case p := <-msgs:
		return p
	case <-time.After(waitTimeout):
		require.FailNow(t, "no message for the paho client")
		return nil
	}
}

func TestV5PahoClientSessionAndWill(t *testing.T) {
	// [v5 MQTT-3.1.2-5] [v5 MQTT-3.1.2-23] [v5 MQTT-3.2.2-3] [v5 MQTT-3.1.2-8]
	// [v5 MQTT-3.1.3-10] with a real client.
	b, addr := startBroker(t, tern.Options{})
	sess := state.NewInMemory()
	t.Cleanup(func() { sess.Close() })
	msgs := make(chan *paho.Publish, 16)
	expiry := uint32(60)
	connect := func(clean bool) *paho.Connect {
		return &paho.Connect{ClientID: "paho-sub", CleanStart: clean, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}
	}

	cli, ack := c5PahoClient(t, addr, sess, msgs, connect(true))
	assert.False(t, ack.SessionPresent)
	require.NotNil(t, ack.Properties)
	assert.NotNil(t, ack.Properties.MaximumPacketSize)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "paho/#", QoS: 1}}})
	require.NoError(t, err)
	require.NoError(t, cli.Disconnect(&paho.Disconnect{}))
	<-cli.Done()

	// Queued while the client is away, delivered when it resumes.
	c5Publish(t, b, "paho/queued", "while away")
	_, ack = c5PahoClient(t, addr, sess, msgs, connect(false))
	assert.True(t, ack.SessionPresent, "the session was not resumed")
	p := c5PahoNext(t, msgs)
	assert.Equal(t, "paho/queued", p.Topic)
	assert.Equal(t, "while away", string(p.Payload))

	// Another paho client's will, with its user properties in order, when
	// its connection drops. (paho.golang v0.23.0 encodes only the Will
	// Delay Interval and the user properties of WillProperties: it leaves
	// the message properties out of the CONNECT.)
	mortalSess := state.NewInMemory()
	t.Cleanup(func() { mortalSess.Close() })
	mortal, _ := c5PahoClient(t, addr, mortalSess, make(chan *paho.Publish, 1), &paho.Connect{
		ClientID: "paho-mortal", CleanStart: true, KeepAlive: 30,
		WillMessage: &paho.WillMessage{Topic: "paho/will", Payload: []byte("gone"), QoS: 1},
		WillProperties: &paho.WillProperties{
			User: paho.UserProperties{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}},
		},
	})
	mortal.TerminateConnectionForTest()
	p = c5PahoNext(t, msgs)
	assert.Equal(t, "paho/will", p.Topic)
	assert.Equal(t, "gone", string(p.Payload))
	require.NotNil(t, p.Properties)
	assert.Equal(t, paho.UserProperties{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}}, p.Properties.User)
}

func TestV5AutopahoReconnectsToItsSession(t *testing.T) {
	// autopaho reconnects after Broker.Disconnect (DISCONNECT 0x98) with
	// Clean Start 0 and finds its session: the subscription made on the
	// first connection delivers on the second [v5 MQTT-3.1.2-5]. The broker
	// ended the connection, so the will is published [v5 MQTT-3.1.2-8]; the
	// final DISCONNECT 0x00 deletes it [v5 MQTT-3.1.2-10].
	b, addr := startBroker(t, tern.Options{})
	w := c5Watch(t, addr, "watcher", "auto/will")
	u, err := url.Parse("mqtt://" + addr)
	require.NoError(t, err)
	ups := make(chan *paho.Connack, 4)
	msgs := make(chan *paho.Publish, 16)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         60,
		ReconnectBackoff:              autopaho.NewConstantBackoff(50 * time.Millisecond),
		OnConnectionUp:                func(_ *autopaho.ConnectionManager, ack *paho.Connack) { ups <- ack },
		WillMessage:                   &paho.WillMessage{Topic: "auto/will", Payload: []byte("dropped"), QoS: 1},
		ClientConfig: paho.ClientConfig{
			ClientID: "auto",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				msgs <- pr.Packet
				return true, nil
			}},
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cm, err := autopaho.NewConnection(ctx, cfg)
	require.NoError(t, err)
	up := func() *paho.Connack {
		select {
		case ack := <-ups:
			return ack
		case <-time.After(waitTimeout):
			require.FailNow(t, "autopaho did not connect")
			return nil
		}
	}
	assert.False(t, up().SessionPresent)
	subCtx, subCancel := context.WithTimeout(ctx, waitTimeout)
	defer subCancel()
	_, err = cm.Subscribe(subCtx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "auto/cmd", QoS: 1}}})
	require.NoError(t, err)

	require.NoError(t, b.Disconnect("auto"))
	assert.Equal(t, "dropped", string(c5Recv(w).Payload))
	assert.True(t, up().SessionPresent, "autopaho's session was not resumed")
	c5Publish(t, b, "auto/cmd", "after the reconnection")
	assert.Equal(t, "after the reconnection", string(c5PahoNext(t, msgs).Payload))

	require.NoError(t, cm.Disconnect(subCtx))
	select {
	case <-cm.Done():
	case <-time.After(waitTimeout):
		require.FailNow(t, "autopaho did not stop")
	}
	require.Eventually(t, func() bool {
		for _, ci := range b.Clients() {
			if ci.ID == "auto" {
				return !ci.Connected
			}
		}
		return false
	}, waitTimeout, 5*time.Millisecond)
	c5NoWill(t, b, w, "auto/will")
}
