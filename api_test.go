package tern_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// PublishMessage carries MQTT 5 properties to MQTT 5 subscribers, says
// how many subscriptions the message matched, and reports a refusal with
// the hook's error.
func TestPublishMessageCarriesPropertiesAndTellsWhatHappened(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := a5Client(t, addr, "sub")
	a5Subscribe(sub, 1, packets.Properties{}, packets.Subscription{Filter: "svc/#", QoS: 1})

	m := tern.Message{
		Topic: "svc/req", Payload: []byte("ping"), QoS: 1,
		PayloadFormat: tern.PayloadUTF8, MessageExpiry: time.Minute, ContentType: "text/plain",
		ResponseTopic: "svc/resp/1", CorrelationData: []byte{1, 2, 3},
		UserProperties: []tern.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}, {Key: "b", Value: "3"}},
	}
	res, err := b.PublishMessage(context.Background(), m)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Matched)
	p := sub.recvPublish()
	assert.Equal(t, "svc/req", p.Topic)
	props, err := p.Props.Properties()
	require.NoError(t, err)
	require.NotNil(t, props.PayloadFormat)
	assert.Equal(t, byte(1), *props.PayloadFormat)
	require.NotNil(t, props.MessageExpiry)
	assert.InDelta(t, 60, *props.MessageExpiry, 1)
	assert.Equal(t, "text/plain", props.ContentType)
	assert.Equal(t, "svc/resp/1", props.ResponseTopic)
	assert.Equal(t, []byte{1, 2, 3}, props.CorrelationData)
	assert.Equal(t, m.UserProperties, props.User, "user properties in order")
	sub.send(&packets.Puback{Version: packets.Level5, PacketID: p.PacketID})

	res, err = b.PublishMessage(context.Background(), tern.Message{Topic: "nobody/listens"})
	require.NoError(t, err)
	assert.Zero(t, res.Matched, "no matching subscribers")

	_, err = b.PublishMessage(context.Background(), tern.Message{Topic: "svc/x", ResponseTopic: "bad/#"})
	assert.Error(t, err, "a Response Topic with a wildcard")
	_, err = b.PublishMessage(context.Background(), tern.Message{Topic: "svc/x", PayloadFormat: 7})
	assert.Error(t, err, "an unknown payload format")
}

// dropSecrets is a PublishInterceptor that drops messages to secret/#.
type dropSecrets struct{ seen chan tern.Client }

var errSecret = errors.New("secret topic")

func (d dropSecrets) InterceptPublish(_ context.Context, c tern.Client, m *tern.Message) error {
	d.seen <- c
	if len(m.Topic) > 7 && m.Topic[:7] == "secret/" {
		return errSecret
	}
	return nil
}

// Application code is trusted: authorizers are not asked about in-process
// publishes and subscriptions (a rule written for network clients cannot
// starve them), while interceptors see them, with Client.Internal set.
func TestApplicationCodeIsTrustedByAuthorizersAndSeenByInterceptors(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	denyAll := struct {
		hkPubAuth
		hkSubAuth
		hkRead
	}{
		func(tern.Client, tern.Message) error { return tern.ErrNotAuthorized },
		func(tern.Client, string, byte) error { return tern.ErrNotAuthorized },
		func(tern.Client, string) bool { return false },
	}
	hkAdd(t, b, denyAll)
	icpt := dropSecrets{seen: make(chan tern.Client, 16)}
	hkAdd(t, b, icpt)

	h, ch := inbox(4)
	mustSubscribe(t, b, "app/#", 1, h)
	require.NoError(t, b.Publish(context.Background(), "app/x", []byte("1"), 1, false))
	assert.Equal(t, "app/x", receive(t, ch).Topic, "the in-process subscription got the application's message")
	assert.True(t, (<-icpt.seen).Internal, "the interceptor saw the publish as Internal")

	_, err := b.PublishMessage(context.Background(), tern.Message{Topic: "secret/x"})
	assert.ErrorIs(t, err, tern.ErrRefused)
	assert.ErrorIs(t, err, errSecret, "the hook's error")
	<-icpt.seen

	// A network client is still judged by the authorizers.
	c := mustConnect(t, addr, "dev", true)
	ack := c.subscribe(1, packets.Subscription{Filter: "app/#"})
	assert.Equal(t, []byte{packets.SubackFailure}, ack.ReturnCodes)
}

