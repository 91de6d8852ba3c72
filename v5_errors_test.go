package tern_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of MQTT 5 error handling (sections 3.14 and 4.13): the
// server DISCONNECT, with the reason code that says why, wherever the
// broker ends an MQTT 5 connection after a successful CONNACK, and a
// CONNACK with a reason code (never a DISCONNECT) before it.

// c5ConnectRaw builds an MQTT 5 CONNECT by hand, valid or not: flags,
// keepalive 60, the property block props (its length is prepended), then
// the payload fields as given.
func c5ConnectRaw(flags byte, props []byte, fields ...[]byte) []byte {
	vh := append(mqttString("MQTT"), packets.Level5, flags, 0, 60)
	vh = append(append(vh, remainingLength(len(props))...), props...)
	return packetBytes(0x10, append([][]byte{vh}, fields...)...)
}

// c5Prop encodes one property: its identifier, then its value.
func c5Prop(id packets.PropID, value ...byte) []byte {
	return append([]byte{byte(id)}, value...)
}

func TestV5MalformedConnectGetsConnackNotDisconnect(t *testing.T) {
	// [v5 MQTT-3.1.4-1] [v5 MQTT-3.1.3-1] a CONNECT that breaks section 3.1
	// (here a field missing from its place, or a forbidden value) closes the
	// connection, after a CONNACK with 0x81 (malformed) or 0x82 (protocol
	// error) (section 4.13.1) [v5 MQTT-4.13.1-1] [v5 MQTT-4.13.2-1], never a
	// DISCONNECT before a successful CONNACK [v5 MQTT-3.14.0-1].
	b, addr := startBroker(t, tern.Options{})
	w := c5Watch(t, addr, "watcher", "malformed/#")
	id := mqttString("bad")
	willFields := [][]byte{{0}, mqttString("malformed/will"), mqttString("x")}
	const (
		malformed = packets.MalformedPacket
		protocol  = packets.ProtocolError
	)
	cases := []struct {
		name string
		raw  []byte
		code packets.ReasonCode
	}{
		// [v5 MQTT-3.1.2-3]
		{"reserved flag", c5ConnectRaw(flagClean|flagReserved, nil, id), malformed},
		// [v5 MQTT-3.1.2-11] [v5 MQTT-3.1.2-13]
		{"will QoS without will flag", c5ConnectRaw(flagClean|flagWillQoS1, nil, id), protocol},
		{"will retain without will flag", c5ConnectRaw(flagClean|flagWillRetn, nil, id), protocol},
		// [v5 MQTT-3.1.2-12]
		{"will QoS 3", c5ConnectRaw(flagCleanWill|flagWillQoS3, nil, append([][]byte{id}, willFields...)...), malformed},
		// [v5 MQTT-3.1.2-9]
		{"will flag without will fields", c5ConnectRaw(flagCleanWill, nil, id), malformed},
		{"will flag without will payload", c5ConnectRaw(flagCleanWill, nil, id, []byte{0}, mqttString("malformed/will")), malformed},
		// [v5 MQTT-3.1.3-11]
		{"will topic not UTF-8", c5ConnectRaw(flagCleanWill, nil, id, []byte{0}, mqttString("malformed/\xff"), mqttString("x")), malformed},
		// [v5 MQTT-3.1.2-16] [v5 MQTT-3.1.2-17] [v5 MQTT-3.1.2-18] [v5 MQTT-3.1.2-19]
		{"user name without its flag", c5ConnectRaw(flagClean, nil, id, mqttString("user")), malformed},
		{"user name flag without user name", c5ConnectRaw(flagClean|flagUsername, nil, id), malformed},
		{"password flag without password", c5ConnectRaw(flagClean|flagUsername|flagPassword, nil, id, mqttString("user")), malformed},
		// [v5 MQTT-3.1.3-12]
		{"user name not UTF-8", c5ConnectRaw(flagClean|flagUsername, nil, id, mqttString("us\xc0er")), malformed},
		// [v5 MQTT-3.1.3-3] [v5 MQTT-3.1.3-4]
		{"no client identifier", c5ConnectRaw(flagClean, nil), malformed},
		{"client identifier not UTF-8", c5ConnectRaw(flagClean, nil, mqttString("bad\xed\xa0\x80")), malformed},
		{"client identifier with U+0000", c5ConnectRaw(flagClean, nil, mqttString("bad\x00")), malformed},
		// Section 3.1.2.11: properties.
		{"session expiry twice", c5ConnectRaw(flagClean, slicesConcat(c5Prop(packets.PropSessionExpiry, 0, 0, 0, 1), c5Prop(packets.PropSessionExpiry, 0, 0, 0, 2)), id), protocol},
		{"receive maximum 0", c5ConnectRaw(flagClean, c5Prop(packets.PropReceiveMaximum, 0, 0), id), protocol},
		{"maximum packet size 0", c5ConnectRaw(flagClean, c5Prop(packets.PropMaximumPacketSize, 0, 0, 0, 0), id), protocol},
		{"request problem information 2", c5ConnectRaw(flagClean, c5Prop(packets.PropRequestProblemInfo, 2), id), protocol},
		{"authentication data without method", c5ConnectRaw(flagClean, c5Prop(packets.PropAuthData, 0, 1, 'x'), id), protocol},
		{"topic alias in CONNECT", c5ConnectRaw(flagClean, c5Prop(packets.PropTopicAlias, 0, 1), id), malformed},
		{"unknown property", c5ConnectRaw(flagClean, c5Prop(0x7F, 0), id), malformed},
		{"property length past the end", c5ConnectRaw(flagClean, c5Prop(packets.PropSessionExpiry, 0, 0), id), malformed},
		{"will delay in CONNECT properties", c5ConnectRaw(flagClean, c5Prop(packets.PropWillDelay, 0, 0, 0, 1), id), malformed},
		// [v5 MQTT-3.3.2-2] a will topic is a topic name: no wildcards.
		{"will topic with a wildcard", c5ConnectRaw(flagCleanWill, nil, id, []byte{0}, mqttString("malformed/+"), mqttString("x")), protocol},
		{"session expiry in will properties", c5ConnectRaw(flagCleanWill, nil, id, []byte{5, byte(packets.PropSessionExpiry), 0, 0, 0, 1}, mqttString("malformed/will"), mqttString("x")), malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c5Dial(t, addr)
			c.sendRaw(tc.raw)
			c5Refused(c, tc.code)
		})
	}
	// None of them left a will behind, nor a session.
	c5NoWill(t, b, w, "malformed/will")
	assert.False(t, c5Session(b, "bad"))
}

