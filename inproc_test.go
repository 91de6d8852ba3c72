package tern_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// inbox returns a handler that sends each message to the returned channel.
func inbox(size int) (tern.Handler, chan tern.Message) {
	ch := make(chan tern.Message, size)
	return func(m tern.Message, _ tern.Client) { ch <- m }, ch
}

// receive returns the next message from ch or fails after waitTimeout.
func receive(t testing.TB, ch <-chan tern.Message) tern.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a handler call")
		return tern.Message{}
	}
}

func mustSubscribe(t testing.TB, b *tern.Broker, filter string, qos byte, h tern.Handler) func() {
	t.Helper()
	cancel, err := b.Subscribe(filter, tern.SubscribeOptions{QoS: qos}, h)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", filter, err)
	}
	return cancel
}

func TestBrokerPublishValidatesItsArguments(t *testing.T) {
	b, _ := startBroker(t, tern.Options{})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name  string
		ctx   context.Context
		topic string
		qos   byte
		is    error
	}{
		{"empty topic", context.Background(), "", 0, nil},
		{"single-level wildcard", context.Background(), "a/+", 0, nil},
		{"multi-level wildcard", context.Background(), "a/#", 1, nil},
		{"null character", context.Background(), "a\x00b", 0, nil},
		{"QoS 3", context.Background(), "a/b", 3, nil},
		{"canceled context", canceled, "a/b", 0, context.Canceled},
	}
	for _, tc := range cases {
		err := b.Publish(tc.ctx, tc.topic, []byte("x"), tc.qos, false)
		if err == nil || errors.Is(err, tern.ErrClosed) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: Publish = %v", tc.name, err)
		}
	}
	if st := b.Stats(); st.PublishSent != 0 || st.Retained != 0 {
		t.Errorf("a refused Publish had effects: %+v", st)
	}
}

// [MQTT-3.3.5-1] messages from Broker.Publish reach network subscribers at
// the minimum of the published and the granted QoS.
func TestBrokerPublishReachesNetworkSubscribers(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "app/#", QoS: 1})
	ctx := context.Background()
	for qos := byte(0); qos <= 2; qos++ {
		payload := fmt.Sprintf("qos %d", qos)
		if err := b.Publish(ctx, "app/cmd", []byte(payload), qos, false); err != nil {
			t.Fatal(err)
		}
		got := sub.recvPublish()
		if got.Topic != "app/cmd" || string(got.Payload) != payload || got.QoS != min(qos, 1) || got.Retain {
			t.Fatalf("qos %d: got %+v", qos, got)
		}
		if got.QoS == 1 {
			sub.send(&packets.Puback{PacketID: got.PacketID})
		}
	}
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8]
func TestBrokerPublishRetainedReachesLaterSubscribers(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	if err := b.Publish(context.Background(), "cfg/rate", []byte("10"), 1, true); err != nil {
		t.Fatal(err)
	}
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "cfg/#", QoS: 2})
	if got := sub.recvPublish(); got.Topic != "cfg/rate" || string(got.Payload) != "10" || !got.Retain || got.QoS != 1 {
		t.Fatalf("got %+v", got)
	}
	h, ch := inbox(1)
	mustSubscribe(t, b, "cfg/+", 0, h)
	if m := receive(t, ch); m.Topic != "cfg/rate" || !m.Retain || m.QoS != 0 {
		t.Fatalf("handler got %+v", m)
	}
}

