// Package alerts is a small IoT backend, the code under test in Tern's
// testing example: it reads the temperatures sensors publish to
// sensors/<id>/temp and publishes "too hot" to alerts/<id> when one is above
// Threshold. It talks to any MQTT broker through Eclipse Paho; its tests run
// it against a broker started by brokertest.
package alerts

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Threshold is the temperature, in degrees Celsius, above which a reading
// raises an alert.
const Threshold = 40.0

const timeout = 10 * time.Second

// Service is the running alerts service.
type Service struct {
	client mqtt.Client
}

// Start connects to the MQTT broker at addr (host:port) and subscribes to
// the sensors' readings. It returns once the subscription is in place, so a
// reading published after Start returns is seen.
func Start(addr string) (*Service, error) {
	s := &Service{}
	// A persistent session (clean session off) keeps the subscription, and
	// the readings sent meanwhile, across reconnections.
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID("alerts").SetCleanSession(false).SetConnectTimeout(timeout)
	s.client = mqtt.NewClient(opts)
	if err := wait(s.client.Connect()); err != nil {
		return nil, fmt.Errorf("alerts: connect to %s: %w", addr, err)
	}
	const filter = "sensors/+/temp"
	tok := s.client.Subscribe(filter, 1, s.onReading)
	err := wait(tok)
	if err == nil && tok.(*mqtt.SubscribeToken).Result()[filter] == 0x80 {
		err = errors.New("refused by the broker")
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("alerts: subscribe to %s: %w", filter, err)
	}
	return s, nil
}

// Close disconnects from the broker.
func (s *Service) Close() { s.client.Disconnect(250) }

// onReading handles one reading, on sensors/<id>/temp.
func (s *Service) onReading(c mqtt.Client, m mqtt.Message) {
	id := strings.Split(m.Topic(), "/")[1]
	temp, err := strconv.ParseFloat(strings.TrimSpace(string(m.Payload())), 64)
	if err != nil {
		slog.Warn("alerts: unreadable temperature", "topic", m.Topic(), "payload", string(m.Payload()))
		return
	}
	if temp > Threshold {
		// Not waited for: a handler that blocks holds up Paho's delivery
		// of every other message.
		c.Publish("alerts/"+id, 1, false, "too hot")
	}
}

// wait waits for a Paho token, with a timeout.
func wait(tok mqtt.Token) error {
	if !tok.WaitTimeout(timeout) {
		return errors.New("timed out")
	}
	return tok.Error()
}
