package tern_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of the MQTT 5 PUBLISH (section 3.3): properties carried
// to subscribers, Message Expiry, Payload Format, topic aliases, and what a
// malformed PUBLISH costs its sender.

// m5RawProps encodes the Raw properties of a PUBLISH: Content Type,
// Response Topic, Correlation Data, User Properties.
func m5RawProps(t testing.TB, p *packets.Properties) []byte {
	t.Helper()
	raw, err := packets.AppendPublishRaw(nil, p)
	require.NoError(t, err)
	return raw
}

// TestV5PublishPropertiesForwardedUnchanged: every MQTT 5 subscriber gets
// the Payload Format Indicator, Content Type, Response Topic, Correlation
// Data and User Properties of a message exactly as published, User
// Properties in order with duplicates kept, at every QoS; a message without
// properties arrives without any.
// [v5 MQTT-3.3.2-4] [v5 MQTT-3.3.2-15] [v5 MQTT-3.3.2-16] [v5 MQTT-3.3.2-17]
// [v5 MQTT-3.3.2-18] [v5 MQTT-3.3.2-20] [v5 MQTT-4.5.0-1]
func TestV5PublishPropertiesForwardedUnchanged(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	subs := []*rawClient{m5Connect(t, addr, "props-sub1"), m5Connect(t, addr, "props-sub2")}
	for _, s := range subs {
		m5Sub(s, "props/#", 2)
	}
	pub := m5Connect(t, addr, "props-pub")
	user := []packets.UserProperty{{Key: "k", Value: "1"}, {Key: "z", Value: "2"}, {Key: "k", Value: "3"}, {Key: "a", Value: ""}, {Key: "k", Value: "1"}}
	want := packets.Properties{
		ContentType:     "application/json; charset=utf-8",
		ResponseTopic:   "props/reply/42",
		CorrelationData: []byte{0, 1, 2, 0xFF},
		User:            user,
	}
	raw := m5RawProps(t, &want)
	for qos := byte(0); qos <= 2; qos++ {
		for _, format := range []byte{0, 1} {
			p := &packets.Publish{Topic: "props/t", QoS: qos, Payload: []byte(`{"v":"é"}`),
				Props: packets.PublishProps{HasPayloadFormat: true, PayloadFormat: format, Raw: raw}}
			if qos > 0 {
				p.PacketID = 10
			}
			require.Equal(t, packets.Success, m5Publish(pub, p))
			for i, s := range subs {
				got := m5Expect(s, "props/t", `{"v":"é"}`, qos)
				props := m5Props(t, got)
				require.NotNil(t, props.PayloadFormat, "subscriber %d QoS %d: Payload Format Indicator", i, qos)
				assert.Equal(t, format, *props.PayloadFormat, "Payload Format Indicator")
				assert.Equal(t, want.ContentType, props.ContentType, "Content Type")
				assert.Equal(t, want.ResponseTopic, props.ResponseTopic, "Response Topic")
				assert.Equal(t, want.CorrelationData, props.CorrelationData, "Correlation Data")
				assert.Equal(t, user, props.User, "User Properties, in order, duplicates kept")
				assert.Nil(t, props.MessageExpiry, "no Message Expiry Interval was published")
				assert.Empty(t, props.SubscriptionIDs, "no Subscription Identifier was given")
			}
		}
	}
	// Without properties: none arrive.
	require.Equal(t, packets.Success, m5Pub(pub, "props/bare", "bare", 1))
	for _, s := range subs {
		got := m5Expect(s, "props/bare", "bare", 1)
		assert.False(t, got.Props.HasPayloadFormat)
		assert.False(t, got.Props.HasMessageExpiry)
		assert.Empty(t, got.Props.Raw)
	}
}