// slicesConcat concatenates byte slices.
func slicesConcat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestV5ProtocolNameAndVersion(t *testing.T) {
	// [v5 MQTT-3.1.2-1] another protocol name: closed, without CONNACK.
	// [v5 MQTT-3.1.2-2] a protocol version Tern does not speak: a CONNACK
	// in the 3.1.1 form, which any version can read, with 0x01
	// (unacceptable protocol version), then closed.
	_, addr := startBroker(t, tern.Options{})
	c := c5Dial(t, addr)
	c.sendRaw(connectBytes("MQTX", 5, flagClean, mqttString("x")))
	c.expectClosed()

	c = dialRaw(t, addr)
	c.sendRaw(connectBytes("MQTT", 6, flagClean, mqttString("x")))
	c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	fh, body, err := c.r.ReadRaw()
	require.NoError(t, err)
	assert.Equal(t, packets.TypeConnack, fh.Type)
	assert.Equal(t, []byte{0, packets.RefusedProtocolVersion}, body)
	c.expectClosed()
}

func TestV5ClientIdentifierCharactersAccepted(t *testing.T) {
	// [v5 MQTT-3.1.3-5] 1 to 23 of these characters are accepted.
	_, addr := startBroker(t, tern.Options{})
	const chars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := 0; i < len(chars); i += 23 {
		id := chars[i:min(i+23, len(chars))]
		c5Ping(c5Must(t, addr, id))
	}
	c5Ping(c5Must(t, addr, "0"))
}

