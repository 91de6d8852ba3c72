package tern_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of the connect timeout and keepalive (sections 3.1.2.10
// and 3.1.4), PINGREQ and PINGRESP (3.12, 3.13), DISCONNECT (3.14) and the
// handling of protocol violations (section 4.8, and the packet types and
// flags of section 2.2).

// connectTimeout is the broker's ConnectTimeout in TestTimers.
const connectTimeout = 200 * time.Millisecond

// timerEnv is the broker shared by the tests that wait on its timers.
type timerEnv struct {
	b    *tern.Broker
	addr string
	disc *disconnects
}

// TestTimers runs the tests that wait on the broker's timers concurrently
// against one broker, so that together they last about as long as the
// longest (2.5 s). They share one broker because startBroker's goroutine-leak check
// counts every goroutine of the process, and brokers of tests running side
// by side would count against each other.
func TestTimers(t *testing.T) {
	b, addr := startBroker(t, tern.Options{ConnectTimeout: connectTimeout})
	env := timerEnv{b: b, addr: addr, disc: watchDisconnects(t, b)}
	tests := []struct {
		name string
		f    func(*testing.T, timerEnv)
	}{
		{"ConnectTimeoutClosesASilentConnection", testConnectTimeoutSilent},
		{"ConnectTimeoutClosesAnIncompleteConnect", testConnectTimeoutPartial},
		{"KeepAliveClosesASilentClientAfterOneAndAHalfPeriods", testKeepAliveSilent},
		{"KeepAliveKeptByPingreqEveryHalfPeriod", testKeepAlivePinging},
		{"KeepAliveKeptByOtherControlPackets", testKeepAliveBusy},
		{"KeepAliveNotResetByAnIncompletePacket", testKeepAliveTrickle},
		{"KeepAliveZeroNeverTimesOut", testKeepAliveZero},
		{"WillPublishedOnKeepAliveExpiry", testWillOnKeepAliveExpiry},
	}
	// The subtests mostly wait, so they run side by side whatever -parallel
	// says (t.Run may be called from several goroutines at once).
	var wg sync.WaitGroup
	for _, tc := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(tc.name, func(t *testing.T) { tc.f(t, env) })
		}()
	}
	wg.Wait()
}

func testConnectTimeoutSilent(t *testing.T, env timerEnv) {
	// [MQTT-3.1.0-1]; section 3.1.4: a connection that sends no CONNECT
	// within a reasonable time is closed.
	start := time.Now()
	c := dialRaw(t, env.addr)
	c.expectClosed()
	assert.GreaterOrEqual(t, time.Since(start), connectTimeout, "closed before the connect timeout")
}

func testConnectTimeoutPartial(t *testing.T, env timerEnv) {
	// [MQTT-3.1.0-1]: half a CONNECT is no CONNECT.
	start := time.Now()
	c := dialRaw(t, env.addr)
	c.sendRaw(connectBytes("MQTT", 4, flagClean, mqttString("halfway"))[:7])
	c.expectClosed()
	assert.GreaterOrEqual(t, time.Since(start), connectTimeout, "closed before the connect timeout")
}

// connectKeepAlive connects id with the given keepalive, in seconds.
func connectKeepAlive(t *testing.T, addr, id string, keepAlive uint16) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	p := &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: true, KeepAlive: keepAlive}
	require.Zero(t, c.connectWith(p).ReturnCode, "CONNACK return code of %s", id)
	return c
}

// Bounds on when a client with a one second keepalive is disconnected: 1.5 s
// after its last packet [MQTT-3.1.2-24], with slack for a loaded machine.
const (
	keepAliveEarliest = 1400 * time.Millisecond
	keepAliveLatest   = 3500 * time.Millisecond
)