// TestV5PublishMessageExpiryRemainingIntervalSent: a subscriber gets the
// Message Expiry Interval minus the time the message waited in the broker:
// at once, the full interval; after 2 s in an offline session's queue,
// less.
// [v5 MQTT-3.3.2-6] [v5 MQTT-4.5.0-1]
func TestV5PublishMessageExpiryRemainingIntervalSent(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := m5Connect(t, addr, "exp-sub", m5Expiry(600))
	m5Sub(sub, "exp/#", 1)
	pub := m5Connect(t, addr, "exp-pub")
	expiring := func(payload string, secs uint32) *packets.Publish {
		return &packets.Publish{Topic: "exp/t", QoS: 1, PacketID: 3, Payload: []byte(payload),
			Props: packets.PublishProps{HasMessageExpiry: true, MessageExpiry: secs}}
	}

	require.Equal(t, packets.Success, m5Publish(pub, expiring("live", 10)))
	got := m5Expect(sub, "exp/t", "live", 1)
	require.True(t, got.Props.HasMessageExpiry, "the Message Expiry Interval is sent on")
	assert.Equal(t, uint32(10), got.Props.MessageExpiry, "a message that did not wait keeps its interval")

	m5Bye(sub)
	m5WaitOffline(t, b, "exp-sub")
	require.Equal(t, packets.Success, m5Publish(pub, expiring("queued", 10)))
	m5WaitQueued(t, b, "exp-sub", 1)
	<-time.After(2 * time.Second) // the message waits 2 s in the queue: the time under test
	sub = m5Connect(t, addr, "exp-sub", m5Resume(), m5Expiry(600))
	got = m5Expect(sub, "exp/t", "queued", 1)
	require.True(t, got.Props.HasMessageExpiry)
	assert.LessOrEqual(t, got.Props.MessageExpiry, uint32(8), "the interval less the 2 s the message waited")
	assert.Positive(t, got.Props.MessageExpiry)
}

// TestV5PublishExpiredMessageNeverDelivered: a message whose Message Expiry
// Interval passed before onward delivery started is not sent: from an
// offline session's queue, from the retained store to a new subscription,
// and after a restart from the memory store (queue and retained store).
// [v5 MQTT-3.3.2-5]
func TestV5PublishExpiredMessageNeverDelivered(t *testing.T) {
	expiring := func(topic, payload string, secs uint32, retain bool) *packets.Publish {
		return &packets.Publish{Topic: topic, QoS: 1, PacketID: 4, Retain: retain, Payload: []byte(payload),
			Props: packets.PublishProps{HasMessageExpiry: true, MessageExpiry: secs}}
	}
	t.Run("queue", func(t *testing.T) {
		b, addr := startBroker(t, tern.Options{})
		sub := m5Connect(t, addr, "xq-sub", m5Expiry(600))
		m5Sub(sub, "xq/#", 2)
		m5Bye(sub)
		m5WaitOffline(t, b, "xq-sub")
		pub := m5Connect(t, addr, "xq-pub")
		require.Equal(t, packets.Success, m5Publish(pub, expiring("xq/t", "short", 1, false)))
		require.Equal(t, packets.Success, m5Publish(pub, expiring("xq/t", "long", 600, false)))
		m5WaitQueued(t, b, "xq-sub", 2)
		dropped := b.Stats().PublishDropped
		<-time.After(1500 * time.Millisecond) // lets the 1 s interval pass: the time under test
		sub = m5Connect(t, addr, "xq-sub", m5Resume(), m5Expiry(600))
		m5Expect(sub, "xq/t", "long", 1)
		m5Quiet(sub)
		assert.Equal(t, dropped+1, b.Stats().PublishDropped, "the expired message is counted as dropped")
	})
	t.Run("retained", func(t *testing.T) {
		_, addr := startBroker(t, tern.Options{})
		pub := m5Connect(t, addr, "xr-pub")
		// No subscriber yet: 0x10.
		require.Equal(t, packets.NoMatchingSubscribers, m5Publish(pub, expiring("xr/short", "short", 1, true)))
		require.Equal(t, packets.NoMatchingSubscribers, m5Publish(pub, expiring("xr/long", "long", 600, true)))
		<-time.After(1500 * time.Millisecond) // lets the 1 s interval pass: the time under test
		sub := m5Connect(t, addr, "xr-sub")
		m5Sub(sub, "xr/#", 1)
		got := m5Expect(sub, "xr/long", "long", 1)
		assert.True(t, got.Retain)
		assert.LessOrEqual(t, got.Props.MessageExpiry, uint32(599), "the retained message waited")
		m5Quiet(sub)
	})
	t.Run("restart", func(t *testing.T) {
		e := psStart(t, m5Memory(), tern.Options{})
		sub := m5Connect(t, e.addr, "xs-sub", m5Expiry(600))
		m5Sub(sub, "xs/q", 1)
		m5Bye(sub)
		m5WaitOffline(t, e.b, "xs-sub")
		pub := m5Connect(t, e.addr, "xs-pub")
		require.Equal(t, packets.Success, m5Publish(pub, expiring("xs/q", "short", 1, false)))
		require.Equal(t, packets.Success, m5Publish(pub, expiring("xs/q", "long", 600, false)))
		require.Equal(t, packets.NoMatchingSubscribers, m5Publish(pub, expiring("xs/r", "short", 1, true)))
		m5WaitQueued(t, e.b, "xs-sub", 2)
		start := time.Now()
		e.restart()
		<-time.After(time.Until(start.Add(1500 * time.Millisecond))) // lets the 1 s interval pass
		sub = m5Connect(t, e.addr, "xs-sub", m5Resume(), m5Expiry(600))
		m5Expect(sub, "xs/q", "long", 1)
		m5Sub(sub, "xs/r", 1)
		m5Quiet(sub)
	})
}

