// Command pahoclient checks a running MQTT 3.1.1 broker with the Eclipse
// Paho Go client: QoS 0, 1 and 2, a retained message, a will published when
// a client's connection drops, and a persistent session that keeps a QoS 1
// message for its client while it is offline. testdata/interop/run.sh runs
// it against the Tern server over TCP and over WebSocket:
//
//	go build -o pahoclient ./testdata/interop/pahoclient
//	./pahoclient -url tcp://127.0.0.1:1883
//	./pahoclient -url ws://127.0.0.1:8080/mqtt
//
// It prints one PASS or FAIL line per check and exits 1 if any failed.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := flag.String("url", "", "broker URL: tcp://host:port or ws://host:port/mqtt")
	timeout := flag.Duration("timeout", 10*time.Second, "time limit of each check")
	flag.Parse()
	if *broker == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: pahoclient -url tcp://host:port|ws://host:port/mqtt [-timeout 10s]")
		os.Exit(2)
	}
	u, err := url.Parse(*broker)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pahoclient:", err)
		os.Exit(2)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	e := &env{url: *broker, scheme: u.Scheme, timeout: *timeout, run: hex.EncodeToString(rnd[:])}
	checks := []struct {
		name string
		fn   func(*env) error
	}{
		{"QoS 0", func(e *env) error { return e.qos(0) }},
		{"QoS 1", func(e *env) error { return e.qos(1) }},
		{"QoS 2", func(e *env) error { return e.qos(2) }},
		{"retained message", (*env).retained},
		{"will on a dropped connection", (*env).will},
		{"persistent session across a reconnect", (*env).persistent},
	}
	failed := 0
	for _, c := range checks {
		done := make(chan error, 1)
		go func() { done <- c.fn(e) }()
		select {
		case err = <-done:
		case <-time.After(3 * *timeout):
			err = errors.New("timed out")
		}
		if err != nil {
			failed++
			fmt.Printf("FAIL paho %s: %s: %v\n", e.scheme, c.name, err)
		} else {
			fmt.Printf("PASS paho %s: %s\n", e.scheme, c.name)
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

// env is what every check needs: the broker, a time limit and a name for
// this run, so that topics and client identifiers do not collide.
type env struct {
	url, scheme string
	timeout     time.Duration
	run         string
}

func (e *env) topic(name string) string { return "interop/paho/" + e.run + "/" + name }

// options returns client options that never reconnect on their own, so that
// a broker that drops a client makes the check fail.
func (e *env) options(id string, clean bool) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().
		AddBroker(e.url).
		SetClientID("paho-" + id + "-" + e.run).
		SetProtocolVersion(4).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(e.timeout).
		SetWriteTimeout(e.timeout).
		SetKeepAlive(30 * time.Second)
}

func (e *env) wait(what string, tok mqtt.Token) error {
	if !tok.WaitTimeout(e.timeout) {
		return fmt.Errorf("%s: no answer within %v", what, e.timeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (e *env) connect(o *mqtt.ClientOptions) (mqtt.Client, error) {
	c := mqtt.NewClient(o)
	if err := e.wait("connect", c.Connect()); err != nil {
		return nil, err
	}
	return c, nil
}

// message is what a subscriber saw.
type message struct {
	topic, payload string
	qos            byte
	retained       bool
}

// inbox subscribes c to topic at qos and returns where the messages go.
func (e *env) inbox(c mqtt.Client, topic string, qos byte) (chan message, error) {
	ch := make(chan message, 16)
	tok := c.Subscribe(topic, qos, func(_ mqtt.Client, m mqtt.Message) {
		ch <- message{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()}
	})
	if err := e.wait("subscribe "+topic, tok); err != nil {
		return nil, err
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		if got := st.Result()[topic]; got != qos {
			return nil, fmt.Errorf("SUBACK granted %d for %s, want %d", got, topic, qos)
		}
	}
	return ch, nil
}

func (e *env) expect(ch chan message, want message) error {
	select {
	case m := <-ch:
		if m != want {
			return fmt.Errorf("got %+v, want %+v", m, want)
		}
		return nil
	case <-time.After(e.timeout):
		return fmt.Errorf("no message %q on %s within %v", want.payload, want.topic, e.timeout)
	}
}

// qos publishes at qos to a subscription at qos.
func (e *env) qos(qos byte) error {
	topic := e.topic(fmt.Sprintf("qos%d", qos))
	sub, err := e.connect(e.options(fmt.Sprintf("sub%d", qos), true))
	if err != nil {
		return err
	}
	defer sub.Disconnect(100)
	ch, err := e.inbox(sub, topic, qos)
	if err != nil {
		return err
	}
	pub, err := e.connect(e.options(fmt.Sprintf("pub%d", qos), true))
	if err != nil {
		return err
	}
	defer pub.Disconnect(100)
	payload := fmt.Sprintf("hello at QoS %d", qos)
	if err := e.wait("publish", pub.Publish(topic, qos, false, payload)); err != nil {
		return err
	}
	return e.expect(ch, message{topic, payload, qos, false})
}

// retained: a retained message reaches a later subscriber with the retain
// flag, and an empty retained message clears it.
func (e *env) retained() error {
	topic := e.topic("retained")
	pub, err := e.connect(e.options("retainer", true))
	if err != nil {
		return err
	}
	defer pub.Disconnect(100)
	if err := e.wait("publish retained", pub.Publish(topic, 1, true, "kept")); err != nil {
		return err
	}
	sub, err := e.connect(e.options("late", true))
	if err != nil {
		return err
	}
	defer sub.Disconnect(100)
	ch, err := e.inbox(sub, topic, 1)
	if err != nil {
		return err
	}
	if err := e.expect(ch, message{topic, "kept", 1, true}); err != nil {
		return err
	}
	return e.wait("clear retained", pub.Publish(topic, 1, true, ""))
}

// will: a client whose connection drops without DISCONNECT has its will
// published to a subscriber.
func (e *env) will() error {
	topic := e.topic("will")
	watcher, err := e.connect(e.options("watcher", true))
	if err != nil {
		return err
	}
	defer watcher.Disconnect(100)
	ch, err := e.inbox(watcher, topic, 1)
	if err != nil {
		return err
	}
	// Keep the network connection, to drop it under the client's feet.
	var mu sync.Mutex
	var conn net.Conn
	o := e.options("mortal", true).
		SetWill(topic, "gone", 1, false).
		SetConnectionLostHandler(func(mqtt.Client, error) {}).
		SetCustomOpenConnectionFn(func(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
			var c net.Conn
			var err error
			switch u.Scheme {
			case "ws", "wss":
				c, err = mqtt.NewWebsocket(u.String(), o.TLSConfig, e.timeout, o.HTTPHeaders, o.WebsocketOptions)
			default:
				c, err = net.DialTimeout("tcp", u.Host, e.timeout)
			}
			mu.Lock()
			conn = c
			mu.Unlock()
			return c, err
		})
	mortal, err := e.connect(o)
	if err != nil {
		return err
	}
	defer mortal.Disconnect(0)
	mu.Lock()
	conn.Close()
	mu.Unlock()
	return e.expect(ch, message{topic, "gone", 1, false})
}

// persistent: a client with a persistent session subscribes and goes away;
// a QoS 1 message published meanwhile is delivered when it comes back, and
// CONNACK says the session was present.
func (e *env) persistent() error {
	topic := e.topic("persistent")
	got := make(chan message, 16)
	o := e.options("durable", false).SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		got <- message{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()}
	})
	first, err := e.connect(o)
	if err != nil {
		return err
	}
	if _, err := e.inbox(first, topic, 1); err != nil {
		return err
	}
	first.Disconnect(100)

	pub, err := e.connect(e.options("offline-pub", true))
	if err != nil {
		return err
	}
	defer pub.Disconnect(100)
	if err := e.wait("publish while offline", pub.Publish(topic, 1, false, "kept for you")); err != nil {
		return err
	}

	again := mqtt.NewClient(o)
	tok := again.Connect()
	if err := e.wait("reconnect", tok); err != nil {
		return err
	}
	defer func() {
		again.Disconnect(100)
		// End the session, so that the broker keeps nothing of this run.
		if c, err := e.connect(e.options("durable", true)); err == nil {
			c.Disconnect(100)
		}
	}()
	if ct, ok := tok.(*mqtt.ConnectToken); ok && !ct.SessionPresent() {
		return errors.New("CONNACK session present 0 on reconnect, want 1")
	}
	if err := e.expect(got, message{topic, "kept for you", 1, false}); err != nil {
		return fmt.Errorf("queued message: %w", err)
	}
	return nil
}
