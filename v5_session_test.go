package tern_test

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of MQTT 5 sessions (sections 3.1.2.4, 3.1.2.11.2,
// 3.14.2.2.2 and 4.1): Clean Start, Session Expiry Interval, session
// present, takeover and ownership, and expiry across a restart.

// c5Leave ends c with a normal DISCONNECT, with a new Session Expiry
// Interval unless expiry is nil, and waits for the broker to close it.
func c5Leave(c *rawClient, expiry *uint32) {
	c.t.Helper()
	d := &packets.Disconnect{Version: packets.Level5}
	d.Properties.SessionExpiry = expiry
	c.send(d)
	c.expectClosed()
}

// c5Gone waits until the broker no longer holds a session for id.
func c5Gone(t testing.TB, b *tern.Broker, id string) {
	t.Helper()
	require.Eventuallyf(t, func() bool { return !c5Session(b, id) }, waitTimeout, 5*time.Millisecond, "session %q still held", id)
}

// c5Resume reconnects id with Clean Start 0 and returns the client and
// whether the session was present.
func c5Resume(t testing.TB, addr, id string, expiry uint32) (*rawClient, bool) {
	t.Helper()
	c, ack := c5Connect(t, addr, c5Persistent(id, false, expiry))
	return c, ack.SessionPresent
}

func TestV5CleanStartAndSessionPresent(t *testing.T) {
	// [v5 MQTT-3.1.2-4] [v5 MQTT-3.1.2-5] [v5 MQTT-3.1.2-6] [v5 MQTT-3.1.4-4]
	// [v5 MQTT-3.2.2-2] [v5 MQTT-3.2.2-3] [v5 MQTT-3.1.2-23] [v5 MQTT-3.1.3-2]
	b, addr := startBroker(t, tern.Options{})
	// Clean Start 0 without a session: a new one.
	c, present := c5Resume(t, addr, "cs", 60)
	assert.False(t, present, "session present for a new client identifier")
	c5Subscribe(c, 1, "cs/topic", 1)
	c5Leave(c, nil)

	// Clean Start 0 with a session: resumed, with its subscription and
	// the message queued while it was offline.
	c5Publish(t, b, "cs/topic", "queued")
	c, present = c5Resume(t, addr, "cs", 60)
	assert.True(t, present, "the stored session was not resumed")
	assert.Equal(t, "queued", string(c5Recv(c).Payload))
	c5Leave(c, nil)

	// Clean Start 1: the session is discarded, with its queue and its
	// subscription, and session present is 0.
	c5Publish(t, b, "cs/topic", "discarded")
	c, ack := c5Connect(t, addr, c5Persistent("cs", true, 60))
	assert.False(t, ack.SessionPresent, "session present after Clean Start 1")
	c5Ping(c) // a queued message would come before the PINGRESP
	c5Publish(t, b, "cs/topic", "after")
	c5Ping(c) // and a subscription would deliver this one before it
}

func TestV5SessionExpiryZeroEndsWithTheConnection(t *testing.T) {
	// [v5 MQTT-3.1.2-23] [v5 MQTT-4.1.0-2]: no Session Expiry Interval is 0:
	// the session ends when the connection closes, whatever Clean Start says.
	b, addr := startBroker(t, tern.Options{})
	for _, explicit := range []bool{false, true} {
		cp := c5Conn("brief", false)
		if explicit {
			cp.Properties.SessionExpiry = new(uint32(0))
		}
		c, ack := c5Connect(t, addr, cp)
		assert.False(t, ack.SessionPresent)
		c5Subscribe(c, 1, "brief", 1)
		c.conn.Close() // without DISCONNECT too
		c5Gone(t, b, "brief")
	}
	c, present := c5Resume(t, addr, "brief", 0)
	assert.False(t, present, "a session with expiry 0 outlived its connection")
	c5Ping(c)
}

// TestV5SessionTimers runs the tests that wait for a Session Expiry
// Interval side by side on one broker, so that together they last about as
// long as the longest.
func TestV5SessionTimers(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	tests := []struct {
		name string
		f    func(t *testing.T, b *tern.Broker, addr string)
	}{
		{"ExpiresAfterItsInterval", testV5SessionExpires},
		{"ResumedBeforeExpiryAndKeptWhileConnected", testV5SessionResumedInTime},
		{"NeverExpires", testV5SessionNeverExpires},
		{"DisconnectShortensIt", testV5DisconnectShortensExpiry},
		{"DisconnectEndsIt", testV5DisconnectEndsSession},
	}
	var wg sync.WaitGroup
	for _, tc := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(tc.name, func(t *testing.T) { tc.f(t, b, addr) })
		}()
	}
	wg.Wait()
}