// TestV5PublishValidatePayloadFormat: with Options.ValidatePayloadFormat, a
// payload whose Payload Format Indicator says UTF-8 and that is not gets
// PUBACK or PUBREC 0x99 and is not forwarded, and at QoS 0 ends the
// connection with DISCONNECT 0x99 (section 3.3.2.3.2); well-formed UTF-8,
// and any payload with indicator 0, go through. Without the option nothing
// is checked.
// [v5 MQTT-3.4.2-1] [v5 MQTT-3.5.2-1] [v5 MQTT-4.3.3-9]
func TestV5PublishValidatePayloadFormat(t *testing.T) {
	bad := "\xff\xfe not UTF-8"
	withFormat := func(payload string, qos, format byte) *packets.Publish {
		return &packets.Publish{Topic: "pf/t", QoS: qos, PacketID: 7, Payload: []byte(payload),
			Props: packets.PublishProps{HasPayloadFormat: true, PayloadFormat: format}}
	}
	t.Run("on", func(t *testing.T) {
		_, addr := startBroker(t, tern.Options{ValidatePayloadFormat: true})
		sub := m5Connect(t, addr, "pf-sub")
		m5Sub(sub, "pf/#", 2)
		pub := m5Connect(t, addr, "pf-pub")
		assert.Equal(t, packets.PayloadFormatInvalid, m5Publish(pub, withFormat(bad, 1, 1)), "PUBACK")
		assert.Equal(t, packets.PayloadFormatInvalid, m5Publish(pub, withFormat(bad, 2, 1)), "PUBREC")
		// After PUBREC 0x99 the same packet identifier starts a new message.
		assert.Equal(t, packets.Success, m5Publish(pub, withFormat("ünïcode", 2, 1)))
		assert.Equal(t, packets.Success, m5Publish(pub, withFormat("ünïcode", 1, 1)))
		assert.Equal(t, packets.Success, m5Publish(pub, withFormat(bad, 1, 0)), "indicator 0: not checked")
		m5Expect(sub, "pf/t", "ünïcode", 2)
		m5Expect(sub, "pf/t", "ünïcode", 1)
		m5Expect(sub, "pf/t", bad, 1)
		m5Quiet(sub)

		m5Send(pub, withFormat(bad, 0, 1))
		m5ExpectDisconnect(pub, packets.PayloadFormatInvalid)
		m5Quiet(sub)
	})
	t.Run("off", func(t *testing.T) {
		_, addr := startBroker(t, tern.Options{})
		sub := m5Connect(t, addr, "pf-sub")
		m5Sub(sub, "pf/#", 1)
		pub := m5Connect(t, addr, "pf-pub")
		assert.Equal(t, packets.Success, m5Publish(pub, withFormat(bad, 1, 1)))
		m5Send(pub, withFormat(bad, 0, 1))
		got := m5Expect(sub, "pf/t", bad, 1)
		assert.Equal(t, byte(1), got.Props.PayloadFormat)
		m5Expect(sub, "pf/t", bad, 0)
	})
}

