package tern_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Hook adapters: each implements exactly one hook interface with a func.
type (
	hkAuth      func(tern.ConnectInfo) error
	hkPubAuth   func(tern.Client, tern.Message) error
	hkSubAuth   func(c tern.Client, filter string, qos byte) error
	hkRead      func(c tern.Client, topic string) bool
	hkIntercept func(tern.Client, *tern.Message) error
)

func (f hkAuth) Authenticate(_ context.Context, c tern.ConnectInfo) error { return f(c) }
func (f hkPubAuth) AuthorizePublish(_ context.Context, c tern.Client, m tern.Message) error {
	return f(c, m)
}
func (f hkSubAuth) AuthorizeSubscribe(_ context.Context, c tern.Client, filter string, qos byte) error {
	return f(c, filter, qos)
}
func (f hkRead) AuthorizeRead(c tern.Client, topic string) bool { return f(c, topic) }
func (f hkIntercept) InterceptPublish(_ context.Context, c tern.Client, m *tern.Message) error {
	return f(c, m)
}

// hkEvent is one observer call.
type hkEvent struct {
	kind   string // connect, disconnect, subscribe, unsubscribe, drop
	client tern.Client
	filter string
	qos    byte
	msg    tern.Message
	reason error
}

// hkObserver implements every observer interface and records each call on a
// channel large enough that the broker never waits for the test.
type hkObserver chan hkEvent

func newHkObserver() hkObserver { return make(hkObserver, 4096) }

func (o hkObserver) OnConnect(c tern.Client) { o <- hkEvent{kind: "connect", client: c} }
func (o hkObserver) OnDisconnect(c tern.Client, reason error) {
	o <- hkEvent{kind: "disconnect", client: c, reason: reason}
}
func (o hkObserver) OnSubscribe(c tern.Client, filter string, qos byte) {
	o <- hkEvent{kind: "subscribe", client: c, filter: filter, qos: qos}
}
func (o hkObserver) OnUnsubscribe(c tern.Client, filter string) {
	o <- hkEvent{kind: "unsubscribe", client: c, filter: filter}
}
func (o hkObserver) OnDrop(c tern.Client, m tern.Message, reason error) {
	o <- hkEvent{kind: "drop", client: c, msg: m, reason: reason}
}

// next returns the next event of kind (skipping other kinds), failing
// after waitTimeout.
func (o hkObserver) next(t testing.TB, kind string) hkEvent {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case e := <-o:
			if e.kind == kind {
				return e
			}
		case <-deadline:
			require.FailNow(t, "timed out waiting for an observer event", "event %s", kind)
		}
	}
}

func hkAdd(t testing.TB, b *tern.Broker, h any) {
	t.Helper()
	require.NoError(t, b.AddHook(h), "AddHook(%T)", h)
}

// hkLogBuffer is a concurrency-safe log sink.
type hkLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *hkLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *hkLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAddHookRefusesValueImplementingNoInterface(t *testing.T) {
	b, _ := startBroker(t, tern.Options{})
	for _, v := range []any{nil, 42, "hook", struct{}{}, func(tern.ConnectInfo) error { return nil }} {
		assert.ErrorIs(t, b.AddHook(v), tern.ErrNotAHook, "AddHook(%T)", v)
	}
	assert.NoError(t, b.AddHook(newHkObserver()), "AddHook(observer)")
}

func TestHooksRunInOrderAndFirstRefusalWins(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	var mu sync.Mutex
	var calls []string
	record := func(name string, refuse bool) hkAuth {
		return func(c tern.ConnectInfo) error {
			mu.Lock()
			calls = append(calls, name)
			mu.Unlock()
			if refuse && c.ClientID == "refused" {
				return tern.ErrBadCredentials
			}
			return nil
		}
	}
	hkAdd(t, b, record("first", false))
	hkAdd(t, b, record("second", true))
	hkAdd(t, b, record("third", true))
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := calls
		calls = nil
		return out
	}

	mustConnect(t, addr, "accepted", true)
	require.Equal(t, []string{"first", "second", "third"}, taken(), "hooks an accepted CONNECT ran")
	c := dialRaw(t, addr)
	require.Equal(t, packets.RefusedBadUsernamePassword, c.connect("refused", true).ReturnCode, "CONNACK return code")
	assert.Equal(t, []string{"first", "second"}, taken(), "hooks a refused CONNECT ran (the third is not asked)")
}

