// Package cli is the tern command (cmd/tern): a standalone MQTT broker in
// place of Mosquitto, reading Mosquitto's mosquitto.conf, password file
// and ACL file as they are. It lives here, importable, so that another
// build of the command (the clustered one, module cluster/nats) adds its
// flags and options through an Extension and is otherwise the same
// program.
//
//	tern                                   # MQTT on :1883, no authentication
//	tern -c /etc/mosquitto/mosquitto.conf  # Mosquitto's configuration
//	tern -config /etc/tern.conf            # Tern's: the flags, one per line
//	tern -tcp 127.0.0.1:1883 -ws :8080 -http 127.0.0.1:8081
//	tern -tls :8883 -cert server.pem -key server.key -max-packet-size 4194304
//	tern -password-file passwd -acl-file acl -data /var/lib/tern
//	tern passwd [-c | -D] [-b] FILE USER [PASSWORD]   # as mosquitto_passwd
//	tern -h                                # every flag and config key
//
// Every field of tern.Options, listeners.TLSOptions,
// listeners.WebSocketOptions and bolt.Options is a flag (-max-packet-size)
// and a -config key (max_packet_size). SIGHUP reloads the users and ACL,
// the TLS certificates and the log file without dropping connections;
// SIGINT and SIGTERM stop the broker cleanly.
package cli

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
	"strings"
	"syscall"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
)

// env is what the program takes from its process, replaced in tests.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	reload         <-chan os.Signal // SIGHUP
	ext            *Extension       // nil: the plain build
}

// Extension adds flags to the program and sets the broker options they
// ask for: the clustered build of tern (module cluster/nats, its
// cmd/tern) sets Options.Cluster this way. Its flags are -config keys too.
type Extension struct {
	// Title heads the extension's flags in tern -h.
	Title string
	// Flags registers the extension's flags on fs and returns their
	// names, in the order tern -h lists them.
	Flags func(fs *flag.FlagSet) []string
	// Configure sets, once the flags and files are read, what they ask
	// for in o; log is the program's logger. An error stops the program.
	Configure func(o *tern.Options, log *slog.Logger) error
}

// Main runs the program on the process's arguments and exits when it
// ends: with status 1 and the error on standard error if it failed. ext
// is nil for the plain build.
func Main(ext *Extension) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, reload: hup, ext: ext})
	if errors.Is(err, errHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tern:", err)
		os.Exit(1)
	}
}

// run is the whole program, testable without a process.
func run(ctx context.Context, args []string, e env) error {
	if len(args) > 0 && args[0] == "passwd" {
		return passwd(args[1:], e)
	}
	s, err := parseSettingsWith(args, e.stderr, e.ext)
	if err != nil {
		return err
	}
	if s.hashPassword {
		return hashPassword(e.stdin, e.stdout)
	}
	return serve(ctx, s, e)
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
