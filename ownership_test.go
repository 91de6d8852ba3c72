package tern_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
)

// deviceACL is the ACL of the security report: every user reads and writes
// devices/<user>/#, nothing else. Users are alice and bob with passwords
// "<user>-pw".
type deviceACL struct{}

func (deviceACL) Authenticate(_ context.Context, c tern.ConnectInfo) error {
	if c.Username == "" || string(c.Password) != c.Username+"-pw" {
		return tern.ErrBadCredentials
	}
	return nil
}

func (deviceACL) AuthorizePublish(_ context.Context, c tern.Client, m tern.Message) error {
	if c.Internal || strings.HasPrefix(m.Topic, "devices/"+c.Username+"/") {
		return nil
	}
	return tern.ErrNotAuthorized
}

func (deviceACL) AuthorizeRead(c tern.Client, topic string) bool {
	return c.Internal || strings.HasPrefix(topic, "devices/"+c.Username+"/")
}

// userConnect connects as user with client id.
func userConnect(c *rawClient, id, user string, clean bool) *packets.Connack {
	c.t.Helper()
	return c.connectWith(&packets.Connect{
		ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: clean, KeepAlive: 60,
		UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(user + "-pw"),
	})
}

// aliceWithBacklog leaves alice's persistent session "alice-phone" offline
// with one QoS 1 message in flight (unacknowledged) and two queued.
func aliceWithBacklog(t *testing.T, b *tern.Broker, addr string) {
	t.Helper()
	alice := dialRaw(t, addr)
	require.Zero(t, userConnect(alice, "alice-phone", "alice", false).ReturnCode)
	alice.subscribe(1, packets.Subscription{Filter: "devices/alice/#", QoS: 1})
	require.NoError(t, b.Publish(context.Background(), "devices/alice/private", []byte("in flight"), 1, false))
	p := alice.recvPublish()
	require.Equal(t, "in flight", string(p.Payload))
	dropConnection(t, b, alice, "alice-phone") // no PUBACK
	require.NoError(t, b.Publish(context.Background(), "devices/alice/private", []byte("queued 1"), 1, false))
	require.NoError(t, b.Publish(context.Background(), "devices/alice/private", []byte("queued 2"), 1, false))
}

// aliceGetsHerBacklog reconnects alice and checks that her session is
// intact: the message in flight again (DUP), then the two queued ones.
func aliceGetsHerBacklog(t *testing.T, addr string) {
	t.Helper()
	alice := dialRaw(t, addr)
	ack := userConnect(alice, "alice-phone", "alice", false)
	require.Zero(t, ack.ReturnCode)
	require.True(t, ack.SessionPresent, "alice's session is gone")
	for i, want := range []string{"in flight", "queued 1", "queued 2"} {
		p := alice.recvPublish()
		require.Equal(t, want, string(p.Payload), "message %d", i)
		assert.Equal(t, i == 0, p.Dup, "DUP of %q", want)
		alice.send(&packets.Puback{PacketID: p.PacketID})
	}
	pingOK(alice)
}

// A session belongs to the identity that created it: another user who
// sends its client identifier, with either clean-session value, is refused
// with CONNACK 0x05, receives nothing, and changes nothing.
// [MQTT-3.2.2-4] [MQTT-3.2.2-5] [MQTT-3.1.3-5]
func TestSessionOfAnotherUserIsRefusedAndUntouched(t *testing.T) {
	for _, clean := range []bool{false, true} {
		name := map[bool]string{false: "clean session 0", true: "clean session 1"}[clean]
		t.Run(name, func(t *testing.T) {
			b, addr := startBroker(t, tern.Options{})
			hkAdd(t, b, deviceACL{})
			aliceWithBacklog(t, b, addr)
			refusedBefore := b.Stats().Refused

			bob := dialRaw(t, addr)
			ack := userConnect(bob, "alice-phone", "bob", clean)
			assert.Equal(t, packets.RefusedNotAuthorized, ack.ReturnCode)
			assert.False(t, ack.SessionPresent)
			bob.expectClosed()
			assert.Equal(t, refusedBefore+1, b.Stats().Refused)

			ci := clientInfo(t, b, "alice-phone")
			assert.Equal(t, "alice", ci.Username)
			assert.Equal(t, 1, ci.Inflight)
			assert.Equal(t, 2, ci.Queued)
			assert.Equal(t, 1, ci.Subscriptions)
			aliceGetsHerBacklog(t, addr)
		})
	}
}

