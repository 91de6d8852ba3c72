// Command auth runs a Tern MQTT broker with its own authentication and ACL,
// written as a small Go type: each device connects with its client identifier
// and its token as password, and may only publish and subscribe under
// devices/<client id>/.
//
//	TOKENS="dev1=s3cret,dev2=hunter2" go run ./examples/auth
//	mosquitto_pub -i dev1 -u dev1 -P s3cret -t devices/dev1/temp -m 21   # accepted
//	mosquitto_pub -i dev1 -u dev1 -P wrong  -t devices/dev1/temp -m 21   # refused
//
// The tokens come from the environment rather than the command line, which
// other users of the machine can read. A real system would look them up in
// its database instead: Authenticate receives a context for that.
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

// tokenAuth maps client identifiers to their tokens. It implements
// tern.Authenticator, tern.PublishAuthorizer and tern.SubscribeAuthorizer.
type tokenAuth map[string]string

// Authenticate accepts a CONNECT whose password is its client's token. The
// user name is not checked.
func (a tokenAuth) Authenticate(_ context.Context, c tern.ConnectInfo) error {
	token, ok := a[c.ClientID]
	// Compare in constant time, so that the time an answer takes does not
	// tell how much of a guessed token was right.
	if !ok || token == "" || subtle.ConstantTimeCompare(c.Password, []byte(token)) != 1 {
		return tern.ErrBadCredentials // CONNACK 0x04
	}
	return nil
}

// AuthorizePublish drops a device's PUBLISH outside its own subtree.
func (a tokenAuth) AuthorizePublish(_ context.Context, c tern.Client, m tern.Message) error {
	return allow(c, m.Topic)
}

// AuthorizeSubscribe refuses a device's filter outside its own subtree
// (SUBACK 0x80). A filter under devices/<id>/ only matches topics there.
func (a tokenAuth) AuthorizeSubscribe(_ context.Context, c tern.Client, filter string, _ byte) error {
	return allow(c, filter)
}

// allow lets the application (Broker.Publish) use any topic, and a device
// only those under devices/<its client id>/. parseTokens keeps '+', '#' and
// '/' out of client identifiers, so the prefix cannot widen into a wildcard.
func allow(c tern.Client, topic string) error {
	if c.Internal || strings.HasPrefix(topic, "devices/"+c.ID+"/") {
		return nil
	}
	return tern.ErrNotAuthorized
}

// parseTokens reads "id=token,id=token".
func parseTokens(s string) (tokenAuth, error) {
	a := tokenAuth{}
	for pair := range strings.SplitSeq(s, ",") {
		id, token, ok := strings.Cut(strings.TrimSpace(pair), "=")
		switch {
		case !ok || id == "" || token == "":
			return nil, fmt.Errorf("token %q: want id=token", pair)
		case strings.ContainsAny(id, "+#/"):
			return nil, fmt.Errorf("token %q: a device id cannot contain '+', '#' or '/'", pair)
		case a[id] != "":
			return nil, fmt.Errorf("token %q: device %s is listed twice", pair, id)
		}
		a[id] = token
	}
	return a, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "TCP address devices connect to")
	flag.Parse()
	if err := run(*addr, os.Getenv("TOKENS")); err != nil {
		slog.Error("auth", "error", err)
		os.Exit(1)
	}
}

func run(addr, tokens string) error {
	auth, err := parseTokens(tokens)
	if err != nil {
		return fmt.Errorf("TOKENS: %w", err)
	}
	b, err := tern.New(tern.Options{Logger: slog.Default()})
	if err != nil {
		return err
	}
	if err := b.AddHook(auth); err != nil {
		return err
	}
	l, err := listeners.TCP(addr)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served: // the listener failed
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(serveErr, b.Close(cctx))
}
