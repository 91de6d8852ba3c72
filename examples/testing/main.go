// Command testing runs the alerts service of Tern's testing example against
// an MQTT broker; the point of the example is its test, alerts/alerts_test.go,
// which runs the same code against a broker started by brokertest.
//
//	go run ./examples/embed &                        # or any MQTT broker
//	go run ./examples/testing -broker 127.0.0.1:1883
//	mosquitto_sub -t 'alerts/#' &
//	mosquitto_pub -t sensors/1/temp -m 99            # alerts/1: too hot
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ternmq/tern/examples/testing/alerts"
)

func main() {
	broker := flag.String("broker", "127.0.0.1:1883", "MQTT broker address (host:port)")
	flag.Parse()
	svc, err := alerts.Start(*broker)
	if err != nil {
		slog.Error("start", "error", err)
		os.Exit(1)
	}
	defer svc.Close()
	slog.Info("watching sensors/+/temp", "broker", *broker, "threshold", alerts.Threshold)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}
