package tern_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
			t.Fatalf("timed out waiting for %s event", kind)
		}
	}
}

func hkAdd(t testing.TB, b *tern.Broker, h any) {
	t.Helper()
	if err := b.AddHook(h); err != nil {
		t.Fatalf("AddHook(%T): %v", h, err)
	}
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
		if err := b.AddHook(v); !errors.Is(err, tern.ErrNotAHook) {
			t.Errorf("AddHook(%T) = %v, want ErrNotAHook", v, err)
		}
	}
	if err := b.AddHook(newHkObserver()); err != nil {
		t.Errorf("AddHook(observer) = %v, want nil", err)
	}
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
	if got := taken(); !slices.Equal(got, []string{"first", "second", "third"}) {
		t.Fatalf("accepted CONNECT ran hooks %v, want first, second, third", got)
	}
	c := dialRaw(t, addr)
	if ack := c.connect("refused", true); ack.ReturnCode != packets.RefusedBadUsernamePassword {
		t.Fatalf("CONNACK 0x%02x, want 0x04", ack.ReturnCode)
	}
	if got := taken(); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("refused CONNECT ran hooks %v, want first, second (the third is not asked)", got)
	}
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
	if ack := c.connect("boom", true); ack.ReturnCode != packets.RefusedNotAuthorized || ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want 0x05 with session present 0", ack)
	}
	c.expectClosed()
	if !strings.Contains(logs.String(), "authenticator exploded") {
		t.Errorf("the panic was not logged; logs:\n%s", logs)
	}

	// The broker keeps serving; the other panicking hooks refuse too.
	sub := mustConnect(t, addr, "sub", true)
	if ack := sub.subscribe(1, packets.Subscription{Filter: "boom", QoS: 1}, packets.Subscription{Filter: "#", QoS: 1}); !bytes.Equal(ack.ReturnCodes, []byte{packets.SubackFailure, 1}) {
		t.Fatalf("SUBACK %v, want [0x80 1]", ack.ReturnCodes)
	}
	pub := mustConnect(t, addr, "pub", true)
	dropped := b.Stats().PublishDropped
	pub.publishQoS(1, "boom", "x", 1, false)
	if e := obs.next(t, "drop"); e.msg.Topic != "boom" || e.client.ID != "pub" || e.reason == nil {
		t.Fatalf("drop event %+v", e)
	}
	pub.publishQoS(2, "fine", "y", 1, false)
	if got := sub.recvPublish(); got.Topic != "fine" {
		t.Fatalf("subscriber got %q, want only the publish that the panicking hook did not see", got.Topic)
	}
	if d := b.Stats().PublishDropped - dropped; d != 1 {
		t.Errorf("PublishDropped grew by %d, want 1", d)
	}
	for _, want := range []string{"publish authorizer exploded", "subscribe authorizer exploded"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("panic %q not logged", want)
		}
	}
}

