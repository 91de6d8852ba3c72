package tern_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
		require.FailNow(t, "timed out waiting for a handler call")
		return tern.Message{}
	}
}

func mustSubscribe(t testing.TB, b *tern.Broker, filter string, qos byte, h tern.Handler) func() {
	t.Helper()
	cancel, err := b.Subscribe(filter, tern.SubscribeOptions{QoS: qos}, h)
	require.NoError(t, err, "Subscribe(%q)", filter)
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
		assert.Error(t, err, "%s: Publish", tc.name)
		assert.NotErrorIs(t, err, tern.ErrClosed, "%s: Publish", tc.name)
		if tc.is != nil {
			assert.ErrorIs(t, err, tc.is, "%s: Publish", tc.name)
		}
	}
	st := b.Stats()
	assert.Zero(t, st.PublishSent, "a refused Publish had effects: %+v", st)
	assert.Zero(t, st.Retained, "a refused Publish had effects: %+v", st)
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
		require.NoError(t, b.Publish(ctx, "app/cmd", []byte(payload), qos, false))
		got := sub.recvPublish()
		require.Equal(t, "app/cmd", got.Topic, "qos %d: got %+v", qos, got)
		require.Equal(t, payload, string(got.Payload), "qos %d: got %+v", qos, got)
		require.Equal(t, min(qos, 1), got.QoS, "qos %d: got %+v", qos, got)
		require.False(t, got.Retain, "qos %d: got %+v", qos, got)
		if got.QoS == 1 {
			sub.send(&packets.Puback{PacketID: got.PacketID})
		}
	}
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8]
func TestBrokerPublishRetainedReachesLaterSubscribers(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	require.NoError(t, b.Publish(context.Background(), "cfg/rate", []byte("10"), 1, true))
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "cfg/#", QoS: 2})
	got := sub.recvPublish()
	require.Equal(t, "cfg/rate", got.Topic, "got %+v", got)
	require.Equal(t, "10", string(got.Payload), "got %+v", got)
	require.True(t, got.Retain, "got %+v", got)
	require.Equal(t, byte(1), got.QoS, "got %+v", got)
	h, ch := inbox(1)
	mustSubscribe(t, b, "cfg/+", 0, h)
	m := receive(t, ch)
	assert.Equal(t, "cfg/rate", m.Topic, "handler got %+v", m)
	assert.True(t, m.Retain, "handler got %+v", m)
	assert.Equal(t, byte(0), m.QoS, "handler got %+v", m)
}

func TestBrokerPublishAndSubscribeAfterCloseReturnErrClosed(t *testing.T) {
	b, err := tern.New(tern.Options{SysInterval: -1})
	require.NoError(t, err)
	require.NoError(t, b.Close(context.Background()))
	assert.ErrorIs(t, b.Publish(context.Background(), "a", nil, 0, false), tern.ErrClosed, "Publish after Close")
	_, err = b.Subscribe("a", tern.SubscribeOptions{}, func(tern.Message, tern.Client) {})
	assert.ErrorIs(t, err, tern.ErrClosed, "Subscribe after Close")
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
		cancel, err := b.Subscribe(tc.filter, tern.SubscribeOptions{QoS: tc.qos}, tc.h)
		if !assert.Error(t, err, "Subscribe(%q, %d, handler nil %v) succeeded", tc.filter, tc.qos, tc.h == nil) {
			cancel()
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
	assert.Equal(t, "dev/7/temp", m.Topic, "handler got %+v", m)
	assert.Equal(t, "21.5", string(m.Payload), "handler got %+v", m)
	assert.Equal(t, byte(1), m.QoS, "handler got %+v", m)
	assert.False(t, m.Retain, "handler got %+v", m)
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
		burst, err = (&packets.Publish{Topic: "seq", Payload: []byte(fmt.Sprint(i))}).Append(burst)
		require.NoError(t, err)
	}
	pub.sendRaw(burst)
	for i := range n {
		require.Equal(t, fmt.Sprint(i), string(receive(t, ch).Payload), "payload of message %d", i)
	}
}

func TestBrokerSubscribeDeliversRetainedFirst(t *testing.T) {
	b, _ := startBroker(t, tern.Options{})
	ctx := context.Background()
	for _, topic := range []string{"r/1", "r/2"} {
		require.NoError(t, b.Publish(ctx, topic, []byte("old"), 1, true))
	}
	h, ch := inbox(3)
	mustSubscribe(t, b, "r/#", 2, h)
	require.NoError(t, b.Publish(ctx, "r/3", []byte("live"), 1, true))
	seen := map[string]bool{}
	for range 2 {
		m := receive(t, ch)
		require.True(t, m.Retain, "got %+v before the retained messages", m)
		require.Equal(t, "old", string(m.Payload), "got %+v before the retained messages", m)
		require.Equal(t, byte(1), m.QoS, "got %+v before the retained messages", m)
		seen[m.Topic] = true
	}
	require.Equal(t, map[string]bool{"r/1": true, "r/2": true}, seen, "retained messages: want r/1 and r/2")
	m := receive(t, ch)
	assert.Equal(t, "r/3", m.Topic, "live message %+v", m)
	assert.False(t, m.Retain, "live message %+v: want Retain false", m)
}

