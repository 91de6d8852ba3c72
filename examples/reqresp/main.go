// Command reqresp runs the calculator service of Tern's request/response
// example against an MQTT 5 broker; the point of the example is its test,
// calc/calc_test.go, which runs the same code against a broker started by
// brokertest and sends it requests.
//
//	go run ./cmd/tern &                                # or any MQTT 5 broker
//	go run ./examples/reqresp -broker mqtt://127.0.0.1:1883
//	mosquitto_rr -V mqttv5 -t calc/eval -e replies/me -m '6 * 7'   # 42
package main

import (
	"context"
	"flag"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ternmq/tern/examples/reqresp/calc"
)

func main() {
	broker := flag.String("broker", "mqtt://127.0.0.1:1883", "MQTT 5 broker URL (mqtt://, tls://, ws://, wss://)")
	id := flag.String("id", "calc", "MQTT client identifier")
	flag.Parse()
	if err := run(*broker, *id); err != nil {
		slog.Error("reqresp", "error", err)
		os.Exit(1)
	}
}

func run(broker, id string) error {
	u, err := url.Parse(broker)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	svc, err := calc.Start(start, u, id)
	if err != nil {
		return err
	}
	defer svc.Close()
	slog.Info("answering requests", "topic", calc.RequestTopic, "broker", broker)
	<-ctx.Done()
	return nil
}
