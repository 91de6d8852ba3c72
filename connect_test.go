package tern_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of CONNECT and CONNACK (sections 3.1 and 3.2), client
// identifiers, sessions (section 4.1) and takeover, on the wire.

// Bits of the CONNECT flags byte, for hand-built CONNECT packets.
const (
	flagClean     = 0x02
	flagWill      = 0x04
	flagWillQoS1  = 0x08
	flagWillQoS2  = 0x10
	flagWillRetn  = 0x20
	flagPassword  = 0x40
	flagUsername  = 0x80
	flagReserved  = 0x01
	flagWillQoS3  = flagWillQoS1 | flagWillQoS2
	flagCleanWill = flagClean | flagWill
)

// mqttString encodes s as a length-prefixed MQTT string (or binary field).
func mqttString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// packetBytes frames the concatenated parts behind the first byte of a fixed
// header and a Remaining Length, without any validation.
func packetBytes(first byte, parts ...[]byte) []byte {
	body := slices.Concat(parts...)
	return slices.Concat([]byte{first}, remainingLength(len(body)), body)
}

// remainingLength encodes n as a Remaining Length (section 2.2.3), even one
// out of range.
func remainingLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		if n /= 128; n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

// connectBytes builds a CONNECT by hand, valid or not: protocol name and
// level, flags, keepalive 60, then the payload fields as given.
func connectBytes(name string, level, flags byte, fields ...[]byte) []byte {
	vh := append(mqttString(name), level, flags, 0, 60)
	return packetBytes(0x10, append([][]byte{vh}, fields...)...)
}

// pingOK checks that c is connected and served: PINGREQ gets PINGRESP.
func pingOK(c *rawClient) {
	c.t.Helper()
	c.send(&packets.Pingreq{})
	p := c.recv()
	require.Equal(c.t, packets.TypePingresp, p.Type(), "expected PINGRESP, got %+v", p)
}

// freshClientWorks checks that the broker still accepts and serves a new
// client, after a connection was closed for a violation.
func freshClientWorks(t *testing.T, addr, id string) {
	t.Helper()
	pingOK(mustConnect(t, addr, id, true))
}

// expectRefused reads the next packet as raw bytes, requires exactly a
// CONNACK with session present 0 and the given return code
// [MQTT-3.2.2-4], then requires the connection to close [MQTT-3.2.2-5].
func expectRefused(c *rawClient, code byte) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	fh, body, err := c.r.ReadRaw()
	require.NoError(c.t, err, "expected CONNACK 0x%02x", code)
	require.Equal(c.t, packets.TypeConnack, fh.Type, "expected CONNACK [0 %d]", code)
	require.Equal(c.t, []byte{0, code}, body, "expected CONNACK [0 %d]", code)
	c.expectClosed()
}

// disconnects is a DisconnectObserver hook that lets a test wait until the
// broker has finished with a connection (will published or not, hooks told).
type disconnects struct {
	mu sync.Mutex
	ch map[string]chan error
}

func watchDisconnects(t testing.TB, b *tern.Broker) *disconnects {
	t.Helper()
	d := &disconnects{ch: make(map[string]chan error)}
	require.NoError(t, b.AddHook(d))
	return d
}

func (d *disconnects) of(id string) chan error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch[id] == nil {
		d.ch[id] = make(chan error, 16)
	}
	return d.ch[id]
}

func (d *disconnects) OnDisconnect(c tern.Client, reason error) {
	select {
	case d.of(c.ID) <- reason:
	default:
	}
}

// wait returns the reason of the next end of a connection of client id.
func (d *disconnects) wait(t testing.TB, id string) error {
	t.Helper()
	select {
	case r := <-d.of(id):
		return r
	case <-time.After(waitTimeout):
		require.FailNow(t, "timed out waiting for a disconnect", "client %q", id)
		return nil
	}
}

// authFunc adapts a function to the Authenticator hook.
type authFunc func(context.Context, tern.ConnectInfo) error

func (f authFunc) Authenticate(ctx context.Context, c tern.ConnectInfo) error { return f(ctx, c) }