// [v5 MQTT-3.14.4-1] [v5 MQTT-3.14.4-2] after its DISCONNECT the server
// sends nothing more and closes the connection (c5Disconnected checks).
func TestV5ErrorsAfterConnackGetDisconnect(t *testing.T) {
	// [v5 MQTT-4.13.1-1] a Malformed Packet or Protocol Error after CONNACK:
	// DISCONNECT with 0x81 or 0x82 (or the more specific code), then the
	// connection closes [v5 MQTT-4.13.2-1]; other clients are not touched.
	_, addr := startBroker(t, tern.Options{})
	bystander := c5Must(t, addr, "bystander")
	mustBytes := func(p packets.Packet) []byte {
		out, err := p.Append(nil)
		require.NoError(t, err)
		return out
	}
	withSubID := &packets.Publish{Version: packets.Level5, Topic: "errors/x", Payload: []byte("x")}
	withSubID.Props.SubscriptionIDs = []uint32{7}
	cases := []struct {
		name string
		raw  []byte
		code packets.ReasonCode
	}{
		// [v5 MQTT-3.1.0-2]
		{"second CONNECT", mustBytes(c5Conn("errant", true)), packets.ProtocolError},
		// [v5 MQTT-3.3.4-6] section 3.3.2.3.8
		{"PUBLISH with a Subscription Identifier", mustBytes(withSubID), packets.ProtocolError},
		// [v5 MQTT-4.12.0-7]
		{"AUTH without an Authentication Method in CONNECT", mustBytes(&packets.Auth{Version: packets.Level5, ReasonCode: packets.ReAuthenticate, Properties: packets.Properties{AuthMethod: "TEST-CR"}}), packets.ProtocolError},
		{"empty AUTH without an Authentication Method in CONNECT", []byte{0xF0, 0}, packets.ProtocolError},
		// [v5 MQTT-3.15.1-1]
		{"AUTH with reserved flags", []byte{0xF1, 0}, packets.MalformedPacket},
		// [v5 MQTT-3.14.1-1]
		{"DISCONNECT with reserved flags", []byte{0xE1, 0}, packets.MalformedPacket},
		// [v5 MQTT-3.14.2-1] section 3.14.2.1
		{"DISCONNECT with a reason code it may not carry", []byte{0xE0, 1, 0x03}, packets.ProtocolError},
		// Section 3.12.
		{"PINGREQ with a body", []byte{0xC0, 1, 0}, packets.MalformedPacket},
		// [v5 MQTT-3.3.1-4]
		{"PUBLISH with QoS 3", packetBytes(0x36, mqttString("errors/x"), []byte{0, 1, 0}, []byte("x")), packets.MalformedPacket},
		// Section 2.2.2.2: a property the packet may not carry.
		{"PUBLISH with a Session Expiry Interval", packetBytes(0x30, mqttString("errors/x"), []byte{5}, c5Prop(packets.PropSessionExpiry, 0, 0, 0, 1), []byte("x")), packets.MalformedPacket},
		// [v5 MQTT-3.8.3-2]
		{"SUBSCRIBE without a filter", packetBytes(0x82, []byte{0, 1, 0}), packets.ProtocolError},
		// [v5 MQTT-2.1.3-1] type 0 is reserved.
		{"reserved packet type", []byte{0x00, 0}, packets.MalformedPacket},
		// [v5 MQTT-1.5.4-1]
		{"topic name not UTF-8", packetBytes(0x30, mqttString("errors/\xff"), []byte{0}, []byte("x")), packets.MalformedPacket},
		// Section 3.3.2.3.4: an alias never set on this connection.
		{"unset topic alias", packetBytes(0x30, mqttString(""), []byte{3}, c5Prop(packets.PropTopicAlias, 0, 1), []byte("x")), packets.ProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c5Must(t, addr, "errant")
			c.sendRaw(tc.raw)
			c5Disconnected(c, tc.code)
		})
	}
	c5Ping(bystander)
}

func TestV5PacketTooLarge(t *testing.T) {
	// A packet over Options.MaxPacketSize, the Maximum Packet Size in the
	// CONNACK: DISCONNECT 0x95 after CONNACK (section 3.2.2.3.6); before
	// it, the connection closes without a DISCONNECT [v5 MQTT-3.14.0-1].
	_, addr := startBroker(t, tern.Options{MaxPacketSize: 128})
	c, ack := c5Connect(t, addr, c5Conn("big", true))
	require.NotNil(t, ack.Properties.MaximumPacketSize)
	assert.Equal(t, uint32(128), *ack.Properties.MaximumPacketSize)
	c.send(&packets.Publish{Version: packets.Level5, Topic: "big", Payload: bytes.Repeat([]byte("x"), 200)})
	c5Disconnected(c, packets.PacketTooLarge)

	c = c5Dial(t, addr)
	c.send(c5Conn(strings.Repeat("x", 200), true))
	c.expectClosed()
}

func TestV5BrokerCloseSendsServerShuttingDown(t *testing.T) {
	// Broker.Close tells each MQTT 5 client why: DISCONNECT 0x8B; a 3.1.1
	// client has no such packet and a client without a successful CONNACK
	// (here in the middle of enhanced authentication) gets none
	// [v5 MQTT-3.14.0-1]: their connections just close.
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, c5Challenger{})
	v5 := c5Must(t, addr, "v5")
	v311 := mustConnect(t, addr, "v311", true)
	pending := c5Dial(t, addr)
	pending.send(c5AuthConnect("pending"))
	challenge, ok := pending.recv().(*packets.Auth)
	require.True(t, ok, "expected AUTH")
	assert.Equal(t, packets.ContinueAuthentication, challenge.ReasonCode)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, b.Close(ctx))
	v311.expectClosed()
	pending.expectClosed()
	c5DisconnectedByBroker(v5, packets.ServerShuttingDown)
}

