package tern_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Hostile input on the wire: a table of malformed and abusive byte streams,
// each checked for the reaction the specification asks for, each followed by
// a check that a fresh client is still served and that nothing the broker
// refused reached a subscriber.

// hoReaction is what the broker must do with a hostile input.
type hoReaction int

const (
	// hoClosed: the connection is closed with no packet sent: no CONNACK
	// for an input that comes instead of a valid CONNECT [MQTT-3.1.4-1],
	// nothing more after a CONNACK [MQTT-4.8.0-1].
	hoClosed hoReaction = iota
	// hoRefused: CONNACK with a non-zero return code, then close
	// [MQTT-3.2.2-4] [MQTT-3.2.2-5].
	hoRefused
	// hoConnackThenClosed: a valid CONNECT followed, in the same write, by
	// a violation: closed [MQTT-4.8.0-1]. The CONNACK queued for the
	// CONNECT may or may not leave before the close (the specification
	// requires only the close); if anything arrives, it is CONNACK 0.
	hoConnackThenClosed
	// hoServed: the connection stays: the broker sends the listed replies
	// and then answers a PINGREQ.
	hoServed
)

// hoCase is one hostile input.
type hoCase struct {
	name      string
	connected bool   // a valid CONNECT is exchanged before raw is sent
	raw       []byte // the input
	chunk     int    // raw is written this many bytes at a time (0: one write)
	want      hoReaction
	code      byte           // hoRefused: the CONNACK return code
	replies   []packets.Type // hoServed: the packets before the PINGRESP
	forwarded []string       // topics a subscriber to "#" receives
}

// Wire building blocks, valid or not.
func hoID(id uint16) []byte { return []byte{byte(id >> 8), byte(id)} }

// hoConnect is a CONNECT named MQTT, level 4, with the given flags,
// keepalive and payload fields.
func hoConnect(flags byte, keepAlive uint16, fields ...[]byte) []byte {
	return hoConnectAs("MQTT", 4, flags, keepAlive, fields...)
}

func hoConnectAs(name string, level, flags byte, keepAlive uint16, fields ...[]byte) []byte {
	vh := slices.Concat(mqttString(name), []byte{level, flags}, hoID(keepAlive))
	return packetBytes(0x10, append([][]byte{vh}, fields...)...)
}

// hoGarbage is n pseudo-random bytes behind a first byte of a reserved
// packet type, so that the broker can tell at once that they are not MQTT.
func hoGarbage(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	out := []byte{0xF0 | byte(r.IntN(16))}
	for range n - 1 {
		out = append(out, byte(r.IntN(256)))
	}
	return out
}

// CONNECT flag bits.
const (
	hoClean    = 0x02
	hoWill     = 0x04
	hoUser     = 0x80
	hoPassword = 0x40
)

