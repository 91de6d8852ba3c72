package tern_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of MQTT 5 acknowledgements and QoS flows: packet
// identifiers (section 2.2.1), PUBACK, PUBREC, PUBREL and PUBCOMP with their
// Reason Codes (sections 3.4 to 3.7), the QoS 1 and 2 exchanges (section
// 4.3) and redelivery (section 4.4).

// TestV5PublishAckReasonCodes: PUBACK and PUBREC say 0x10 when no
// subscription matched and 0x00 when one did; a PublishAuthorizer's refusal
// is 0x87, or the code of its ReasonError (0x97 quota exceeded) with its
// Reason String unless the client asked for no problem information; the
// refused message is not forwarded.
// [v5 MQTT-3.3.4-1] [v5 MQTT-3.4.2-1] [v5 MQTT-3.5.2-1] [v5 MQTT-4.3.2-4]
// [v5 MQTT-4.3.3-8] [v5 MQTT-2.2.1-5]
func TestV5PublishAckReasonCodes(t *testing.T) {
	_, addr := m5Hooks(t, tern.Options{}, m5PubAuth(func(m tern.Message) error {
		switch m.Topic {
		case "rc/deny/plain":
			return errors.New("no")
		case "rc/deny/reason":
			return &tern.ReasonError{Code: packets.NotAuthorized, Reason: "not yours"}
		case "rc/deny/quota":
			return &tern.ReasonError{Code: packets.QuotaExceeded, Reason: "slow down"}
		}
		return nil
	}))
	pub := m5Connect(t, addr, "rc-pub")
	for qos := byte(1); qos <= 2; qos++ {
		assert.Equal(t, packets.NoMatchingSubscribers, m5Pub(pub, "rc/nobody", "x", qos), "QoS %d, no subscriber", qos)
	}
	watcher := m5Connect(t, addr, "rc-watch")
	m5Sub(watcher, "rc/#", 2)
	for qos := byte(1); qos <= 2; qos++ {
		assert.Equal(t, packets.Success, m5Pub(pub, "rc/ok", "ok", qos), "QoS %d", qos)
		m5Expect(watcher, "rc/ok", "ok", qos)
	}

	// ackOf publishes and returns the PUBACK or PUBREC.
	ackOf := func(c *rawClient, topic string, qos byte) (packets.ReasonCode, string) {
		t.Helper()
		m5Send(c, &packets.Publish{Topic: topic, QoS: qos, PacketID: 9, Payload: []byte("x")})
		if qos == 1 {
			a := recvAs[*packets.Puback](c)
			require.Equal(t, uint16(9), a.PacketID)
			return a.ReasonCode, a.Properties.ReasonString
		}
		a := recvAs[*packets.Pubrec](c)
		require.Equal(t, uint16(9), a.PacketID)
		return a.ReasonCode, a.Properties.ReasonString
	}
	quiet := m5Connect(t, addr, "rc-quiet", m5NoProblem())
	for qos := byte(1); qos <= 2; qos++ {
		code, reason := ackOf(pub, "rc/deny/plain", qos)
		assert.Equal(t, packets.NotAuthorized, code)
		assert.Empty(t, reason)
		code, reason = ackOf(pub, "rc/deny/reason", qos)
		assert.Equal(t, packets.NotAuthorized, code)
		assert.Equal(t, "not yours", reason)
		code, reason = ackOf(pub, "rc/deny/quota", qos)
		assert.Equal(t, packets.QuotaExceeded, code)
		assert.Equal(t, "slow down", reason)
		code, reason = ackOf(quiet, "rc/deny/quota", qos)
		assert.Equal(t, packets.QuotaExceeded, code)
		assert.Empty(t, reason, "Request Problem Information 0: no Reason String")
	}
	m5Quiet(pub)
	m5Quiet(watcher)
}