func TestBrokerPublishAndSubscribeAfterCloseReturnErrClosed(t *testing.T) {
	b, err := tern.New(tern.Options{SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), "a", nil, 0, false); !errors.Is(err, tern.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe("a", tern.SubscribeOptions{}, func(tern.Message, tern.Client) {}); !errors.Is(err, tern.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
}

func TestBrokerSubscribeValidatesItsArguments(t *testing.T) {
	b, _ := startBroker(t, tern.Options{})
	h := func(tern.Message, tern.Client) {}
	cases := []struct {
		filter string
		qos    byte
		h      tern.Handler
	}{
		{"", 0, h}, {"a/#/b", 0, h}, {"a+", 0, h}, {"a", 3, h}, {"a", 0, nil},
	}
	for _, tc := range cases {
		if cancel, err := b.Subscribe(tc.filter, tern.SubscribeOptions{QoS: tc.qos}, tc.h); err == nil {
			cancel()
			t.Errorf("Subscribe(%q, %d, handler nil %v) succeeded", tc.filter, tc.qos, tc.h == nil)
		}
	}
}

func TestBrokerSubscribeHandlerSeesNetworkPublish(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	h, ch := inbox(1)
	mustSubscribe(t, b, "dev/+/temp", 1, h)
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "dev/7/temp", "21.5", 2, false)
	m := receive(t, ch)
	if m.Topic != "dev/7/temp" || string(m.Payload) != "21.5" || m.QoS != 1 || m.Retain {
		t.Fatalf("handler got %+v, want dev/7/temp 21.5 at QoS 1", m)
	}
}

// [MQTT-4.6.0-6] a handler sees one publisher's messages in order.
func TestBrokerSubscribeHandlerSeesMessagesInOrder(t *testing.T) {
	const n = 1000
	b, addr := startBroker(t, tern.Options{})
	h, ch := inbox(n)
	mustSubscribe(t, b, "seq", 0, h)
	pub := mustConnect(t, addr, "pub", true)
	var burst []byte
	for i := range n {
		var err error
		if burst, err = (&packets.Publish{Topic: "seq", Payload: []byte(fmt.Sprint(i))}).Append(burst); err != nil {
			t.Fatal(err)
		}
	}
	pub.sendRaw(burst)
	for i := range n {
		if m := receive(t, ch); string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d has payload %q", i, m.Payload)
		}
	}
}

func TestBrokerSubscribeDeliversRetainedFirst(t *testing.T) {
	b, _ := startBroker(t, tern.Options{})
	ctx := context.Background()
	for _, topic := range []string{"r/1", "r/2"} {
		if err := b.Publish(ctx, topic, []byte("old"), 1, true); err != nil {
			t.Fatal(err)
		}
	}
	h, ch := inbox(3)
	mustSubscribe(t, b, "r/#", 2, h)
	if err := b.Publish(ctx, "r/3", []byte("live"), 1, true); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 2 {
		m := receive(t, ch)
		if !m.Retain || string(m.Payload) != "old" || m.QoS != 1 {
			t.Fatalf("got %+v before the retained messages", m)
		}
		seen[m.Topic] = true
	}
	if !seen["r/1"] || !seen["r/2"] {
		t.Fatalf("retained messages %v, want r/1 and r/2", seen)
	}
	if m := receive(t, ch); m.Topic != "r/3" || m.Retain {
		t.Fatalf("live message %+v, want r/3 with Retain false", m)
	}
}