func TestFirstPacketOtherThanConnectClosesWithoutConnack(t *testing.T) {
	// [MQTT-3.1.0-1] [MQTT-3.2.0-1] [MQTT-2.2.2-2] [MQTT-4.8.0-1]
	_, addr := startBroker(t, tern.Options{})
	watcher := mustConnect(t, addr, "watcher", true)
	watcher.subscribe(1, packets.Subscription{Filter: "first/#"})
	cases := []struct {
		name string
		raw  []byte
	}{
		{"PINGREQ", []byte{0xC0, 0}},
		{"PUBLISH", packetBytes(0x30, mqttString("first/pub"), []byte("not processed"))},
		{"SUBSCRIBE", packetBytes(0x82, []byte{0, 1}, mqttString("#"), []byte{0})},
		{"DISCONNECT", []byte{0xE0, 0}},
		{"CONNACK", []byte{0x20, 2, 0, 0}},
		{"reserved type 0", []byte{0x00, 0}},
		{"reserved type 15", []byte{0xF0, 0}},
		{"CONNECT with reserved fixed header flags", append([]byte{0x11}, connectBytes("MQTT", 4, flagClean, mqttString("x"))[1:]...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.sendRaw(tc.raw)
			c.expectClosed()
		})
	}
	// The PUBLISH sent before CONNECT was not routed: the next message the
	// watcher gets is a later one.
	watcher.send(&packets.Publish{Topic: "first/marker", Payload: []byte("m")})
	p := watcher.recvPublish()
	require.Equal(t, "first/marker", p.Topic, "a PUBLISH sent before CONNECT was routed: %+v", p)
	freshClientWorks(t, addr, "fresh")
}

func TestSecondConnectIsAProtocolViolation(t *testing.T) {
	// [MQTT-3.1.0-2] [MQTT-4.8.0-1]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	c := mustConnect(t, addr, "twice", true)
	c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "twice", CleanSession: true})
	c.expectClosed()
	require.ErrorIs(t, disc.wait(t, "twice"), tern.ErrProtocol, "disconnect reason")
	freshClientWorks(t, addr, "twice")
}

func TestUnknownProtocolNameClosesWithoutConnack(t *testing.T) {
	// [MQTT-3.1.2-1] [MQTT-3.1.4-1]
	_, addr := startBroker(t, tern.Options{})
	for _, name := range []string{"mqtt", "MQTS", "MQTT3", "MQIsdp\x00", "", "HTTP"} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			c := dialRaw(t, addr)
			c.sendRaw(connectBytes(name, 4, flagClean, mqttString("named")))
			c.expectClosed()
		})
	}
	freshClientWorks(t, addr, "fresh")
}

func TestUnsupportedProtocolLevelGetsConnack01ThenClose(t *testing.T) {
	// [MQTT-3.1.2-2] [MQTT-3.2.2-4] [MQTT-3.2.2-5]
	_, addr := startBroker(t, tern.Options{})
	cases := []struct {
		name  string
		level byte
		rest  [][]byte
	}{
		{"MQTT", 6, [][]byte{{0}, mqttString("v6")}}, // a version after MQTT 5
		{"MQTT", 3, [][]byte{mqttString("v3")}},
		{"MQTT", 0, [][]byte{mqttString("v0")}},
		{"MQTT", 255, [][]byte{mqttString("v255")}},
		{"MQIsdp", 4, [][]byte{mqttString("isdp4")}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s level %d", tc.name, tc.level), func(t *testing.T) {
			c := dialRaw(t, addr)
			c.sendRaw(connectBytes(tc.name, tc.level, flagClean, tc.rest...))
			expectRefused(c, packets.RefusedProtocolVersion)
		})
	}
	freshClientWorks(t, addr, "fresh")
}