// A live connection is not taken over by another user: it stays open and
// keeps working. [MQTT-3.1.4-2] applies to the same client only.
func TestLiveSessionOfAnotherUserIsNotTakenOver(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, deviceACL{})
	disc := watchDisconnects(t, b)
	alice := dialRaw(t, addr)
	require.Zero(t, userConnect(alice, "alice-phone", "alice", false).ReturnCode)
	alice.subscribe(1, packets.Subscription{Filter: "devices/alice/#", QoS: 1})

	bob := dialRaw(t, addr)
	assert.Equal(t, packets.RefusedNotAuthorized, userConnect(bob, "alice-phone", "bob", true).ReturnCode)
	bob.expectClosed()

	require.NoError(t, b.Publish(context.Background(), "devices/alice/x", []byte("still here"), 1, false))
	p := alice.recvPublish()
	assert.Equal(t, "still here", string(p.Payload))
	alice.send(&packets.Puback{PacketID: p.PacketID})
	pingOK(alice)
	select {
	case err := <-disc.of("alice-phone"):
		t.Fatalf("alice was disconnected: %v", err)
	default:
	}
	// The same user takes the session over, as [MQTT-3.1.4-2] requires.
	again := dialRaw(t, addr)
	ack := userConnect(again, "alice-phone", "alice", false)
	require.Zero(t, ack.ReturnCode)
	assert.True(t, ack.SessionPresent)
	alice.expectClosed()
	assert.ErrorIs(t, disc.wait(t, "alice-phone"), tern.ErrTakenOver)
}

// An anonymous client cannot take a user's session, nor a user an
// anonymous client's.
func TestAnonymousAndNamedIdentitiesDoNotShareSessions(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	named := dialRaw(t, addr)
	require.Zero(t, named.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "n", KeepAlive: 60, UsernameFlag: true, Username: "carol"}).ReturnCode)
	anon := dialRaw(t, addr)
	assert.Equal(t, packets.RefusedNotAuthorized, anon.connect("n", false).ReturnCode)
	pingOK(named)

	anon = mustConnect(t, addr, "a", false)
	other := dialRaw(t, addr)
	assert.Equal(t, packets.RefusedNotAuthorized, other.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "a", KeepAlive: 60, UsernameFlag: true, Username: "carol"}).ReturnCode)
	pingOK(anon)
}

// allowTakeover is a SessionAuthorizer that lets "admin" use any session.
type allowTakeover struct {
	mu   sync.Mutex
	seen []string // "user->owner"
}

func (a *allowTakeover) AuthorizeSession(_ context.Context, c tern.ConnectInfo, owner tern.Client) error {
	a.mu.Lock()
	a.seen = append(a.seen, c.Username+"->"+owner.Username)
	a.mu.Unlock()
	if c.Username == "admin" {
		return nil
	}
	return errors.New("only admin may use another user's session")
}

// A SessionAuthorizer replaces the ownership rule: it is asked only when
// the identities differ, and what it allows proceeds. Even then, every
// message goes only where the new identity may read: alice's backlog does
// not reach admin, whose ACL does not cover devices/alice/#.
func TestSessionAuthorizerDecidesAndReadChecksStillApply(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, deviceACL{})
	hook := &allowTakeover{}
	hkAdd(t, b, hook)
	drops := newHkObserver()
	hkAdd(t, b, drops)
	aliceWithBacklog(t, b, addr)
	droppedBefore := b.Stats().PublishDropped

	bob := dialRaw(t, addr)
	assert.Equal(t, packets.RefusedNotAuthorized, userConnect(bob, "alice-phone", "bob", false).ReturnCode)

	admin := dialRaw(t, addr)
	admin.t = t
	ack := admin.connectWith(&packets.Connect{
		ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "alice-phone", KeepAlive: 60,
		UsernameFlag: true, Username: "admin", PasswordFlag: true, Password: []byte("admin-pw"),
	})
	require.Zero(t, ack.ReturnCode)
	assert.True(t, ack.SessionPresent)
	// Neither the message in flight nor the queued ones are readable by
	// admin: all three are dropped and counted, none sent.
	pingOK(admin)
	assert.Equal(t, droppedBefore+3, b.Stats().PublishDropped)
	for range 3 {
		ev := drops.next(t, "drop")
		assert.Equal(t, "admin", ev.client.Username)
	}
	ci := clientInfo(t, b, "alice-phone")
	assert.Zero(t, ci.Inflight)
	assert.Zero(t, ci.Queued)
	assert.Equal(t, "admin", ci.Username, "the session now belongs to admin")
	hook.mu.Lock()
	assert.Equal(t, []string{"bob->alice", "admin->alice"}, hook.seen)
	hook.mu.Unlock()
}

// switchableACL refuses reads of the topics in deny.
type switchableACL struct {
	mu   sync.Mutex
	deny map[string]bool
}

func (a *switchableACL) AuthorizeRead(_ tern.Client, topic string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.deny[topic]
}

func (a *switchableACL) set(topic string, denied bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.deny == nil {
		a.deny = map[string]bool{}
	}
	a.deny[topic] = denied
}

