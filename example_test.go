package tern_test

import (
	"context"
	"fmt"
	"log"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

// Embed a broker: serve MQTT clients on TCP and talk to them from code.
func Example() {
	b, err := tern.New(tern.Options{})
	if err != nil {
		log.Fatal(err)
	}
	l, err := listeners.TCP("127.0.0.1:0") // ":1883" in production
	if err != nil {
		log.Fatal(err)
	}
	go b.Serve(l)
	defer b.Close(context.Background())

	// Receive what devices (or the application itself) publish.
	got := make(chan tern.Message, 1)
	cancel, err := b.Subscribe("sensors/+/temp", tern.SubscribeOptions{QoS: 1}, func(m tern.Message, from tern.Client) { got <- m })
	if err != nil {
		log.Fatal(err)
	}
	defer cancel()

	// Publish to every subscriber, network clients included.
	err = b.Publish(context.Background(), "sensors/42/temp", []byte("21.5"), 1, false)
	if err != nil {
		log.Fatal(err)
	}
	m := <-got
	fmt.Printf("%s = %s\n", m.Topic, m.Payload)
	// Output: sensors/42/temp = 21.5
}

// passwordAuth is an Authenticator that accepts one user name and password.
type passwordAuth struct{ user, password string }

func (a passwordAuth) Authenticate(_ context.Context, c tern.ConnectInfo) error {
	if c.Username != a.user || string(c.Password) != a.password {
		return tern.ErrBadCredentials // CONNACK 0x04
	}
	return nil
}

// Check user names and passwords with a hook of your own.
func ExampleAuthenticator() {
	b, err := tern.New(tern.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.AddHook(passwordAuth{user: "device", password: "s3cret"}); err != nil {
		log.Fatal(err)
	}
	l, err := listeners.TCP("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go b.Serve(l)
	defer b.Close(context.Background())

	// Any MQTT client will do; this one is Eclipse Paho.
	for _, password := range []string{"guess", "s3cret"} {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + l.Addr().String()).
			SetProtocolVersion(4).SetClientID("sensor-1").
			SetUsername("device").SetPassword(password).SetAutoReconnect(false)
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		tok.Wait()
		fmt.Printf("password %q: %v\n", password, tok.Error())
		if tok.Error() == nil {
			c.Disconnect(100)
		}
	}
	// Output:
	// password "guess": bad user name or password
	// password "s3cret": <nil>
}
