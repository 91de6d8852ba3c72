// Command server runs Tern as a standalone MQTT 3.1.1 broker.
//
//	go run ./examples/server              # listens on :1883
//	go run ./examples/server -tcp :1884   # another address
//
// It logs where it listens and exits cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	tcpAddr := fs.String("tcp", ":1883", "TCP listen address (empty disables)")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	b, err := tern.New(tern.Options{Logger: log})
	if err != nil {
		return err
	}
	errc := make(chan error, 4)
	if *tcpAddr != "" {
		l, err := listeners.TCP(*tcpAddr)
		if err != nil {
			return err
		}
		log.Info("listening", "transport", "tcp", "addr", l.Addr().String())
		go func() { errc <- b.Serve(l) }()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-errc:
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(cctx); err != nil {
		return err
	}
	if serveErr != nil && !errors.Is(serveErr, tern.ErrClosed) {
		return serveErr
	}
	return nil
}