// A Broker.Subscribe handler gets the publisher's identity with each
// message, and MQTT 5 subscription options: No Local leaves out the
// application's own messages, RetainHandling 2 sends no retained ones,
// RetainAsPublished keeps RETAIN on live messages.
func TestSubscribeHandlerGetsPublisherAndOptions(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	require.NoError(t, b.Publish(context.Background(), "opt/retained", []byte("r"), 0, true))

	type got struct {
		m    tern.Message
		from tern.Client
	}
	sink := func() (tern.Handler, chan got) {
		ch := make(chan got, 8)
		return func(m tern.Message, from tern.Client) { ch <- got{m, from} }, ch
	}
	plainH, plain := sink()
	_, err := b.Subscribe("opt/#", tern.SubscribeOptions{QoS: 1}, plainH)
	require.NoError(t, err)
	optsH, opts := sink()
	_, err = b.Subscribe("opt/#", tern.SubscribeOptions{QoS: 1, NoLocal: true, RetainHandling: 2, RetainAsPublished: true}, optsH)
	require.NoError(t, err)

	first := <-plain
	assert.Equal(t, "opt/retained", first.m.Topic, "retained message first")
	assert.True(t, first.m.Retain)

	require.NoError(t, b.Publish(context.Background(), "opt/app", []byte("a"), 0, true))
	app := <-plain
	assert.True(t, app.from.Internal, "published by the application")
	assert.False(t, app.m.Retain, "RETAIN cleared on a live message")

	dev := mustConnect(t, addr, "dev-7", true)
	dev.publishQoS(1, "opt/dev", "d", 1, true)
	fromDev := <-plain
	assert.Equal(t, "opt/dev", fromDev.m.Topic)
	assert.Equal(t, "dev-7", fromDev.from.ID, "the publishing client")
	assert.False(t, fromDev.from.Internal)

	// The options subscription saw neither the retained message on
	// subscribe nor the application's publish, only the device's, with
	// RETAIN as published.
	onlyDev := <-opts
	assert.Equal(t, "opt/dev", onlyDev.m.Topic)
	assert.True(t, onlyDev.m.Retain, "Retain As Published")
	assert.Equal(t, "dev-7", onlyDev.from.ID)
	select {
	case extra := <-opts:
		t.Fatalf("the No Local / Retain Handling 2 subscription got %+v", extra)
	default:
	}
}

// Broker.Subscribe joins shared subscription groups with network clients:
// each message goes to one member.
func TestSubscribeJoinsASharedGroupWithClients(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	h, ch := inbox(64)
	cancel := mustSubscribe(t, b, "$share/workers/jobs/#", 1, h)
	worker := a5Client(t, addr, "worker")
	a5Subscribe(worker, 1, packets.Properties{}, packets.Subscription{Filter: "$share/workers/jobs/#", QoS: 1})

	const n = 20
	for i := range n {
		require.NoError(t, b.Publish(context.Background(), fmt.Sprintf("jobs/%d", i), nil, 1, false))
	}
	fromWorker := make(chan string, n)
	go func() {
		for {
			p, err := worker.tryRecv(waitTimeout)
			if err != nil {
				return
			}
			if pub, ok := p.(*packets.Publish); ok {
				fromWorker <- pub.Topic
				ack, _ := (&packets.Puback{Version: packets.Level5, PacketID: pub.PacketID}).Append(nil)
				if _, err := worker.conn.Write(ack); err != nil {
					return
				}
			}
		}
	}()
	seen := map[string]int{}
	inHandler := 0
	for range n {
		select {
		case m := <-ch:
			seen[m.Topic]++
			inHandler++
		case topic := <-fromWorker:
			seen[topic]++
		case <-time.After(waitTimeout):
			t.Fatalf("%d of %d jobs delivered", len(seen), n)
		}
	}
	assert.Len(t, seen, n, "every job once")
	for topic, k := range seen {
		assert.Equal(t, 1, k, "%s delivered %d times", topic, k)
	}
	assert.Positive(t, inHandler, "the handler took part")
	assert.Less(t, inHandler, n, "the network client took part")
	cancel()
	require.NoError(t, b.Publish(context.Background(), "jobs/after", nil, 1, false))
	select {
	case topic := <-fromWorker:
		assert.Equal(t, "jobs/after", topic, "after the handler left, the client gets everything")
	case <-time.After(waitTimeout):
		t.Fatal("the message after the handler left was not delivered")
	}
}

// hookRecorder implements the lifecycle hooks and records what they see.
type hookRecorder struct {
	mu       sync.Mutex
	sessions []string
	wills    []tern.Message
	deliv    []string
	retained []string
}