func hoCases() []hoCase {
	valid := func(id string) []byte { return hoConnect(hoClean, 60, mqttString(id)) }
	will := func(topic string) []byte {
		return hoConnect(hoClean|hoWill, 60, mqttString("will-client"), mqttString(topic), mqttString("w"))
	}
	user := func(name string) []byte {
		return hoConnect(hoClean|hoUser, 60, mqttString("user-client"), mqttString(name))
	}
	sub := func(filter string) []byte { return packetBytes(0x82, hoID(1), mqttString(filter), []byte{1}) }
	unsub := func(id uint16, filters ...string) []byte {
		parts := [][]byte{hoID(id)}
		for _, f := range filters {
			parts = append(parts, mqttString(f))
		}
		return packetBytes(0xA2, parts...)
	}
	pub := func(first byte, topic string, rest ...[]byte) []byte {
		return packetBytes(first, append([][]byte{mqttString(topic)}, rest...)...)
	}
	many := make([][]byte, 0, 2001)
	many = append(many, hoID(9))
	for i := range 1000 {
		many = append(many, mqttString(fmt.Sprintf("hostile/many/%d", i)), []byte{byte(i % 3)})
	}
	longTopic := "hostile/" + strings.Repeat("l", 65535-len("hostile/"))
	bigID := strings.Repeat("b", 300) // a CONNECT with a two-byte Remaining Length

	return []hoCase{
		// Instead of a CONNECT: closed without CONNACK [MQTT-3.1.0-1]
		// [MQTT-3.1.4-1], at once.
		{name: "HTTP request instead of CONNECT [MQTT-3.1.0-1] [MQTT-2.2.2-2]",
			raw: []byte("GET /mqtt HTTP/1.1\r\nHost: tern\r\nUpgrade: websocket\r\n\r\n")},
		{name: "TLS ClientHello on a plain listener [MQTT-2.2.2-2]",
			raw: append([]byte{0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03}, make([]byte, 32)...)},
		{name: "zero bytes before CONNECT (reserved type 0) [MQTT-2.2.2-2]", raw: append([]byte{0, 0, 0}, valid("zeros")...)},
		{name: "random garbage before CONNECT [MQTT-3.1.0-1]", raw: append(hoGarbage(1, 64), valid("garbage")...)},
		{name: "PINGRESP before CONNECT [MQTT-3.1.0-1]", raw: []byte{0xD0, 0}},
		{name: "SUBACK before CONNECT [MQTT-3.1.0-1]", raw: []byte{0x90, 3, 0, 1, 0}},
		{name: "UNSUBACK before CONNECT [MQTT-3.1.0-1]", raw: []byte{0xB0, 2, 0, 1}},
		{name: "PUBREL before CONNECT [MQTT-3.1.0-1]", raw: []byte{0x62, 2, 0, 1}},
		{name: "CONNECT with fixed header flags 0001 [MQTT-2.2.2-2]", raw: append([]byte{0x11}, valid("flags")[1:]...)},
		{name: "CONNECT announcing 256 MB (2.2.3, Options.MaxPacketSize)", raw: []byte{0x10, 0xff, 0xff, 0xff, 0x7f}},
		{name: "CONNECT with a five-byte Remaining Length (2.2.3)", raw: []byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{name: "CONNECT truncated inside the protocol name (2.2.3)", raw: packetBytes(0x10, []byte{0, 4, 'M', 'Q'})},
		{name: "CONNECT truncated inside the keepalive (2.2.3)", raw: packetBytes(0x10, mqttString("MQTT"), []byte{4, hoClean, 0})},
		{name: "CONNECT with bytes after its last field [MQTT-3.1.2-11]", raw: hoConnect(hoClean, 60, mqttString("tail"), []byte("junk"))},
		{name: "protocol name not UTF-8 [MQTT-3.1.2-1] [MQTT-1.5.3-1]", raw: hoConnectAs("MQ\xffT", 4, hoClean, 60, mqttString("name"))},
		{name: "client identifier with a truncated multi-byte sequence [MQTT-3.1.3-4] [MQTT-1.5.3-1]", raw: valid("id\xe2\x82")},
		{name: "client identifier with an overlong '/' [MQTT-3.1.3-4] [MQTT-1.5.3-1]", raw: valid("a\xc0\xafb")},
		{name: "client identifier with a five-byte sequence [MQTT-3.1.3-4] [MQTT-1.5.3-1]", raw: valid("\xf8\x88\x80\x80\x80")},
		{name: "client identifier above U+10FFFF [MQTT-3.1.3-4] [MQTT-1.5.3-1]", raw: valid("\xf4\x90\x80\x80")},
		{name: "will topic with a surrogate [MQTT-3.1.3-10] [MQTT-1.5.3-1]", raw: will("will/\xed\xbf\xbf")},
		{name: "will topic with U+0000 [MQTT-3.1.3-10] [MQTT-1.5.3-2]", raw: will("will/\x00")},
		{name: "will topic with '+' [MQTT-4.7.1-1]", raw: will("will/+")},
		{name: "user name with a lone continuation byte [MQTT-3.1.3-11] [MQTT-1.5.3-1]", raw: user("us\x80er")},
		{name: "user name with U+0000 [MQTT-3.1.3-11] [MQTT-1.5.3-2]", raw: user("us\x00er")},
		{name: "user name running past the packet (2.2.3)", raw: hoConnect(hoClean|hoUser, 60, mqttString("cut"), []byte{0, 9, 'u'})},

		// Unusual but valid CONNECTs: accepted.
		{name: "password not UTF-8 is binary data (3.1.3.5)", want: hoServed, replies: []packets.Type{packets.TypeConnack},
			raw: hoConnect(hoClean|hoUser|hoPassword, 60, mqttString("pw-client"), mqttString("user"), mqttString("\xff\xfe\x00pw"))},
		{name: "will message not UTF-8 is binary data (3.1.3.3)", want: hoServed, replies: []packets.Type{packets.TypeConnack},
			raw: hoConnect(hoClean|hoWill, 60, mqttString("binary-will"), mqttString("hostile/will"), mqttString("\xff\x00\xfe"))},
		{name: "client identifier with a BOM [MQTT-1.5.3-3]", want: hoServed, replies: []packets.Type{packets.TypeConnack},
			raw: valid("\ufeffbom")},
		{name: "CONNECT one byte at a time (2.2.3)", want: hoServed, replies: []packets.Type{packets.TypeConnack},
			raw: valid("bytewise"), chunk: 1},
		{name: "CONNECT with a two-byte Remaining Length, two bytes at a time (2.2.3)", want: hoServed,
			replies: []packets.Type{packets.TypeConnack}, raw: valid(bigID), chunk: 2},
		{name: "keepalive 65535 (3.1.2.10)", want: hoServed, replies: []packets.Type{packets.TypeConnack},
			raw: hoConnect(hoClean, 65535, mqttString("patient"))},

		// Refused with a CONNACK return code, then closed.
		{name: "protocol level 6 followed by garbage gets 0x01 [MQTT-3.1.2-2]", want: hoRefused, code: packets.RefusedProtocolVersion,
			raw: packetBytes(0x10, mqttString("MQTT"), []byte{6}, hoGarbage(4, 40))},
		{name: "CONNECT of an unknown protocol level one byte at a time gets 0x01 [MQTT-3.1.2-2]", want: hoRefused, code: packets.RefusedProtocolVersion,
			raw: hoConnectAs("MQTT", 6, hoClean, 60, []byte{0}, mqttString("six")), chunk: 1},
		{name: "empty client identifier without clean session gets 0x02 and its will is not published [MQTT-3.1.3-8]",
			want: hoRefused, code: packets.RefusedIdentifierRejected,
			raw: hoConnect(hoWill, 60, mqttString(""), mqttString("hostile/refused-will"), mqttString("w"))},
		{name: "MQTT 3.1 client identifier of 24 two-byte characters gets 0x02 (MQTT 3.1: 1 to 23 characters)",
			want: hoRefused, code: packets.RefusedIdentifierRejected,
			raw: hoConnectAs("MQIsdp", 3, hoClean, 60, mqttString(strings.Repeat("\u00e9", 24)))},

		// Garbage after a valid CONNECT: CONNACK, then close [MQTT-4.8.0-1].
		{name: "garbage in the same write as CONNECT [MQTT-4.8.0-1]", want: hoConnackThenClosed,
			raw: append(valid("then-garbage"), hoGarbage(2, 64)...)},
		{name: "garbage after CONNACK [MQTT-4.8.0-1]", connected: true, raw: hoGarbage(3, 200)},
		{name: "second CONNECT three bytes at a time [MQTT-3.1.0-2]", connected: true, raw: valid("again"), chunk: 3},

		// PUBLISH that must not be forwarded: closed [MQTT-4.8.0-1].
		{name: "PUBLISH topic with '+' [MQTT-3.3.2-2]", connected: true, raw: pub(0x30, "hostile/+/x", []byte("p"))},
		{name: "PUBLISH topic ending in '#' [MQTT-3.3.2-2]", connected: true, raw: pub(0x30, "hostile/#", []byte("p"))},
		{name: "PUBLISH QoS 1 to '#' [MQTT-3.3.2-2] [MQTT-4.7.1-1]", connected: true, raw: pub(0x32, "#", hoID(1))},
		{name: "PUBLISH with an empty topic [MQTT-4.7.3-1]", connected: true, raw: pub(0x30, "", []byte("p"))},
		{name: "PUBLISH topic not UTF-8 [MQTT-3.3.2-1] [MQTT-1.5.3-1]", connected: true, raw: pub(0x30, "hostile/\xc3\x28", []byte("p"))},
		{name: "PUBLISH topic with U+0000 [MQTT-1.5.3-2]", connected: true, raw: pub(0x30, "hostile/\x00", []byte("p"))},
		{name: "PUBLISH QoS 2 with packet identifier 0 [MQTT-2.3.1-1]", connected: true, raw: pub(0x34, "hostile/t", hoID(0))},
		{name: "PUBLISH QoS 0 with DUP set [MQTT-3.3.1-2]", connected: true, raw: pub(0x38, "hostile/t", []byte("p"))},
		{name: "PUBLISH topic length past the end (2.2.3)", connected: true, raw: packetBytes(0x30, []byte{0, 50, 'a', 'b'})},
		{name: "PUBLISH QoS 1 without its packet identifier (2.2.3)", connected: true, raw: pub(0x32, "hostile/t", []byte{0})},
		{name: "PUBLISH announcing 256 MB (Options.MaxPacketSize)", connected: true, raw: []byte{0x30, 0xff, 0xff, 0xff, 0x7f}},

		// Malformed SUBSCRIBE, UNSUBSCRIBE and acknowledgements: closed.
		{name: "SUBSCRIBE announcing 256 MB (Options.MaxPacketSize)", connected: true, raw: []byte{0x82, 0xff, 0xff, 0xff, 0x7f}},
		{name: "SUBSCRIBE filter with a surrogate [MQTT-3.8.3-1] [MQTT-1.5.3-1]", connected: true, raw: sub("a/\xed\xa0\x80")},
		{name: "SUBSCRIBE filter '#/a' [MQTT-4.7.1-2]", connected: true, raw: sub("#/a")},
		{name: "SUBSCRIBE filter 'a/+b/c' [MQTT-4.7.1-3]", connected: true, raw: sub("a/+b/c")},
		{name: "UNSUBSCRIBE with packet identifier 0 [MQTT-2.3.1-1]", connected: true, raw: unsub(0, "a")},
		{name: "UNSUBSCRIBE without a filter [MQTT-3.10.3-2]", connected: true, raw: unsub(1)},
		{name: "UNSUBSCRIBE filter not UTF-8 [MQTT-1.5.3-1]", connected: true, raw: unsub(1, "a/\xff")},
		{name: "PUBACK with packet identifier 0 [MQTT-2.3.1-1]", connected: true, raw: []byte{0x40, 2, 0, 0}},
		{name: "PUBREC with flags 0010 [MQTT-2.2.2-2]", connected: true, raw: []byte{0x52, 2, 0, 1}},
		{name: "PUBCOMP with a three-byte body (3.7.1)", connected: true, raw: []byte{0x70, 3, 0, 1, 0}},
		{name: "PUBREL with a one-byte body (3.6.1)", connected: true, raw: []byte{0x62, 1, 0}},

		// Valid packets in unusual situations: ignored or answered.
		{name: "PUBACK for an unknown packet identifier is ignored", connected: true, want: hoServed, raw: []byte{0x40, 2, 0x12, 0x34}},
		{name: "PUBCOMP for an unknown packet identifier is ignored", connected: true, want: hoServed, raw: []byte{0x70, 2, 0x12, 0x34}},
		{name: "PUBREL for an unknown packet identifier gets PUBCOMP [MQTT-4.3.3-2]", connected: true, want: hoServed,
			raw: []byte{0x62, 2, 0x12, 0x34}, replies: []packets.Type{packets.TypePubcomp}},
		{name: "PUBREC for an unknown packet identifier gets PUBREL [MQTT-4.3.3-1]", connected: true, want: hoServed,
			raw: []byte{0x50, 2, 0x12, 0x34}, replies: []packets.Type{packets.TypePubrel}},
		{name: "UNSUBSCRIBE from a filter never subscribed gets UNSUBACK [MQTT-3.10.4-5]", connected: true, want: hoServed,
			raw: unsub(3, "never/subscribed"), replies: []packets.Type{packets.TypeUnsuback}},
		{name: "QoS 2 PUBLISH repeated before PUBREL is forwarded once [MQTT-4.3.3-2]", connected: true, want: hoServed,
			raw:       slices.Concat(pub(0x34, "hostile/q2", hoID(7), []byte("a")), pub(0x3C, "hostile/q2", hoID(7), []byte("a")), []byte{0x62, 2, 0, 7}),
			replies:   []packets.Type{packets.TypePubrec, packets.TypePubrec, packets.TypePubcomp},
			forwarded: []string{"hostile/q2"}},
		{name: "PUBLISH topic with a BOM is delivered with it [MQTT-1.5.3-3]", connected: true, want: hoServed,
			raw: pub(0x30, "hostile/\ufeffbom", []byte("p")), forwarded: []string{"hostile/\ufeffbom"}},
		{name: "PUBLISH topic of 65535 bytes (1.5.3)", connected: true, want: hoServed,
			raw: pub(0x30, longTopic, []byte("p")), forwarded: []string{longTopic}},
		{name: "empty retained PUBLISH to a topic with nothing retained is forwarded [MQTT-3.3.1-10] [MQTT-3.3.1-12]",
			connected: true, want: hoServed, raw: pub(0x31, "hostile/empty"), forwarded: []string{"hostile/empty"}},
		{name: "SUBSCRIBE with 1000 filters gets one SUBACK [MQTT-3.8.4-4] [MQTT-3.8.4-5]", connected: true, want: hoServed,
			raw: packetBytes(0x82, many...), replies: []packets.Type{packets.TypeSuback}},
		{name: "PINGREQ with a two-byte Remaining Length of 0 (2.2.3 does not require the shortest form)", connected: true,
			want: hoServed, raw: []byte{0xC0, 0x80, 0x00}, replies: []packets.Type{packets.TypePingresp}},
	}
}

// TestHostileInputGetsTheSpecifiedReaction runs the table of hostile inputs
// against one broker. Beside the statements each case names:
// [MQTT-3.1.4-1] [MQTT-3.2.2-4] [MQTT-3.2.2-5] [MQTT-4.8.0-1] [MQTT-3.1.0-1].
func TestHostileInputGetsTheSpecifiedReaction(t *testing.T) {
	cases := hoCases()
	if len(cases) < 40 {
		t.Fatalf("%d cases, the table must have at least 40", len(cases))
	}
	b, addr := startBroker(t, tern.Options{})
	watcher := mustConnect(t, addr, "hostile-watcher", true)
	watcher.subscribe(1, packets.Subscription{Filter: "#", QoS: 0})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hoRun(t, addr, i, tc)
			// Nothing the broker refused was forwarded, what it accepted
			// was, and a fresh client is served.
			fresh := mustConnect(t, addr, fmt.Sprintf("hostile-fresh-%02d", i), true)
			marker := fmt.Sprintf("hostile/marker/%02d", i)
			fresh.publishQoS(1, marker, "m", 1, false)
			w := *watcher
			w.t = t
			for _, topic := range append(tc.forwarded, marker) {
				if p := w.recvPublish(); p.Topic != topic {
					t.Fatalf("the subscriber to # got %.40q, want %.40q", p.Topic, topic)
				}
			}
			fresh.send(&packets.Disconnect{})
			fresh.expectClosed()
		})
	}
	if n := b.Stats().ClientsConnected; n != 1 {
		t.Errorf("%d clients connected after the table, want only the watcher", n)
	}
}

