package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
)

// ResponseTopic is the Response Topic of the requests that Request,
// RequestMessage and RequestAll send, unless the request names its own.
// Every such request uses it, so only the Correlation Data tells their
// responses apart, as when one MQTT 5 requester has many requests in
// flight.
const ResponseTopic = "brokertest/response"

// Request publishes payload to topic at QoS 1 as an MQTT 5 request (section
// 4.10 of the specification): with ResponseTopic as its Response Topic and
// Correlation Data unique to it. It waits, until the timeout, for the
// response, the first message on the Response Topic carrying the same
// Correlation Data, and returns it. It fails t at once if no subscriber
// but the recorder matched the request (the service under test is not
// subscribed yet), and if no response comes in time.
//
// The request is recorded like any message; the response is taken, as
// Next takes a message.
func (s *Server) Request(t testing.TB, topic, payload string) tern.Message {
	t.Helper()
	return s.RequestMessage(t, tern.Message{Topic: topic, Payload: []byte(payload), QoS: 1})
}

// RequestMessage sends req as Request does, with its own QoS, Retain flag
// and properties: an empty ResponseTopic is replaced by ResponseTopic, and
// nil CorrelationData by a value unique to the request. Set a Response
// Topic of your own when the service may only publish to some topics (its
// ACL), and Correlation Data of your own to test how the service copies it.
func (s *Server) RequestMessage(t testing.TB, req tern.Message) tern.Message {
	t.Helper()
	return s.RequestAll(t, req)[0]
}

// RequestAll sends every request in reqs, as RequestMessage does, before it
// waits for any response, and returns the responses in the order of reqs.
// The service under test has them all in flight at once, so a test can
// check that it answers each request with its own Correlation Data, even
// when it answers out of order.
func (s *Server) RequestAll(t testing.TB, reqs ...tern.Message) []tern.Message {
	t.Helper()
	sent := make([]tern.Message, len(reqs))
	seen := make(map[string]int, len(reqs))
	for i, req := range reqs {
		sent[i] = s.sendRequest(t, req)
		key := sent[i].ResponseTopic + "\x00" + string(sent[i].CorrelationData)
		if j, dup := seen[key]; dup {
			require.FailNow(t, fmt.Sprintf("brokertest: requests %d and %d have the same Response Topic and Correlation Data", j, i),
				"%q, %q: their responses could not be told apart", sent[i].ResponseTopic, sent[i].CorrelationData)
		}
		seen[key] = i
	}
	out := make([]tern.Message, len(sent))
	for i, req := range sent {
		cd := req.CorrelationData
		what := fmt.Sprintf("response with correlation data %q (request on %q)", cd, req.Topic)
		out[i] = s.wait(t, req.ResponseTopic, what, func(m tern.Message) bool {
			return bytes.Equal(m.CorrelationData, cd)
		})
	}
	return out
}

// sendRequest completes req's Response Topic and Correlation Data and
// publishes it, failing t if nobody but the recorder will get it.
func (s *Server) sendRequest(t testing.TB, req tern.Message) tern.Message {
	t.Helper()
	if req.ResponseTopic == "" {
		req.ResponseTopic = ResponseTopic
	}
	if req.CorrelationData == nil {
		req.CorrelationData = fmt.Appendf(nil, "brokertest-%d", s.reqs.Add(1))
	}
	switch {
	case req.ResponseTopic == req.Topic:
		require.FailNow(t, fmt.Sprintf("brokertest: request to %q: the Response Topic is the request's own topic", req.Topic),
			"the request would be taken for its own response")
	case strings.HasPrefix(req.ResponseTopic, "$"):
		require.FailNow(t, fmt.Sprintf("brokertest: request to %q: Response Topic %q starts with '$'", req.Topic, req.ResponseTopic),
			"the server does not record '$' topics, so it would never see the response")
	}
	res, err := s.Broker.PublishMessage(context.Background(), req)
	require.NoError(t, err, "brokertest: request to %q", req.Topic)
	others := res.Matched
	if !strings.HasPrefix(req.Topic, "$") {
		others-- // the recorder's "#"
	}
	if others < 1 {
		require.FailNow(t, fmt.Sprintf("brokertest: request to %q: no subscriber but the recorder", req.Topic),
			"is the service under test subscribed to it yet?")
	}
	return req
}
