package tern_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Topic aliases Tern defines towards MQTT 5 clients
// (Options.OutboundTopicAliases), checked on the wire.

// oaMax sets the client's Topic Alias Maximum in its CONNECT.
func oaMax(n uint16) m5Opt {
	return func(cp *packets.Connect) { cp.Properties.TopicAliasMaximum = &n }
}

// oaPublish publishes from the application, with properties that must
// survive the rewrite with an alias.
func oaPublish(t testing.TB, b *tern.Broker, topic, payload string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := b.PublishMessage(ctx, tern.Message{
		Topic: topic, Payload: []byte(payload), QoS: qos,
		ContentType: "text/plain", MessageExpiry: time.Hour,
		UserProperties: []tern.UserProperty{{Key: "k", Value: "v"}},
	})
	require.NoError(t, err)
}

// oaExpect receives the next PUBLISH, acknowledges it, and checks what is
// on the wire: the topic name (empty when an alias stands for it), the
// Topic Alias (0: none) and the payload.
func oaExpect(c *rawClient, topic string, alias uint16, payload string) *packets.Publish {
	c.t.Helper()
	p := m5Next(c)
	m5Ack(c, p)
	require.Equal(c.t, payload, string(p.Payload), "payload")
	assert.Equal(c.t, topic, p.Topic, "topic name on the wire of %q", payload)
	if alias == 0 {
		assert.False(c.t, p.Props.HasTopicAlias, "no Topic Alias on %q", payload)
	} else {
		assert.True(c.t, p.Props.HasTopicAlias, "a Topic Alias on %q", payload)
		assert.Equal(c.t, alias, p.Props.TopicAlias, "Topic Alias of %q", payload)
	}
	return p
}

// TestV5OutboundAliasAssignedAndReused: with Options.OutboundTopicAliases,
// the first PUBLISH of a topic carries the topic name and a new alias, the
// next ones an empty topic name and the alias, at every QoS and with a
// Subscription Identifier; the message's other properties go with them.
// An in-process subscriber is unaffected.
// [v5 MQTT-3.3.2-8] [v5 MQTT-3.3.2-11] [v5 MQTT-3.1.2-26]
func TestV5OutboundAliasAssignedAndReused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		qos   byte
		subID uint32
	}{
		{"QoS 0", 0, 0}, {"QoS 1", 1, 0}, {"QoS 2", 2, 0},
		{"QoS 0 with a subscription identifier", 0, 7},
		{"QoS 1 with a subscription identifier", 1, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, addr := startBroker(t, tern.Options{OutboundTopicAliases: 8})
			got := make(chan string, 16)
			cancel, err := b.Subscribe("oa/#", tern.SubscribeOptions{QoS: 2}, func(m tern.Message, _ tern.Client) { got <- m.Topic })
			require.NoError(t, err)
			t.Cleanup(cancel)
			c := m5Connect(t, addr, "oa-sub", oaMax(10))
			ack := m5Subscribe(c, 1, tc.subID, packets.Subscription{Filter: "oa/#", QoS: tc.qos})
			require.Equal(t, []byte{tc.qos}, ack.ReturnCodes)

			a, bb := "oa/devices/0123456789/telemetry/temp", "oa/devices/0123456789/telemetry/rh"
			for i, topic := range []string{a, a, bb, a, bb} {
				oaPublish(t, b, topic, fmt.Sprint(i), tc.qos)
			}
			for i, w := range []struct {
				topic string
				alias uint16
			}{{a, 1}, {"", 1}, {bb, 2}, {"", 1}, {"", 2}} {
				p := oaExpect(c, w.topic, w.alias, fmt.Sprint(i))
				props := m5Props(t, p)
				assert.Equal(t, "text/plain", props.ContentType)
				assert.Equal(t, []packets.UserProperty{{Key: "k", Value: "v"}}, props.User)
				assert.NotNil(t, props.MessageExpiry)
				if tc.subID != 0 {
					assert.Equal(t, []uint32{tc.subID}, p.Props.SubscriptionIDs)
				}
			}
			m5Quiet(c)
			for _, want := range []string{a, a, bb, a, bb} {
				select {
				case topic := <-got:
					assert.Equal(t, want, topic, "the in-process subscriber gets every topic name")
				case <-time.After(waitTimeout):
					t.Fatal("the in-process subscriber got nothing")
				}
			}
		})
	}
}

