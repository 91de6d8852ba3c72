package tern_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
)

// A raw MQTT 5 client for the tests of messages, subscriptions, shared
// subscriptions and flow control: the rawClient of harness_test.go with its
// reader in the MQTT 5 form, and helpers that send packets with Version 5.

// m5Opt changes the CONNECT m5Connect sends.
type m5Opt func(*packets.Connect)

// m5Expiry sets the Session Expiry Interval, in seconds.
func m5Expiry(secs uint32) m5Opt {
	return func(cp *packets.Connect) { cp.Properties.SessionExpiry = &secs }
}

// m5Resume clears Clean Start, to resume the session.
func m5Resume() m5Opt { return func(cp *packets.Connect) { cp.CleanSession = false } }

// m5RecvMax sets the client's Receive Maximum.
func m5RecvMax(n uint16) m5Opt {
	return func(cp *packets.Connect) { cp.Properties.ReceiveMaximum = &n }
}

// m5MaxPacket sets the client's Maximum Packet Size.
func m5MaxPacket(n uint32) m5Opt {
	return func(cp *packets.Connect) { cp.Properties.MaximumPacketSize = &n }
}

// m5NoProblem sets Request Problem Information to 0.
func m5NoProblem() m5Opt {
	return func(cp *packets.Connect) { cp.Properties.RequestProblemInfo = new(byte(0)) }
}

// m5Dial connects to addr and reads packets in their MQTT 5 form.
func m5Dial(t testing.TB, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.r.SetVersion(packets.Level5)
	return c
}

// m5ConnectAck sends an MQTT 5 CONNECT for id (Clean Start 1, Keep Alive
// 60, changed by opts) on a new connection and returns the CONNACK.
func m5ConnectAck(t testing.TB, addr, id string, opts ...m5Opt) (*rawClient, *packets.Connack) {
	t.Helper()
	c := m5Dial(t, addr)
	cp := &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: packets.Level5, ClientID: id, CleanSession: true, KeepAlive: 60}
	for _, o := range opts {
		o(cp)
	}
	return c, c.connectWith(cp)
}

// m5Connect is m5ConnectAck requiring a successful CONNACK.
func m5Connect(t testing.TB, addr, id string, opts ...m5Opt) *rawClient {
	t.Helper()
	c, ack := m5ConnectAck(t, addr, id, opts...)
	require.Equal(t, byte(packets.Success), ack.ReturnCode, "CONNACK of %s", id)
	return c
}

// m5Subscribe sends an MQTT 5 SUBSCRIBE with Subscription Identifier subID
// (0: none) and returns its SUBACK, whose packet identifier it checks
// [v5 MQTT-3.8.4-2].
func m5Subscribe(c *rawClient, id uint16, subID uint32, subs ...packets.Subscription) *packets.Suback {
	c.t.Helper()
	p := &packets.Subscribe{Version: packets.Level5, PacketID: id, Subscriptions: subs}
	if subID != 0 {
		p.Properties.SubscriptionIDs = []uint32{subID}
	}
	c.send(p)
	ack := recvAs[*packets.Suback](c)
	require.Equal(c.t, id, ack.PacketID, "SUBACK packet identifier")
	return ack
}

// m5Sub subscribes to one filter at qos and requires it granted.
func m5Sub(c *rawClient, filter string, qos byte) {
	c.t.Helper()
	ack := m5Subscribe(c, 1, 0, packets.Subscription{Filter: filter, QoS: qos})
	require.Equal(c.t, []byte{qos}, ack.ReturnCodes, "SUBACK for %q", filter)
}

// m5Unsubscribe sends an MQTT 5 UNSUBSCRIBE and returns its UNSUBACK,
// whose packet identifier it checks [v5 MQTT-2.2.1-6].
func m5Unsubscribe(c *rawClient, id uint16, filters ...string) *packets.Unsuback {
	c.t.Helper()
	c.send(&packets.Unsubscribe{Version: packets.Level5, PacketID: id, Filters: filters})
	ack := recvAs[*packets.Unsuback](c)
	require.Equal(c.t, id, ack.PacketID, "UNSUBACK packet identifier")
	return ack
}