// [MQTT-3.2.2-4] [MQTT-3.2.2-5] a panicking hook refuses like any other.
func TestPanickingHookIsRecoveredLoggedAndRefuses(t *testing.T) {
	logs := &hkLogBuffer{}
	b, addr := startBroker(t, tern.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	hkAdd(t, b, hkAuth(func(c tern.ConnectInfo) error {
		if c.ClientID == "boom" {
			panic("authenticator exploded")
		}
		return nil
	}))
	hkAdd(t, b, hkPubAuth(func(_ tern.Client, m tern.Message) error {
		if m.Topic == "boom" {
			panic("publish authorizer exploded")
		}
		return nil
	}))
	hkAdd(t, b, hkSubAuth(func(_ tern.Client, f string, _ byte) error {
		if f == "boom" {
			panic("subscribe authorizer exploded")
		}
		return nil
	}))
	obs := newHkObserver()
	hkAdd(t, b, obs)

	c := dialRaw(t, addr)
	ack := c.connect("boom", true)
	require.Equal(t, packets.RefusedNotAuthorized, ack.ReturnCode, "CONNACK return code")
	require.False(t, ack.SessionPresent, "CONNACK: want session present 0")
	c.expectClosed()
	assert.Contains(t, logs.String(), "authenticator exploded", "the panic was not logged")

	// The broker keeps serving; the other panicking hooks refuse too.
	sub := mustConnect(t, addr, "sub", true)
	suback := sub.subscribe(1, packets.Subscription{Filter: "boom", QoS: 1}, packets.Subscription{Filter: "#", QoS: 1})
	require.Equal(t, []byte{packets.SubackFailure, 1}, suback.ReturnCodes, "SUBACK return codes")
	pub := mustConnect(t, addr, "pub", true)
	dropped := b.Stats().PublishDropped
	pub.publishQoS(1, "boom", "x", 1, false)
	e := obs.next(t, "drop")
	require.Equal(t, "boom", e.msg.Topic, "drop event %+v", e)
	require.Equal(t, "pub", e.client.ID, "drop event %+v", e)
	require.Error(t, e.reason, "drop event %+v", e)
	pub.publishQoS(2, "fine", "y", 1, false)
	require.Equal(t, "fine", sub.recvPublish().Topic, "want only the publish that the panicking hook did not see")
	assert.EqualValues(t, 1, b.Stats().PublishDropped-dropped, "PublishDropped growth")
	for _, want := range []string{"publish authorizer exploded", "subscribe authorizer exploded"} {
		assert.Contains(t, logs.String(), want, "panic not logged")
	}
}

func TestPanickingObserverDoesNotDisturbTheClient(t *testing.T) {
	b, addr := startBroker(t, tern.Options{Logger: slog.New(slog.DiscardHandler)})
	hkAdd(t, b, hkPanicObserver{})
	c := mustConnect(t, addr, "c", true)
	c.subscribe(1, packets.Subscription{Filter: "t", QoS: 0})
	c.publishQoS(1, "t", "still served", 0, false)
	assert.Equal(t, "still served", string(c.recvPublish().Payload))
}

type hkPanicObserver struct{}

func (hkPanicObserver) OnConnect(tern.Client)                   { panic("OnConnect") }
func (hkPanicObserver) OnSubscribe(tern.Client, string, byte)   { panic("OnSubscribe") }
func (hkPanicObserver) OnDrop(tern.Client, tern.Message, error) { panic("OnDrop") }

// [MQTT-3.2.2-4] [MQTT-3.2.2-5] a refused CONNECT gets a non-zero return
// code with session present 0, then the connection closes.
func TestAuthenticatorErrorChoosesReturnCode(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code byte
	}{
		{"accepted", nil, packets.Accepted},
		{"bad credentials", tern.ErrBadCredentials, packets.RefusedBadUsernamePassword},
		{"wrapped bad credentials", fmt.Errorf("user db: %w", tern.ErrBadCredentials), packets.RefusedBadUsernamePassword},
		{"not authorized", tern.ErrNotAuthorized, packets.RefusedNotAuthorized},
		{"server unavailable", fmt.Errorf("check queue full: %w", tern.ErrServerUnavailable), packets.RefusedServerUnavailable},
		{"any other error", errors.New("directory unreachable"), packets.RefusedNotAuthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, addr := startBroker(t, tern.Options{})
			hkAdd(t, b, hkAuth(func(tern.ConnectInfo) error { return tc.err }))
			c := dialRaw(t, addr)
			ack := c.connect("dev", false)
			require.Equal(t, tc.code, ack.ReturnCode, "CONNACK return code")
			if tc.code != 0 {
				require.False(t, ack.SessionPresent, "a refused CONNACK has session present 0")
			}
			st := b.Stats()
			if tc.code == packets.Accepted {
				assert.Zero(t, st.Refused, "Stats().Refused")
				assert.EqualValues(t, 1, st.Connects, "Stats().Connects")
				return
			}
			c.expectClosed()
			assert.EqualValues(t, 1, st.Refused, "Stats().Refused")
			assert.Zero(t, st.Connects, "Stats().Connects")
		})
	}
}

