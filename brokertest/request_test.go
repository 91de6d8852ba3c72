package brokertest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/brokertest"
)

// respond answers every request on filter in-process with answer(payload),
// copying its Correlation Data to the response, as a service does.
func respond(t *testing.T, srv *brokertest.Server, filter string, answer func(string) string) {
	t.Helper()
	cancel, err := srv.Broker.Subscribe(filter, tern.SubscribeOptions{QoS: 1}, func(m tern.Message, _ tern.Client) {
		if m.ResponseTopic == "" {
			return
		}
		_, _ = srv.Broker.PublishMessage(context.Background(), tern.Message{
			Topic: m.ResponseTopic, Payload: []byte(answer(string(m.Payload))), QoS: 1, CorrelationData: m.CorrelationData,
		})
	})
	require.NoError(t, err, "subscribe the responder")
	t.Cleanup(cancel)
}

func TestRequest(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	respond(t, srv, "svc/echo", func(p string) string { return "echo: " + p })
	m := srv.Request(t, "svc/echo", "hi")
	assert.Equal(t, "echo: hi", string(m.Payload), "response payload")
	assert.Equal(t, brokertest.ResponseTopic, m.Topic, "response topic")
	assert.NotEmpty(t, m.CorrelationData, "response Correlation Data")

	req := srv.Next(t, "svc/echo")
	assert.Equal(t, brokertest.ResponseTopic, req.ResponseTopic, "the request's Response Topic")
	assert.Equal(t, m.CorrelationData, req.CorrelationData, "the request's Correlation Data")
	assert.Equal(t, byte(1), req.QoS, "the request's QoS")

	// Each request has its own Correlation Data.
	m2 := srv.Request(t, "svc/echo", "again")
	assert.Equal(t, "echo: again", string(m2.Payload), "second response payload")
	assert.NotEqual(t, m.CorrelationData, m2.CorrelationData, "two requests' Correlation Data")
}

// TestRequestMessage: a request's own Response Topic, Correlation Data and
// properties are kept.
func TestRequestMessage(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	respond(t, srv, "svc/echo", strings.ToUpper)
	m := srv.RequestMessage(t, tern.Message{
		Topic: "svc/echo", Payload: []byte("abc"), ResponseTopic: "replies/me", CorrelationData: []byte("mine"),
		UserProperties: []tern.UserProperty{{Key: "trace", Value: "42"}},
	})
	assert.Equal(t, "replies/me", m.Topic, "response topic")
	assert.Equal(t, "ABC", string(m.Payload), "response payload")
	assert.Equal(t, []byte("mine"), m.CorrelationData, "response Correlation Data")
	req := srv.Next(t, "svc/echo")
	v, _ := brokertest.UserProperty(req, "trace")
	assert.Equal(t, "42", v, "the request's user property")
	assert.Equal(t, byte(0), req.QoS, "the request's QoS, as given")
}

// TestRequestAllCorrelates: a service that answers out of order (here, in
// reverse) still gets each response matched to its request.
func TestRequestAllCorrelates(t *testing.T) {
	const n = 20
	srv := brokertest.New(t, brokertest.WithoutTCP())
	var mu sync.Mutex
	var pending []tern.Message
	cancel, err := srv.Broker.Subscribe("svc/square", tern.SubscribeOptions{QoS: 1}, func(m tern.Message, _ tern.Client) {
		mu.Lock()
		defer mu.Unlock()
		pending = append(pending, m)
		if len(pending) < n {
			return
		}
		for _, req := range slices.Backward(pending) {
			var x int
			_, _ = fmt.Sscan(string(req.Payload), &x)
			_, _ = srv.Broker.PublishMessage(context.Background(), tern.Message{
				Topic: req.ResponseTopic, Payload: fmt.Appendf(nil, "%d", x*x), CorrelationData: req.CorrelationData,
			})
		}
	})
	require.NoError(t, err, "subscribe the responder")
	t.Cleanup(cancel)

	reqs := make([]tern.Message, n)
	for i := range reqs {
		reqs[i] = tern.Message{Topic: "svc/square", Payload: fmt.Appendf(nil, "%d", i), QoS: 1}
	}
	got := srv.RequestAll(t, reqs...)
	require.Len(t, got, n, "responses")
	for i, m := range got {
		assert.Equal(t, fmt.Sprint(i*i), string(m.Payload), "response to request %d", i)
	}
	all := srv.Messages(brokertest.ResponseTopic)
	assert.Equal(t, fmt.Sprint((n-1)*(n-1)), string(all[0].Payload), "the service answered the last request first")
}