// hoRun sends one case's input and checks the broker's reaction.
func hoRun(t *testing.T, addr string, i int, tc hoCase) {
	c := dialRaw(t, addr)
	if tc.connected {
		if ack := c.connect(fmt.Sprintf("hostile-%02d", i), true); ack.ReturnCode != 0 {
			t.Fatalf("CONNACK 0x%02x", ack.ReturnCode)
		}
	}
	if tc.chunk > 0 {
		for rest := tc.raw; len(rest) > 0; {
			n := min(tc.chunk, len(rest))
			c.sendRaw(rest[:n])
			rest = rest[n:]
		}
	} else {
		c.sendRaw(tc.raw)
	}
	start := time.Now()
	switch tc.want {
	case hoClosed:
		c.expectClosed()
	case hoRefused:
		ack, ok := c.recv().(*packets.Connack)
		if !ok || ack.ReturnCode != tc.code || ack.SessionPresent {
			t.Fatalf("got %+v, want CONNACK 0x%02x without session present", ack, tc.code)
		}
		c.expectClosed()
	case hoConnackThenClosed:
		if p, err := c.tryRecv(waitTimeout); err == nil {
			if ack, ok := p.(*packets.Connack); !ok || ack.ReturnCode != 0 {
				t.Fatalf("got %v %+v, want CONNACK 0 or nothing", p.Type(), p)
			}
			c.expectClosed()
		} else if !isReset(err) && !strings.Contains(err.Error(), "EOF") {
			t.Fatalf("got %v, want the connection closed", err)
		}
	case hoServed:
		for _, want := range tc.replies {
			p := c.recv()
			if p.Type() != want {
				t.Fatalf("got %v, want %v", p.Type(), want)
			}
			if ack, ok := p.(*packets.Connack); ok && ack.ReturnCode != 0 {
				t.Fatalf("CONNACK 0x%02x, want 0", ack.ReturnCode)
			}
			if ack, ok := p.(*packets.Suback); ok && (len(ack.ReturnCodes) != 1000 || !bytes.Equal(ack.ReturnCodes[:3], []byte{0, 1, 2})) {
				t.Fatalf("SUBACK with %d codes, want 1000 granting the requested QoS", len(ack.ReturnCodes))
			}
		}
		pingOKHostile(c)
		c.send(&packets.Disconnect{})
		c.expectClosed()
		return
	}
	// Every refusal is immediate: the broker neither waits for the rest of
	// an announced packet nor for a timeout.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closed after %v, want at once", d)
	}
}