// m5AliasPublish is a QoS 0 PUBLISH of payload to topic ("" to use the
// alias) with Topic Alias alias, encoded by hand so that any alias can be
// sent.
func m5AliasPublish(topic string, alias uint16, payload string) []byte {
	return m5RawPublish(0x30, topic, 0, []byte{byte(packets.PropTopicAlias), byte(alias >> 8), byte(alias)}, payload)
}

// TestV5PublishTopicAliases: a client sets a Topic Alias with a topic and
// then uses it with an empty topic, up to the Topic Alias Maximum in the
// CONNACK, and may change it; subscribers get the full topic name and no
// alias. An alias of 0 or over the maximum is DISCONNECT 0x94, an alias not
// set on this connection a Protocol Error, and aliases do not outlive the
// connection that set them.
// [v5 MQTT-3.3.2-7] [v5 MQTT-3.3.2-8] [v5 MQTT-3.3.2-9] [v5 MQTT-3.3.2-11]
// [v5 MQTT-3.3.2-12]
func TestV5PublishTopicAliases(t *testing.T) {
	_, addr := startBroker(t, tern.Options{TopicAliasMaximum: 8})
	sub := m5Connect(t, addr, "alias-sub")
	m5Sub(sub, "alias/#", 0)
	pub, ack := m5ConnectAck(t, addr, "alias-pub", m5Expiry(60))
	require.NotNil(t, ack.Properties.TopicAliasMaximum)
	require.Equal(t, uint16(8), *ack.Properties.TopicAliasMaximum)
	pub.sendRaw(m5AliasPublish("alias/a", 1, "set"))
	pub.sendRaw(m5AliasPublish("", 1, "use"))
	pub.sendRaw(m5AliasPublish("alias/b", 1, "reset"))
	pub.sendRaw(m5AliasPublish("", 1, "use again"))
	pub.sendRaw(m5AliasPublish("alias/max", 8, "eight"))
	pub.sendRaw(m5AliasPublish("", 8, "eight again"))
	for _, w := range [][2]string{{"alias/a", "set"}, {"alias/a", "use"}, {"alias/b", "reset"}, {"alias/b", "use again"}, {"alias/max", "eight"}, {"alias/max", "eight again"}} {
		got := m5Expect(sub, w[0], w[1], 0)
		assert.False(t, got.Props.HasTopicAlias, "the subscriber allowed no Topic Alias")
	}

	cases := []struct {
		name string
		pkt  []byte
		code packets.ReasonCode
	}{
		{"alias 0", m5AliasPublish("alias/z", 0, "x"), packets.TopicAliasInvalid},
		{"alias over the maximum", m5AliasPublish("alias/z", 9, "x"), packets.TopicAliasInvalid},
		{"unknown alias", m5AliasPublish("", 2, "x"), packets.ProtocolError},
		{"no topic, no alias", m5RawPublish(0x30, "", 0, nil, "x"), packets.ProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := m5Connect(t, addr, "alias-bad")
			c.sendRaw(tc.pkt)
			m5ExpectDisconnect(c, tc.code)
		})
	}
	t.Run("not carried to a new connection", func(t *testing.T) {
		// The session is resumed; the alias set on the connection before is
		// not.
		m5Bye(pub)
		pub = m5Connect(t, addr, "alias-pub", m5Resume(), m5Expiry(60))
		pub.sendRaw(m5AliasPublish("", 1, "stale"))
		m5ExpectDisconnect(pub, packets.ProtocolError)
	})
	t.Run("none allowed", func(t *testing.T) {
		_, addr := startBroker(t, tern.Options{TopicAliasMaximum: -1})
		c, ack := m5ConnectAck(t, addr, "alias-none")
		require.Equal(t, byte(packets.Success), ack.ReturnCode)
		assert.Nil(t, ack.Properties.TopicAliasMaximum, "no Topic Alias Maximum: 0, none allowed")
		c.sendRaw(m5AliasPublish("alias/a", 1, "x"))
		m5ExpectDisconnect(c, packets.TopicAliasInvalid)
	})
	m5Quiet(sub)
}

