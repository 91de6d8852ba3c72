package tern_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

const sysInterval = 50 * time.Millisecond

// sysSubscribe subscribes c to filter without assuming that SUBACK comes
// first: the broker may send matching PUBLISH packets (here, $SYS refreshes)
// before it (section 3.8.4). Those are returned.
func sysSubscribe(t *testing.T, c *rawClient, filter string) []*packets.Publish {
	t.Helper()
	c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: filter, QoS: 0}}})
	var early []*packets.Publish
	for {
		switch p := c.recv().(type) {
		case *packets.Suback:
			require.Equal(t, []byte{0}, p.ReturnCodes, "SUBACK return codes")
			return early
		case *packets.Publish:
			early = append(early, p)
		default:
			require.FailNow(t, "unexpected packet", "%v", p.Type())
		}
	}
}

// waitSys reads $SYS publishes until one on topic satisfies ok. It reads
// packets, each arriving as the broker sends it, rather than polling.
func waitSys(t *testing.T, c *rawClient, topic string, ok func(payload string, retain bool) bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		p := c.recvPublish()
		if p.Topic == topic && ok(string(p.Payload), p.Retain) {
			return
		}
	}
	require.FailNow(t, "no $SYS message as expected", "%s within %v", topic, waitTimeout)
}

func equals(want string) func(string, bool) bool {
	return func(got string, _ bool) bool { return got == want }
}

func TestSysTopicsAreRetainedAndRefreshed(t *testing.T) {
	b, addr := startBroker(t, tern.Options{SysInterval: sysInterval})
	wanted := map[string]func(string) bool{
		"$SYS/broker/version":                   func(v string) bool { return v == tern.Version },
		"$SYS/broker/uptime":                    func(v string) bool { return strings.HasSuffix(v, " seconds") },
		"$SYS/broker/clients/connected":         isCount,
		"$SYS/broker/clients/disconnected":      isCount,
		"$SYS/broker/clients/total":             isCount,
		"$SYS/broker/messages/received":         isCount,
		"$SYS/broker/publish/messages/received": isCount,
		"$SYS/broker/publish/messages/sent":     isCount,
		"$SYS/broker/publish/messages/dropped":  isCount,
		"$SYS/broker/bytes/received":            isCount,
		"$SYS/broker/bytes/sent":                isCount,
		"$SYS/broker/subscriptions/count":       isCount,
		"$SYS/broker/retained messages/count":   isCount,
		"$SYS/broker/clients/maximum":           isCount,
		"$SYS/broker/clients/expired":           isCount,
		"$SYS/broker/messages/inflight":         isCount,
		"$SYS/broker/messages/stored":           isCount,
		"$SYS/broker/store/messages/count":      isCount,
		"$SYS/broker/heap/current":              isPositive,
		"$SYS/broker/heap/maximum":              isPositive,
	}
	for _, name := range []string{"messages/received", "publish/received", "publish/sent", "publish/dropped",
		"bytes/received", "bytes/sent", "connections", "sockets"} {
		for _, period := range []string{"1min", "5min", "15min"} {
			wanted["$SYS/broker/load/"+name+"/"+period] = isLoad
		}
	}
	eventually(t, "the $SYS topics to be retained", func() bool { return b.Stats().Retained >= len(wanted) })

	// A new subscriber gets every $SYS topic as a retained message.
	c := mustConnect(t, addr, "sys", true)
	pending := map[string]bool{}
	for topic := range wanted {
		pending[topic] = true
	}
	check := func(p *packets.Publish) {
		if valid, ok := wanted[p.Topic]; ok && p.Retain {
			require.True(t, valid(string(p.Payload)), "%s = %q", p.Topic, p.Payload)
			delete(pending, p.Topic)
		}
	}
	for _, p := range sysSubscribe(t, c, "$SYS/#") {
		check(p)
	}
	for len(pending) > 0 {
		check(c.recvPublish())
	}

	// The values follow the broker's state.
	waitSys(t, c, "$SYS/broker/clients/connected", equals("1"))
	waitSys(t, c, "$SYS/broker/subscriptions/count", equals("1"))
	other := mustConnect(t, addr, "other", false)
	waitSys(t, c, "$SYS/broker/clients/connected", equals("2"))
	other.publishQoS(1, "x/y", "z", 1, true)
	waitSys(t, c, "$SYS/broker/publish/messages/received", func(v string, _ bool) bool {
		n, err := strconv.Atoi(v)
		return err == nil && n >= 1
	})
	retained := b.Stats().Retained // the $SYS topics and x/y
	require.GreaterOrEqual(t, retained, len(wanted)+1, "Stats().Retained")
	waitSys(t, c, "$SYS/broker/retained messages/count", equals(strconv.Itoa(retained)))
	other.send(&packets.Disconnect{})
	waitSys(t, c, "$SYS/broker/clients/disconnected", equals("1"))
	waitSys(t, c, "$SYS/broker/clients/connected", equals("1"))
}