func TestMQTT31ClientIsAccepted(t *testing.T) {
	// [MQTT-3.1.4-4]: Tern also speaks MQTT 3.1 ("MQIsdp", level 3).
	_, addr := startBroker(t, tern.Options{})
	c := dialRaw(t, addr)
	ack := c.connectWith(&packets.Connect{ProtocolName: "MQIsdp", ProtocolLevel: 3, ClientID: "legacy-31", CleanSession: true, KeepAlive: 60})
	require.Equal(t, packets.Accepted, ack.ReturnCode, "CONNACK %+v", ack)
	require.False(t, ack.SessionPresent, "CONNACK %+v", ack)
	c.subscribe(1, packets.Subscription{Filter: "legacy/t", QoS: 1})
	c.send(&packets.Publish{Topic: "legacy/t", Payload: []byte("hello")})
	p := c.recvPublish()
	assert.Equal(t, "legacy/t", p.Topic)
	assert.Equal(t, "hello", string(p.Payload))
}

func TestMalformedConnectClosesWithoutConnack(t *testing.T) {
	// [MQTT-3.1.4-1] and the rules each case names.
	_, addr := startBroker(t, tern.Options{})
	id := mqttString("bad")
	will := [][]byte{mqttString("will/t"), mqttString("w")}
	cases := []struct {
		name string
		raw  []byte
	}{
		{"reserved flag set [MQTT-3.1.2-3]", connectBytes("MQTT", 4, flagClean|flagReserved, id)},
		{"will flag without will topic [MQTT-3.1.2-9]", connectBytes("MQTT", 4, flagCleanWill, id)},
		{"will flag without will message [MQTT-3.1.2-9]", connectBytes("MQTT", 4, flagCleanWill, id, mqttString("will/t"))},
		{"will topic without will flag [MQTT-3.1.2-11]", connectBytes("MQTT", 4, flagClean, append([][]byte{id}, will...)...)},
		{"will QoS without will flag [MQTT-3.1.2-13]", connectBytes("MQTT", 4, flagClean|flagWillQoS1, id)},
		{"will QoS 3 [MQTT-3.1.2-14]", connectBytes("MQTT", 4, flagCleanWill|flagWillQoS3, append([][]byte{id}, will...)...)},
		{"will retain without will flag [MQTT-3.1.2-15]", connectBytes("MQTT", 4, flagClean|flagWillRetn, id)},
		{"user name without its flag [MQTT-3.1.2-18]", connectBytes("MQTT", 4, flagClean, id, mqttString("user"))},
		{"user name flag without user name [MQTT-3.1.2-19]", connectBytes("MQTT", 4, flagClean|flagUsername, id)},
		{"password without its flag [MQTT-3.1.2-20]", connectBytes("MQTT", 4, flagClean|flagUsername, id, mqttString("user"), mqttString("pw"))},
		{"password flag without password [MQTT-3.1.2-21]", connectBytes("MQTT", 4, flagClean|flagUsername|flagPassword, id, mqttString("user"))},
		{"password flag without user name flag [MQTT-3.1.2-22]", connectBytes("MQTT", 4, flagClean|flagPassword, id, mqttString("pw"))},
		{"no client identifier [MQTT-3.1.3-3]", connectBytes("MQTT", 4, flagClean)},
		{"client identifier not UTF-8 [MQTT-3.1.3-4]", connectBytes("MQTT", 4, flagClean, mqttString("bad\xff\xfe"))},
		{"client identifier with U+0000 [MQTT-3.1.3-4]", connectBytes("MQTT", 4, flagClean, mqttString("bad\x00id"))},
		{"client identifier with a surrogate [MQTT-3.1.3-4]", connectBytes("MQTT", 4, flagClean, mqttString("bad\xed\xa0\x80"))},
		{"client identifier length past the end [MQTT-3.1.3-3]", connectBytes("MQTT", 4, flagClean, []byte{0, 9, 'a'})},
		{"will topic not UTF-8 [MQTT-3.1.3-10]", connectBytes("MQTT", 4, flagCleanWill, id, mqttString("will/\xc3"), mqttString("w"))},
		{"will topic with a wildcard", connectBytes("MQTT", 4, flagCleanWill, id, mqttString("will/#"), mqttString("w"))},
		{"empty will topic", connectBytes("MQTT", 4, flagCleanWill, id, mqttString(""), mqttString("w"))},
		{"user name not UTF-8 [MQTT-3.1.3-11]", connectBytes("MQTT", 4, flagClean|flagUsername, id, mqttString("us\xc0\xafer"))},
		{"variable header cut short", packetBytes(0x10, mqttString("MQTT"), []byte{4, flagClean})},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.sendRaw(tc.raw)
			c.expectClosed()
			freshClientWorks(t, addr, fmt.Sprintf("fresh-%d", i))
		})
	}
}

