// Command tern runs Tern as a standalone MQTT broker, in place of
// Mosquitto: it reads Mosquitto's mosquitto.conf, password file and ACL
// file as they are.
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
package main

//go:generate go run ./internal/optdoc/gen -root ../.. -out optdocs_gen.go

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ternmq/tern/auth"
)

// env is what the program takes from its process, replaced in tests.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	reload         <-chan os.Signal // SIGHUP
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, reload: hup})
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
	s, err := parseSettings(args, e.stderr)
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