func isCount(v string) bool {
	n, err := strconv.ParseInt(v, 10, 64)
	return err == nil && n >= 0
}

func isPositive(v string) bool {
	n, err := strconv.ParseInt(v, 10, 64)
	return err == nil && n > 0
}

// isLoad: a load average as Mosquitto prints it, with two decimals.
func isLoad(v string) bool {
	f, err := strconv.ParseFloat(v, 64)
	dot := strings.IndexByte(v, '.')
	return err == nil && f >= 0 && dot >= 0 && len(v)-dot == 3
}

// The load averages follow the traffic, the maximum of clients stays at
// the most connected at once, and sessions that expire are counted, as
// Mosquitto's $SYS topics of the same names.
func TestSysLoadsMaximaAndExpiredSessions(t *testing.T) {
	b, addr := startBroker(t, tern.Options{SysInterval: sysInterval})
	c := mustConnect(t, addr, "sys", true)
	sysSubscribe(t, c, "$SYS/broker/#")
	positive := func(v string, _ bool) bool {
		f, err := strconv.ParseFloat(v, 64)
		return err == nil && f > 0
	}

	pub := mustConnect(t, addr, "pub", true)
	for i := range 20 {
		pub.publishQoS(uint16(i+1), "load/x", "m", 1, false)
	}
	waitSys(t, c, "$SYS/broker/load/publish/received/1min", positive)
	waitSys(t, c, "$SYS/broker/load/connections/15min", positive)
	waitSys(t, c, "$SYS/broker/load/sockets/5min", positive)
	waitSys(t, c, "$SYS/broker/clients/maximum", equals("2"))

	// An MQTT 5 session of 1 s outlives its connection by that long, then
	// expires; the maximum stays at 3 once its client has gone.
	e, _ := c5Connect(t, addr, c5Persistent("brief", false, 1))
	waitSys(t, c, "$SYS/broker/clients/maximum", equals("3"))
	e.send(&packets.Disconnect{Version: packets.Level5})
	e.expectClosed()
	eventually(t, "the session to expire", func() bool { return b.Stats().SessionsExpired == 1 })
	waitSys(t, c, "$SYS/broker/clients/expired", equals("1"))
	waitSys(t, c, "$SYS/broker/clients/connected", equals("2"))
	waitSys(t, c, "$SYS/broker/clients/maximum", equals("3"))
}

// [MQTT-4.7.2-1] filters starting with a wildcard do not match topics that
// start with '$': neither the retained $SYS messages at subscribe time nor
// the live refreshes.
func TestWildcardSubscribersDoNotReceiveSysTopics(t *testing.T) {
	b, addr := startBroker(t, tern.Options{SysInterval: sysInterval})
	eventually(t, "the $SYS topics to be retained", func() bool { return b.Stats().Retained > 0 })
	wild := mustConnect(t, addr, "wild", true)
	wild.subscribe(1,
		packets.Subscription{Filter: "#", QoS: 0},
		packets.Subscription{Filter: "+/broker/#", QoS: 0},
		packets.Subscription{Filter: "+/+/version", QoS: 0})

	// Let the broker refresh $SYS twice while wild is subscribed.
	sys := mustConnect(t, addr, "sys", true)
	sysSubscribe(t, sys, "$SYS/broker/version")
	for range 2 {
		waitSys(t, sys, "$SYS/broker/version", func(_ string, retain bool) bool { return !retain })
	}
	// Had any $SYS message matched, it would come before this one.
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "normal/topic", "marker", 0, false)
	assert.Equal(t, "normal/topic", wild.recvPublish().Topic, "a wildcard subscriber got a $SYS message")
}