// A session with an expiry of 1 s is discarded 1 s after its connection
// closed, with the messages queued for it. [v5 MQTT-4.1.0-2]
// [v5 MQTT-3.1.2-23]
func testV5SessionExpires(t *testing.T, b *tern.Broker, addr string) {
	c, _ := c5Resume(t, addr, "expiring", 1)
	c5Subscribe(c, 1, "expiring", 1)
	left := time.Now()
	c5Leave(c, nil)
	require.True(t, c5Session(b, "expiring"), "the session ended with its connection")
	c5Publish(t, b, "expiring", "lost")
	c5Gone(t, b, "expiring")
	assert.GreaterOrEqual(t, time.Since(left), time.Second, "discarded before its expiry")
	c, present := c5Resume(t, addr, "expiring", 1)
	assert.False(t, present, "session present after it expired")
	c5Ping(c) // the queued message went with the session
}

// A client back before its session expired resumes it (session present 1,
// the queued message), and while connected the session is not discarded,
// however long that lasts [v5 MQTT-4.1.0-1] [v5 MQTT-3.1.2-5].
func testV5SessionResumedInTime(t *testing.T, b *tern.Broker, addr string) {
	const expiry = 2 // the client is back well within it
	c, _ := c5Resume(t, addr, "returning", expiry)
	c5Subscribe(c, 1, "returning", 1)
	c5Leave(c, nil)
	c5Publish(t, b, "returning", "kept")
	c, present := c5Resume(t, addr, "returning", expiry)
	require.True(t, present, "the session was not resumed before its expiry")
	assert.Equal(t, "kept", string(c5Recv(c).Payload))
	// A probe session with the same expiry, left after this one came
	// back, expires; this one, connected, stays.
	probe, _ := c5Resume(t, addr, "returning-probe", expiry)
	c5Leave(probe, nil)
	c5Gone(t, b, "returning-probe")
	require.True(t, c5Session(b, "returning"), "a connected session was discarded")
	c5Publish(t, b, "returning", "still here")
	assert.Equal(t, "still here", string(c5Recv(c).Payload))
}

// 0xFFFFFFFF: the session does not expire. It is still there when a
// session of 1 s, left after it, has expired.
func testV5SessionNeverExpires(t *testing.T, b *tern.Broker, addr string) {
	c, ack := c5Connect(t, addr, c5Persistent("forever", false, 0xFFFFFFFF))
	assert.Nil(t, ack.Properties.SessionExpiry, "the broker changed an expiry it does not cap")
	c5Subscribe(c, 1, "forever", 1)
	c5Leave(c, nil)
	probe, _ := c5Resume(t, addr, "forever-probe", 1)
	c5Leave(probe, nil)
	c5Gone(t, b, "forever-probe")
	c5Publish(t, b, "forever", "still queued")
	c, present := c5Resume(t, addr, "forever", 0xFFFFFFFF)
	assert.True(t, present, "a session that never expires was discarded")
	assert.Equal(t, "still queued", string(c5Recv(c).Payload))
}

// A DISCONNECT may change the Session Expiry Interval: from 60 s to 1 s,
// and the session expires after 1 s (section 3.14.2.2.2).
func testV5DisconnectShortensExpiry(t *testing.T, b *tern.Broker, addr string) {
	c, _ := c5Resume(t, addr, "shortened", 60)
	left := time.Now()
	c5Leave(c, new(uint32(1)))
	require.True(t, c5Session(b, "shortened"), "the session ended with its connection")
	c5Gone(t, b, "shortened")
	assert.GreaterOrEqual(t, time.Since(left), time.Second, "discarded before its new expiry")
}

// A DISCONNECT that sets the expiry to 0 ends the session with the
// connection.
func testV5DisconnectEndsSession(t *testing.T, b *tern.Broker, addr string) {
	c, _ := c5Resume(t, addr, "ended", 60)
	c5Subscribe(c, 1, "ended", 1)
	c5Leave(c, new(uint32(0)))
	c5Gone(t, b, "ended")
	c, present := c5Resume(t, addr, "ended", 60)
	assert.False(t, present, "session present after DISCONNECT set its expiry to 0")
	c5Ping(c)
}

