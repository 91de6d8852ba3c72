package main

import (
	"context"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

const timeout = 5 * time.Second

// TestRun runs the application on a free port with a device (Eclipse Paho)
// connected over TCP: the device receives the heartbeat, the application
// receives the device's report, and cancelling the context stops it cleanly.
func TestRun(t *testing.T) {
	l, err := listeners.TCP("127.0.0.1:0")
	require.NoError(t, err, "listen")
	reports := make(chan tern.Message, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, l, 10*time.Millisecond, func(m tern.Message, _ tern.Client) { reports <- m }) }()

	device := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + l.Addr().String()).
		SetClientID("42").SetAutoReconnect(false).SetConnectTimeout(timeout))
	wait(t, device.Connect())
	beats := make(chan string, 1)
	wait(t, device.Subscribe("server/heartbeat", 0, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case beats <- string(m.Payload()):
		default: // one is enough
		}
	}))
	select {
	case beat := <-beats:
		_, err := time.Parse(time.RFC3339, beat)
		assert.NoError(t, err, "heartbeat %q is not an RFC 3339 time", beat)
	case <-time.After(timeout):
		require.FailNow(t, "no heartbeat")
	}

	wait(t, device.Publish("devices/42/status", 1, false, "online"))
	select {
	case m := <-reports:
		assert.Equal(t, "devices/42/status", m.Topic, "report's topic")
		assert.Equal(t, "online", string(m.Payload), "report's payload")
	case <-time.After(timeout):
		require.FailNow(t, "the application got no report")
	}
	device.Disconnect(250)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "run")
	case <-time.After(timeout):
		require.FailNow(t, "run did not return after cancel")
	}
}

func wait(t *testing.T, tok mqtt.Token) {
	t.Helper()
	require.True(t, tok.WaitTimeout(timeout), "paho: timed out")
	require.NoError(t, tok.Error(), "paho")
}