// pingOKHostile checks that the next reply to a PINGREQ is PINGRESP.
func pingOKHostile(c *rawClient) {
	c.t.Helper()
	c.send(&packets.Pingreq{})
	if p := c.recv(); p.Type() != packets.TypePingresp {
		c.t.Fatalf("got %v, want PINGRESP", p.Type())
	}
}

// Resource abuse: connections that never send CONNECT, announcements of
// packets that never arrive, and a publisher flooding a subscriber that does
// not read.

// TestSilentConnectionsAreClosedAtTheConnectTimeout opens 500 connections
// that never send CONNECT: each is closed once Options.ConnectTimeout has
// passed [MQTT-3.1.0-1] (section 3.1.4: the server closes a connection that
// sends no CONNECT within a reasonable time), none counts as a connect, a
// well-behaved client is served meanwhile, and no goroutine is left
// behind (startBroker checks at cleanup).
func TestSilentConnectionsAreClosedAtTheConnectTimeout(t *testing.T) {
	const (
		n       = 500
		timeout = 300 * time.Millisecond
	)
	b, addr := startBroker(t, tern.Options{ConnectTimeout: timeout})
	closedAfter := make(chan time.Duration, n)
	for range n {
		c := dialRaw(t, addr)
		start := time.Now()
		go func() {
			c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
			_, err := c.conn.Read(make([]byte, 1))
			if err == nil || strings.Contains(err.Error(), "timeout") {
				closedAfter <- -1 // data or still open: both wrong
				return
			}
			closedAfter <- time.Since(start)
		}()
	}
	// A client that behaves is served while the silent ones wait.
	pingOKHostile(mustConnect(t, addr, "behaves", true))
	var latest time.Duration
	for range n {
		d := <-closedAfter
		if d < 0 {
			t.Fatal("a silent connection got data or was not closed")
		}
		if d < timeout*3/4 {
			t.Fatalf("a silent connection was closed after %v, before the %v timeout", d, timeout)
		}
		latest = max(latest, d)
	}
	t.Logf("%d silent connections closed, the last %v after it was opened (timeout %v)", n, latest, timeout)
	if latest > timeout+3*time.Second {
		t.Errorf("the last silent connection was closed after %v, want about %v", latest, timeout)
	}
	if st := b.Stats(); st.Connects != 1 {
		t.Errorf("Connects %d, want 1 (the well-behaved client)", st.Connects)
	}
}

