// Command willrewrite runs a Tern MQTT broker that rewrites wills with a
// tern.WillInterceptor: each will gets user properties saying which client
// went offline and when, which a device cannot forge, and the wills of
// clients in maintenance are suppressed.
//
//	go run ./examples/willrewrite          # listens on 127.0.0.1:1883
//	mosquitto_sub -V mqttv5 -t 'devices/+/status' -F '%t %p %P' &
//	mosquitto_sub -i dev1 -t x --will-topic devices/dev1/status --will-payload offline
//	# kill -9 the second mosquitto_sub: the first prints the will with
//	# client-id:dev1 offline-at:2025-...
//	mosquitto_pub -t maintenance/dev1 -m on -r      # dev1's next will is suppressed
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
	addr := flag.String("addr", "127.0.0.1:1883", "TCP address clients connect to")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := listeners.TCP(*addr)
	if err != nil {
		slog.Error("listen", "error", err)
		os.Exit(1)
	}
	if err := run(ctx, l); err != nil {
		slog.Error("broker", "error", err)
		os.Exit(1)
	}
}

// run serves clients on l, rewriting their wills, until ctx is done.
func run(ctx context.Context, l net.Listener) error {
	b, err := tern.New(tern.Options{Logger: slog.Default()})
	if err != nil {
		l.Close()
		return err
	}
	wills := newWillStamp()
	if err := b.AddHook(wills); err != nil {
		l.Close()
		return errors.Join(err, b.Close(ctx))
	}
	if _, err := wills.follow(b); err != nil {
		l.Close()
		return errors.Join(err, b.Close(ctx))
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served: // the listener failed
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Close(cctx); err != nil {
		return err
	}
	if serveErr == nil {
		serveErr = <-served
	}
	if errors.Is(serveErr, tern.ErrClosed) {
		return nil
	}
	return serveErr
}