// m5Send sends p in its MQTT 5 form.
func m5Send(c *rawClient, p packets.Packet) {
	c.t.Helper()
	switch p := p.(type) {
	case *packets.Publish:
		p.Version = packets.Level5
	case *packets.Puback:
		p.Version = packets.Level5
	case *packets.Pubrec:
		p.Version = packets.Level5
	case *packets.Pubrel:
		p.Version = packets.Level5
	case *packets.Pubcomp:
		p.Version = packets.Level5
	case *packets.Subscribe:
		p.Version = packets.Level5
	case *packets.Unsubscribe:
		p.Version = packets.Level5
	case *packets.Disconnect:
		p.Version = packets.Level5
	}
	c.send(p)
}

// m5Publish sends p (MQTT 5) and completes its QoS exchange as a client
// does; it returns the Reason Code of the PUBACK or PUBREC (Success at
// QoS 0), checking that every acknowledgement carries p's packet
// identifier [v5 MQTT-2.2.1-5]. After a PUBREC of 0x80 or more no PUBREL
// is sent (section 4.3.3).
func m5Publish(c *rawClient, p *packets.Publish) packets.ReasonCode {
	c.t.Helper()
	m5Send(c, p)
	switch p.QoS {
	case 1:
		ack := recvAs[*packets.Puback](c)
		require.Equal(c.t, p.PacketID, ack.PacketID, "PUBACK packet identifier")
		return ack.ReasonCode
	case 2:
		rec := recvAs[*packets.Pubrec](c)
		require.Equal(c.t, p.PacketID, rec.PacketID, "PUBREC packet identifier")
		if rec.ReasonCode.IsError() {
			return rec.ReasonCode
		}
		m5Send(c, &packets.Pubrel{PacketID: p.PacketID})
		comp := recvAs[*packets.Pubcomp](c)
		require.Equal(c.t, p.PacketID, comp.PacketID, "PUBCOMP packet identifier")
		require.Equal(c.t, packets.Success, comp.ReasonCode, "PUBCOMP reason code")
		return rec.ReasonCode
	}
	return packets.Success
}

// m5Pub publishes topic and payload at qos (packet identifier 1) and
// returns the acknowledgement's Reason Code.
func m5Pub(c *rawClient, topic, payload string, qos byte) packets.ReasonCode {
	c.t.Helper()
	p := &packets.Publish{Topic: topic, Payload: []byte(payload), QoS: qos}
	if qos > 0 {
		p.PacketID = 1
	}
	return m5Publish(c, p)
}

// m5Ack acknowledges a PUBLISH received from the broker as its QoS
// requires, in MQTT 5 form: PUBACK, or PUBREC, whose PUBREL m5Next and
// m5Quiet answer when it comes (other PUBLISHes may arrive before it).
func m5Ack(c *rawClient, p *packets.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		m5Send(c, &packets.Puback{PacketID: p.PacketID})
	case 2:
		m5Send(c, &packets.Pubrec{PacketID: p.PacketID})
	}
}

// m5Next returns the next PUBLISH from the broker, answering the PUBRELs
// that come before it with PUBCOMP; any other packet fails the test.
func m5Next(c *rawClient) *packets.Publish {
	c.t.Helper()
	for {
		switch p := c.recv().(type) {
		case *packets.Publish:
			return p
		case *packets.Pubrel:
			m5Complete(c, p)
		default:
			c.t.Fatalf("expected PUBLISH, got %s", describePackets(p))
		}
	}
}

// m5Complete answers a PUBREL from the broker with PUBCOMP.
func m5Complete(c *rawClient, rel *packets.Pubrel) {
	c.t.Helper()
	require.Equal(c.t, packets.Success, rel.ReasonCode, "PUBREL reason code")
	m5Send(c, &packets.Pubcomp{PacketID: rel.PacketID})
}

// m5Quiet checks that nothing but PUBRELs (answered) was pending for c: a
// PINGREQ is answered with nothing else before its PINGRESP.
func m5Quiet(c *rawClient) {
	c.t.Helper()
	for _, p := range pingSync(c) {
		rel, ok := p.(*packets.Pubrel)
		if !ok {
			c.t.Fatalf("expected nothing before PINGRESP, got %s", describePackets(p))
		}
		m5Complete(c, rel)
	}
}