// TestAnnouncedPacketsCostMemoryOnlyAsTheirBytesArrive: 200 connected
// clients each announce a large PUBLISH and send only its first 4 KiB. An
// announcement over Options.MaxPacketSize closes the connection before
// anything is allocated for it; one under the limit costs memory as its
// bytes arrive (64 KiB, the reader's first step past its small buffer, for
// these 4 KiB), not the announced size.
func TestAnnouncedPacketsCostMemoryOnlyAsTheirBytesArrive(t *testing.T) {
	const (
		clients = 200
		limit   = 1 << 20 // the default MaxPacketSize
	)
	cases := []struct {
		name      string
		announced int
		closed    bool
		perClient uint64 // the allocation allowed per client
	}{
		{"256 MB, over the limit: closed", packets.MaxRemainingLength, true, 8 << 10},
		{"just under the limit, body withheld: kept", limit - 16, false, 128 << 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, addr := startBroker(t, tern.Options{MaxPacketSize: limit})
			cs := make([]*rawClient, clients)
			for i := range cs {
				cs[i] = mustConnect(t, addr, fmt.Sprintf("announcer-%d", i), true)
			}
			header := slices.Concat([]byte{0x30}, remainingLength(tc.announced), mqttString("big/t"), make([]byte, 4<<10))
			received := b.Stats().BytesReceived
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			for _, c := range cs {
				c.sendRaw(header)
			}
			if tc.closed {
				for _, c := range cs {
					c.expectClosed()
				}
			} else {
				// A PINGREQ would be taken for body bytes: wait until the
				// broker has read every header instead.
				eventually(t, "every announcement read", func() bool {
					return b.Stats().BytesReceived-received >= int64(clients*len(header))
				})
			}
			runtime.ReadMemStats(&ms)
			grew := ms.TotalAlloc - before
			t.Logf("%d announcements of %d KiB: %d KiB allocated (%d KiB per client)", clients, tc.announced>>10, grew>>10, grew/clients>>10)
			if grew > clients*tc.perClient {
				t.Errorf("%d KiB allocated, want at most %d KiB per client", grew>>10, tc.perClient>>10)
			}
			if !tc.closed && b.Stats().ClientsConnected != clients {
				t.Errorf("%d clients connected, want %d (an unfinished packet is not an error)", b.Stats().ClientsConnected, clients)
			}
		})
	}
}