func testKeepAliveSilent(t *testing.T, env timerEnv) {
	// [MQTT-3.1.2-24]
	c := connectKeepAlive(t, env.addr, "mute", 1)
	start := time.Now()
	c.expectClosed()
	d := time.Since(start)
	require.GreaterOrEqual(t, d, keepAliveEarliest, "closed after CONNACK, want about 1.5 s")
	require.LessOrEqual(t, d, keepAliveLatest, "closed after CONNACK, want about 1.5 s")
	assert.ErrorIs(t, env.disc.wait(t, "mute"), tern.ErrKeepAliveTimeout, "disconnect reason")
}

func testKeepAlivePinging(t *testing.T, env timerEnv) {
	// [MQTT-3.1.2-24] [MQTT-3.12.4-1]: a client that pings every 0.5 s for
	// 2.5 s (past 1.5 s) stays connected. The ticker paces the client; it
	// does not synchronise with the broker.
	c := connectKeepAlive(t, env.addr, "pinger", 1)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for range 5 {
		<-tick.C
		pingOK(c)
	}
}

func testKeepAliveBusy(t *testing.T, env timerEnv) {
	// [MQTT-3.1.2-24]: any control packet counts, not only PINGREQ.
	c := connectKeepAlive(t, env.addr, "busy", 1)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := range 5 {
		<-tick.C
		c.publishQoS(uint16(i+1), "busy/t", "x", 1, false)
	}
	pingOK(c)
}

func testKeepAliveTrickle(t *testing.T, env timerEnv) {
	// [MQTT-3.1.2-24]: the keepalive runs from the last complete control
	// packet; bytes of an unfinished one do not reset it.
	c := connectKeepAlive(t, env.addr, "trickler", 1)
	start := time.Now()
	body := slices.Concat(mqttString("slow/t"), []byte("payload of twenty"))
	c.sendRaw([]byte{0x30, byte(len(body))})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // one byte of the body every 250 ms: the whole takes ~6 s
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for _, b := range body {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := c.conn.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	c.expectClosed()
	close(done)
	wg.Wait()
	d := time.Since(start)
	assert.GreaterOrEqual(t, d, keepAliveEarliest, "closed after CONNACK, want about 1.5 s")
	assert.LessOrEqual(t, d, keepAliveLatest, "closed after CONNACK, want about 1.5 s")
}

func testKeepAliveZero(t *testing.T, env timerEnv) {
	// Section 3.1.2.10: keepalive 0 turns the mechanism off. Waiting past
	// the broker's 200 ms connect timeout also checks that the deadline it
	// set before CONNECT was lifted.
	c := connectKeepAlive(t, env.addr, "patient", 0)
	c.expectNothing(300 * time.Millisecond)
	pingOK(c)
}

func TestPingreqIsAnsweredWithPingresp(t *testing.T) {
	// [MQTT-3.12.4-1]
	_, addr := startBroker(t, tern.Options{})
	c := mustConnect(t, addr, "pinger", true)
	c.sendRaw([]byte{0xC0, 0, 0xC0, 0, 0xC0, 0}) // three at once
	for i := range 3 {
		c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
		fh, body, err := c.r.ReadRaw()
		require.NoError(t, err, "reply %d: want PINGRESP", i)
		require.Equal(t, packets.TypePingresp, fh.Type, "reply %d: %+v %v, want PINGRESP", i, fh, body)
		require.Zero(t, fh.Flags, "reply %d: %+v %v, want PINGRESP", i, fh, body)
		require.Empty(t, body, "reply %d: %+v %v, want PINGRESP", i, fh, body)
	}
	// Exactly one PINGRESP each: the next reply is the SUBACK.
	c.subscribe(1, packets.Subscription{Filter: "after/pings"})
}

func TestDisconnectEndsTheConnectionWithoutProcessingMore(t *testing.T) {
	// [MQTT-3.14.4-3]; [MQTT-3.14.4-1] [MQTT-3.14.4-2] are the client's
	// duties: the broker closes the connection itself and ignores anything
	// sent after DISCONNECT.
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	w := mustConnect(t, addr, "watcher", true)
	w.subscribe(1, packets.Subscription{Filter: "after/#"})
	c := mustConnect(t, addr, "leaver", true)
	c.sendRaw(slices.Concat([]byte{0xE0, 0}, packetBytes(0x30, mqttString("after/disconnect"), []byte("x"))))
	c.expectClosed()
	require.NoError(t, disc.wait(t, "leaver"), "disconnect reason: want nil after DISCONNECT")
	w.send(&packets.Publish{Topic: "after/marker"})
	p := w.recvPublish()
	require.Equal(t, "after/marker", p.Topic, "a PUBLISH after DISCONNECT was processed: %+v", p)
	// The clean session ended with its connection [MQTT-3.1.2-6].
	for _, ci := range b.Clients() {
		assert.NotEqual(t, "leaver", ci.ID, "session of leaver still listed: %+v", ci)
	}
}

func TestServerOnlyAndReservedPacketTypesCloseTheConnection(t *testing.T) {
	// Section 2.2.1 (direction of flow), [MQTT-2.2.2-2] [MQTT-4.8.0-1]
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	cases := []struct {
		name string
		raw  []byte
	}{
		{"CONNACK", []byte{0x20, 2, 0, 0}},
		{"SUBACK", []byte{0x90, 3, 0, 1, 0}},
		{"UNSUBACK", []byte{0xB0, 2, 0, 1}},
		{"PINGRESP", []byte{0xD0, 0}},
		{"reserved type 0", []byte{0x00, 0}},
		{"reserved type 15", []byte{0xF0, 0}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("wrong-way-%d", i)
			c := mustConnect(t, addr, id, true)
			c.sendRaw(tc.raw)
			c.expectClosed()
			err := disc.wait(t, id)
			require.True(t, errors.Is(err, tern.ErrProtocol) || errors.Is(err, packets.ErrMalformed),
				"disconnect reason %v, want a protocol violation", err)
			freshClientWorks(t, addr, "fresh-"+id)
		})
	}
}

