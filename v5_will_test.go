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

// Conformance tests of the MQTT 5 will (sections 3.1.2.5, 3.1.3.2 and
// 3.14.2.1): its properties, the Will Delay Interval, the DISCONNECT reason
// codes that keep or delete it, takeover, and a restart.

// c5WithWill gives cp a QoS 1 will on topic, with a Will Delay Interval
// of delay seconds (none when 0).
func c5WithWill(cp *packets.Connect, topic, payload string, delay uint32) *packets.Connect {
	cp.WillFlag, cp.WillTopic, cp.WillMessage, cp.WillQoS = true, topic, []byte(payload), 1
	if delay > 0 {
		cp.WillProperties.WillDelay = new(delay)
	}
	return cp
}

// c5Watch connects a clean MQTT 5 client subscribed to filter at QoS 1.
func c5Watch(t testing.TB, addr, id, filter string) *rawClient {
	t.Helper()
	w := c5Must(t, addr, id)
	c5Subscribe(w, 1, filter, 1)
	return w
}

// c5NoWill publishes a marker on topic and requires it to be the next
// message w gets: no will came before it.
func c5NoWill(t testing.TB, b *tern.Broker, w *rawClient, topic string) {
	t.Helper()
	c5Publish(t, b, topic, "marker")
	p := c5Recv(w)
	assert.Equalf(t, "marker", string(p.Payload), "a will was published on %s", p.Topic)
}

func TestV5WillCarriesItsProperties(t *testing.T) {
	// [v5 MQTT-3.1.3-10] the user properties in order, and the other will
	// properties, go onto the will message; [v5 MQTT-3.1.2-7]
	// [v5 MQTT-3.1.2-8] [v5 MQTT-3.1.2-14] it is published, not retained,
	// when the connection ends without DISCONNECT.
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := c5Watch(t, addr, "watcher", "props/#")
	cp := c5WithWill(c5Conn("mortal", true), "props/will", "gone", 0)
	user := []packets.UserProperty{{Key: "k", Value: "1"}, {Key: "a", Value: "2"}, {Key: "k", Value: "3"}, {Key: "", Value: ""}}
	wp := &cp.WillProperties
	wp.User = user
	wp.ContentType, wp.ResponseTopic, wp.CorrelationData = "text/plain", "props/reply", []byte{0, 1, 2}
	wp.PayloadFormat, wp.MessageExpiry = new(byte(1)), new(uint32(60))
	c, _ := c5Connect(t, addr, cp)
	c.conn.Close()
	disc.wait(t, "mortal")

	p := c5Recv(w)
	assert.Equal(t, "props/will", p.Topic)
	assert.Equal(t, "gone", string(p.Payload))
	assert.Equal(t, byte(1), p.QoS)
	assert.False(t, p.Retain)
	pp := p.Props
	assert.True(t, pp.HasPayloadFormat && pp.PayloadFormat == 1, "payload format %+v", pp)
	require.True(t, pp.HasMessageExpiry, "no Message Expiry Interval")
	assert.True(t, pp.MessageExpiry > 0 && pp.MessageExpiry <= 60, "message expiry %d", pp.MessageExpiry)
	assert.False(t, pp.HasTopicAlias, "a topic alias to a client that allows none [v5 MQTT-3.1.2-27]")
	props, err := pp.Properties()
	require.NoError(t, err)
	assert.Equal(t, user, props.User, "user properties, in order")
	assert.Equal(t, "text/plain", props.ContentType)
	assert.Equal(t, "props/reply", props.ResponseTopic)
	assert.Equal(t, []byte{0, 1, 2}, props.CorrelationData)
	assert.Nil(t, props.WillDelay)
}

func TestV5WillRetain(t *testing.T) {
	// [v5 MQTT-3.1.2-15] Will Retain 1: published as a retained message,
	// with its properties.
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	cp := c5WithWill(c5Conn("retainer", true), "kept/will", "last words", 0)
	cp.WillRetain = true
	cp.WillProperties.ContentType = "text/plain"
	c, _ := c5Connect(t, addr, cp)
	c.conn.Close()
	disc.wait(t, "retainer")
	late := c5Watch(t, addr, "late", "kept/#")
	p := c5Recv(late)
	assert.True(t, p.Retain, "the will was not retained")
	assert.Equal(t, "last words", string(p.Payload))
	props, err := p.Props.Properties()
	require.NoError(t, err)
	assert.Equal(t, "text/plain", props.ContentType)
}

