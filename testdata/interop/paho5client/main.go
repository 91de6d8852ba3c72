// Command paho5client checks a running MQTT 5 broker with the Eclipse Paho
// Go client for MQTT 5 (paho.golang and its autopaho connection manager):
// the properties of a message round trip (user properties in order,
// response topic, correlation data, content type, payload format, message
// expiry, and the subscription identifier added by the broker), a shared
// subscription gives each message to one member, a PUBACK says 0x10 when no
// one subscribed, a topic alias set by the client stands for its topic, a
// session with a Session Expiry Interval outlives its connection, and a
// will with a Will Delay Interval is published after the delay.
// testdata/interop/run.sh runs it against the Tern server over TCP and over
// WebSocket:
//
//	go build -o paho5client ./testdata/interop/paho5client
//	./paho5client -url mqtt://127.0.0.1:1883
//	./paho5client -url ws://127.0.0.1:8080/mqtt
//
// It prints one PASS or FAIL line per check and exits 1 if any failed.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

func main() {
	broker := flag.String("url", "", "broker URL: mqtt://host:port or ws://host:port/mqtt")
	timeout := flag.Duration("timeout", 10*time.Second, "time limit of each check")
	flag.Parse()
	if *broker == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: paho5client -url mqtt://host:port|ws://host:port/mqtt [-timeout 10s]")
		os.Exit(2)
	}
	u, err := url.Parse(*broker)
	if err != nil {
		fmt.Fprintln(os.Stderr, "paho5client:", err)
		os.Exit(2)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	e := &env{url: u, timeout: *timeout, run: hex.EncodeToString(rnd[:])}
	checks := []struct {
		name string
		fn   func(*env, context.Context) error
	}{
		{"MQTT 5 properties round trip", (*env).properties},
		{"shared subscription: each message to one member", (*env).shared},
		{"PUBACK 0x10 when no one subscribed", (*env).noSubscribers},
		{"topic alias from the client", (*env).topicAlias},
		{"session expiry: a session across a reconnect", (*env).session},
		{"will with a Will Delay Interval", (*env).willDelay},
	}
	failed := 0
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(context.Background(), 3*e.timeout)
		err := c.fn(e, ctx)
		cancel()
		if err != nil {
			failed++
			fmt.Printf("FAIL paho5 %s: %s: %v\n", u.Scheme, c.name, err)
		} else {
			fmt.Printf("PASS paho5 %s: %s\n", u.Scheme, c.name)
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

// env is what every check needs: the broker, a time limit and a name for
// this run, so that topics and client identifiers do not collide.
type env struct {
	url     *url.URL
	timeout time.Duration
	run     string
}

func (e *env) topic(name string) string { return "interop/paho5/" + e.run + "/" + name }

// client is a connection with the messages it received.
type client struct {
	cm      *autopaho.ConnectionManager
	connack *paho.Connack
	msgs    chan *paho.Publish
	cancel  context.CancelFunc
}

// opts adjusts a client's configuration before it connects.
type opts func(*autopaho.ClientConfig)

// connect connects an MQTT 5 client that does not reconnect: a broker
// that drops it makes the check fail.
func (e *env) connect(ctx context.Context, id string, adjust ...opts) (*client, error) {
	c := &client{msgs: make(chan *paho.Publish, 32)}
	up := make(chan *paho.Connack, 1)
	failed := make(chan error, 1)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{e.url},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                e.timeout,
		OnConnectionUp:                func(_ *autopaho.ConnectionManager, ack *paho.Connack) { up <- ack },
		OnConnectionDown:              func() bool { return false },
		OnConnectError: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "paho5-" + id + "-" + e.run,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
				c.msgs <- r.Packet
				return true, nil
			}},
		},
	}
	for _, a := range adjust {
		a(&cfg)
	}
	cctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	cm, err := autopaho.NewConnection(cctx, cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	c.cm = cm
	select {
	case c.connack = <-up:
		return c, nil
	case err := <-failed:
		cancel()
		return nil, fmt.Errorf("connect %s: %w", id, err)
	case <-ctx.Done():
		cancel()
		return nil, fmt.Errorf("connect %s: %w", id, ctx.Err())
	}
}

// close disconnects with DISCONNECT and waits for the client to stop.
func (c *client) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.cm.Disconnect(ctx)
	c.cancel()
	<-c.cm.Done()
}

// subscribe subscribes c and checks that the SUBACK grants what it asked.
func (c *client) subscribe(ctx context.Context, s *paho.Subscribe) error {
	ack, err := c.cm.Subscribe(ctx, s)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for i, code := range ack.Reasons {
		if code != s.Subscriptions[i].QoS {
			return fmt.Errorf("SUBACK code 0x%02x for %s, want %d", code, s.Subscriptions[i].Topic, s.Subscriptions[i].QoS)
		}
	}
	return nil
}