func TestCleanSessionZeroResumesTheStoredSession(t *testing.T) {
	// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-3.2.2-3]
	// [MQTT-3.1.3-2] [MQTT-3.1.4-3] [MQTT-3.2.0-1] [MQTT-4.1.0-1]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	ctx := context.Background()
	c := dialRaw(t, addr)
	ack := c.connect("keeper", false)
	require.Zero(t, ack.ReturnCode, "first CONNACK return code")
	require.False(t, ack.SessionPresent, "first CONNACK: want session present 0") // [MQTT-3.2.2-3]
	c.subscribe(1, packets.Subscription{Filter: "keep/+", QoS: 1})
	c.send(&packets.Disconnect{})
	c.expectClosed()
	disc.wait(t, "keeper")

	// While the client is away, QoS 1 is stored; QoS 0 is not (QueueQoS0 off).
	require.NoError(t, b.Publish(ctx, "keep/zero", []byte("q0"), 0, false))
	require.NoError(t, b.Publish(ctx, "keep/one", []byte("q1"), 1, false))
	// Another identifier has its own (new) session [MQTT-3.1.3-2].
	other := dialRaw(t, addr)
	require.False(t, other.connect("other", false).SessionPresent, "a new client identifier got session present 1")

	c = dialRaw(t, addr)
	ack = c.connect("keeper", false)
	require.Zero(t, ack.ReturnCode, "resumed CONNACK return code")
	require.True(t, ack.SessionPresent, "resumed CONNACK: want session present 1") // [MQTT-3.2.2-2]
	// The CONNACK came first (connect requires it), then the stored message.
	p := c.recvPublish()
	require.Equal(t, "keep/one", p.Topic, "stored message")
	require.Equal(t, "q1", string(p.Payload), "stored message")
	require.Equal(t, byte(1), p.QoS, "stored message")
	c.send(&packets.Puback{PacketID: p.PacketID})
	// The subscription is part of the resumed session.
	require.NoError(t, b.Publish(ctx, "keep/live", []byte("live"), 1, false))
	assert.Equal(t, "keep/live", c.recvPublish().Topic, "live message")
}

func TestCleanSessionOneDiscardsAndIsNotReused(t *testing.T) {
	// [MQTT-3.1.2-6] [MQTT-3.2.2-1] [MQTT-3.1.4-3] [MQTT-4.1.0-2]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	ctx := context.Background()
	c := mustConnect(t, addr, "fickle", false)
	c.subscribe(1, packets.Subscription{Filter: "fickle/t", QoS: 1})
	c.send(&packets.Disconnect{})
	c.expectClosed()
	disc.wait(t, "fickle")
	require.NoError(t, b.Publish(ctx, "fickle/t", []byte("stored"), 1, false))

	// A clean connect discards the stored session: session present 0, no
	// stored message, no subscription.
	c = dialRaw(t, addr)
	ack := c.connect("fickle", true)
	require.Zero(t, ack.ReturnCode, "CONNACK return code")
	require.False(t, ack.SessionPresent, "CONNACK: want session present 0") // [MQTT-3.2.2-1]
	require.NoError(t, b.Publish(ctx, "fickle/t", []byte("after"), 1, false))
	pingOK(c) // a stored or routed message would come before PINGRESP
	// The clean session's own state lasts as long as its connection...
	c.subscribe(2, packets.Subscription{Filter: "fickle/clean", QoS: 1})
	require.NoError(t, b.Publish(ctx, "fickle/clean", []byte("x"), 1, false))
	require.Equal(t, "fickle/clean", c.recvPublish().Topic)
	c.send(&packets.Disconnect{})
	c.expectClosed()
	disc.wait(t, "fickle")

	// ...and is not reused by the next session, even a persistent one.
	c = dialRaw(t, addr)
	require.False(t, c.connect("fickle", false).SessionPresent, "session present 1 after a clean session ended")
	require.NoError(t, b.Publish(ctx, "fickle/clean", []byte("y"), 1, false))
	pingOK(c)
}