// Every path that sends a message checks, at the moment of sending, that
// the client may read it: a message queued or in flight when the ACL
// changed is dropped and counted on resume, never sent.
func TestReadCheckAtSendTimeOnResume(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxInflight: 1})
	acl := &switchableACL{}
	hkAdd(t, b, acl)
	sub := mustConnect(t, addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "t/#", QoS: 1})
	require.NoError(t, b.Publish(context.Background(), "t/secret", []byte("in flight"), 1, false))
	require.Equal(t, "in flight", string(sub.recvPublish().Payload))
	dropConnection(t, b, sub, "sub")
	require.NoError(t, b.Publish(context.Background(), "t/secret", []byte("queued"), 1, false))
	require.NoError(t, b.Publish(context.Background(), "t/open", []byte("open"), 1, false))
	droppedBefore := b.Stats().PublishDropped

	acl.set("t/secret", true)
	sub = reconnect(t, addr, "sub")
	p := sub.recvPublish()
	assert.Equal(t, "open", string(p.Payload), "only the readable message is sent")
	assert.False(t, p.Dup)
	sub.send(&packets.Puback{PacketID: p.PacketID})
	pingOK(sub)
	assert.Equal(t, droppedBefore+2, b.Stats().PublishDropped)
}

// The same holds for a retained message sent on subscribe, and for what a
// restart restores from the store.
func TestReadCheckAtSendTimeForRetainedAndRestored(t *testing.T) {
	acl := &switchableACL{}
	before := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, before) })
	e := psStart(t, psBackend{"memory", func(*testing.T) (storage.Store, func() storage.Store) {
		m := storage.NewMemory()
		cur := m
		return m, func() storage.Store { cur.Close(); cur = m.Reopen(); return cur }
	}}, tern.Options{})
	require.NoError(t, e.b.AddHook(acl))
	require.NoError(t, e.b.Publish(context.Background(), "r/secret", []byte("retained secret"), 1, true))
	require.NoError(t, e.b.Publish(context.Background(), "r/open", []byte("retained open"), 1, true))
	acl.set("r/secret", true)
	sub := mustConnect(t, e.addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "r/#", QoS: 1})
	p := sub.recvPublish()
	assert.Equal(t, "retained open", string(p.Payload))
	sub.send(&packets.Puback{PacketID: p.PacketID})
	pingOK(sub)
	psLeave(sub)

	acl.set("r/secret", false)
	require.NoError(t, e.b.Publish(context.Background(), "r/secret", []byte("queued secret"), 1, false))
	require.NoError(t, e.b.Publish(context.Background(), "r/open", []byte("queued open"), 1, false))
	e.restart()
	acl.set("r/secret", true)
	require.NoError(t, e.b.AddHook(acl))
	sub = psResume(t, e.addr, "sub")
	p = sub.recvPublish()
	assert.Equal(t, "queued open", string(p.Payload), "only the readable restored message is sent")
	sub.send(&packets.Puback{PacketID: p.PacketID})
	pingOK(sub)
	assert.Equal(t, int64(1), e.b.Stats().PublishDropped)
}

// blockingRead is deviceACL whose read check for alice on one topic waits
// until released: routing has checked alice's right to read, and the
// session changes hands before the message reaches it.
type blockingRead struct {
	deviceACL
	entered, release chan struct{}
}

func (h *blockingRead) AuthorizeRead(c tern.Client, topic string) bool {
	if c.Username == "alice" && topic == "devices/alice/held" {
		close(h.entered)
		<-h.release
	}
	return h.deviceACL.AuthorizeRead(c, topic)
}

// A message checked for alice's identity while admin takes her session
// over (a SessionAuthorizer allows it) is checked again for admin before
// it goes out: the read check holds for the identity the message is
// delivered to, not only the one routing saw.
func TestReadCheckFollowsATakeoverDuringRouting(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	hook := &blockingRead{entered: make(chan struct{}), release: make(chan struct{})}
	hkAdd(t, b, hook)
	hkAdd(t, b, &allowTakeover{})
	alice := dialRaw(t, addr)
	require.Zero(t, userConnect(alice, "alice-phone", "alice", false).ReturnCode)
	alice.subscribe(1, packets.Subscription{Filter: "devices/alice/#", QoS: 0})

	publisher := dialRaw(t, addr)
	require.Zero(t, userConnect(publisher, "alice-hub", "alice", true).ReturnCode)
	publisher.send(&packets.Publish{Topic: "devices/alice/held", Payload: []byte("for alice only")})
	select {
	case <-hook.entered:
	case <-time.After(waitTimeout):
		require.FailNow(t, "the read check for alice never ran")
	}
	droppedBefore := b.Stats().PublishDropped

	admin := dialRaw(t, addr)
	ack := userConnect(admin, "alice-phone", "admin", false)
	require.Zero(t, ack.ReturnCode)
	require.True(t, ack.SessionPresent, "admin took alice's session over")
	close(hook.release)

	require.Eventually(t, func() bool { return b.Stats().PublishDropped > droppedBefore }, waitTimeout, 10*time.Millisecond,
		"the message checked for alice was not dropped for admin")
	assert.Empty(t, pingSync(admin), "admin may not read devices/alice/held")
}