// next waits for c's next message.
func (e *env) next(ctx context.Context, c *client, what string) (*paho.Publish, error) {
	select {
	case m := <-c.msgs:
		return m, nil
	case <-time.After(e.timeout):
		return nil, fmt.Errorf("no message within %v: %s", e.timeout, what)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// properties: every property a publisher sets reaches an MQTT 5
// subscriber, with the subscription identifier the subscriber chose.
func (e *env) properties(ctx context.Context) error {
	topic := e.topic("props")
	sub, err := e.connect(ctx, "props-sub")
	if err != nil {
		return err
	}
	defer sub.close()
	subID := 42
	if err := sub.subscribe(ctx, &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &subID},
		Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		return err
	}
	pub, err := e.connect(ctx, "props-pub")
	if err != nil {
		return err
	}
	defer pub.close()
	format, expiry := byte(1), uint32(60)
	sent := &paho.PublishProperties{
		CorrelationData: []byte{0, 1, 2, 0xff},
		ContentType:     "text/plain; charset=utf-8",
		ResponseTopic:   e.topic("reply"),
		PayloadFormat:   &format,
		MessageExpiry:   &expiry,
		User:            paho.UserProperties{{Key: "k", Value: "1"}, {Key: "other", Value: "x"}, {Key: "k", Value: "2"}},
	}
	resp, err := pub.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("with properties"), Properties: sent})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if resp.ReasonCode != 0 {
		return fmt.Errorf("PUBACK 0x%02x, want 0x00", resp.ReasonCode)
	}
	m, err := e.next(ctx, sub, "the message with properties")
	if err != nil {
		return err
	}
	got := m.Properties
	switch {
	case string(m.Payload) != "with properties" || m.QoS != 1:
		return fmt.Errorf("got %q at QoS %d", m.Payload, m.QoS)
	case got == nil:
		return errors.New("no properties")
	case !bytes.Equal(got.CorrelationData, sent.CorrelationData):
		return fmt.Errorf("correlation data %x, want %x", got.CorrelationData, sent.CorrelationData)
	case got.ContentType != sent.ContentType || got.ResponseTopic != sent.ResponseTopic:
		return fmt.Errorf("content type %q, response topic %q", got.ContentType, got.ResponseTopic)
	case got.PayloadFormat == nil || *got.PayloadFormat != 1:
		return errors.New("payload format indicator lost")
	case got.MessageExpiry == nil || *got.MessageExpiry == 0 || *got.MessageExpiry > expiry:
		return fmt.Errorf("message expiry %v, want 1 to %d", got.MessageExpiry, expiry)
	case !slices.Equal(got.User, sent.User):
		return fmt.Errorf("user properties %v, want %v in order", got.User, sent.User)
	case got.SubscriptionIdentifier == nil || *got.SubscriptionIdentifier != subID:
		return fmt.Errorf("subscription identifier %v, want %d", got.SubscriptionIdentifier, subID)
	}
	return nil
}

// shared: two members of $share/g/TOPIC; each message goes to exactly one.
func (e *env) shared(ctx context.Context) error {
	topic := e.topic("shared")
	const n = 6
	var members []*client
	for i := range 2 {
		m, err := e.connect(ctx, fmt.Sprintf("member%d", i))
		if err != nil {
			return err
		}
		defer m.close()
		if err := m.subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/" + topic, QoS: 1}}}); err != nil {
			return err
		}
		members = append(members, m)
	}
	pub, err := e.connect(ctx, "shared-pub")
	if err != nil {
		return err
	}
	defer pub.close()
	for i := range n {
		if _, err := pub.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	seen := map[string]int{}
	per := make([]int, len(members))
	deadline := time.After(e.timeout)
	for got := 0; got < n; got++ {
		select {
		case m := <-members[0].msgs:
			seen[string(m.Payload)]++
			per[0]++
		case m := <-members[1].msgs:
			seen[string(m.Payload)]++
			per[1]++
		case <-deadline:
			return fmt.Errorf("%d of %d messages within %v", got, n, e.timeout)
		}
	}
	for p, k := range seen {
		if k != 1 {
			return fmt.Errorf("%s delivered %d times", p, k)
		}
	}
	if len(seen) != n {
		return fmt.Errorf("%d distinct messages, want %d", len(seen), n)
	}
	fmt.Printf("    shared subscription: %d and %d messages\n", per[0], per[1])
	return nil
}

