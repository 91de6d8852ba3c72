// Package calc is a small MQTT 5 service that answers requests, the code
// under test in Tern's request/response example. A requester publishes an
// arithmetic expression, "A OP B" (OP one of + - * /), to RequestTopic with
// a Response Topic and Correlation Data (section 4.10 of MQTT 5); the
// service publishes the result to that Response Topic with the same
// Correlation Data, so that the requester can tell which of its requests
// it answers. Requests are evaluated concurrently: answers may come out of
// order.
//
// The service talks to any MQTT 5 broker through paho.golang's autopaho,
// which reconnects after a lost connection; its tests run it against a
// broker started by brokertest.
package calc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// RequestTopic is where requesters publish expressions.
const RequestTopic = "calc/eval"

// The user property "status" of each response is StatusOK, with the
// result as payload, or StatusError, with the reason as payload.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// maxInFlight bounds the requests evaluated at once; past it, the service
// stops reading requests until one is answered.
const maxInFlight = 16

const timeout = 10 * time.Second

// Service is the running calculator.
type Service struct {
	cm     atomic.Pointer[autopaho.ConnectionManager] // set before the first connection is used
	ctx    context.Context                            // the connection's; Close ends it
	cancel context.CancelFunc
	slots  chan struct{} // one per request in flight
	ready  chan struct{} // closed at the first subscription
	once   sync.Once

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup // requests in flight and subscriptions
}

// Start connects to the MQTT broker at server (as autopaho takes it:
// mqtt://host:port, tls://host:port, ws://...) with client identifier id,
// and subscribes to RequestTopic. It returns once the subscription is in
// place, so a request published after Start returns is answered, or with
// an error when ctx is done first. After a lost connection the service
// reconnects and subscribes again.
func Start(ctx context.Context, server *url.URL, id string) (*Service, error) {
	s := &Service{slots: make(chan struct{}, maxInFlight), ready: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(s.ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{server},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                timeout,
		// OnConnectionUp must not block: subscribe on a goroutine.
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			s.cm.Store(cm) // NewConnection may not have returned yet
			s.spawn(s.subscribe)
		},
		ClientConfig: paho.ClientConfig{
			ClientID:          id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){s.onRequest},
		},
	})
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("calc: connect to %s: %w", server, err)
	}
	s.cm.Store(cm)
	select {
	case <-s.ready:
		return s, nil
	case <-ctx.Done():
		s.cancel() // ends a subscription in flight at once
		s.Close()
		return nil, fmt.Errorf("calc: connect to %s and subscribe to %s: %w", server, RequestTopic, ctx.Err())
	}
}

// Close stops taking requests, waits for the answers in flight to go out
// (each for at most 10 s), and disconnects.
func (s *Service) Close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = s.cm.Load().Disconnect(ctx)
	s.cancel()
}

// spawn runs fn on a goroutine of its own unless the service is closing.
func (s *Service) spawn(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// subscribe subscribes to RequestTopic on a new connection.
func (s *Service) subscribe() {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	ack, err := s.cm.Load().Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: RequestTopic, QoS: 1}}})
	if err == nil && len(ack.Reasons) == 1 && ack.Reasons[0] >= 0x80 {
		err = fmt.Errorf("refused with reason code 0x%02X", ack.Reasons[0])
	}
	if err != nil {
		// The connection is gone or the broker refused: autopaho
		// reconnects, and the next connection subscribes again.
		slog.Warn("calc: subscribe", "topic", RequestTopic, "error", err)
		return
	}
	s.once.Do(func() { close(s.ready) })
}

// onRequest takes one request from paho.golang, which delivers them in
// order on one goroutine, and evaluates it on a goroutine of its own.
func (s *Service) onRequest(r paho.PublishReceived) (bool, error) {
	req := r.Packet
	if req.Topic != RequestTopic {
		return false, nil
	}
	if req.Properties == nil || req.Properties.ResponseTopic == "" {
		// Not a request: nobody to answer.
		slog.Debug("calc: message without a Response Topic ignored", "payload", string(req.Payload))
		return true, nil
	}
	select {
	case s.slots <- struct{}{}:
	case <-s.ctx.Done():
		return true, nil
	}
	if !s.spawn(func() { defer func() { <-s.slots }(); s.answer(req) }) {
		<-s.slots
	}
	return true, nil
}

// answer evaluates req and publishes the result to its Response Topic
// with its Correlation Data, at the request's QoS.
func (s *Service) answer(req *paho.Publish) {
	status, result := StatusOK, ""
	v, err := Eval(string(req.Payload))
	if err != nil {
		status, result = StatusError, err.Error()
	} else {
		result = strconv.FormatFloat(v, 'g', -1, 64)
	}
	utf8 := byte(1)
	resp := &paho.Publish{
		Topic:   req.Properties.ResponseTopic,
		QoS:     req.QoS,
		Payload: []byte(result),
		Properties: &paho.PublishProperties{
			CorrelationData: req.Properties.CorrelationData,
			ContentType:     "text/plain",
			PayloadFormat:   &utf8,
			User:            paho.UserProperties{{Key: "status", Value: status}},
		},
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	if _, err := s.cm.Load().Publish(ctx, resp); err != nil {
		slog.Warn("calc: answer", "topic", resp.Topic, "error", err)
	}
}

// Eval computes "A OP B": two decimal numbers and one of + - * /, separated
// by spaces.
func Eval(expr string) (float64, error) {
	f := strings.Fields(expr)
	if len(f) != 3 {
		return 0, fmt.Errorf("want \"A OP B\", as \"6 * 7\"; got %q", expr)
	}
	a, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("first operand %q is not a number", f[0])
	}
	b, err := strconv.ParseFloat(f[2], 64)
	if err != nil {
		return 0, fmt.Errorf("second operand %q is not a number", f[2])
	}
	switch f[1] {
	case "+":
		return a + b, nil
	case "-":
		return a - b, nil
	case "*":
		return a * b, nil
	case "/":
		if b == 0 {
			return 0, errors.New("division by zero")
		}
		return a / b, nil
	}
	return 0, fmt.Errorf("operator %q is not one of + - * /", f[1])
}
