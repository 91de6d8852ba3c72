// Command server runs Tern as a standalone MQTT 3.1.1 broker, in place of
// Mosquitto.
//
//	go run ./examples/server                       # MQTT on :1883
//	go run ./examples/server -tcp 127.0.0.1:1883 -ws :8080 -http 127.0.0.1:8081
//	go run ./examples/server -tls :8883 -cert server.pem -key server.key
//	go run ./examples/server -auth auth.conf -data /var/lib/tern
//	go run ./examples/server -hash-password < password.txt
//
// Several listeners may be given together; all serve the same broker. It
// logs where it listens and exits cleanly on SIGINT or SIGTERM.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

// config holds the command line.
type config struct {
	tcp, tls, ws, wss, unix, http string
	cert, key, cafile             string
	certUser                      bool
	authFile                      string
	data, durability              string
	hashPassword                  bool
	verbose                       bool
	maxConns                      int
	cpuProfile                    string
	expiry                        time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.tcp, "tcp", ":1883", "MQTT over TCP listen address (empty disables)")
	fs.StringVar(&c.tls, "tls", "", "MQTT over TLS listen address (needs -cert and -key)")
	fs.StringVar(&c.ws, "ws", "", "MQTT over WebSocket listen address (path /mqtt)")
	fs.StringVar(&c.wss, "wss", "", "MQTT over WebSocket with TLS listen address (path /mqtt; needs -cert and -key)")
	fs.StringVar(&c.unix, "unix", "", "MQTT over a unix domain socket at this path")
	fs.StringVar(&c.http, "http", "", "HTTP address for /healthz and /stats")
	fs.StringVar(&c.cert, "cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&c.key, "key", "", "TLS private key file (PEM)")
	fs.StringVar(&c.cafile, "cafile", "", "CA certificates (PEM): require client certificates signed by them")
	fs.BoolVar(&c.certUser, "cert-username", false, "use the client certificate's Common Name as the user name (with -cafile)")
	fs.StringVar(&c.authFile, "auth", "", "users and ACL file (see README, \"Authentication\")")
	fs.BoolVar(&c.hashPassword, "hash-password", false, "read a password on standard input, print its bcrypt hash for -auth files, and exit")
	fs.StringVar(&c.data, "data", "", "directory for persistent state (embedded bbolt file); empty keeps state in memory")
	fs.StringVar(&c.durability, "durability", "sync", "with -data: sync (acknowledge only what is on disk) or async (flush every 100 ms)")
	fs.IntVar(&c.maxConns, "max-connections", 0, "maximum concurrent connections (0: from the file-descriptor limit)")
	fs.DurationVar(&c.expiry, "session-expiry", 0, "remove persistent sessions offline this long (0: never)")
	fs.BoolVar(&c.verbose, "v", false, "debug logging")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile to this file until exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if (c.tls != "" || c.wss != "") && (c.cert == "" || c.key == "") {
		return c, errors.New("-tls and -wss need -cert and -key")
	}
	if c.durability != "sync" && c.durability != "async" {
		return c, fmt.Errorf("-durability must be sync or async, got %q", c.durability)
	}
	return c, nil
}

// run is the whole program, testable without a process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if cfg.hashPassword {
		return hashPassword(stdin, stdout)
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	level := slog.LevelInfo
	if cfg.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	opts := tern.Options{Logger: log, MaxConnections: cfg.maxConns, SessionExpiry: cfg.expiry, UseCertCNAsUsername: cfg.certUser}
	closeStore := func() error { return nil }
	if cfg.data != "" {
		st, err := openStore(cfg.data, cfg.durability)
		if err != nil {
			return err
		}
		opts.Store = st
		closeStore = st.Close
		log.Info("persistent state", "dir", cfg.data, "durability", cfg.durability)
	}
	defer closeStore()
	b, err := tern.New(opts)
	if err != nil {
		return err
	}
	if cfg.authFile != "" {
		f, err := auth.Load(cfg.authFile)
		if err != nil {
			return err
		}
		if err := b.AddHook(f); err != nil {
			return err
		}
		log.Info("authentication and ACL", "file", cfg.authFile)
	}
	errc := make(chan error, 8)
	closers, err := listen(cfg, b, log, errc)
	if err != nil {
		b.Close(context.Background())
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-errc:
	}
	for _, c := range closers {
		c()
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

// hashPassword reads one line from stdin and prints its bcrypt hash.
func hashPassword(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return errors.New("no password on standard input")
	}
	h, err := auth.HashPassword([]byte(pw))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, h)
	return err
}