// TestV5PubrecErrorFreesThePacketIdentifier: after PUBREC with a Reason
// Code of 0x80 or more the client sends no PUBREL, and the packet
// identifier starts a new message; the refused PUBLISH no longer counts
// against Tern's Receive Maximum.
// [v5 MQTT-4.3.3-9] [v5 MQTT-3.3.4-7]
func TestV5PubrecErrorFreesThePacketIdentifier(t *testing.T) {
	_, addr := m5Hooks(t, tern.Options{ReceiveMaximum: 2}, m5PubAuth(func(m tern.Message) error {
		if m.Topic == "frees/deny" {
			return &tern.ReasonError{Code: packets.QuotaExceeded}
		}
		return nil
	}))
	sub := m5Connect(t, addr, "frees-sub")
	m5Sub(sub, "frees/#", 2)
	pub := m5Connect(t, addr, "frees-pub")
	for i := range 4 {
		// More refusals than the Receive Maximum, each without PUBREL.
		p := &packets.Publish{Topic: "frees/deny", QoS: 2, PacketID: uint16(1 + i%2), Payload: []byte("no")}
		require.Equal(t, packets.QuotaExceeded, m5Publish(pub, p), "refusal %d", i)
	}
	p := &packets.Publish{Topic: "frees/ok", QoS: 2, PacketID: 1, Payload: []byte("new")}
	require.Equal(t, packets.Success, m5Publish(pub, p), "the identifier of a refused PUBLISH starts a new message")
	m5Expect(sub, "frees/ok", "new", 2)
	m5Quiet(sub)
}

// TestV5AcksForUnknownPacketIdentifiers: PUBREL for an identifier Tern
// does not hold gets PUBCOMP 0x92, PUBREC for one it did not send PUBREL
// 0x92; a PUBACK or PUBCOMP for an unknown identifier is ignored. Tern
// puts no Reason String or User Property on PUBREL and PUBCOMP, so none
// can exceed the client's Maximum Packet Size.
// [v5 MQTT-4.3.3-11] [v5 MQTT-3.6.2-1] [v5 MQTT-3.7.2-1] [v5 MQTT-2.2.1-5]
// [v5 MQTT-3.6.2-2] [v5 MQTT-3.6.2-3] [v5 MQTT-3.7.2-2] [v5 MQTT-3.7.2-3]
func TestV5AcksForUnknownPacketIdentifiers(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	c := m5Connect(t, addr, "unknown-ids")
	m5Send(c, &packets.Pubrel{PacketID: 41})
	comp := recvAs[*packets.Pubcomp](c)
	assert.Equal(t, uint16(41), comp.PacketID)
	assert.Equal(t, packets.PacketIdentifierNotFound, comp.ReasonCode)
	assert.Empty(t, comp.Properties.ReasonString)
	assert.Empty(t, comp.Properties.User)
	m5Send(c, &packets.Pubrec{PacketID: 42})
	rel := recvAs[*packets.Pubrel](c)
	assert.Equal(t, uint16(42), rel.PacketID)
	assert.Equal(t, packets.PacketIdentifierNotFound, rel.ReasonCode)
	assert.Empty(t, rel.Properties.ReasonString)
	assert.Empty(t, rel.Properties.User)
	m5Send(c, &packets.Puback{PacketID: 43})
	m5Send(c, &packets.Pubcomp{PacketID: 44})
	m5Quiet(c)
}

// TestV5PubrelWithWrongFlagsEndsConnection: a PUBREL whose fixed header
// flags are not 0010 is malformed: DISCONNECT 0x81 and close.
// [v5 MQTT-3.6.1-1]
func TestV5PubrelWithWrongFlagsEndsConnection(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	for _, first := range []byte{0x60, 0x63, 0x6A} {
		c := m5Connect(t, addr, "pubrel-flags")
		m5Send(c, &packets.Publish{Topic: "t", QoS: 2, PacketID: 1})
		recvAs[*packets.Pubrec](c)
		c.sendRaw([]byte{first, 2, 0, 1})
		m5ExpectDisconnect(c, packets.MalformedPacket)
	}
}