func (r *hookRecorder) OnSession(c tern.Client, e tern.SessionEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := c.ID + " " + e.Kind.String()
	if e.Reason != nil {
		s += ": " + e.Reason.Error()
	}
	r.sessions = append(r.sessions, s)
}

func (r *hookRecorder) OnWill(_ tern.Client, w tern.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wills = append(r.wills, w)
}

func (r *hookRecorder) OnDelivered(c tern.Client, m tern.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliv = append(r.deliv, fmt.Sprintf("%s %s q%d", c.ID, m.Topic, m.QoS))
}

func (r *hookRecorder) OnRetain(m tern.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retained = append(r.retained, fmt.Sprintf("%s=%s", m.Topic, m.Payload))
}

func (r *hookRecorder) snapshot() (sessions []string, wills []tern.Message, deliv, retained []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.sessions...), append([]tern.Message(nil), r.wills...),
		append([]string(nil), r.deliv...), append([]string(nil), r.retained...)
}

// SessionObserver, DeliveryObserver and RetainObserver hooks are told of
// sessions created, resumed and ended, of deliveries (QoS 0 handed over,
// QoS 1 and 2 acknowledged) and of retained messages set and cleared.
func TestLifecycleObservers(t *testing.T) {
	b, addr := startBroker(t, tern.Options{SessionExpiry: time.Second})
	rec := &hookRecorder{}
	hkAdd(t, b, rec)

	sub := mustConnect(t, addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "obs/#", QoS: 2})
	require.NoError(t, b.Publish(context.Background(), "obs/q0", nil, 0, false))
	require.NoError(t, b.Publish(context.Background(), "obs/q1", []byte("x"), 1, true))
	require.NoError(t, b.Publish(context.Background(), "obs/q2", nil, 2, false))
	require.Equal(t, "obs/q0", sub.recvPublish().Topic)
	q1 := sub.recvPublish()
	sub.send(&packets.Puback{PacketID: q1.PacketID})
	q2 := sub.recvPublish()
	sub.send(&packets.Pubrec{PacketID: q2.PacketID})
	_, ok := sub.recv().(*packets.Pubrel)
	require.True(t, ok)
	sub.send(&packets.Pubcomp{PacketID: q2.PacketID})
	pingOK(sub)
	require.NoError(t, b.Publish(context.Background(), "obs/q1", nil, 0, true)) // clears it
	assert.Equal(t, "obs/q1", sub.recvPublish().Topic, "a clear is routed as any message")
	dropConnection(t, b, sub, "sub")
	sub = reconnect(t, addr, "sub")
	dropConnection(t, b, sub, "sub")
	clean := mustConnect(t, addr, "brief", true)
	clean.conn.Close()

	require.Eventually(t, func() bool {
		sessions, _, _, _ := rec.snapshot()
		return len(sessions) == 5
	}, waitTimeout, 10*time.Millisecond, "the persistent session expires after 1 s")
	sessions, _, deliv, retained := rec.snapshot()
	assert.Equal(t, []string{
		"sub created", "sub resumed", "brief created", "brief ended: " + tern.ErrSessionClosed.Error(),
		"sub ended: " + tern.ErrSessionExpired.Error(),
	}, sessions)
	assert.Equal(t, []string{"sub obs/q0 q0", "sub obs/q1 q1", "sub obs/q2 q2", "sub obs/q1 q0"}, deliv)
	assert.Equal(t, []string{"obs/q1=x", "obs/q1="}, retained)
}

// rewriteWill is a WillInterceptor that suppresses wills to quiet/# and
// rewrites the others' payload.
type rewriteWill struct{}

func (rewriteWill) InterceptWill(_ context.Context, c tern.Client, w *tern.Message) error {
	if len(w.Topic) > 6 && w.Topic[:6] == "quiet/" {
		return errors.New("suppressed")
	}
	w.Payload = []byte(c.ID + " is gone")
	w.UserProperties = append(w.UserProperties, tern.UserProperty{Key: "rewritten", Value: "yes"})
	return nil
}