func TestV5DisconnectCannotSetExpiryAfterConnectZero(t *testing.T) {
	// Section 3.14.2.2.2: a DISCONNECT with a non-zero Session Expiry
	// Interval after CONNECT said 0 is a Protocol Error: DISCONNECT 0x82,
	// and it is not a valid DISCONNECT, so the will is published.
	// [v5 MQTT-4.13.1-1] [v5 MQTT-3.1.2-8]
	b, addr := startBroker(t, tern.Options{})
	w := c5Must(t, addr, "watcher")
	c5Subscribe(w, 1, "zero/will", 1)
	cp := c5Conn("zero", false)
	cp.WillFlag, cp.WillTopic, cp.WillMessage = true, "zero/will", []byte("bye")
	c, _ := c5Connect(t, addr, cp)
	d := &packets.Disconnect{Version: packets.Level5}
	d.Properties.SessionExpiry = new(uint32(60))
	c.send(d)
	c5Disconnected(c, packets.ProtocolError)
	assert.Equal(t, "bye", string(c5Recv(w).Payload))
	c5Gone(t, b, "zero")
}

func TestV5OptionsSessionExpiryCapsTheInterval(t *testing.T) {
	// Options.SessionExpiry caps the interval an MQTT 5 client asks for, in
	// CONNECT and in DISCONNECT; the CONNACK carries the value used when it
	// differs (section 3.2.2.3.2), and the session expires by it.
	// [v5 MQTT-4.1.0-2]
	b, addr := startBroker(t, tern.Options{SessionExpiry: time.Second})
	capped := func(id string, asked *uint32) *packets.Connack {
		cp := c5Conn(id, false)
		cp.Properties.SessionExpiry = asked
		c, ack := c5Connect(t, addr, cp)
		c5Leave(c, nil)
		return ack
	}
	for _, asked := range []uint32{3600, 0xFFFFFFFF} {
		ack := capped("capped", &asked)
		require.NotNilf(t, ack.Properties.SessionExpiry, "asked %d: CONNACK without the Session Expiry Interval used", asked)
		assert.Equal(t, uint32(1), *ack.Properties.SessionExpiry)
	}
	assert.Nil(t, capped("within", new(uint32(1))).Properties.SessionExpiry, "within the cap: the client's value stands")
	assert.Nil(t, capped("none", nil).Properties.SessionExpiry, "no expiry asked: none to cap")

	// Both sessions expire after the cap: one asked for an hour in
	// CONNECT, the other set it in DISCONNECT.
	c, _ := c5Resume(t, addr, "long-connect", 3600)
	left := time.Now()
	c5Leave(c, nil)
	c, _ = c5Resume(t, addr, "long-disconnect", 1)
	c5Leave(c, new(uint32(3600)))
	c5Gone(t, b, "long-connect")
	c5Gone(t, b, "long-disconnect")
	assert.GreaterOrEqual(t, time.Since(left), time.Second)
}

func TestV5TakeoverBySameUser(t *testing.T) {
	// [v5 MQTT-3.1.4-3]: the old connection gets DISCONNECT 0x8E and is
	// closed; [v5 MQTT-3.1.4-4] the new one's Clean Start decides whether
	// the session goes on.
	b, addr := startBroker(t, tern.Options{})
	as := func(cp *packets.Connect, user string) *packets.Connect {
		cp.UsernameFlag, cp.Username = true, user
		return cp
	}
	old, _ := c5Connect(t, addr, as(c5Persistent("device", false, 60), "alice"))
	c5Subscribe(old, 1, "device/cmd", 1)

	c, ack := c5Connect(t, addr, as(c5Persistent("device", false, 60), "alice"))
	c5Disconnected(old, packets.SessionTakenOver)
	assert.True(t, ack.SessionPresent, "the session did not carry on into the new connection")
	c5Publish(t, b, "device/cmd", "to the new connection")
	assert.Equal(t, "to the new connection", string(c5Recv(c).Payload))

	fresh, ack := c5Connect(t, addr, as(c5Persistent("device", true, 60), "alice"))
	c5Disconnected(c, packets.SessionTakenOver)
	assert.False(t, ack.SessionPresent, "Clean Start 1 kept the session")
	c5Publish(t, b, "device/cmd", "nobody subscribed")
	c5Ping(fresh)
}

func TestV5TakeoverByAnotherUserIsRefused(t *testing.T) {
	// The session belongs to the identity that created it: another user
	// gets CONNACK 0x87 and changes nothing, online or offline.
	// [v5 MQTT-3.1.4-2] [v5 MQTT-3.2.2-6] [v5 MQTT-3.2.2-7]
	b, addr := startBroker(t, tern.Options{})
	as := func(cp *packets.Connect, user string) *packets.Connect {
		cp.UsernameFlag, cp.Username = true, user
		return cp
	}
	owner, _ := c5Connect(t, addr, as(c5Persistent("owned", false, 60), "alice"))
	c5Subscribe(owner, 1, "owned/cmd", 1)
	for _, clean := range []bool{false, true} {
		c := c5Dial(t, addr)
		c.send(as(c5Persistent("owned", clean, 60), "mallory"))
		c5Refused(c, packets.NotAuthorized)
	}
	c5Ping(owner) // untouched
	c5Leave(owner, nil)

	c := c5Dial(t, addr)
	c.send(as(c5Persistent("owned", true, 60), "mallory"))
	c5Refused(c, packets.NotAuthorized)
	c5Publish(t, b, "owned/cmd", "for alice")
	owner, ack := c5Connect(t, addr, as(c5Persistent("owned", false, 60), "alice"))
	assert.True(t, ack.SessionPresent, "a refused CONNECT discarded the session")
	assert.Equal(t, "for alice", string(c5Recv(owner).Payload))
}