// TestV5ClientErrorAckCompletesDelivery: a PUBACK or PUBREC of 0x80 or more
// from the client completes the delivery: no PUBREL follows, nothing is
// sent again on reconnect, and the window is free; a PUBLISH left
// unacknowledged is sent again.
// [v5 MQTT-4.4.0-2] [v5 MQTT-3.3.4-9]
func TestV5ClientErrorAckCompletesDelivery(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := m5Connect(t, addr, "errack", m5Expiry(600), m5RecvMax(2))
	m5Sub(sub, "errack/#", 2)
	pub := m5Connect(t, addr, "errack-pub")
	m5Pub(pub, "errack/t", "one", 1)
	m5Pub(pub, "errack/t", "two", 2)
	one := expectPublish(sub, "errack/t", "one", 1)
	two := expectPublish(sub, "errack/t", "two", 2)
	m5Send(sub, &packets.Puback{PacketID: one.PacketID, ReasonCode: packets.UnspecifiedError})
	m5Send(sub, &packets.Pubrec{PacketID: two.PacketID, ReasonCode: packets.ImplementationSpecificError})
	// The window of 2 is free again: two more arrive; the last is left
	// unacknowledged.
	m5Pub(pub, "errack/t", "three", 1)
	m5Pub(pub, "errack/t", "four", 1)
	m5Expect(sub, "errack/t", "three", 1)
	four := expectPublish(sub, "errack/t", "four", 1)
	m5Quiet(sub)
	sub.conn.Close()
	m5WaitOffline(t, b, "errack")
	sub = m5Connect(t, addr, "errack", m5Resume(), m5Expiry(600))
	again := expectPublish(sub, "errack/t", "four", 1)
	assert.True(t, again.Dup, "resent with DUP 1")
	assert.Equal(t, four.PacketID, again.PacketID, "resent with the same packet identifier")
	m5Ack(sub, again)
	m5Quiet(sub)
	assert.Zero(t, clientInfo(t, b, "errack").Inflight)
}

// TestV5PacketIdentifiersOnTheWire: a QoS 0 PUBLISH has no packet
// identifier; QoS 1 and 2 PUBLISHes from Tern carry non-zero identifiers
// unused among those in flight; SUBACK and UNSUBACK repeat the request's
// identifier; a packet without properties carries a Property Length of 0.
// [v5 MQTT-2.2.1-2] [v5 MQTT-2.2.1-4] [v5 MQTT-2.2.1-6] [v5 MQTT-2.2.2-1]
// [v5 MQTT-4.3.1-1] [v5 MQTT-4.3.2-1] [v5 MQTT-4.3.3-1] [v5 MQTT-3.3.1-2]
func TestV5PacketIdentifiersOnTheWire(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := m5Connect(t, addr, "ids-sub")
	// SUBACK: identifier, Property Length 0, one code.
	m5Send(sub, &packets.Subscribe{PacketID: 0xBEEF, Subscriptions: []packets.Subscription{{Filter: "ids/#", QoS: 2}}})
	sub.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	fh, body, err := sub.r.ReadRaw()
	require.NoError(t, err)
	require.Equal(t, packets.TypeSuback, fh.Type)
	assert.Equal(t, []byte{0xBE, 0xEF, 0, 2}, body, "SUBACK: identifier, Property Length 0, granted QoS 2")

	pub := m5Connect(t, addr, "ids-pub")
	m5Pub(pub, "ids/q0", "zero", 0)
	sub.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	fh, body, err = sub.r.ReadRaw()
	require.NoError(t, err)
	require.Equal(t, packets.TypePublish, fh.Type)
	assert.Zero(t, fh.Flags, "QoS 0, DUP 0, RETAIN 0")
	assert.Equal(t, append(append(mqttString("ids/q0"), 0), "zero"...), body, "topic, Property Length 0, payload: no packet identifier")

	seen := map[uint16]bool{}
	for i := range 6 {
		m5Pub(pub, "ids/q", "m", byte(1+i%2))
	}
	for range 6 {
		p := recvAs[*packets.Publish](sub)
		assert.NotZero(t, p.PacketID)
		assert.False(t, p.Dup)
		assert.False(t, seen[p.PacketID], "identifier %d reused while in flight", p.PacketID)
		seen[p.PacketID] = true
	}

	m5Send(sub, &packets.Unsubscribe{PacketID: 0xCAFE, Filters: []string{"ids/#"}})
	sub.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	fh, body, err = sub.r.ReadRaw()
	require.NoError(t, err)
	require.Equal(t, packets.TypeUnsuback, fh.Type)
	assert.Equal(t, []byte{0xCA, 0xFE, 0, 0}, body, "UNSUBACK: identifier, Property Length 0, Success")
}