func TestAuthenticatorSeesConnectFields(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	seen := make(chan tern.ConnectInfo, 1)
	hkAdd(t, b, hkAuth(func(c tern.ConnectInfo) error { seen <- c; return nil }))
	c := dialRaw(t, addr)
	ack := c.connectWith(&packets.Connect{
		ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "dev-1", KeepAlive: 30,
		UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("s3cret"),
	})
	require.Zero(t, ack.ReturnCode, "CONNACK return code")
	got := <-seen
	want := tern.ConnectInfo{
		ClientID: "dev-1", Username: "alice", Password: []byte("s3cret"),
		HasUsername: true, HasPassword: true, CleanSession: false, ProtocolLevel: 4,
	}
	assert.Equal(t, want.ClientID, got.ClientID, "ConnectInfo.ClientID")
	assert.Equal(t, want.Username, got.Username, "ConnectInfo.Username")
	assert.Equal(t, want.Password, got.Password, "ConnectInfo.Password")
	assert.Equal(t, want.HasUsername, got.HasUsername, "ConnectInfo.HasUsername")
	assert.Equal(t, want.HasPassword, got.HasPassword, "ConnectInfo.HasPassword")
	assert.Equal(t, want.CleanSession, got.CleanSession, "ConnectInfo.CleanSession")
	assert.Equal(t, want.ProtocolLevel, got.ProtocolLevel, "ConnectInfo.ProtocolLevel")
	assert.Nil(t, got.TLS, "ConnectInfo.TLS")
	require.NotNil(t, got.RemoteAddr, "RemoteAddr: want the client's address %v", c.conn.LocalAddr())
	assert.Equal(t, c.conn.LocalAddr().String(), got.RemoteAddr.String(), "RemoteAddr: want the client's address")
}

// [MQTT-3.3.5-2] a PUBLISH the client may not make is acknowledged as its
// QoS requires, and neither stored nor forwarded.
func TestPublishAuthorizerRefusalIsAcknowledgedButNotForwarded(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	var mu sync.Mutex
	var asked []tern.Client
	hkAdd(t, b, hkPubAuth(func(c tern.Client, m tern.Message) error {
		mu.Lock()
		asked = append(asked, c)
		mu.Unlock()
		if strings.HasPrefix(m.Topic, "secret/") {
			return tern.ErrNotAuthorized
		}
		return nil
	}))
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "#", QoS: 2})
	pub := dialRaw(t, addr)
	pub.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "pub", CleanSession: true, UsernameFlag: true, Username: "bob"})
	before := b.Stats().PublishDropped

	pub.publishQoS(0, "secret/a", "q0", 0, false)
	pub.publishQoS(1, "secret/a", "q1", 1, true)  // PUBACK checked inside
	pub.publishQoS(2, "secret/a", "q2", 2, false) // PUBREC, PUBREL, PUBCOMP
	pub.publishQoS(3, "open/a", "marker", 1, false)
	require.Equal(t, "open/a", sub.recvPublish().Topic, "subscriber's first message must be the marker: a refused publish was forwarded")
	st := b.Stats()
	assert.EqualValues(t, 3, st.PublishDropped-before, "PublishDropped growth")
	assert.Zero(t, st.Retained, "a refused retained publish was stored")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, asked, 4, "authorizer saw %+v, want four calls for client pub (user bob)", asked)
	assert.Equal(t, "pub", asked[0].ID, "authorizer saw %+v, want four calls for client pub (user bob)", asked)
	assert.Equal(t, "bob", asked[0].Username, "authorizer saw %+v, want four calls for client pub (user bob)", asked)
	assert.False(t, asked[0].Internal, "authorizer saw %+v, want four calls for client pub (user bob)", asked)
}