func TestV5BrokerDisconnectSendsAdministrativeAction(t *testing.T) {
	// Broker.Disconnect: DISCONNECT 0x98; not a DISCONNECT from the
	// client, so the will is published [v5 MQTT-3.1.2-8].
	b, addr := startBroker(t, tern.Options{})
	w := c5Watch(t, addr, "watcher", "kicked/will")
	c, _ := c5Connect(t, addr, c5WithWill(c5Conn("kicked", true), "kicked/will", "kicked out", 0))
	require.NoError(t, b.Disconnect("kicked"))
	assert.Equal(t, "kicked out", string(c5Recv(w).Payload))
	c5DisconnectedByBroker(c, packets.AdministrativeAction)
}

func TestV5ServerDisconnectOnEachTransport(t *testing.T) {
	// The DISCONNECT that says why reaches the client whichever way its
	// connection waits for input: parked on the poller, blocked in Read, or
	// in memory (ordered, lossless byte streams [v5 MQTT-4.2-1]). 0x8E for a takeover [v5 MQTT-3.1.4-3], 0x8D for a keep
	// alive timeout [v5 MQTT-3.1.2-22], 0x98 for Broker.Disconnect.
	for _, tr := range takeoverTransports {
		t.Run(tr.name, func(t *testing.T) {
			b, dial := serveOn(t, tr, tern.Options{MaxKeepAlive: time.Second})
			connect := func(id string, keepAlive uint16) *rawClient {
				c := dial()
				c.r.SetVersion(packets.Level5)
				cp := c5Conn(id, true)
				cp.KeepAlive = keepAlive
				ack := c5Connack(c, cp)
				require.Equal(t, byte(packets.Success), ack.ReturnCode)
				return c
			}
			silent := connect("silent", 0)
			old := connect("taken", 1)
			connect("taken", 1)
			c5Disconnected(old, packets.SessionTakenOver)
			c5Disconnected(silent, packets.KeepAliveTimeout)
			kicked := connect("kicked", 1)
			require.NoError(t, b.Disconnect("kicked"))
			c5DisconnectedByBroker(kicked, packets.AdministrativeAction)
		})
	}
}

func TestV5FirstPacketMustBeConnect(t *testing.T) {
	// [v5 MQTT-3.1.0-1] anything before CONNECT, AUTH included, closes the
	// connection without CONNACK or DISCONNECT [v5 MQTT-3.14.0-1].
	_, addr := startBroker(t, tern.Options{})
	auth := &packets.Auth{Version: packets.Level5, ReasonCode: packets.ContinueAuthentication, Properties: packets.Properties{AuthMethod: "TEST-CR"}}
	for _, p := range []packets.Packet{auth, &packets.Pingreq{Version: packets.Level5}, &packets.Disconnect{Version: packets.Level5}} {
		t.Run(p.Type().String(), func(t *testing.T) {
			c := c5Dial(t, addr)
			c.send(p)
			c.expectClosed()
		})
	}
}

func TestV5TopicAliasBeyondTheMaximum(t *testing.T) {
	// [v5 MQTT-3.2.2-17] [v5 MQTT-3.2.2-18] a Topic Alias above the Topic
	// Alias Maximum of the CONNACK, or any when it announced none:
	// DISCONNECT 0x94 (section 3.3.2.3.4).
	for _, tc := range []struct {
		max   int
		alias byte
	}{{2, 3}, {-1, 1}} {
		_, addr := startBroker(t, tern.Options{TopicAliasMaximum: tc.max})
		c := c5Must(t, addr, "aliaser")
		c.sendRaw(packetBytes(0x30, mqttString("alias/topic"), []byte{3}, c5Prop(packets.PropTopicAlias, 0, tc.alias), []byte("x")))
		c5Disconnected(c, packets.TopicAliasInvalid)
	}
}

func TestV5ServerDisconnectWhileAWriteIsInFlight(t *testing.T) {
	// Broker.Disconnect of a client whose writer goroutine is running
	// (here waiting for the store before it writes a PUBACK): the client
	// still gets DISCONNECT 0x98 (what waits for the store is dropped, as
	// flushBeforeClose does), and nothing after it [v5 MQTT-3.14.4-1].
	e, gate := psStartGated(t, tern.Options{})
	c, _ := c5Connect(t, e.addr, c5Persistent("busy", false, 60))
	c5Subscribe(c, 1, "busy/topic", 1)
	gate.hold()
	c.send(&packets.Publish{Version: packets.Level5, Topic: "busy/topic", QoS: 1, PacketID: 1, Payload: []byte("x")})
	gate.waitEntered(t)
	// Once the broker has read the next packet, it has handed the PUBACK,
	// which waits for the store, to a writer goroutine.
	before := e.b.Stats().MessagesReceived
	c.send(&packets.Pingreq{Version: packets.Level5})
	require.Eventually(t, func() bool { return e.b.Stats().MessagesReceived > before }, waitTimeout, time.Millisecond)
	require.NoError(t, e.b.Disconnect("busy"))
	c5Disconnected(c, packets.AdministrativeAction)
}