// TestV5QoS1Flow: a QoS 1 PUBLISH from Tern has DUP 0 and a new identifier,
// stays unacknowledged until PUBACK and is sent again with DUP 1 on
// reconnect only; Tern answers a QoS 1 PUBLISH with PUBACK, and treats the
// same identifier after that PUBACK as a new message, whatever its DUP.
// [v5 MQTT-4.3.2-2] [v5 MQTT-4.3.2-3] [v5 MQTT-4.3.2-4] [v5 MQTT-4.3.2-5]
// [v5 MQTT-3.3.1-1] [v5 MQTT-3.3.1-3] [v5 MQTT-4.4.0-1]
func TestV5QoS1Flow(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := m5Connect(t, addr, "q1-sub", m5Expiry(600))
	m5Sub(sub, "q1/#", 1)
	pub := m5Connect(t, addr, "q1-pub")
	for _, dup := range []bool{true, true} {
		// DUP 1 on the first sending too: it is not carried over, and the
		// second PUBLISH with the same identifier is a new message.
		p := &packets.Publish{Topic: "q1/t", QoS: 1, PacketID: 5, Dup: dup, Payload: []byte("m")}
		require.Equal(t, packets.Success, m5Publish(pub, p))
	}
	first := expectPublish(sub, "q1/t", "m", 1)
	second := expectPublish(sub, "q1/t", "m", 1)
	assert.False(t, first.Dup)
	assert.False(t, second.Dup)
	assert.NotEqual(t, first.PacketID, second.PacketID)
	m5Ack(sub, first)
	// Not sent again while connected, however long it waits.
	m5Quiet(sub)
	sub.conn.Close()
	m5WaitOffline(t, b, "q1-sub")
	sub = m5Connect(t, addr, "q1-sub", m5Resume(), m5Expiry(600))
	again := expectPublish(sub, "q1/t", "m", 1)
	assert.True(t, again.Dup)
	assert.Equal(t, second.PacketID, again.PacketID)
	m5Ack(sub, again)
	m5Quiet(sub)
}

