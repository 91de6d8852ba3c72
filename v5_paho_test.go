package tern_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/extensions/rpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
)

// Interoperability with Eclipse Paho's MQTT 5 client (paho.golang): its
// Client and its autopaho ConnectionManager publish with every property,
// subscribe with options and identifiers, share subscriptions and make
// requests with Response Topic and Correlation Data through Tern.

// m5PahoCtx is a context bounded by waitTimeout.
func m5PahoCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// m5Paho connects a paho.golang Client that sends what it receives to the
// returned channel, and disconnects it at cleanup.
func m5Paho(t *testing.T, addr, id string) (*paho.Client, chan *paho.Publish) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	got := make(chan *paho.Publish, 256)
	c := paho.NewClient(paho.ClientConfig{
		ClientID: id,
		Conn:     nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got <- pr.Packet
			return true, nil
		}},
	})
	ack, err := c.Connect(m5PahoCtx(t), &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true})
	require.NoError(t, err)
	require.Equal(t, byte(0), ack.ReasonCode)
	m5PahoStopAtCleanup(t, c, id)
	return c, got
}

// m5PahoStopAtCleanup disconnects c when the test ends and checks that it
// stops.
func m5PahoStopAtCleanup(t *testing.T, c *paho.Client, id string) {
	t.Cleanup(func() {
		c.Disconnect(&paho.Disconnect{})
		select {
		case <-c.Done():
		case <-time.After(waitTimeout):
			t.Errorf("paho client %s did not stop", id)
		}
	})
}

// m5PahoNext returns the next message on ch, failing after waitTimeout.
func m5PahoNext(t *testing.T, ch <-chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a message")
		return nil
	}
}

// TestV5PahoPublishAndSubscribeWithProperties: a Paho publisher's
// properties (Payload Format, Message Expiry, Content Type, Response Topic,
// Correlation Data, User Properties in order with duplicates) reach a Paho
// subscriber, with its Subscription Identifier and the RETAIN flag its
// Retain As Published asks for; No Local keeps a client's own messages
// from it; Retain Handling 2 sends no retained message.
func TestV5PahoPublishAndSubscribeWithProperties(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub, got := m5Paho(t, addr, "paho-sub")
	ctx := m5PahoCtx(t)
	ack, err := sub.Subscribe(ctx, &paho.Subscribe{
		Properties:    &paho.SubscribeProperties{SubscriptionIdentifier: new(7)},
		Subscriptions: []paho.SubscribeOptions{{Topic: "pp/#", QoS: 2, RetainAsPublished: true, NoLocal: true}},
	})
	require.NoError(t, err)
	assert.Equal(t, []byte{2}, ack.Reasons)

	pub, _ := m5Paho(t, addr, "paho-pub")
	user := paho.UserProperties{{Key: "k", Value: "1"}, {Key: "j", Value: "2"}, {Key: "k", Value: "3"}}
	sent := &paho.Publish{Topic: "pp/t", QoS: 2, Retain: true, Payload: []byte(`{"a":1}`), Properties: &paho.PublishProperties{
		PayloadFormat:   new(byte(1)),
		MessageExpiry:   new(uint32(60)),
		ContentType:     "application/json",
		ResponseTopic:   "pp/reply",
		CorrelationData: []byte{9, 8, 7},
		User:            user,
	}}
	resp, err := pub.Publish(ctx, sent)
	require.NoError(t, err)
	assert.Equal(t, byte(0), resp.ReasonCode)
	m := m5PahoNext(t, got)
	assert.Equal(t, "pp/t", m.Topic)
	assert.Equal(t, `{"a":1}`, string(m.Payload))
	assert.Equal(t, byte(2), m.QoS)
	assert.True(t, m.Retain, "Retain As Published")
	require.NotNil(t, m.Properties)
	p := m.Properties
	require.NotNil(t, p.PayloadFormat)
	assert.Equal(t, byte(1), *p.PayloadFormat)
	require.NotNil(t, p.MessageExpiry)
	assert.LessOrEqual(t, *p.MessageExpiry, uint32(60))
	assert.Equal(t, "application/json", p.ContentType)
	assert.Equal(t, "pp/reply", p.ResponseTopic)
	assert.Equal(t, []byte{9, 8, 7}, p.CorrelationData)
	assert.Equal(t, user, p.User)
	require.NotNil(t, p.SubscriptionIdentifier)
	assert.Equal(t, 7, *p.SubscriptionIdentifier)

	// No Local: the subscriber's own message does not come back; the next
	// from the publisher does.
	_, err = sub.Publish(ctx, &paho.Publish{Topic: "pp/t", QoS: 1, Payload: []byte("own")})
	require.NoError(t, err)
	_, err = pub.Publish(ctx, &paho.Publish{Topic: "pp/t", QoS: 1, Payload: []byte("next")})
	require.NoError(t, err)
	assert.Equal(t, "next", string(m5PahoNext(t, got).Payload))

	// Retain Handling 2: the retained "pp/t" is not sent; 0: it is.
	// (Each with its own identifier: the retained message says which
	// subscription sent it.)
	_, err = sub.Subscribe(ctx, &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: new(8)},
		Subscriptions: []paho.SubscribeOptions{{Topic: "pp/+", QoS: 1, RetainHandling: 2}}})
	require.NoError(t, err)
	_, err = sub.Subscribe(ctx, &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: new(9)},
		Subscriptions: []paho.SubscribeOptions{{Topic: "+/t", QoS: 1}}})
	require.NoError(t, err)
	r := m5PahoNext(t, got)
	assert.Equal(t, `{"a":1}`, string(r.Payload))
	assert.True(t, r.Retain)
	require.NotNil(t, r.Properties.SubscriptionIdentifier)
	assert.Equal(t, 9, *r.Properties.SubscriptionIdentifier, "sent for the Retain Handling 0 subscription only")
}