// TestRequestWithPahoGolangResponder: the service is a network client
// (paho.golang): the Response Topic and Correlation Data cross the wire
// both ways.
func TestRequestWithPahoGolangResponder(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	conn, err := srv.Dial()
	require.NoError(t, err, "Dial")
	requests := make(chan *paho.Publish, 1)
	c := pahoV5Connect(t, conn, "upper", func(p *paho.Publish) { requests <- p })
	var wg sync.WaitGroup
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(func() { stop(); wg.Wait() }) // before the client's disconnect
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-requests:
				_, _ = c.Publish(ctx, &paho.Publish{
					Topic: p.Properties.ResponseTopic, QoS: 1, Payload: []byte(strings.ToUpper(string(p.Payload))),
					Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData},
				})
			}
		}
	})
	_, err = c.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "svc/upper", QoS: 1}}})
	require.NoError(t, err, "subscribe")
	m := srv.Request(t, "svc/upper", "shout")
	assert.Equal(t, "SHOUT", string(m.Payload), "response payload")
}

// TestRequestFailures: Request fails at once without a responder, and
// refuses requests whose responses it could not tell apart.
func TestRequestFailures(t *testing.T) {
	cases := []struct {
		name string
		req  func(f *fakeTB, srv *brokertest.Server)
		want []string
	}{
		{"no subscriber", func(f *fakeTB, srv *brokertest.Server) { srv.Request(f, "svc/nobody", "x") },
			[]string{`request to "svc/nobody": no subscriber but the recorder`, "subscribed"}},
		{"own topic", func(f *fakeTB, srv *brokertest.Server) {
			srv.RequestMessage(f, tern.Message{Topic: "svc/a", ResponseTopic: "svc/a"})
		}, []string{"the Response Topic is the request's own topic"}},
		{"dollar response topic", func(f *fakeTB, srv *brokertest.Server) {
			srv.RequestMessage(f, tern.Message{Topic: "svc/a", ResponseTopic: "$replies"})
		}, []string{`Response Topic "$replies" starts with '$'`}},
		{"same correlation data", func(f *fakeTB, srv *brokertest.Server) {
			req := tern.Message{Topic: "svc/echo", CorrelationData: []byte("same")}
			srv.RequestAll(f, req, req)
		}, []string{"requests 0 and 1 have the same Response Topic and Correlation Data"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			var srv *brokertest.Server
			f.run(func() { srv = brokertest.New(f, brokertest.WithoutTCP(), brokertest.WithTimeout(100*time.Millisecond)) })
			respond(t, srv, "svc/echo", strings.ToUpper)
			f.run(func() { tc.req(f, srv) })
			mustFail(t, f, tc.want...)
		})
	}
}

// TestRequestTimeoutSaysWhatCame: a response with other Correlation Data
// does not count, and the failure shows it with its Correlation Data.
func TestRequestTimeoutSaysWhatCame(t *testing.T) {
	f := newFake(t)
	var srv *brokertest.Server
	f.run(func() { srv = brokertest.New(f, brokertest.WithoutTCP(), brokertest.WithTimeout(100*time.Millisecond)) })
	cancel, err := srv.Broker.Subscribe("svc/broken", tern.SubscribeOptions{}, func(m tern.Message, _ tern.Client) {
		_, _ = srv.Broker.PublishMessage(context.Background(), tern.Message{
			Topic: m.ResponseTopic, Payload: []byte("lost"), CorrelationData: []byte("wrong"),
		})
	})
	require.NoError(t, err, "subscribe the responder")
	defer cancel()
	f.run(func() { srv.RequestMessage(f, tern.Message{Topic: "svc/broken", CorrelationData: []byte("right")}) })
	mustFail(t, f, `no response with correlation data "right" (request on "svc/broken") on "brokertest/response" within 100ms`,
		`brokertest/response "lost" [correlation data "wrong"]`)
}