func TestBrokerSubscribeCancelStopsDeliveryAndIsIdempotent(t *testing.T) {
	b, _ := startBroker(t, tern.Options{})
	ctx := context.Background()
	h1, ch1 := inbox(10)
	cancel1 := mustSubscribe(t, b, "t", 0, h1)
	h2, ch2 := inbox(10)
	mustSubscribe(t, b, "t", 0, h2)
	if n := b.Stats().InternalSubscriptions; n != 2 {
		t.Fatalf("Subscriptions %d, want 2", n)
	}
	cancel1()
	cancel1()
	if n := b.Stats().InternalSubscriptions; n != 1 {
		t.Fatalf("Subscriptions %d after cancel, want 1", n)
	}
	if err := b.Publish(ctx, "t", []byte("after"), 0, false); err != nil {
		t.Fatal(err)
	}
	// Routing is synchronous: once the live subscription has the message,
	// the cancelled one would have had it too.
	receive(t, ch2)
	select {
	case m := <-ch1:
		t.Fatalf("cancelled handler got %+v", m)
	default:
	}

	// A handler may cancel its own subscription.
	var self func()
	calls := make(chan struct{}, 10)
	self = mustSubscribe(t, b, "self", 0, func(tern.Message, tern.Client) { calls <- struct{}{}; self() })
	for range 2 {
		if err := b.Publish(ctx, "self", nil, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	<-calls
	eventually(t, "the self-cancelled subscription to go", func() bool { return b.Stats().InternalSubscriptions == 1 })
	if len(calls) != 0 {
		t.Fatal("handler called after cancelling itself")
	}
}

func TestPanickingHandlerIsLoggedAndKeepsItsSubscription(t *testing.T) {
	logs := &hkLogBuffer{}
	b, _ := startBroker(t, tern.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	got := make(chan string, 2)
	mustSubscribe(t, b, "p", 0, func(m tern.Message, _ tern.Client) {
		if string(m.Payload) == "boom" {
			panic("handler exploded")
		}
		got <- string(m.Payload)
	})
	for _, p := range []string{"boom", "fine"} {
		if err := b.Publish(context.Background(), "p", []byte(p), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case p := <-got:
		if p != "fine" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the subscription did not survive its handler's panic")
	}
	if !strings.Contains(logs.String(), "handler exploded") {
		t.Errorf("panic not logged:\n%s", logs)
	}
}

// A blocked handler holds up nobody: publishers are acknowledged, network
// subscribers served, and what overflows its queue is dropped and counted.
func TestSlowHandlerDoesNotBlockPublishersAndOverflowIsCounted(t *testing.T) {
	const queue, n = 4, 20
	b, addr := startBroker(t, tern.Options{HandlerQueue: queue})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	started, release := make(chan struct{}, n), make(chan struct{})
	handled := make(chan tern.Message, n)
	mustSubscribe(t, b, "load", 1, func(m tern.Message, _ tern.Client) {
		started <- struct{}{}
		<-release
		handled <- m
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "load", QoS: 0})
	pub := mustConnect(t, addr, "pub", true)

	pub.publishQoS(1, "load", "0", 1, false)
	<-started // the handler now holds message 0 and blocks
	for i := 1; i < n; i++ {
		pub.publishQoS(uint16(i+1), "load", fmt.Sprint(i), 1, false) // each one PUBACKed
	}
	for i := range n {
		if got := sub.recvPublish(); string(got.Payload) != fmt.Sprint(i) {
			t.Fatalf("network subscriber got %q, want %d", got.Payload, i)
		}
	}
	if d := b.Stats().PublishDropped; d != n-1-queue {
		t.Fatalf("PublishDropped %d, want %d", d, n-1-queue)
	}
	if e := obs.next(t, "drop"); !e.client.Internal || e.reason == nil {
		t.Fatalf("drop event %+v, want one for the internal subscriber", e)
	}
	close(release)
	for i := range queue + 1 {
		if m := receive(t, handled); string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("handler got %q, want %d", m.Payload, i)
		}
	}
}

func TestStatsCountsTraffic(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "s/#", QoS: 0}, packets.Subscription{Filter: "t", QoS: 0})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "s/a", "x", 1, true)
	sub.recvPublish()
	pub.publishQoS(2, "nobody/listens", "x", 1, false)
	st := b.Stats()
	want := tern.Stats{
		Version: tern.Version, ClientsConnected: 2, ClientsTotal: 2, Connects: 2,
		PublishReceived: 2, PublishSent: 1, Subscriptions: 2, Retained: 1,
		MessagesReceived: 2 + 1 + 2, // CONNECTs, SUBSCRIBE, PUBLISHes
	}
	got := st
	got.Uptime, got.BytesReceived, got.BytesSent = 0, 0, 0
	if got != want {
		t.Fatalf("Stats\n got %+v\nwant %+v", got, want)
	}
	if st.Uptime <= 0 || st.BytesReceived == 0 || st.BytesSent == 0 {
		t.Fatalf("Uptime %v, bytes received %d, sent %d", st.Uptime, st.BytesReceived, st.BytesSent)
	}
	sub.send(&packets.Disconnect{})
	eventually(t, "sub offline", func() bool { return b.Stats().ClientsDisconnected == 1 })
	if st := b.Stats(); st.ClientsConnected != 1 || st.ClientsTotal != 2 {
		t.Fatalf("after DISCONNECT: connected %d total %d, want 1 and 2", st.ClientsConnected, st.ClientsTotal)
	}
}