func TestRetainedMessagesOutliveTheSession(t *testing.T) {
	// [MQTT-3.1.2.7]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	c := mustConnect(t, addr, "retainer", true)
	c.publishQoS(1, "kept/r", "still here", 1, true)
	c.send(&packets.Disconnect{})
	c.expectClosed()
	disc.wait(t, "retainer")
	s := mustConnect(t, addr, "reader", true)
	s.subscribe(1, packets.Subscription{Filter: "kept/r"})
	p := s.recvPublish()
	assert.Equal(t, "kept/r", p.Topic)
	assert.Equal(t, "still here", string(p.Payload))
	assert.True(t, p.Retain, "RETAIN")
}

func TestEmptyClientIDWithCleanSessionGetsAUniqueID(t *testing.T) {
	// [MQTT-3.1.3-6]
	b, addr := startBroker(t, tern.Options{})
	x, y := dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range []*rawClient{x, y} {
		ack := c.connect("", true)
		require.Zero(t, ack.ReturnCode, "CONNACK %+v", ack)
		require.False(t, ack.SessionPresent, "CONNACK %+v", ack)
	}
	// Neither took the other over: both are served.
	pingOK(x)
	pingOK(y)
	clients := b.Clients()
	require.Len(t, clients, 2, "want two distinct assigned identifiers")
	require.NotEmpty(t, clients[0].ID, "clients %+v, want two distinct assigned identifiers", clients)
	require.NotEqual(t, clients[0].ID, clients[1].ID, "want two distinct assigned identifiers")
	x.subscribe(1, packets.Subscription{Filter: "anon/t"})
	y.publishQoS(0, "anon/t", "hi", 0, false)
	assert.Equal(t, "anon/t", x.recvPublish().Topic)
}

func TestEmptyClientIDWithoutCleanSessionIsRejected(t *testing.T) {
	// [MQTT-3.1.3-7] [MQTT-3.1.3-8] [MQTT-3.2.2-4] [MQTT-3.2.2-5]
	_, addr := startBroker(t, tern.Options{})
	c := dialRaw(t, addr)
	c.sendRaw(connectBytes("MQTT", 4, 0, mqttString("")))
	expectRefused(c, packets.RefusedIdentifierRejected)
	freshClientWorks(t, addr, "fresh")
}

func TestClientIdentifiersAccepted(t *testing.T) {
	// [MQTT-3.1.3-5]; longer identifiers and other characters: the server
	// MAY allow them, and Tern does.
	b, addr := startBroker(t, tern.Options{})
	ids := []string{
		"a",
		"0123456789abcdefghijXYZ", // 23 characters of the required set
		"0123456789abcdefghijXYZ0",
		strings.Repeat("long", 250),
		"dev/ice-1_é:☃",
	}
	for _, id := range ids {
		c := dialRaw(t, addr)
		require.Zero(t, c.connect(id, true).ReturnCode, "id %q: CONNACK return code", id)
		pingOK(c)
		require.True(t, slices.ContainsFunc(b.Clients(), func(ci tern.ClientInfo) bool { return ci.ID == id }),
			"id %q not listed by Clients", id)
	}
}

func TestClientIdentifiersRejectedWithConnack02(t *testing.T) {
	// [MQTT-3.1.3-9] [MQTT-3.2.2-4] [MQTT-3.2.2-5]
	_, addr := startBroker(t, tern.Options{MaxClientIDLength: 30})
	cases := []struct {
		name string
		raw  []byte
	}{
		{"longer than MaxClientIDLength", connectBytes("MQTT", 4, flagClean, mqttString(strings.Repeat("x", 31)))},
		{"MQTT 3.1 over 23 characters", connectBytes("MQIsdp", 3, flagClean, mqttString("0123456789abcdefghijXYZ0"))},
		{"MQTT 3.1 empty", connectBytes("MQIsdp", 3, flagClean, mqttString(""))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.sendRaw(tc.raw)
			expectRefused(c, packets.RefusedIdentifierRejected)
		})
	}
	freshClientWorks(t, addr, strings.Repeat("x", 30))
}