// hoHeapBound is the most the broker's live heap may grow while a publisher
// floods a subscriber that does not read (documented in
// docs/reliability.md): the subscriber's write buffer (MaxPending, 1 MiB
// here) and the batch its blocked writer holds (as much again), the
// publisher's read buffer, and slack for the collector's timing.
const hoHeapBound = 8 << 20

// TestFloodToAStuckSubscriberKeepsTheHeapBounded publishes 200,000 QoS 0
// messages of 1 KiB (about 200 MiB) to a topic whose only subscriber never
// reads, with MaxPending 1 MiB: the broker's heap, measured after a garbage
// collection several times a second, stays within hoHeapBound of where it
// started, and every delivery is either sent or dropped and counted.
func TestFloodToAStuckSubscriberKeepsTheHeapBounded(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	const batch = 64
	b, addr := startBroker(t, tern.Options{MaxPending: 1 << 20, WriteTimeout: time.Minute})
	stuck := mustConnect(t, addr, "stuck", true)
	stuck.subscribe(1, packets.Subscription{Filter: "flood/#", QoS: 0})
	pub := mustConnect(t, addr, "flooder", true)
	one, err := (&packets.Publish{Topic: "flood/t", Payload: make([]byte, 1024)}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	burst := bytes.Repeat(one, batch)

	heapInuse := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	base := heapInuse()
	before := b.Stats()
	stop := make(chan struct{})
	peakc := make(chan uint64)
	go func() { // sample the heap while the flood runs
		peak := uint64(0)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peakc <- max(peak, heapInuse())
				return
			case <-tick.C:
				peak = max(peak, heapInuse())
			}
		}
	}()
	start := time.Now()
	pub.conn.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	for sent := 0; sent < n; sent += batch {
		if _, err := pub.conn.Write(burst); err != nil {
			close(stop)
			t.Fatalf("publisher cut off after %d messages: %v", sent, err)
		}
	}
	total := int64((n + batch - 1) / batch * batch)
	eventually(t, "every PUBLISH read", func() bool {
		return b.Stats().PublishReceived-before.PublishReceived >= total
	})
	elapsed := time.Since(start)
	close(stop)
	peak := <-peakc
	st := b.Stats()
	sent, dropped := st.PublishSent-before.PublishSent, st.PublishDropped-before.PublishDropped
	t.Logf("%d messages of 1 KiB in %v (%.0f/s); %d sent to the stuck subscriber, %d dropped", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), sent, dropped)
	t.Logf("HeapInuse after GC: %.1f MiB before, peak %.1f MiB during the flood (+%.1f MiB; bound +%d MiB)",
		float64(base)/(1<<20), float64(peak)/(1<<20), (float64(peak)-float64(base))/(1<<20), hoHeapBound>>20)
	if sent+dropped != total || dropped == 0 {
		t.Errorf("sent %d + dropped %d, want %d with some dropped", sent, dropped, total)
	}
	if peak > base+hoHeapBound {
		t.Errorf("HeapInuse grew by %d KiB, want at most %d KiB", (peak-base)>>10, hoHeapBound>>10)
	}
	// The publisher is still served.
	pub.publishQoS(1, "flood/done", "", 1, false)
}
