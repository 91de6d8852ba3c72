// Command enhancedauth shows MQTT 5 enhanced authentication with Tern: a
// broker whose clients authenticate with SCRAM-SHA-256, a challenge and
// response over AUTH packets (package scram: a tern.EnhancedAuthenticator
// on the broker's side, a paho.golang AuthHandler on the client's), and a
// client that connects with a wrong and then the right password, checks
// the broker's signature, and re-authenticates.
//
//	go run ./examples/enhancedauth
//
// The tests, scram/scram_test.go, run the same code against brokertest.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/examples/enhancedauth/scram"
	"github.com/ternmq/tern/listeners"
)

const timeout = 10 * time.Second

func main() {
	if err := run(os.Stdout); err != nil {
		slog.Error("enhancedauth", "error", err)
		os.Exit(1)
	}
}

// run starts the broker on a loopback port, connects the client and tells
// w what happened.
func run(w io.Writer) error {
	auth := scram.NewServer()
	creds, err := scram.NewCredentials("s3cret", scram.MinIterations)
	if err != nil {
		return err
	}
	auth.SetUser("alice", creds) // the broker keeps derived keys, not the password
	b, err := tern.New(tern.Options{})
	if err != nil {
		return err
	}
	if err := b.AddHook(auth); err != nil {
		return err
	}
	l, err := listeners.TCP("127.0.0.1:0")
	if err != nil {
		return err
	}
	go b.Serve(l)
	defer b.Close(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, password := range []string{"guess", "s3cret"} {
		sc := &scram.Client{User: "alice", Password: password}
		c, ack, err := connect(ctx, l.Addr().String(), sc)
		if err != nil {
			if ack == nil {
				return err
			}
			reason := ""
			if ack.Properties != nil {
				reason = ack.Properties.ReasonString
			}
			fmt.Fprintf(w, "password %q: refused, reason code 0x%02X (%s)\n", password, ack.ReasonCode, reason)
			continue
		}
		if err := sc.Verify(ack.Properties.AuthData); err != nil {
			return err
		}
		fmt.Fprintf(w, "password %q: connected, the broker's signature verified\n", password)

		resp, err := c.Authenticate(ctx, sc.Reauth())
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "re-authentication: reason code 0x%02X\n", resp.ReasonCode)
		if err := c.Disconnect(&paho.Disconnect{}); err != nil {
			return err
		}
	}
	return nil
}

// connect dials addr and connects a paho.golang client that authenticates
// with sc. The CONNACK is returned when there is one, refusals included.
func connect(ctx context.Context, addr string, sc *scram.Client) (*paho.Client, *paho.Connack, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, AuthHandler: sc})
	ack, err := c.Connect(ctx, &paho.Connect{
		ClientID: "sensor-1", KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: sc.User, // the SCRAM user, for the broker's ACL hooks
		Properties: &paho.ConnectProperties{AuthMethod: scram.Method, AuthData: sc.First()},
	})
	return c, ack, err
}