func TestV5DisconnectReasonCodeDecidesTheWill(t *testing.T) {
	// [v5 MQTT-3.14.4-3] [v5 MQTT-3.1.2-10] DISCONNECT 0x00 deletes the will;
	// 0x04 (disconnect with will message) and any other code publish it
	// [v5 MQTT-3.1.2-8].
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	for _, tc := range []struct {
		name      string
		code      packets.ReasonCode
		published bool
	}{
		{"normal", packets.NormalDisconnection, false},
		{"with will", packets.DisconnectWithWill, true},
		{"unspecified error", packets.UnspecifiedError, true},
		{"implementation error", packets.ImplementationSpecificError, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "leaver-" + tc.code.String()
			topic := "reason/" + id
			w := c5Watch(t, addr, "watcher-"+id, topic)
			c, _ := c5Connect(t, addr, c5WithWill(c5Conn(id, true), topic, "bye", 0))
			c.send(&packets.Disconnect{Version: packets.Level5, ReasonCode: tc.code})
			c.expectClosed()
			disc.wait(t, id)
			if !tc.published {
				c5NoWill(t, b, w, topic)
				return
			}
			p := c5Recv(w)
			assert.Equal(t, topic, p.Topic)
			assert.Equal(t, "bye", string(p.Payload))
		})
	}
}

// TestV5WillTimers runs the tests that wait for a Will Delay Interval or a
// Session Expiry Interval side by side on one broker.
func TestV5WillTimers(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	tests := []struct {
		name string
		f    func(*testing.T, *tern.Broker, string, *disconnects)
	}{
		{"PublishedAfterItsDelay", testV5WillAfterDelay},
		{"NotPublishedWhenTheClientReturnsInTime", testV5WillCancelledByReturn},
		{"PublishedWhenTheSessionExpiresFirst", testV5WillAtSessionExpiry},
		{"PublishedAtOnceWhenTheSessionEndsWithTheConnection", testV5WillAtOnceWithoutSession},
		{"DeletedByNormalDisconnect", testV5DelayedWillDeletedByDisconnect},
		{"PublishedWhenCleanStartEndsTheSession", testV5DelayedWillAtCleanStart},
	}
	var wg sync.WaitGroup
	for _, tc := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(tc.name, func(t *testing.T) { tc.f(t, b, addr, disc) })
		}()
	}
	wg.Wait()
}

// [v5 MQTT-3.1.2-8] a will with a delay of 1 s is published 1 s after the
// connection closed, the session outliving it.
func testV5WillAfterDelay(t *testing.T, b *tern.Broker, addr string, disc *disconnects) {
	w := c5Watch(t, addr, "after-watcher", "after/will")
	c, _ := c5Connect(t, addr, c5WithWill(c5Persistent("after", false, 60), "after/will", "late", 1))
	closed := time.Now()
	c.conn.Close()
	p := c5Recv(w)
	assert.Equal(t, "late", string(p.Payload))
	assert.GreaterOrEqual(t, time.Since(closed), time.Second, "published before its Will Delay Interval")
	props, err := p.Props.Properties()
	require.NoError(t, err)
	assert.Nil(t, props.WillDelay)
}

// [v5 MQTT-3.1.3-9] a new connection for the session before the delay has
// passed: the will is not sent.
func testV5WillCancelledByReturn(t *testing.T, b *tern.Broker, addr string, disc *disconnects) {
	const delay = 2 // the client is back well within it
	w := c5Watch(t, addr, "return-watcher", "return/will")
	cp := c5WithWill(c5Persistent("return", false, 60), "return/will", "should not", delay)
	c, _ := c5Connect(t, addr, cp)
	c.conn.Close()
	disc.wait(t, "return")
	c, ack := c5Connect(t, addr, c5Persistent("return", false, 60))
	assert.True(t, ack.SessionPresent)
	w.expectNothing(delay*time.Second + time.Second) // past the delay
	c5Leave(c, nil)
}

// [v5 MQTT-3.1.2-8] the session ends (expiry 1 s) before the will's delay
// (60 s): the will is published when the session ends.
func testV5WillAtSessionExpiry(t *testing.T, b *tern.Broker, addr string, disc *disconnects) {
	w := c5Watch(t, addr, "expiry-watcher", "expiry/will")
	c, _ := c5Connect(t, addr, c5WithWill(c5Persistent("expiry", false, 1), "expiry/will", "session over", 60))
	closed := time.Now()
	c.conn.Close()
	p := c5Recv(w)
	assert.Equal(t, "session over", string(p.Payload))
	assert.GreaterOrEqual(t, time.Since(closed), time.Second, "published before the session ended")
	assert.False(t, c5Session(b, "expiry"))
}

// [v5 MQTT-3.1.2-8] with Session Expiry 0 the session ends with the
// connection: a delayed will is published at once.
func testV5WillAtOnceWithoutSession(t *testing.T, b *tern.Broker, addr string, disc *disconnects) {
	w := c5Watch(t, addr, "once-watcher", "once/will")
	c, _ := c5Connect(t, addr, c5WithWill(c5Conn("once", false), "once/will", "at once", 60))
	closed := time.Now()
	c.conn.Close()
	assert.Equal(t, "at once", string(c5Recv(w).Payload))
	assert.Less(t, time.Since(closed), 30*time.Second)
}