// A WillInterceptor rewrites or suppresses a will before it is published;
// a WillObserver is told of the wills published.
func TestWillInterceptorRewritesAndSuppresses(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	rec := &hookRecorder{}
	hkAdd(t, b, rewriteWill{})
	hkAdd(t, b, rec)
	watcher := a5Client(t, addr, "watcher")
	a5Subscribe(watcher, 1, packets.Properties{}, packets.Subscription{Filter: "+/dev"})

	for _, topic := range []string{"quiet/dev", "loud/dev"} {
		c := dialRaw(t, addr)
		require.Zero(t, c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: topic, KeepAlive: 60,
			WillFlag: true, WillTopic: topic, WillMessage: []byte("original")}).ReturnCode)
		dropConnection(t, b, c, topic)
	}
	p := watcher.recvPublish()
	assert.Equal(t, "loud/dev", p.Topic, "the quiet will was suppressed")
	assert.Equal(t, "loud/dev is gone", string(p.Payload))
	props, err := p.Props.Properties()
	require.NoError(t, err)
	assert.Equal(t, []packets.UserProperty{{Key: "rewritten", Value: "yes"}}, props.User)
	_, wills, _, _ := rec.snapshot()
	require.Len(t, wills, 1)
	assert.Equal(t, "loud/dev", wills[0].Topic)
}

// tuneConnect is a ConnectInterceptor that caps sessions at 30 s and sets
// a keepalive of 20 s.
type tuneConnect struct{}

func (tuneConnect) InterceptConnect(_ context.Context, c *tern.ConnectInfo) error {
	if c.ClientID == "refused" {
		return &tern.ReasonError{Code: packets.Banned, Reason: "banned here"}
	}
	c.SessionExpiry = min(c.SessionExpiry, 30*time.Second)
	c.KeepAlive = 20 * time.Second
	return nil
}

// A ConnectInterceptor assigns the session expiry and the keepalive: an
// MQTT 5 client is told them (CONNACK Session Expiry Interval, Server Keep
// Alive) [v5 MQTT-3.2.2-21]; its error refuses with the ReasonError's code.
func TestConnectInterceptorAssignsExpiryAndKeepAlive(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, tuneConnect{})
	c := a5Dial(t, addr)
	ack := a5Connect(c, "tuned", packets.Properties{SessionExpiry: new(uint32(3600))})
	require.Equal(t, byte(packets.Success), ack.ReturnCode)
	require.NotNil(t, ack.Properties.SessionExpiry)
	assert.Equal(t, uint32(30), *ack.Properties.SessionExpiry)
	require.NotNil(t, ack.Properties.ServerKeepAlive)
	assert.Equal(t, uint16(20), *ack.Properties.ServerKeepAlive)

	r := a5Dial(t, addr)
	ack = a5Connect(r, "refused", packets.Properties{})
	assert.Equal(t, byte(packets.Banned), ack.ReturnCode)
	assert.Equal(t, "banned here", ack.Properties.ReasonString)
	r.expectClosed()
	// A 3.1.1 client gets the nearest return code.
	old := dialRaw(t, addr)
	assert.Equal(t, packets.RefusedNotAuthorized, old.connect("refused", true).ReturnCode)
}

// A hook refuses with an MQTT 5 reason code and reason string: a v5 client
// gets them in SUBACK and PUBACK, a 3.1.1 client what it always got.
func TestReasonErrorReachesMQTT5Clients(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, hkSubAuth(func(_ tern.Client, f string, _ byte) error {
		if f == "#" {
			return &tern.ReasonError{Code: packets.WildcardSubscriptionsNotSupported, Reason: "no firehose"}
		}
		return nil
	}))
	hkAdd(t, b, hkPubAuth(func(_ tern.Client, m tern.Message) error {
		if m.Topic == "quota" {
			return &tern.ReasonError{Code: packets.QuotaExceeded, Reason: "slow down"}
		}
		return nil
	}))
	c := a5Client(t, addr, "v5")
	ack := a5Subscribe(c, 1, packets.Properties{}, packets.Subscription{Filter: "#"}, packets.Subscription{Filter: "ok", QoS: 1})
	assert.Equal(t, []byte{byte(packets.WildcardSubscriptionsNotSupported), 1}, ack.ReturnCodes)
	assert.Equal(t, "no firehose", ack.Properties.ReasonString)
	c.send(&packets.Publish{Version: packets.Level5, Topic: "quota", QoS: 1, PacketID: 9})
	pa, ok := c.recv().(*packets.Puback)
	require.True(t, ok)
	assert.Equal(t, packets.QuotaExceeded, pa.ReasonCode)
	assert.Equal(t, "slow down", pa.Properties.ReasonString)

	old := mustConnect(t, addr, "v311", true)
	assert.Equal(t, []byte{packets.SubackFailure}, old.subscribe(1, packets.Subscription{Filter: "#"}).ReturnCodes)
	old.publishQoS(3, "quota", "x", 1, false) // acknowledged as usual
}