func TestMalformedPacketsCloseTheConnection(t *testing.T) {
	// [MQTT-4.8.0-1] [MQTT-2.2.2-1] [MQTT-2.2.2-2] and the rules each case
	// names.
	b, addr := startBroker(t, tern.Options{})
	disc := watchDisconnects(t, b)
	cases := []struct {
		name string
		raw  []byte
	}{
		{"PINGREQ with flags [MQTT-2.2.2-2]", []byte{0xC1, 0}},
		{"PINGREQ with a body", []byte{0xC0, 1, 0}},
		{"DISCONNECT with flags [MQTT-3.14.1-1]", []byte{0xE2, 0}},
		{"DISCONNECT with a body", []byte{0xE0, 1, 0}},
		{"PUBACK with flags [MQTT-2.2.2-2]", []byte{0x42, 2, 0, 1}},
		{"PUBACK too short", []byte{0x40, 1, 0}},
		{"PUBREL with flags 0 [MQTT-3.6.1-1]", []byte{0x60, 2, 0, 1}},
		{"SUBSCRIBE with flags 0 [MQTT-3.8.1-1]", packetBytes(0x80, []byte{0, 1}, mqttString("a"), []byte{0})},
		{"SUBSCRIBE without a filter [MQTT-3.8.3-3]", packetBytes(0x82, []byte{0, 1})},
		{"UNSUBSCRIBE with flags 0 [MQTT-3.10.1-1]", packetBytes(0xA0, []byte{0, 1}, mqttString("a"))},
		{"PUBLISH with QoS 3 [MQTT-3.3.1-4]", packetBytes(0x36, mqttString("a"), []byte{0, 1})},
		{"PUBLISH QoS 1 with packet identifier 0 [MQTT-2.3.1-1]", packetBytes(0x32, mqttString("a"), []byte{0, 0})},
		{"Remaining Length in five bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"Remaining Length over the packet size limit", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("malformed-%d", i)
			c := mustConnect(t, addr, id, true)
			c.sendRaw(tc.raw)
			c.expectClosed()
			require.Error(t, disc.wait(t, id), "disconnect reason nil, as after a valid DISCONNECT")
			freshClientWorks(t, addr, "fresh-"+id)
		})
	}
}