// TestV5QoS2Flow: a QoS 2 PUBLISH from Tern stays unacknowledged until
// PUBREC, which Tern answers with PUBREL of the same identifier; after
// that, a reconnect resends the PUBREL, never the PUBLISH, until PUBCOMP.
// Inbound, Tern answers PUBREC, forwards a repeat before PUBREL once only,
// answers PUBREL with PUBCOMP, and treats the identifier after PUBCOMP as
// a new message.
// [v5 MQTT-4.3.3-2] [v5 MQTT-4.3.3-3] [v5 MQTT-4.3.3-4] [v5 MQTT-4.3.3-5]
// [v5 MQTT-4.3.3-6] [v5 MQTT-4.3.3-8] [v5 MQTT-4.3.3-10] [v5 MQTT-4.3.3-11]
// [v5 MQTT-4.3.3-12] [v5 MQTT-2.2.1-5] [v5 MQTT-3.3.1-1]
func TestV5QoS2Flow(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := m5Connect(t, addr, "q2-sub", m5Expiry(600))
	m5Sub(sub, "q2/#", 2)
	pub := m5Connect(t, addr, "q2-pub")

	// Inbound: PUBLISH, a repeat with DUP before PUBREL, PUBREL, PUBCOMP.
	m5Send(pub, &packets.Publish{Topic: "q2/t", QoS: 2, PacketID: 6, Payload: []byte("once")})
	assert.Equal(t, uint16(6), recvAs[*packets.Pubrec](pub).PacketID)
	m5Send(pub, &packets.Publish{Topic: "q2/t", QoS: 2, PacketID: 6, Dup: true, Payload: []byte("once")})
	assert.Equal(t, uint16(6), recvAs[*packets.Pubrec](pub).PacketID)
	m5Send(pub, &packets.Pubrel{PacketID: 6})
	comp := recvAs[*packets.Pubcomp](pub)
	assert.Equal(t, uint16(6), comp.PacketID)
	assert.Equal(t, packets.Success, comp.ReasonCode)
	// After PUBCOMP the identifier is a new message.
	require.Equal(t, packets.Success, m5Publish(pub, &packets.Publish{Topic: "q2/t", QoS: 2, PacketID: 6, Payload: []byte("twice")}))

	// Outbound: the repeat was not forwarded.
	once := expectPublish(sub, "q2/t", "once", 2)
	assert.False(t, once.Dup)
	twice := expectPublish(sub, "q2/t", "twice", 2)
	m5Quiet(sub) // no PUBREL before PUBREC
	m5Send(sub, &packets.Pubrec{PacketID: once.PacketID})
	rel := recvAs[*packets.Pubrel](sub)
	assert.Equal(t, once.PacketID, rel.PacketID)

	// Reconnect with "once" past PUBREC (PUBREL unanswered) and "twice"
	// unacknowledged.
	sub.conn.Close()
	m5WaitOffline(t, b, "q2-sub")
	sub = m5Connect(t, addr, "q2-sub", m5Resume(), m5Expiry(600))
	rel = recvAs[*packets.Pubrel](sub)
	assert.Equal(t, once.PacketID, rel.PacketID, "PUBREL resent, not the PUBLISH")
	again := expectPublish(sub, "q2/t", "twice", 2)
	assert.True(t, again.Dup)
	assert.Equal(t, twice.PacketID, again.PacketID)
	m5Send(sub, &packets.Pubcomp{PacketID: rel.PacketID})
	m5Ack(sub, again)
	m5Quiet(sub) // answers the PUBREL of "twice"
	pingOK(sub)  // the PUBCOMP was handled
	assert.Zero(t, clientInfo(t, b, "q2-sub").Inflight)
}

// TestV5ExpiryNotAppliedOnceSent: a message whose PUBLISH was sent is not
// expired: an unacknowledged QoS 1 or 2 message is sent again on reconnect
// after its Message Expiry Interval passed, and a QoS 2 exchange past
// PUBREC completes.
// [v5 MQTT-4.3.3-7] [v5 MQTT-4.3.3-13]
func TestV5ExpiryNotAppliedOnceSent(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := m5Connect(t, addr, "xsent", m5Expiry(600))
	m5Sub(sub, "xsent/#", 2)
	pub := m5Connect(t, addr, "xsent-pub")
	for i, qos := range []byte{1, 2, 2} {
		p := &packets.Publish{Topic: "xsent/t", QoS: qos, PacketID: uint16(i + 1), Payload: []byte{'a' + byte(i)},
			Props: packets.PublishProps{HasMessageExpiry: true, MessageExpiry: 1}}
		require.Equal(t, packets.Success, m5Publish(pub, p))
	}
	a := expectPublish(sub, "xsent/t", "a", 1)
	bb := expectPublish(sub, "xsent/t", "b", 2)
	c := expectPublish(sub, "xsent/t", "c", 2)
	m5Send(sub, &packets.Pubrec{PacketID: c.PacketID})
	assert.Equal(t, c.PacketID, recvAs[*packets.Pubrel](sub).PacketID)
	sub.conn.Close()
	m5WaitOffline(t, b, "xsent")
	<-time.After(1500 * time.Millisecond) // lets the 1 s interval pass: the time under test
	sub = m5Connect(t, addr, "xsent", m5Resume(), m5Expiry(600))
	again := expectPublish(sub, "xsent/t", "a", 1)
	assert.Equal(t, a.PacketID, again.PacketID)
	assert.True(t, again.Dup)
	again = expectPublish(sub, "xsent/t", "b", 2)
	assert.Equal(t, bb.PacketID, again.PacketID)
	assert.True(t, again.Dup)
	assert.Equal(t, c.PacketID, recvAs[*packets.Pubrel](sub).PacketID)
	m5Quiet(sub)
}