func TestClientsListsConnectedAndOfflineSessions(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	mustConnect(t, addr, "c-clean", true)
	off := mustConnect(t, addr, "b-offline", false)
	off.subscribe(1, packets.Subscription{Filter: "x", QoS: 1}, packets.Subscription{Filter: "y", QoS: 1})
	off.send(&packets.Disconnect{})
	obs.next(t, "disconnect")
	user := dialRaw(t, addr)
	user.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "a-user", KeepAlive: 60, UsernameFlag: true, Username: "dana"})
	if err := b.Publish(context.Background(), "x", []byte("queued"), 1, false); err != nil {
		t.Fatal(err)
	}

	got := b.Clients()
	if len(got) != 3 {
		t.Fatalf("Clients() = %+v, want 3", got)
	}
	a, bo, c := got[0], got[1], got[2]
	if a.ID != "a-user" || !a.Connected || a.CleanSession || a.Username != "dana" || a.RemoteAddr.String() != user.conn.LocalAddr().String() {
		t.Errorf("a-user: %+v", a)
	}
	if bo.ID != "b-offline" || bo.Connected || bo.RemoteAddr != nil || bo.Subscriptions != 2 || bo.Queued != 1 || bo.CleanSession {
		t.Errorf("b-offline: %+v", bo)
	}
	if c.ID != "c-clean" || !c.Connected || !c.CleanSession {
		t.Errorf("c-clean: %+v", c)
	}
}

// [MQTT-3.1.2-8] Broker.Disconnect ends the connection without a
// DISCONNECT from the client, so its will is published.
func TestDisconnectClosesTheClientAndPublishesItsWill(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	watcher := mustConnect(t, addr, "watcher", true)
	watcher.subscribe(1, packets.Subscription{Filter: "will/#", QoS: 0})
	c := dialRaw(t, addr)
	c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "kicked", KeepAlive: 60,
		WillFlag: true, WillTopic: "will/kicked", WillMessage: []byte("gone")})

	if err := b.Disconnect("kicked"); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	if e := obs.next(t, "disconnect"); e.client.ID != "kicked" || !errors.Is(e.reason, tern.ErrKicked) {
		t.Fatalf("OnDisconnect %q reason %v, want kicked with ErrKicked", e.client.ID, e.reason)
	}
	if got := watcher.recvPublish(); got.Topic != "will/kicked" || string(got.Payload) != "gone" {
		t.Fatalf("watcher got %q %q, want the will", got.Topic, got.Payload)
	}

	for _, id := range []string{"kicked", "nobody"} {
		if err := b.Disconnect(id); !errors.Is(err, tern.ErrNoClient) {
			t.Errorf("Disconnect(%q) = %v, want ErrNoClient", id, err)
		}
	}
	// A persistent session stays, offline, and Disconnect refuses it too.
	p := mustConnect(t, addr, "persistent", false)
	if err := b.Disconnect("persistent"); err != nil {
		t.Fatal(err)
	}
	p.expectClosed()
	obs.next(t, "disconnect")
	if ci := clientInfo(t, b, "persistent"); ci.Connected {
		t.Fatalf("persistent session still connected: %+v", ci)
	}
	if err := b.Disconnect("persistent"); !errors.Is(err, tern.ErrNoClient) {
		t.Errorf("Disconnect of an offline session = %v, want ErrNoClient", err)
	}
}