// [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-4] [MQTT-3.8.4-5] a refused
// filter gets 0x80; the other filters of the same SUBSCRIBE are granted.
func TestSubscribeAuthorizerRefusalGivesFailureCodeForThatFilter(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	obs := newHkObserver()
	hkAdd(t, b, hkSubAuth(func(_ tern.Client, f string, _ byte) error {
		if strings.HasPrefix(f, "private/") {
			return tern.ErrNotAuthorized
		}
		return nil
	}))
	hkAdd(t, b, obs)
	c := mustConnect(t, addr, "c", true)
	ack := c.subscribe(7,
		packets.Subscription{Filter: "a/b", QoS: 1},
		packets.Subscription{Filter: "private/#", QoS: 2},
		packets.Subscription{Filter: "c/#", QoS: 0})
	require.Equal(t, uint16(7), ack.PacketID, "SUBACK packet identifier")
	require.Equal(t, []byte{1, packets.SubackFailure, 0}, ack.ReturnCodes, "SUBACK return codes")
	for _, want := range []string{"a/b", "c/#"} {
		require.Equal(t, want, obs.next(t, "subscribe").filter, "OnSubscribe filter (refused filters are not reported)")
	}
	c.publishQoS(1, "private/x", "no", 0, false)
	c.publishQoS(2, "c/x", "yes", 0, false)
	assert.Equal(t, "c/x", c.recvPublish().Topic, "the refused filter was subscribed")
}

func TestReadAuthorizerLimitsWildcardToReadableTopics(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, hkRead(func(c tern.Client, topic string) bool {
		return c.ID != "reader" || strings.HasPrefix(topic, "public/")
	}))
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "private/r", "hidden", 1, true)
	pub.publishQoS(2, "public/r", "shown", 1, true)

	reader := mustConnect(t, addr, "reader", true)
	reader.subscribe(1, packets.Subscription{Filter: "#", QoS: 1})
	admin := mustConnect(t, addr, "admin", true)
	admin.subscribe(1, packets.Subscription{Filter: "#", QoS: 1})

	// Retained at subscribe: the reader gets only the readable one.
	got := reader.recvPublish()
	require.Equal(t, "public/r", got.Topic, "reader's first retained message")
	require.True(t, got.Retain, "reader's first retained message: RETAIN")
	reader.send(&packets.Puback{PacketID: got.PacketID})
	seen := map[string]bool{}
	for range 2 {
		m := admin.recvPublish()
		seen[m.Topic] = true
		admin.send(&packets.Puback{PacketID: m.PacketID})
	}
	require.Equal(t, map[string]bool{"private/r": true, "public/r": true}, seen, "admin's retained messages: want both")

	// Live: the unreadable one is skipped for the reader only.
	pub.publishQoS(3, "private/live", "hidden", 0, false)
	pub.publishQoS(4, "public/live", "shown", 0, false)
	assert.Equal(t, "public/live", reader.recvPublish().Topic, "reader")
	assert.Equal(t, "private/live", admin.recvPublish().Topic, "admin")
}

func TestPublishInterceptorRewritesAndDrops(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	errDrop := errors.New("dropped by policy")
	hkAdd(t, b, hkIntercept(func(_ tern.Client, m *tern.Message) error {
		switch {
		case strings.HasPrefix(m.Topic, "raw/"):
			m.Topic = "cooked/" + strings.TrimPrefix(m.Topic, "raw/")
			m.Payload = bytes.ToUpper(m.Payload)
		case strings.HasPrefix(m.Topic, "drop/"):
			return errDrop
		case strings.HasPrefix(m.Topic, "bad/"):
			m.Topic = "bad/#" // not a valid topic name: dropped
		}
		return nil
	}))
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "#", QoS: 0})
	pub := mustConnect(t, addr, "pub", true)
	before := b.Stats().PublishDropped

	pub.publishQoS(1, "raw/t", "hello", 1, false)
	got := sub.recvPublish()
	require.Equal(t, "cooked/t", got.Topic)
	require.Equal(t, "HELLO", string(got.Payload))
	pub.publishQoS(2, "drop/t", "x", 1, false) // still acknowledged
	pub.publishQoS(3, "bad/t", "x", 2, false)
	pub.publishQoS(4, "plain/t", "marker", 1, false)
	require.Equal(t, "plain/t", sub.recvPublish().Topic, "want the marker: a dropped publish was forwarded")
	assert.EqualValues(t, 2, b.Stats().PublishDropped-before, "PublishDropped growth")

	// The interceptor sees Broker.Publish too, and its refusal is returned.
	ctx := context.Background()
	require.NoError(t, b.Publish(ctx, "raw/app", []byte("from code"), 0, false))
	got = sub.recvPublish()
	require.Equal(t, "cooked/app", got.Topic)
	require.Equal(t, "FROM CODE", string(got.Payload))
	assert.ErrorIs(t, b.Publish(ctx, "drop/app", []byte("x"), 0, false), errDrop, "Publish refused by the interceptor: want the hook's error")
}

