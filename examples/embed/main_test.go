package main

import (
	"context"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

const timeout = 5 * time.Second

// TestRun runs the application on a free port with a device (Eclipse Paho)
// connected over TCP: the device receives the heartbeat, the application
// receives the device's report, and cancelling the context stops it cleanly.
func TestRun(t *testing.T) {
	l, err := listeners.TCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan tern.Message, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, l, 10*time.Millisecond, func(m tern.Message) { reports <- m }) }()

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
		if _, err := time.Parse(time.RFC3339, beat); err != nil {
			t.Errorf("heartbeat %q: %v", beat, err)
		}
	case <-time.After(timeout):
		t.Fatal("no heartbeat")
	}

	wait(t, device.Publish("devices/42/status", 1, false, "online"))
	select {
	case m := <-reports:
		if m.Topic != "devices/42/status" || string(m.Payload) != "online" {
			t.Errorf("report %s %q, want devices/42/status online", m.Topic, m.Payload)
		}
	case <-time.After(timeout):
		t.Fatal("the application got no report")
	}
	device.Disconnect(250)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("run did not return after cancel")
	}
}

func wait(t *testing.T, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(timeout) {
		t.Fatal("paho: timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho: %v", err)
	}
}