func TestTakeoverClosesTheExistingConnection(t *testing.T) {
	// [MQTT-3.1.4-2] [MQTT-3.2.2-2]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	old := mustConnect(t, addr, "twin", false)
	old.subscribe(1, packets.Subscription{Filter: "twin/t", QoS: 1})
	c := dialRaw(t, addr)
	ack := c.connect("twin", false)
	require.Zero(t, ack.ReturnCode, "CONNACK: want accepted")
	require.True(t, ack.SessionPresent, "CONNACK: want session present 1")
	old.expectClosed()
	require.ErrorIs(t, disc.wait(t, "twin"), tern.ErrTakenOver, "disconnect reason")
	// The new connection owns the session and its subscription.
	require.NoError(t, b.Publish(context.Background(), "twin/t", []byte("hi"), 1, false))
	require.Equal(t, "twin/t", c.recvPublish().Topic)
	cl := b.Clients()
	require.Len(t, cl, 1)
	assert.True(t, cl[0].Connected, "clients %+v", cl)
}

func TestAuthenticatorRefusalsGetConnackAndClose(t *testing.T) {
	// [MQTT-3.2.2-4] [MQTT-3.2.2-5] [MQTT-3.1.4-5]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	err := b.AddHook(authFunc(func(_ context.Context, c tern.ConnectInfo) error {
		if !c.HasPassword {
			return nil
		}
		switch string(c.Password) {
		case "good":
			return nil
		case "bad":
			return tern.ErrBadCredentials
		case "wrapped":
			return fmt.Errorf("lookup: %w", tern.ErrBadCredentials)
		case "denied":
			return tern.ErrNotAuthorized
		}
		return errors.New("store unavailable")
	}))
	require.NoError(t, err)
	login := func(pw string) []byte {
		return connectBytes("MQTT", 4, flagUsername|flagPassword, mqttString("owner"), mqttString("u"), mqttString(pw))
	}
	// A stored session exists for "owner", and its client stays connected.
	owner := dialRaw(t, addr)
	owner.sendRaw(login("good"))
	p := owner.recv()
	ack, ok := p.(*packets.Connack)
	require.True(t, ok, "expected CONNACK, got %v %+v", p.Type(), p)
	require.Zero(t, ack.ReturnCode, "CONNACK return code")
	watcher := mustConnect(t, addr, "watcher", true)
	watcher.subscribe(1, packets.Subscription{Filter: "refused/#"})
	cases := []struct {
		pw   string
		code byte
	}{
		{"bad", packets.RefusedBadUsernamePassword},
		{"wrapped", packets.RefusedBadUsernamePassword},
		{"denied", packets.RefusedNotAuthorized},
		{"other", packets.RefusedNotAuthorized},
	}
	for _, tc := range cases {
		t.Run(tc.pw, func(t *testing.T) {
			c := dialRaw(t, addr)
			// Packets after a refused CONNECT are not processed [MQTT-3.1.4-5].
			after := packetBytes(0x30, mqttString("refused/"+tc.pw), []byte("x"))
			c.sendRaw(append(login(tc.pw), after...))
			expectRefused(c, tc.code)
		})
	}
	// The refused attempts neither took over the session nor published.
	pingOK(owner)
	watcher.send(&packets.Publish{Topic: "refused/marker"})
	pub := watcher.recvPublish()
	require.Equal(t, "refused/marker", pub.Topic, "data after a refused CONNECT was processed: %+v", pub)
	owner.send(&packets.Disconnect{})
	disc.wait(t, "owner")
	// Refused with a stored session: session present is still 0.
	c := dialRaw(t, addr)
	c.sendRaw(login("denied"))
	expectRefused(c, packets.RefusedNotAuthorized)
}