// TestV5OutboundAliasWithinClientMaximum: Tern never sends an alias above
// the client's Topic Alias Maximum, nor 0, even when
// Options.OutboundTopicAliases is larger; with every alias in use, the
// least recently used one is given to the next new topic, which is sent
// with its name.
// [v5 MQTT-3.1.2-26] [v5 MQTT-3.3.2-11] [v5 MQTT-3.3.2-8]
func TestV5OutboundAliasWithinClientMaximum(t *testing.T) {
	b, addr := startBroker(t, tern.Options{OutboundTopicAliases: 100})
	c := m5Connect(t, addr, "oa-small", oaMax(2))
	m5Sub(c, "oa/#", 1)
	steps := []struct {
		topic string // published
		wire  string // topic name on the wire
		alias uint16
	}{
		{"oa/a", "oa/a", 1},
		{"oa/b", "oa/b", 2},
		{"oa/a", "", 1},
		{"oa/c", "oa/c", 2}, // all in use: oa/b's alias is the least recently used
		{"oa/a", "", 1},     // oa/a kept its alias
		{"oa/b", "oa/b", 2}, // oa/c's alias is now the least recently used
		{"oa/c", "oa/c", 1},
		{"oa/b", "", 2},
	}
	for i, s := range steps {
		oaPublish(t, b, s.topic, fmt.Sprint(i), 1)
	}
	for i, s := range steps {
		p := oaExpect(c, s.wire, s.alias, fmt.Sprint(i))
		assert.True(t, p.Props.TopicAlias >= 1 && p.Props.TopicAlias <= 2, "alias %d within 1..2", p.Props.TopicAlias)
	}
	m5Quiet(c)
}

