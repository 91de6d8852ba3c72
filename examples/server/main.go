// Command server shows how a standalone broker is assembled from the
// library: a durable store, Mosquitto's password and ACL files reloaded on
// SIGHUP, a TCP and a WebSocket listener, and a clean shutdown. The
// complete standalone broker, with every option as a flag, config files
// (Mosquitto's mosquitto.conf too), TLS and logs, is cmd/tern.
//
//	go run ./examples/server -password-file passwd -acl-file acl -data /var/lib/tern
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/storage/bolt"
)

// config is what the flags choose.
type config struct {
	passwordFile, aclFile string // Mosquitto's files; both empty: no authentication
	data                  string // directory of the store; empty: state in memory
}

func main() {
	tcpAddr := flag.String("tcp", "127.0.0.1:1883", "MQTT over TCP listen address")
	wsAddr := flag.String("ws", "127.0.0.1:8080", "MQTT over WebSocket listen address (path /mqtt)")
	var cfg config
	flag.StringVar(&cfg.passwordFile, "password-file", "", "Mosquitto password file (mosquitto_passwd)")
	flag.StringVar(&cfg.aclFile, "acl-file", "", "Mosquitto ACL file")
	flag.StringVar(&cfg.data, "data", "", "directory for persistent state")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	tcp, err := listeners.TCP(*tcpAddr)
	if err != nil {
		slog.Error("listen", "err", err)
		os.Exit(1)
	}
	ws, err := listeners.ListenWebSocket(*wsAddr, nil, listeners.WebSocketOptions{})
	if err != nil {
		tcp.Close()
		slog.Error("listen", "err", err)
		os.Exit(1)
	}
	if err := run(ctx, cfg, []net.Listener{tcp, ws}, hup, slog.Default()); err != nil {
		slog.Error("broker", "err", err)
		os.Exit(1)
	}
}

// run serves MQTT on ls until ctx ends. Each value on hup reloads the
// password and ACL files.
func run(ctx context.Context, cfg config, ls []net.Listener, hup <-chan os.Signal, log *slog.Logger) error {
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	opts := tern.Options{Logger: log}
	if cfg.data != "" {
		if err := os.MkdirAll(cfg.data, 0o750); err != nil {
			closeAll()
			return err
		}
		st, err := bolt.Open(filepath.Join(cfg.data, "tern.db"), bolt.Options{})
		if err != nil {
			closeAll()
			return err
		}
		defer st.Close() // after the broker's Close below
		opts.Store = st
	}
	b, err := tern.New(opts)
	if err != nil {
		closeAll()
		return err
	}
	var files *auth.Mosquitto
	if cfg.passwordFile != "" || cfg.aclFile != "" {
		files, err = auth.LoadMosquitto(auth.MosquittoFiles{PasswordFile: cfg.passwordFile, ACLFile: cfg.aclFile}, auth.Options{Logger: log})
		if err == nil {
			err = b.AddHook(files)
		}
		if err != nil {
			closeAll()
			return errors.Join(err, b.Close(context.Background()))
		}
	}
	errc := make(chan error, len(ls))
	for _, l := range ls {
		log.Info("listening", "addr", l.Addr().String())
		go func() { errc <- b.Serve(l) }()
	}
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case serveErr = <-errc:
			break loop
		case <-hup:
			if files == nil {
				continue
			}
			if err := files.Reload(); err != nil {
				log.Error("reload: keeping the previous files", "err", err)
			} else {
				log.Info("reloaded the password and ACL files")
			}
		}
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
