package calc_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/brokertest"
	"github.com/ternmq/tern/examples/reqresp/calc"
)

// start runs the service against srv and stops it at cleanup, before srv.
func start(t *testing.T, srv *brokertest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	svc, err := calc.Start(ctx, srv.ServerURL(), "calc")
	require.NoError(t, err, "starting the service")
	t.Cleanup(svc.Close)
}

// status returns the "status" user property of a response.
func status(m tern.Message) string {
	s, _ := brokertest.UserProperty(m, "status")
	return s
}

// TestCalc is the README's example of testing a service that answers
// requests.
func TestCalc(t *testing.T) {
	srv := brokertest.New(t)
	start(t, srv)                                   // the service under test, an MQTT 5 client
	resp := srv.Request(t, "calc/eval", "6 * 7")    // Response Topic and Correlation Data set, response awaited
	assert.Equal(t, "42", string(resp.Payload))     // the answer
	v, _ := brokertest.UserProperty(resp, "status") // its MQTT 5 properties
	assert.Equal(t, "ok", v)
}

func TestAnswer(t *testing.T) {
	srv := brokertest.New(t)
	start(t, srv)
	cases := []struct{ expr, want, status string }{
		{"6 * 7", "42", calc.StatusOK},
		{"1.5 + 2.25", "3.75", calc.StatusOK},
		{"-3 - 4", "-7", calc.StatusOK},
		{"1 / 4", "0.25", calc.StatusOK},
		{"1 / 0", "division by zero", calc.StatusError},
		{"6 x 7", `operator "x" is not one of + - * /`, calc.StatusError},
		{"six * 7", `first operand "six" is not a number`, calc.StatusError},
		{"", `want "A OP B", as "6 * 7"; got ""`, calc.StatusError},
	}
	for _, c := range cases {
		resp := srv.Request(t, calc.RequestTopic, c.expr)
		assert.Equal(t, c.want, string(resp.Payload), "answer to %q", c.expr)
		assert.Equal(t, c.status, status(resp), "status of the answer to %q", c.expr)
		assert.Equal(t, "text/plain", resp.ContentType, "Content Type of the answer to %q", c.expr)
		assert.Equal(t, tern.PayloadUTF8, resp.PayloadFormat, "Payload Format of the answer to %q", c.expr)
		assert.Empty(t, resp.ResponseTopic, "a response has no Response Topic")
	}
}

// TestConcurrentRequestsCorrelated: many requests in flight at once, all
// with one Response Topic, each answered with its own Correlation Data,
// whatever the order of the answers.
func TestConcurrentRequestsCorrelated(t *testing.T) {
	const n = 100
	srv := brokertest.New(t)
	start(t, srv)
	reqs := make([]tern.Message, n)
	for i := range reqs {
		reqs[i] = tern.Message{Topic: calc.RequestTopic, Payload: fmt.Appendf(nil, "%d * %d", i, i), QoS: 1}
	}
	for i, resp := range srv.RequestAll(t, reqs...) {
		assert.Equal(t, fmt.Sprint(i*i), string(resp.Payload), "answer to request %d, %q", i, reqs[i].Payload)
	}
	assert.Len(t, srv.Messages(brokertest.ResponseTopic), n, "one answer per request")
}

// TestOwnResponseTopicAndCorrelationData: the answer goes to the topic the
// requester chose, with its Correlation Data byte for byte, at the QoS of
// the request.
func TestOwnResponseTopicAndCorrelationData(t *testing.T) {
	srv := brokertest.New(t)
	start(t, srv)
	cd := []byte{0, 1, 0xFE, 0xFF}
	resp := srv.RequestMessage(t, tern.Message{
		Topic: calc.RequestTopic, Payload: []byte("2 + 2"), QoS: 0,
		ResponseTopic: "clients/c1/replies", CorrelationData: cd,
	})
	assert.Equal(t, "clients/c1/replies", resp.Topic, "response topic")
	assert.Equal(t, cd, resp.CorrelationData, "Correlation Data")
	assert.Equal(t, "4", string(resp.Payload), "answer")
	assert.Equal(t, byte(0), resp.QoS, "QoS of the answer to a QoS 0 request")
}

// TestRequestWithoutResponseTopicIgnored: a message without a Response
// Topic is not a request; the service publishes nothing for it.
func TestRequestWithoutResponseTopicIgnored(t *testing.T) {
	srv := brokertest.New(t)
	start(t, srv)
	srv.PublishMessage(tern.Message{Topic: calc.RequestTopic, Payload: []byte("1 + 1"), QoS: 1})
	// The service reads requests in order: once the next one is answered,
	// an answer to the first would have been published.
	srv.Request(t, calc.RequestTopic, "2 + 2")
	var topics []string
	for _, m := range srv.Messages("#") {
		topics = append(topics, m.Topic+" "+string(m.Payload))
	}
	assert.Equal(t, []string{"calc/eval 1 + 1", "calc/eval 2 + 2", "brokertest/response 4"}, topics, "messages published")
}

// TestStartFailsWithoutBroker: Start gives up when its context ends.
func TestStartFailsWithoutBroker(t *testing.T) {
	srv := brokertest.New(t)
	u := srv.ServerURL()
	srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	svc, err := calc.Start(ctx, u, "calc")
	if !assert.ErrorIs(t, err, context.DeadlineExceeded, "Start with the broker closed") {
		svc.Close()
	}
}

func TestEval(t *testing.T) {
	cases := []struct {
		expr string
		want float64
		err  string
	}{
		{"6 * 7", 42, ""},
		{"  6   *   7  ", 42, ""},
		{"1e3 / 8", 125, ""},
		{"0.1 + 0.2", 0.1 + 0.2, ""},
		{"1 / 0", 0, "division by zero"},
		{"6*7", 0, `want "A OP B"`},
		{"1 + 2 + 3", 0, `want "A OP B"`},
		{"1 % 2", 0, `operator "%"`},
		{"1 + two", 0, `second operand "two"`},
	}
	for _, c := range cases {
		got, err := calc.Eval(c.expr)
		if c.err != "" {
			assert.ErrorContains(t, err, c.err, "Eval(%q)", c.expr)
			continue
		}
		if assert.NoError(t, err, "Eval(%q)", c.expr) {
			assert.InDelta(t, c.want, got, math.Abs(c.want)*1e-12, "Eval(%q)", c.expr)
		}
	}
}