// [v5 MQTT-3.1.2-10] [v5 MQTT-3.14.4-3] DISCONNECT 0x00 deletes a will
// that would have waited for its delay.
func testV5DelayedWillDeletedByDisconnect(t *testing.T, b *tern.Broker, addr string, disc *disconnects) {
	w := c5Watch(t, addr, "deleted-watcher", "deleted/will")
	c, _ := c5Connect(t, addr, c5WithWill(c5Persistent("deleted", false, 60), "deleted/will", "never", 1))
	c5Leave(c, nil)
	w.expectNothing(2 * time.Second) // twice the delay
}

// [v5 MQTT-3.1.2-8] a CONNECT with Clean Start 1 ends the offline session
// whose will waits for its delay: the will is published then, as the
// session ended first (the new connection is not to that session).
func testV5DelayedWillAtCleanStart(t *testing.T, b *tern.Broker, addr string, disc *disconnects) {
	w := c5Watch(t, addr, "restart-watcher", "restart/will")
	c, _ := c5Connect(t, addr, c5WithWill(c5Persistent("restarter", false, 60), "restart/will", "old session over", 60))
	c.conn.Close()
	disc.wait(t, "restarter")
	c, ack := c5Connect(t, addr, c5Persistent("restarter", true, 60))
	assert.False(t, ack.SessionPresent)
	assert.Equal(t, "old session over", string(c5Recv(w).Payload))
	c5Leave(c, nil)
}

func TestV5WillOnTakeover(t *testing.T) {
	// [v5 MQTT-3.1.4-3]: the old connection gets DISCONNECT 0x8E; its will
	// is published as section 3.1.2.5 says when its session ends with the
	// takeover (the old session's expiry is 0, or the new connection has
	// Clean Start 1), whatever its delay. When the session carries on into
	// the new connection the client is online again: no will (as
	// Mosquitto does).
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	for _, tc := range []struct {
		name                string
		oldExpiry           uint32
		delay               uint32
		newClean, published bool
	}{
		{"session carries on", 60, 0, false, false},
		{"session carries on, delayed will", 60, 5, false, false},
		{"new connection starts clean", 60, 0, true, true},
		{"old session ends with its connection", 0, 0, false, true},
		{"new connection starts clean, delayed will", 60, 60, true, true},
		{"old session ends with its connection, delayed will", 0, 60, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "taken-" + tc.name
			topic := "takeover/" + id
			w := c5Watch(t, addr, "watcher-"+tc.name, topic)
			cp := c5WithWill(c5Persistent(id, false, tc.oldExpiry), topic, "taken over", tc.delay)
			old, _ := c5Connect(t, addr, cp)
			c, _ := c5Connect(t, addr, c5Persistent(id, tc.newClean, 60))
			c5Disconnected(old, packets.SessionTakenOver)
			disc.wait(t, id)
			if tc.published {
				assert.Equal(t, topic, c5Recv(w).Topic)
			} else {
				c5NoWill(t, b, w, topic)
			}
			c5Leave(c, new(uint32(0)))
		})
	}
}

func TestV5DelayedWillSurvivesARestart(t *testing.T) {
	// A will waiting for its delay is stored with the session and is
	// published when due after a restart, not at the restart: whether its
	// connection ended before the restart or with it. [v5 MQTT-3.1.2-8]
	before := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, before) })
	e := psStart(t, c5Memory(t), tern.Options{})
	w, _ := c5Resume(t, e.addr, "watcher", 3600)
	c5Subscribe(w, 1, "restart/#", 1)
	c5Leave(w, nil)

	// Two wills wait 2 s; a third waits 60 s, but its session expires
	// after 2 s, and it is published then.
	const delay = 2
	dropped, _ := c5Connect(t, e.addr, c5WithWill(c5Persistent("dropped", false, 60), "restart/dropped", "dropped", delay))
	held, _ := c5Connect(t, e.addr, c5WithWill(c5Persistent("held", false, 60), "restart/held", "held", delay))
	expiring, _ := c5Connect(t, e.addr, c5WithWill(c5Persistent("expiring", false, delay), "restart/expiring", "expiring", 60))
	closed := time.Now()
	disc := watchDisconnects(t, e.b)
	dropped.conn.Close()
	expiring.conn.Close()
	disc.wait(t, "dropped")
	disc.wait(t, "expiring")
	e.restart() // ends held's connection too, without DISCONNECT
	c5Disconnected(held, packets.ServerShuttingDown)

	w, present := c5Resume(t, e.addr, "watcher", 3600)
	require.True(t, present)
	got := map[string]bool{}
	for range 3 {
		got[string(c5Recv(w).Payload)] = true
	}
	assert.Equal(t, map[string]bool{"dropped": true, "held": true, "expiring": true}, got)
	assert.GreaterOrEqual(t, time.Since(closed), delay*time.Second, "a delayed will was published before its delay")
	assert.False(t, c5Session(e.b, "expiring"))
}