// OnDisconnect reports nil after DISCONNECT and the cause otherwise.
func TestObserversSeeConnectionLifecycle(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	c := dialRaw(t, addr)
	c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "obs", CleanSession: true, UsernameFlag: true, Username: "carol"})
	e := obs.next(t, "connect")
	require.Equal(t, "obs", e.client.ID, "OnConnect %+v", e.client)
	require.Equal(t, "carol", e.client.Username, "OnConnect %+v", e.client)
	require.Equal(t, c.conn.LocalAddr().String(), e.client.RemoteAddr.String(), "OnConnect %+v", e.client)
	require.False(t, e.client.Internal, "OnConnect %+v", e.client)

	c.subscribe(1, packets.Subscription{Filter: "a/#", QoS: 1}, packets.Subscription{Filter: "b", QoS: 2})
	for _, want := range []hkEvent{{filter: "a/#", qos: 1}, {filter: "b", qos: 2}} {
		e := obs.next(t, "subscribe")
		require.Equal(t, want.filter, e.filter, "OnSubscribe filter")
		require.Equal(t, want.qos, e.qos, "OnSubscribe qos of %q", want.filter)
		require.Equal(t, "obs", e.client.ID, "OnSubscribe client")
	}
	c.send(&packets.Unsubscribe{PacketID: 2, Filters: []string{"never/subscribed", "a/#"}})
	_, ok := c.recv().(*packets.Unsuback)
	require.True(t, ok, "expected UNSUBACK")
	require.Equal(t, "a/#", obs.next(t, "unsubscribe").filter, "OnUnsubscribe: want a/# only")
	c.send(&packets.Disconnect{})
	e = obs.next(t, "disconnect")
	require.Equal(t, "obs", e.client.ID, "OnDisconnect after DISCONNECT: %+v", e)
	require.NoError(t, e.reason, "OnDisconnect after DISCONNECT: want reason nil")

	eof := mustConnect(t, addr, "eof", true)
	obs.next(t, "connect")
	eof.conn.Close()
	e = obs.next(t, "disconnect")
	assert.Equal(t, "eof", e.client.ID, "OnDisconnect after EOF: %+v", e)
	assert.Error(t, e.reason, "OnDisconnect after EOF: want a reason")
}

func TestDropObserverToldOfRefusalsAndFullQueues(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxQueued: 1})
	obs := newHkObserver()
	errNo := errors.New("no")
	hkAdd(t, b, hkPubAuth(func(_ tern.Client, m tern.Message) error {
		if m.Topic == "refused" {
			return errNo
		}
		return nil
	}))
	hkAdd(t, b, obs)
	off := mustConnect(t, addr, "offline", false)
	off.subscribe(1, packets.Subscription{Filter: "q", QoS: 1})
	off.send(&packets.Disconnect{})
	obs.next(t, "disconnect")
	pub := mustConnect(t, addr, "pub", true)

	pub.publishQoS(1, "refused", "r", 1, false)
	e := obs.next(t, "drop")
	require.Equal(t, "pub", e.client.ID, "drop by refusal: %+v", e)
	require.Equal(t, "refused", e.msg.Topic, "drop by refusal: %+v", e)
	require.ErrorIs(t, e.reason, errNo, "drop by refusal: want the hook's error")
	pub.publishQoS(2, "q", "kept", 1, false)
	pub.publishQoS(3, "q", "over", 1, false)
	e = obs.next(t, "drop")
	require.Equal(t, "offline", e.client.ID, "drop by full queue: %+v", e)
	require.Equal(t, "over", string(e.msg.Payload), "drop by full queue: %+v", e)
	require.Error(t, e.reason, "drop by full queue: want a reason")
	assert.EqualValues(t, 2, b.Stats().PublishDropped, "PublishDropped")
}