func TestPanickingObserverDoesNotDisturbTheClient(t *testing.T) {
	b, addr := startBroker(t, tern.Options{Logger: slog.New(slog.DiscardHandler)})
	hkAdd(t, b, hkPanicObserver{})
	c := mustConnect(t, addr, "c", true)
	c.subscribe(1, packets.Subscription{Filter: "t", QoS: 0})
	c.publishQoS(1, "t", "still served", 0, false)
	if got := c.recvPublish(); string(got.Payload) != "still served" {
		t.Fatalf("got %q", got.Payload)
	}
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
			if ack.ReturnCode != tc.code || (tc.code != 0 && ack.SessionPresent) {
				t.Fatalf("CONNACK %+v, want return code 0x%02x", ack, tc.code)
			}
			st := b.Stats()
			if tc.code == packets.Accepted {
				if st.Refused != 0 || st.Connects != 1 {
					t.Fatalf("Stats refused %d connects %d, want 0 and 1", st.Refused, st.Connects)
				}
				return
			}
			c.expectClosed()
			if st.Refused != 1 || st.Connects != 0 {
				t.Fatalf("Stats refused %d connects %d, want 1 and 0", st.Refused, st.Connects)
			}
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
	if ack.ReturnCode != 0 {
		t.Fatalf("CONNACK 0x%02x", ack.ReturnCode)
	}
	got := <-seen
	want := tern.ConnectInfo{
		ClientID: "dev-1", Username: "alice", Password: []byte("s3cret"),
		HasUsername: true, HasPassword: true, CleanSession: false, ProtocolLevel: 4,
	}
	if got.ClientID != want.ClientID || got.Username != want.Username || !bytes.Equal(got.Password, want.Password) ||
		got.HasUsername != want.HasUsername || got.HasPassword != want.HasPassword ||
		got.CleanSession != want.CleanSession || got.ProtocolLevel != want.ProtocolLevel || got.TLS != nil {
		t.Fatalf("ConnectInfo %+v, want %+v", got, want)
	}
	if got.RemoteAddr == nil || got.RemoteAddr.String() != c.conn.LocalAddr().String() {
		t.Fatalf("RemoteAddr %v, want the client's address %v", got.RemoteAddr, c.conn.LocalAddr())
	}
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
	if got := sub.recvPublish(); got.Topic != "open/a" {
		t.Fatalf("subscriber got %q first, want the marker: a refused publish was forwarded", got.Topic)
	}
	st := b.Stats()
	if d := st.PublishDropped - before; d != 3 {
		t.Errorf("PublishDropped grew by %d, want 3", d)
	}
	if st.Retained != 0 {
		t.Errorf("a refused retained publish was stored: %d retained", st.Retained)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 4 || asked[0].ID != "pub" || asked[0].Username != "bob" || asked[0].Internal {
		t.Errorf("authorizer saw %+v, want four calls for client pub (user bob)", asked)
	}
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
	if ack.PacketID != 7 || !bytes.Equal(ack.ReturnCodes, []byte{1, packets.SubackFailure, 0}) {
		t.Fatalf("SUBACK %+v, want id 7 codes [1 0x80 0]", ack)
	}
	for _, want := range []string{"a/b", "c/#"} {
		if e := obs.next(t, "subscribe"); e.filter != want {
			t.Fatalf("OnSubscribe for %q, want %q (refused filters are not reported)", e.filter, want)
		}
	}
	c.publishQoS(1, "private/x", "no", 0, false)
	c.publishQoS(2, "c/x", "yes", 0, false)
	if got := c.recvPublish(); got.Topic != "c/x" {
		t.Fatalf("got %q: the refused filter was subscribed", got.Topic)
	}
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
	if got.Topic != "public/r" || !got.Retain {
		t.Fatalf("reader's first retained message %q (retain %v), want public/r", got.Topic, got.Retain)
	}
	reader.send(&packets.Puback{PacketID: got.PacketID})
	seen := map[string]bool{}
	for range 2 {
		m := admin.recvPublish()
		seen[m.Topic] = true
		admin.send(&packets.Puback{PacketID: m.PacketID})
	}
	if !seen["private/r"] || !seen["public/r"] {
		t.Fatalf("admin's retained messages %v, want both", seen)
	}

	// Live: the unreadable one is skipped for the reader only.
	pub.publishQoS(3, "private/live", "hidden", 0, false)
	pub.publishQoS(4, "public/live", "shown", 0, false)
	if got := reader.recvPublish(); got.Topic != "public/live" {
		t.Fatalf("reader got %q, want public/live", got.Topic)
	}
	if got := admin.recvPublish(); got.Topic != "private/live" {
		t.Fatalf("admin got %q, want private/live", got.Topic)
	}
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
	if got := sub.recvPublish(); got.Topic != "cooked/t" || string(got.Payload) != "HELLO" {
		t.Fatalf("got %q %q, want cooked/t HELLO", got.Topic, got.Payload)
	}
	pub.publishQoS(2, "drop/t", "x", 1, false) // still acknowledged
	pub.publishQoS(3, "bad/t", "x", 2, false)
	pub.publishQoS(4, "plain/t", "marker", 1, false)
	if got := sub.recvPublish(); got.Topic != "plain/t" {
		t.Fatalf("got %q, want the marker: a dropped publish was forwarded", got.Topic)
	}
	if d := b.Stats().PublishDropped - before; d != 2 {
		t.Errorf("PublishDropped grew by %d, want 2", d)
	}

	// The interceptor sees Broker.Publish too, and its refusal is returned.
	ctx := context.Background()
	if err := b.Publish(ctx, "raw/app", []byte("from code"), 0, false); err != nil {
		t.Fatal(err)
	}
	if got := sub.recvPublish(); got.Topic != "cooked/app" || string(got.Payload) != "FROM CODE" {
		t.Fatalf("got %q %q", got.Topic, got.Payload)
	}
	if err := b.Publish(ctx, "drop/app", []byte("x"), 0, false); !errors.Is(err, errDrop) {
		t.Fatalf("Publish refused by the interceptor = %v, want the hook's error", err)
	}
}

// OnDisconnect reports nil after DISCONNECT and the cause otherwise.
func TestObserversSeeConnectionLifecycle(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	obs := newHkObserver()
	hkAdd(t, b, obs)
	c := dialRaw(t, addr)
	c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "obs", CleanSession: true, UsernameFlag: true, Username: "carol"})
	e := obs.next(t, "connect")
	if e.client.ID != "obs" || e.client.Username != "carol" || e.client.RemoteAddr.String() != c.conn.LocalAddr().String() || e.client.Internal {
		t.Fatalf("OnConnect %+v", e.client)
	}

	c.subscribe(1, packets.Subscription{Filter: "a/#", QoS: 1}, packets.Subscription{Filter: "b", QoS: 2})
	for _, want := range []hkEvent{{filter: "a/#", qos: 1}, {filter: "b", qos: 2}} {
		if e := obs.next(t, "subscribe"); e.filter != want.filter || e.qos != want.qos || e.client.ID != "obs" {
			t.Fatalf("OnSubscribe %q qos %d, want %q qos %d", e.filter, e.qos, want.filter, want.qos)
		}
	}
	c.send(&packets.Unsubscribe{PacketID: 2, Filters: []string{"never/subscribed", "a/#"}})
	if _, ok := c.recv().(*packets.Unsuback); !ok {
		t.Fatal("expected UNSUBACK")
	}
	if e := obs.next(t, "unsubscribe"); e.filter != "a/#" {
		t.Fatalf("OnUnsubscribe %q, want a/# only", e.filter)
	}
	c.send(&packets.Disconnect{})
	if e := obs.next(t, "disconnect"); e.client.ID != "obs" || e.reason != nil {
		t.Fatalf("OnDisconnect after DISCONNECT: %+v, want reason nil", e)
	}

	eof := mustConnect(t, addr, "eof", true)
	obs.next(t, "connect")
	eof.conn.Close()
	if e := obs.next(t, "disconnect"); e.client.ID != "eof" || e.reason == nil {
		t.Fatalf("OnDisconnect after EOF: %+v, want a reason", e)
	}
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
	if e := obs.next(t, "drop"); e.client.ID != "pub" || e.msg.Topic != "refused" || !errors.Is(e.reason, errNo) {
		t.Fatalf("drop by refusal: %+v, want from pub with the hook's error", e)
	}
	pub.publishQoS(2, "q", "kept", 1, false)
	pub.publishQoS(3, "q", "over", 1, false)
	e := obs.next(t, "drop")
	if e.client.ID != "offline" || string(e.msg.Payload) != "over" || e.reason == nil {
		t.Fatalf("drop by full queue: %+v, want for client offline, payload over", e)
	}
	if got := b.Stats().PublishDropped; got != 2 {
		t.Errorf("PublishDropped %d, want 2", got)
	}
}