// TestV5PahoSharedSubscription: autopaho clients sharing $share/workers/
// jobs/# get each message once between them, in turns.
func TestV5PahoSharedSubscription(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	u, err := url.Parse("mqtt://" + addr)
	require.NoError(t, err)
	got := make(chan string, 64)
	for i := range 2 {
		id := fmt.Sprintf("worker-%d", i)
		subscribed := make(chan error, 1)
		cm, err := autopaho.NewConnection(context.Background(), autopaho.ClientConfig{
			ServerUrls:                    []*url.URL{u},
			KeepAlive:                     30,
			CleanStartOnInitialConnection: true,
			ConnectTimeout:                waitTimeout,
			OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
				go func() {
					_, err := cm.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/workers/jobs/#", QoS: 1}}})
					subscribed <- err
				}()
			},
			ClientConfig: paho.ClientConfig{
				ClientID: id,
				OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
					got <- id + " " + string(pr.Packet.Payload)
					return true, nil
				}},
			},
		})
		require.NoError(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			cm.Disconnect(ctx)
			<-cm.Done()
		})
		select {
		case err := <-subscribed:
			require.NoError(t, err)
		case <-time.After(waitTimeout):
			t.Fatalf("%s did not subscribe", id)
		}
	}
	pub, _ := m5Paho(t, addr, "jobs-pub")
	for i := range 10 {
		_, err := pub.Publish(m5PahoCtx(t), &paho.Publish{Topic: "jobs/x", QoS: 1, Payload: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
	}
	perWorker := map[string]int{}
	seen := map[string]bool{}
	for range 10 {
		select {
		case s := <-got:
			var who, payload string
			fmt.Sscan(s, &who, &payload)
			assert.False(t, seen[payload], "job %s delivered twice", payload)
			seen[payload] = true
			perWorker[who]++
		case <-time.After(waitTimeout):
			t.Fatalf("jobs received: %v", seen)
		}
	}
	assert.Equal(t, map[string]int{"worker-0": 5, "worker-1": 5}, perWorker)
}

// TestV5PahoRequestResponse: Paho's request/response extension sends a
// request with a Response Topic and Correlation Data; a responder answers
// on that topic with the same Correlation Data, and the requester matches
// the response to its request.
func TestV5PahoRequestResponse(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	ctx := m5PahoCtx(t)
	responder, requests := m5Paho(t, addr, "responder")
	_, err := responder.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "svc/upper", QoS: 1}}})
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() {
		var req *paho.Publish
		select {
		case req = <-requests:
		case <-ctx.Done():
			served <- ctx.Err()
			return
		}
		if req.Properties == nil || req.Properties.ResponseTopic == "" {
			served <- fmt.Errorf("request without a Response Topic: %v", req)
			return
		}
		_, err := responder.Publish(ctx, &paho.Publish{Topic: req.Properties.ResponseTopic, QoS: 1,
			Payload:    []byte(fmt.Sprintf("%s!", req.Payload)),
			Properties: &paho.PublishProperties{CorrelationData: req.Properties.CorrelationData}})
		served <- err
	}()

	requester, _ := m5Paho(t, addr, "requester")
	h, err := rpc.NewHandler(ctx, requester)
	require.NoError(t, err)
	resp, err := h.Request(ctx, &paho.Publish{Topic: "svc/upper", QoS: 1, Payload: []byte("ping")})
	require.NoError(t, err)
	assert.Equal(t, "ping!", string(resp.Payload))
	assert.Equal(t, "requester/responses", resp.Topic)
	require.NoError(t, <-served)
}