// noSubscribers: a QoS 1 PUBLISH that matches no subscription is
// acknowledged with Reason Code 0x10.
func (e *env) noSubscribers(ctx context.Context) error {
	pub, err := e.connect(ctx, "lonely")
	if err != nil {
		return err
	}
	defer pub.close()
	resp, err := pub.cm.Publish(ctx, &paho.Publish{Topic: e.topic("nobody"), QoS: 1, Payload: []byte("x")})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if resp.ReasonCode != 0x10 {
		return fmt.Errorf("PUBACK 0x%02x, want 0x10 (no matching subscribers)", resp.ReasonCode)
	}
	return nil
}

// topicAlias: the client sets topic alias 1 with a full topic, then
// publishes with the alias alone; both reach the subscriber under the
// topic.
func (e *env) topicAlias(ctx context.Context) error {
	topic := e.topic("alias")
	sub, err := e.connect(ctx, "alias-sub")
	if err != nil {
		return err
	}
	defer sub.close()
	if err := sub.subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		return err
	}
	pub, err := e.connect(ctx, "alias-pub")
	if err != nil {
		return err
	}
	defer pub.close()
	alias := uint16(1)
	for i, t := range []string{topic, ""} {
		if _, err := pub.cm.Publish(ctx, &paho.Publish{Topic: t, QoS: 1, Payload: fmt.Appendf(nil, "a%d", i),
			Properties: &paho.PublishProperties{TopicAlias: &alias}}); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	for i := range 2 {
		m, err := e.next(ctx, sub, "a message published with the alias")
		if err != nil {
			return err
		}
		if m.Topic != topic || string(m.Payload) != fmt.Sprintf("a%d", i) {
			return fmt.Errorf("got %q on %q, want a%d on %q", m.Payload, m.Topic, i, topic)
		}
	}
	return nil
}

// session: a client with a Session Expiry Interval subscribes and goes
// away; a QoS 1 message published meanwhile is delivered when it comes
// back without Clean Start, and CONNACK says the session was present.
func (e *env) session(ctx context.Context) error {
	topic := e.topic("session")
	durable := func(clean bool) opts {
		return func(c *autopaho.ClientConfig) {
			c.CleanStartOnInitialConnection = clean
			c.SessionExpiryInterval = 60
		}
	}
	first, err := e.connect(ctx, "durable", durable(true))
	if err != nil {
		return err
	}
	if err := first.subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		first.close()
		return err
	}
	first.close()
	pub, err := e.connect(ctx, "offline-pub")
	if err != nil {
		return err
	}
	defer pub.close()
	if _, err := pub.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("kept for you")}); err != nil {
		return fmt.Errorf("publish while offline: %w", err)
	}
	again, err := e.connect(ctx, "durable", durable(false))
	if err != nil {
		return err
	}
	defer func() {
		again.close()
		// End the session, so that the broker keeps nothing of this run.
		if c, err := e.connect(ctx, "durable"); err == nil {
			c.close()
		}
	}()
	if !again.connack.SessionPresent {
		return errors.New("CONNACK session present 0 on reconnect, want 1")
	}
	m, err := e.next(ctx, again, "the message queued while offline")
	if err != nil {
		return err
	}
	if string(m.Payload) != "kept for you" {
		return fmt.Errorf("got %q", m.Payload)
	}
	return nil
}

// willDelay: a client with a will whose Will Delay Interval is 1 s and a
// session that outlives the connection loses its connection; the will
// arrives after the delay, not before.
func (e *env) willDelay(ctx context.Context) error {
	topic := e.topic("will")
	watcher, err := e.connect(ctx, "watcher")
	if err != nil {
		return err
	}
	defer watcher.close()
	if err := watcher.subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		return err
	}
	delay := uint32(1)
	mortal, err := e.connect(ctx, "mortal", func(c *autopaho.ClientConfig) {
		c.SessionExpiryInterval = 10
		c.WillMessage = &paho.WillMessage{Topic: topic, QoS: 1, Payload: []byte("gone")}
		c.WillProperties = &paho.WillProperties{WillDelayInterval: &delay, User: paho.UserProperties{{Key: "why", Value: "dropped"}}}
	})
	if err != nil {
		return err
	}
	defer mortal.close()
	dropped := time.Now()
	mortal.cm.TerminateConnectionForTest() // no DISCONNECT: the will is due
	m, err := e.next(ctx, watcher, "the will")
	if err != nil {
		return err
	}
	after := time.Since(dropped)
	switch {
	case string(m.Payload) != "gone":
		return fmt.Errorf("got %q", m.Payload)
	case after < 900*time.Millisecond:
		return fmt.Errorf("the will came %v after the connection dropped, before its 1 s delay", after)
	case m.Properties == nil || m.Properties.User.Get("why") != "dropped":
		return errors.New("the will's user property was lost")
	}
	fmt.Printf("    will published %v after the connection dropped\n", after.Round(10*time.Millisecond))
	return nil
}