// m5Expect receives the next PUBLISH, checks its topic, payload and QoS,
// and acknowledges it.
func m5Expect(c *rawClient, topic, payload string, qos byte) *packets.Publish {
	c.t.Helper()
	p := m5Next(c)
	if p.Topic != topic || string(p.Payload) != payload || p.QoS != qos {
		c.t.Fatalf("got %s, want topic %q payload %q qos %d", describePackets(p), topic, payload, qos)
	}
	m5Ack(c, p)
	return p
}

// m5Props decodes every property of a received PUBLISH.
func m5Props(t testing.TB, p *packets.Publish) packets.Properties {
	t.Helper()
	props, err := p.Props.Properties()
	require.NoError(t, err, "PUBLISH properties")
	return props
}

// m5Bye sends DISCONNECT 0x00 and waits for the broker to close.
func m5Bye(c *rawClient) {
	c.t.Helper()
	m5Send(c, &packets.Disconnect{})
	c.expectClosed()
}

// m5ExpectDisconnect requires a DISCONNECT with code from the broker, then
// the end of the connection.
func m5ExpectDisconnect(c *rawClient, code packets.ReasonCode) *packets.Disconnect {
	c.t.Helper()
	d := recvAs[*packets.Disconnect](c)
	require.Equal(c.t, code, d.ReasonCode, "DISCONNECT reason code, reason string %q", d.Properties.ReasonString)
	c.expectClosed()
	return d
}

// m5Payloads collects the payloads of n PUBLISHes received on c,
// acknowledging each.
func m5Payloads(c *rawClient, n int) []string {
	c.t.Helper()
	var out []string
	for range n {
		p := m5Next(c)
		out = append(out, string(p.Payload))
		m5Ack(c, p)
	}
	return out
}

// m5Seq returns the payloads "prefix0" .. "prefix<n-1>".
func m5Seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// m5RawPublish frames an MQTT 5 PUBLISH by hand: first byte, topic, packet
// identifier (for QoS > 0 in first), the encoded properties behind their
// length, payload. It lets a test send what the encoder refuses.
func m5RawPublish(first byte, topic string, id uint16, props []byte, payload string) []byte {
	parts := [][]byte{mqttString(topic)}
	if first&0x06 != 0 {
		parts = append(parts, []byte{byte(id >> 8), byte(id)})
	}
	parts = append(parts, remainingLength(len(props)), props, []byte(payload))
	return packetBytes(first, parts...)
}

// m5WaitQueued waits until client id's session has n messages queued.
func m5WaitQueued(t testing.TB, b *tern.Broker, id string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, ci := range b.Clients() {
			if ci.ID == id {
				return ci.Queued == n
			}
		}
		return false
	}, waitTimeout, 5*time.Millisecond, "%s: %d messages queued", id, n)
}

// m5WaitOffline waits until client id's session has no connection.
func m5WaitOffline(t testing.TB, b *tern.Broker, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, ci := range b.Clients() {
			if ci.ID == id {
				return !ci.Connected
			}
		}
		return false
	}, waitTimeout, 5*time.Millisecond, "%s offline", id)
}

// m5Hooks starts a broker with opts and hooks on TCP loopback.
func m5Hooks(t *testing.T, opts tern.Options, hooks ...any) (*tern.Broker, string) {
	t.Helper()
	b, addr := startBroker(t, opts)
	for _, h := range hooks {
		require.NoError(t, b.AddHook(h))
	}
	return b, addr
}

// m5Memory is the memory store as a restartable backend (persist_test.go):
// restarts in these tests use it only, as it keeps every MQTT 5 field.
func m5Memory() psBackend {
	return psBackend{"memory", func(t *testing.T) (storage.Store, func() storage.Store) {
		mem := storage.NewMemory()
		cur := mem
		return mem, func() storage.Store {
			cur.Close()
			cur = mem.Reopen()
			return cur
		}
	}}
}

// m5PubAuth adapts a function to the PublishAuthorizer hook.
type m5PubAuth func(tern.Message) error

func (f m5PubAuth) AuthorizePublish(_ context.Context, _ tern.Client, m tern.Message) error {
	return f(m)
}

// m5SubAuth adapts a function to the SubscribeAuthorizer hook.
type m5SubAuth func(filter string) error

func (f m5SubAuth) AuthorizeSubscribe(_ context.Context, _ tern.Client, filter string, _ byte) error {
	return f(filter)
}