// TestV5OutboundAliasNone: no Topic Alias goes to a client whose CONNECT
// had no Topic Alias Maximum or 0, to an MQTT 3.1.1 client, or to anyone
// when Options.OutboundTopicAliases is 0 (the default).
// [v5 MQTT-3.1.2-27] [v5 MQTT-3.1.2-26]
func TestV5OutboundAliasNone(t *testing.T) {
	for _, tc := range []struct {
		name    string
		aliases int
		opts    []m5Opt
	}{
		{"client maximum absent", 8, nil},
		{"client maximum 0", 8, []m5Opt{oaMax(0)}},
		{"option off", 0, []m5Opt{oaMax(10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, addr := startBroker(t, tern.Options{OutboundTopicAliases: tc.aliases})
			c := m5Connect(t, addr, "oa-none", tc.opts...)
			m5Sub(c, "oa/#", 1)
			for i := range 3 {
				oaPublish(t, b, "oa/same/topic", fmt.Sprint(i), 1)
			}
			for i := range 3 {
				oaExpect(c, "oa/same/topic", 0, fmt.Sprint(i))
			}
			m5Quiet(c)
		})
	}
	t.Run("MQTT 3.1.1", func(t *testing.T) {
		b, addr := startBroker(t, tern.Options{OutboundTopicAliases: 8})
		c := mustConnect(t, addr, "oa-311", true)
		c.subscribe(1, packets.Subscription{Filter: "oa/#"})
		for range 3 {
			c5Publish(t, b, "oa/same/topic", "x")
		}
		for range 3 {
			assert.Equal(t, "oa/same/topic", c.recvPublish().Topic)
		}
	})
}

// TestV5OutboundAliasFreshOnReconnect: aliases last one network
// connection. After a reconnect that resumes the session, the PUBLISH
// resent (DUP) carries its topic name, and the queued one after it uses
// an alias set on the new connection.
// [v5 MQTT-3.3.2-7] [v5 MQTT-4.4.0-1]
func TestV5OutboundAliasFreshOnReconnect(t *testing.T) {
	b, addr := startBroker(t, tern.Options{OutboundTopicAliases: 8})
	const topic = "oa/reconnect/a/rather/long/topic/name"
	c := m5Connect(t, addr, "oa-resume", oaMax(8), m5Expiry(60))
	m5Sub(c, "oa/#", 1)
	oaPublish(t, b, topic, "first", 1)
	oaExpect(c, topic, 1, "first")
	oaPublish(t, b, topic, "in flight", 1)
	p := m5Next(c) // not acknowledged: resent on the next connection
	assert.Equal(t, "", p.Topic)
	assert.Equal(t, uint16(1), p.Props.TopicAlias)
	m5Bye(c)
	oaPublish(t, b, topic, "queued", 1)

	c = m5Connect(t, addr, "oa-resume", oaMax(8), m5Expiry(60), m5Resume())
	p = oaExpect(c, topic, 1, "in flight")
	assert.True(t, p.Dup, "resent with DUP")
	oaExpect(c, "", 1, "queued")
	m5Quiet(c)
}

// TestV5OutboundAliasOverMaximumPacketSize: a PUBLISH larger than the
// client's Maximum Packet Size, counted as sent (with its alias, or with
// an empty topic name), is not sent and sets no alias; one that fits only
// without the new alias goes without it; one that fits only with an alias
// already known goes with it.
// [v5 MQTT-3.1.2-24] [v5 MQTT-3.1.2-25] [v5 MQTT-3.3.2-11]
func TestV5OutboundAliasOverMaximumPacketSize(t *testing.T) {
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			const topic, limit = "oa/big", 64
			b, addr := startBroker(t, tern.Options{OutboundTopicAliases: 8})
			c := m5Connect(t, addr, "oa-limit", oaMax(8), m5MaxPacket(limit))
			m5Sub(c, "oa/#", qos)
			plain := oaSize(t, topic, qos, false) // without the payload
			full := oaSize(t, topic, qos, true)
			known := oaSize(t, "", qos, true)
			payload := func(size int) string { return fmt.Sprintf("%0*d", size, size) }

			p1 := payload(limit - plain + 1) // over in every form but the known alias
			p2 := payload(limit - plain)     // fits without an alias only
			p3 := "small"                    // sets the alias
			p4 := payload(limit - known)     // fits with the known alias only
			p5 := payload(limit - known + 1) // over even with the alias
			require.Greater(t, full+len(p2), limit)
			require.Greater(t, plain+len(p4), limit)
			for _, pl := range []string{p1, p2, p3, p4, p5, "after"} {
				oaPublish(t, b, topic, pl, qos)
			}
			oaExpect(c, topic, 0, p2) // p1 dropped
			oaExpect(c, topic, 1, p3) // neither p1 nor p2 set an alias
			oaExpect(c, "", 1, p4)
			oaExpect(c, "", 1, "after") // p5 dropped; the mapping holds
			m5Quiet(c)
		})
	}
}

// oaSize is the size of a PUBLISH of topic with an empty payload, with a
// Topic Alias or not, and the properties oaPublish gives it.
func oaSize(t testing.TB, topic string, qos byte, alias bool) int {
	t.Helper()
	p := packets.Publish{Version: packets.Level5, Topic: topic, QoS: qos}
	if qos > 0 {
		p.PacketID = 1
	}
	raw, err := packets.AppendPublishRaw(nil, &packets.Properties{ContentType: "text/plain", User: []packets.UserProperty{{Key: "k", Value: "v"}}})
	require.NoError(t, err)
	p.Props = packets.PublishProps{Raw: raw, HasMessageExpiry: true, MessageExpiry: 3600}
	if alias {
		p.Props.HasTopicAlias, p.Props.TopicAlias = true, 1
	}
	out, err := p.Append(nil)
	require.NoError(t, err)
	return len(out)
}

// TestOptionsOutboundTopicAliases: Options.OutboundTopicAliases is
// between 0 and 65535; the error names the field.
func TestOptionsOutboundTopicAliases(t *testing.T) {
	for _, n := range []int{-1, 65536} {
		_, err := tern.New(tern.Options{OutboundTopicAliases: n})
		require.Error(t, err, "%d", n)
		assert.Contains(t, err.Error(), "Options.OutboundTopicAliases", "%d", n)
	}
	b, err := tern.New(tern.Options{OutboundTopicAliases: 65535})
	require.NoError(t, err)
	require.NoError(t, b.Close(context.Background()))
}