func TestV5SessionExpirySurvivesARestart(t *testing.T) {
	// With a Store, a session's expiry counts from when its client left,
	// across a restart: one whose expiry passes is discarded after the
	// restart too, one within it is resumed. [v5 MQTT-3.1.2-23]
	// [v5 MQTT-4.1.0-2]
	before := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, before) })
	e := psStart(t, c5Memory(t), tern.Options{})
	for _, tc := range []struct {
		id     string
		expiry uint32
	}{{"long", 3600}, {"short", 1}} {
		c, _ := c5Resume(t, e.addr, tc.id, tc.expiry)
		c5Subscribe(c, 1, "restart/"+tc.id, 1)
		c5Leave(c, nil)
		c5Publish(t, e.b, "restart/"+tc.id, "queued for "+tc.id)
	}
	left := time.Now() // after "short" left
	e.restart()
	c5Gone(t, e.b, "short")
	assert.GreaterOrEqual(t, time.Since(left), 900*time.Millisecond, "expired before its interval")
	c, present := c5Resume(t, e.addr, "long", 3600)
	require.True(t, present, "the session within its expiry was not restored")
	assert.Equal(t, "queued for long", string(c5Recv(c).Payload))
	c, present = c5Resume(t, e.addr, "short", 1)
	assert.False(t, present, "the expired session came back")
	c5Ping(c)
}

// c5Memory is the in-memory store that a restart reopens. (The bolt store
// does not keep the MQTT 5 session fields yet.)
func c5Memory(t testing.TB) psBackend {
	t.Helper()
	for _, be := range psBackends() {
		if be.name == "memory" {
			return be
		}
	}
	require.FailNow(t, "no memory backend")
	return psBackend{}
}

func TestV5SessionsAcrossProtocolLevels(t *testing.T) {
	// A session is the client identifier's, whatever protocol level each
	// connection speaks [v5 MQTT-3.1.3-2]: an MQTT 5 client resumes a
	// 3.1.1 persistent session and the other way round, each on its
	// level's terms (MQTT 5 by its Session Expiry Interval, 3.1.1 without
	// expiry).
	b, addr := startBroker(t, tern.Options{})
	old := mustConnect(t, addr, "switcher", false)
	old.subscribe(1, packets.Subscription{Filter: "switch/topic", QoS: 1})
	old.send(&packets.Disconnect{})
	old.expectClosed()
	c5Publish(t, b, "switch/topic", "for the MQTT 5 client")

	c, present := c5Resume(t, addr, "switcher", 0)
	require.True(t, present, "the 3.1.1 session was not resumed")
	assert.Equal(t, "for the MQTT 5 client", string(c5Recv(c).Payload))
	c5Leave(c, nil)
	c5Gone(t, b, "switcher") // expiry 0: it ended with the connection

	c, _ = c5Resume(t, addr, "switcher", 60)
	c5Subscribe(c, 1, "switch/topic", 1)
	c5Leave(c, nil)
	c5Publish(t, b, "switch/topic", "for the 3.1.1 client")
	old = psResume(t, addr, "switcher")
	assert.Equal(t, "for the 3.1.1 client", string(recvAcked(old).Payload))
}

func TestV5TakeoverAcrossProtocolLevels(t *testing.T) {
	// [v5 MQTT-3.1.4-3] an MQTT 5 connection taken over by a 3.1.1 one
	// gets DISCONNECT 0x8E; a 3.1.1 connection taken over by an MQTT 5 one
	// is closed without it (3.1.1 has no server DISCONNECT).
	_, addr := startBroker(t, tern.Options{})
	v5, _ := c5Connect(t, addr, c5Persistent("crosser", false, 60))
	v311 := psResume(t, addr, "crosser")
	c5Disconnected(v5, packets.SessionTakenOver)
	v5, ack := c5Connect(t, addr, c5Persistent("crosser", false, 60))
	assert.True(t, ack.SessionPresent)
	v311.expectClosed()
	c5Ping(v5)
}