// TestV5PublishMalformedEndsConnection: a PUBLISH that breaks the rules
// ends the connection with a DISCONNECT that says why, and is not
// forwarded: QoS 3, wildcards or a null character or invalid UTF-8 in the
// topic, a Response Topic with a wildcard, a Content Type that is not
// UTF-8, a Subscription Identifier from a client, a QoS 1 PUBLISH without
// a packet identifier.
// [v5 MQTT-3.3.1-4] [v5 MQTT-3.3.2-1] [v5 MQTT-3.3.2-2] [v5 MQTT-4.7.0-1]
// [v5 MQTT-4.7.3-2] [v5 MQTT-3.3.2-13] [v5 MQTT-3.3.2-14] [v5 MQTT-3.3.2-19]
// [v5 MQTT-3.3.4-6] [v5 MQTT-2.2.1-3]
func TestV5PublishMalformedEndsConnection(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	watcher := m5Connect(t, addr, "mal-watch")
	m5Sub(watcher, "#", 0)
	str := func(id packets.PropID, s string) []byte { return append([]byte{byte(id)}, mqttString(s)...) }
	cases := []struct {
		name string
		pkt  []byte
		code packets.ReasonCode
	}{
		{"QoS 3", m5RawPublish(0x36, "mal/t", 1, nil, "x"), packets.MalformedPacket},
		{"QoS 1, packet identifier 0", m5RawPublish(0x32, "mal/t", 0, nil, "x"), packets.ProtocolError},
		{"wildcard +", m5RawPublish(0x30, "mal/+", 0, nil, "x"), packets.ProtocolError},
		{"wildcard #", m5RawPublish(0x30, "mal/#", 0, nil, "x"), packets.ProtocolError},
		{"null character", m5RawPublish(0x30, "mal/\x00", 0, nil, "x"), packets.MalformedPacket},
		{"invalid UTF-8 topic", m5RawPublish(0x30, "mal/\xc3", 0, nil, "x"), packets.MalformedPacket},
		{"Response Topic with a wildcard", m5RawPublish(0x30, "mal/t", 0, str(packets.PropResponseTopic, "r/#"), "x"), packets.ProtocolError},
		{"Response Topic not UTF-8", m5RawPublish(0x30, "mal/t", 0, str(packets.PropResponseTopic, "r/\xc3"), "x"), packets.MalformedPacket},
		{"Content Type not UTF-8", m5RawPublish(0x30, "mal/t", 0, str(packets.PropContentType, "\xff"), "x"), packets.MalformedPacket},
		{"Subscription Identifier", m5RawPublish(0x30, "mal/t", 0, []byte{byte(packets.PropSubscriptionID), 1}, "x"), packets.ProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := m5Connect(t, addr, "mal")
			c.sendRaw(tc.pkt)
			m5ExpectDisconnect(c, tc.code)
		})
	}
	m5Quiet(watcher)
}

// TestV5PublishRetainedMessages: RETAIN 1 replaces the topic's retained
// message, an empty payload removes it (and is not stored), RETAIN 0
// leaves it alone; a new subscription gets the retained message with
// RETAIN 1 and its properties.
// [v5 MQTT-3.3.1-5] [v5 MQTT-3.3.1-6] [v5 MQTT-3.3.1-7] [v5 MQTT-3.3.1-8]
func TestV5PublishRetainedMessages(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	pub := m5Connect(t, addr, "ret-pub")
	raw := m5RawProps(t, &packets.Properties{ContentType: "text/plain", User: []packets.UserProperty{{Key: "v", Value: "2"}}})
	retain := func(topic, payload string, r bool, props []byte) {
		t.Helper()
		p := &packets.Publish{Topic: topic, QoS: 1, PacketID: 2, Retain: r, Payload: []byte(payload), Props: packets.PublishProps{Raw: props}}
		require.Less(t, m5Publish(pub, p), packets.ReasonCode(0x80))
	}
	retain("ret/a", "one", true, nil)
	retain("ret/a", "two", true, raw)
	retain("ret/a", "not retained", false, nil)
	retain("ret/b", "b", true, nil)
	retain("ret/b", "", true, nil)
	retain("ret/c", "", true, nil)
	sub := m5Connect(t, addr, "ret-sub")
	m5Sub(sub, "ret/#", 1)
	got := m5Expect(sub, "ret/a", "two", 1)
	assert.True(t, got.Retain)
	props := m5Props(t, got)
	assert.Equal(t, "text/plain", props.ContentType)
	assert.Equal(t, []packets.UserProperty{{Key: "v", Value: "2"}}, props.User)
	m5Quiet(sub)
}