func TestBrokerSubscribeCancelStopsDeliveryAndIsIdempotent(t *testing.T) {
	b, _ := startBroker(t, tern.Options{})
	ctx := context.Background()
	h1, ch1 := inbox(10)
	cancel1 := mustSubscribe(t, b, "t", 0, h1)
	h2, ch2 := inbox(10)
	mustSubscribe(t, b, "t", 0, h2)
	require.Equal(t, 2, b.Stats().InternalSubscriptions, "Subscriptions")
	cancel1()
	cancel1()
	require.Equal(t, 1, b.Stats().InternalSubscriptions, "Subscriptions after cancel")
	require.NoError(t, b.Publish(ctx, "t", []byte("after"), 0, false))
	// Routing is synchronous: once the live subscription has the message,
	// the cancelled one would have had it too.
	receive(t, ch2)
	select {
	case m := <-ch1:
		require.FailNow(t, "cancelled handler got a message", "%+v", m)
	default:
	}

	// A handler may cancel its own subscription.
	var self func()
	calls := make(chan struct{}, 10)
	self = mustSubscribe(t, b, "self", 0, func(tern.Message, tern.Client) { calls <- struct{}{}; self() })
	for range 2 {
		require.NoError(t, b.Publish(ctx, "self", nil, 0, false))
	}
	<-calls
	eventually(t, "the self-cancelled subscription to go", func() bool { return b.Stats().InternalSubscriptions == 1 })
	assert.Empty(t, calls, "handler called after cancelling itself")
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
		require.NoError(t, b.Publish(context.Background(), "p", []byte(p), 0, false))
	}
	select {
	case p := <-got:
		require.Equal(t, "fine", p)
	case <-time.After(waitTimeout):
		require.FailNow(t, "the subscription did not survive its handler's panic")
	}
	assert.Contains(t, logs.String(), "handler exploded", "panic not logged")
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
		require.Equal(t, fmt.Sprint(i), string(sub.recvPublish().Payload), "network subscriber's message %d", i)
	}
	require.EqualValues(t, n-1-queue, b.Stats().PublishDropped, "PublishDropped")
	e := obs.next(t, "drop")
	require.True(t, e.client.Internal, "drop event %+v, want one for the internal subscriber", e)
	require.Error(t, e.reason, "drop event %+v, want one for the internal subscriber", e)
	close(release)
	for i := range queue + 1 {
		require.Equal(t, fmt.Sprint(i), string(receive(t, handled).Payload), "handler's message %d", i)
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
	require.Equal(t, want, got, "Stats")
	require.Positive(t, st.Uptime, "Uptime")
	require.NotZero(t, st.BytesReceived, "bytes received")
	require.NotZero(t, st.BytesSent, "bytes sent")
	sub.send(&packets.Disconnect{})
	eventually(t, "sub offline", func() bool { return b.Stats().ClientsDisconnected == 1 })
	st = b.Stats()
	assert.Equal(t, 1, st.ClientsConnected, "after DISCONNECT: connected")
	assert.Equal(t, 2, st.ClientsTotal, "after DISCONNECT: total")
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
	require.NoError(t, b.Publish(context.Background(), "x", []byte("queued"), 1, false))

	got := b.Clients()
	require.Len(t, got, 3, "Clients()")
	a, bo, c := got[0], got[1], got[2]
	assert.Equal(t, "a-user", a.ID, "a-user: %+v", a)
	assert.True(t, a.Connected, "a-user: %+v", a)
	assert.False(t, a.CleanSession, "a-user: %+v", a)
	assert.Equal(t, "dana", a.Username, "a-user: %+v", a)
	assert.Equal(t, user.conn.LocalAddr().String(), a.RemoteAddr.String(), "a-user: %+v", a)
	assert.Equal(t, "b-offline", bo.ID, "b-offline: %+v", bo)
	assert.False(t, bo.Connected, "b-offline: %+v", bo)
	assert.Nil(t, bo.RemoteAddr, "b-offline: %+v", bo)
	assert.Equal(t, 2, bo.Subscriptions, "b-offline: %+v", bo)
	assert.Equal(t, 1, bo.Queued, "b-offline: %+v", bo)
	assert.False(t, bo.CleanSession, "b-offline: %+v", bo)
	assert.Equal(t, "c-clean", c.ID, "c-clean: %+v", c)
	assert.True(t, c.Connected, "c-clean: %+v", c)
	assert.True(t, c.CleanSession, "c-clean: %+v", c)
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

	require.NoError(t, b.Disconnect("kicked"))
	c.expectClosed()
	e := obs.next(t, "disconnect")
	require.Equal(t, "kicked", e.client.ID, "OnDisconnect client")
	require.ErrorIs(t, e.reason, tern.ErrKicked, "OnDisconnect reason")
	got := watcher.recvPublish()
	require.Equal(t, "will/kicked", got.Topic, "watcher: want the will")
	require.Equal(t, "gone", string(got.Payload), "watcher: want the will")

	for _, id := range []string{"kicked", "nobody"} {
		assert.ErrorIs(t, b.Disconnect(id), tern.ErrNoClient, "Disconnect(%q)", id)
	}
	// A persistent session stays, offline, and Disconnect refuses it too.
	p := mustConnect(t, addr, "persistent", false)
	require.NoError(t, b.Disconnect("persistent"))
	p.expectClosed()
	obs.next(t, "disconnect")
	ci := clientInfo(t, b, "persistent")
	require.False(t, ci.Connected, "persistent session still connected: %+v", ci)
	assert.ErrorIs(t, b.Disconnect("persistent"), tern.ErrNoClient, "Disconnect of an offline session")
}