func TestUserNameAndPasswordReachTheAuthenticator(t *testing.T) {
	// [MQTT-3.1.2-18] [MQTT-3.1.2-19] [MQTT-3.1.2-20] [MQTT-3.1.2-21]
	// [MQTT-3.1.3-1] [MQTT-3.1.4-4]
	b, addr := startBroker(t, tern.Options{})
	seen := make(chan tern.ConnectInfo, 1)
	require.NoError(t, b.AddHook(authFunc(func(_ context.Context, c tern.ConnectInfo) error {
		seen <- c
		return nil
	})))
	cases := []struct {
		name string
		in   packets.Connect
	}{
		{"neither", packets.Connect{}},
		{"user name", packets.Connect{UsernameFlag: true, Username: "alice"}},
		{"empty user name", packets.Connect{UsernameFlag: true}},
		{"user name and password", packets.Connect{UsernameFlag: true, Username: "bob", PasswordFlag: true, Password: []byte{0, 1, 0xff}}},
		{"user name and empty password", packets.Connect{UsernameFlag: true, Username: "carol", PasswordFlag: true}},
		{"every field", packets.Connect{WillFlag: true, WillQoS: 1, WillTopic: "w/t", WillMessage: []byte("w"), UsernameFlag: true, Username: "dave", PasswordFlag: true, Password: []byte("pw")}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.in
			p.ProtocolName, p.ProtocolLevel, p.CleanSession, p.KeepAlive = "MQTT", 4, true, 60
			p.ClientID = fmt.Sprintf("cred-%d", i)
			c := dialRaw(t, addr)
			require.Zero(t, c.connectWith(&p).ReturnCode, "CONNACK return code")
			got := <-seen
			assert.Equal(t, p.ClientID, got.ClientID, "authenticator saw %+v for %+v", got, p)
			assert.Equal(t, p.UsernameFlag, got.HasUsername, "authenticator saw %+v for %+v", got, p)
			assert.Equal(t, p.Username, got.Username, "authenticator saw %+v for %+v", got, p)
			assert.Equal(t, p.PasswordFlag, got.HasPassword, "authenticator saw %+v for %+v", got, p)
			assert.Equal(t, p.Password, got.Password, "authenticator saw %+v for %+v", got, p)
			assert.True(t, got.CleanSession, "authenticator saw %+v for %+v", got, p)
			assert.Equal(t, byte(4), got.ProtocolLevel, "authenticator saw %+v for %+v", got, p)
		})
	}
}

func TestConnackIsTheFirstPacketEvenWhenTheClientPipelines(t *testing.T) {
	// [MQTT-3.2.0-1] [MQTT-3.1.4-4]
	b, addr := startBroker(t, tern.Options{})
	require.NoError(t, b.Publish(context.Background(), "pipe/r", []byte("retained"), 0, true))
	c := dialRaw(t, addr)
	var raw []byte
	for _, p := range []packets.Packet{
		&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "pipeliner", CleanSession: true},
		&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "pipe/#"}}},
		&packets.Pingreq{},
	} {
		var err error
		raw, err = p.Append(raw)
		require.NoError(t, err)
	}
	c.sendRaw(raw)
	want := []packets.Type{packets.TypeConnack, packets.TypeSuback, packets.TypePublish, packets.TypePingresp}
	for i, w := range want {
		require.Equal(t, w, c.recv().Type(), "packet %d", i)
	}
}

func TestConnectionLimitRefusesWithConnack03(t *testing.T) {
	// Options.MaxConnections: CONNACK 0x03 (server unavailable), then close
	// [MQTT-3.2.2-5].
	b, addr := startBroker(t, tern.Options{MaxConnections: 1})
	disc := watchDisconnects(t, b)
	first := mustConnect(t, addr, "only", true)
	c := dialRaw(t, addr)
	c.sendRaw(connectBytes("MQTT", 4, flagClean, mqttString("second")))
	expectRefused(c, packets.RefusedServerUnavailable)
	first.send(&packets.Disconnect{})
	disc.wait(t, "only")
	freshClientWorks(t, addr, "third")
}
