// Command embed is an application with a Tern MQTT broker inside it: devices
// connect to it over TCP, and the application publishes to them and consumes
// what they send from its own code, without a second daemon.
//
//	go run ./examples/embed                 # listens on 127.0.0.1:1883
//	mosquitto_sub -t server/heartbeat       # a heartbeat every second
//	mosquitto_pub -t devices/42/status -m online   # logged by the application
//
// It exits cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "TCP address devices connect to")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := listeners.TCP(*addr)
	if err != nil {
		slog.Error("listen", "error", err)
		os.Exit(1)
	}
	logReport := func(m tern.Message, from tern.Client) {
		slog.Info("device report", "client", from.ID, "topic", m.Topic, "payload", string(m.Payload))
	}
	if err := run(ctx, l, time.Second, logReport); err != nil {
		slog.Error("broker", "error", err)
		os.Exit(1)
	}
}

// run serves devices on l until ctx is done. Every interval it publishes the
// time to "server/heartbeat", and it hands what devices publish to
// "devices/<id>/status" to report.
func run(ctx context.Context, l net.Listener, interval time.Duration, report tern.Handler) error {
	b, err := tern.New(tern.Options{Logger: slog.Default()})
	if err != nil {
		l.Close()
		return err
	}
	// Consume from code: the handler runs on its own goroutine, in order.
	if _, err := b.Subscribe("devices/+/status", tern.SubscribeOptions{QoS: 1}, report); err != nil {
		l.Close()
		return errors.Join(err, b.Close(ctx))
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()

	tick := time.NewTicker(interval)
	defer tick.Stop()
	var serveErr error
loop:
	for {
		select {
		case now := <-tick.C:
			// Publish from code, to every device subscribed to the topic.
			beat := []byte(now.UTC().Format(time.RFC3339))
			if err := b.Publish(ctx, "server/heartbeat", beat, 0, false); err != nil {
				slog.Warn("heartbeat", "error", err)
			}
		case <-ctx.Done():
			break loop
		case serveErr = <-served: // the listener failed
			break loop
		}
	}
	slog.Info("shutting down")
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Close(cctx); err != nil {
		return err
	}
	if serveErr == nil {
		serveErr = <-served // tern.ErrClosed, now that the broker is closed
	}
	if errors.Is(serveErr, tern.ErrClosed) {
		return nil
	}
	return serveErr
}
