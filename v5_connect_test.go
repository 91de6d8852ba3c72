package tern_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of the MQTT 5 CONNECT and CONNACK (sections 3.1, 3.2)
// and PINGREQ (3.12). The helpers (prefix c5) are in
// v5_connect_helpers_test.go.

func TestV5ConnackAnnouncesTheBrokersLimits(t *testing.T) {
	// [v5 MQTT-3.1.4-5] [v5 MQTT-3.2.2-2] [v5 MQTT-3.2.2-3] [v5 MQTT-3.2.2-1]
	// [v5 MQTT-4.12.0-6] [v5 MQTT-3.1.2-28] [v5 MQTT-3.2.2-9]
	t.Run("configured", func(t *testing.T) {
		_, addr := startBroker(t, tern.Options{ReceiveMaximum: 10, MaxPacketSize: 4096, TopicAliasMaximum: 5})
		_, ack := c5Connect(t, addr, c5Conn("limits", true))
		assert.False(t, ack.SessionPresent)
		p := ack.Properties
		require.NotNil(t, p.ReceiveMaximum, "Receive Maximum")
		assert.Equal(t, uint16(10), *p.ReceiveMaximum)
		require.NotNil(t, p.MaximumPacketSize, "Maximum Packet Size")
		assert.Equal(t, uint32(4096), *p.MaximumPacketSize)
		require.NotNil(t, p.TopicAliasMaximum, "Topic Alias Maximum")
		assert.Equal(t, uint16(5), *p.TopicAliasMaximum)
		// The client chose its identifier, asked for nothing, and used no
		// enhanced authentication.
		assert.Empty(t, p.AssignedClientID)
		assert.Empty(t, p.ResponseInfo)
		assert.Empty(t, p.AuthMethod)
		assert.Nil(t, p.AuthData)
		assert.Nil(t, p.ServerKeepAlive)
		assert.Nil(t, p.SessionExpiry)
		// Tern supports QoS 2 and retained messages: no Maximum QoS
		// [v5 MQTT-3.2.2-9], no Retain Available 0 (section 3.2.2.3.5).
		assert.Nil(t, p.MaximumQoS)
		assert.Nil(t, p.RetainAvailable)
	})
	t.Run("defaults", func(t *testing.T) {
		_, addr := startBroker(t, tern.Options{})
		_, ack := c5Connect(t, addr, c5Conn("defaults", true))
		p := ack.Properties
		require.NotNil(t, p.ReceiveMaximum)
		assert.Equal(t, uint16(tern.DefaultReceiveMaximum), *p.ReceiveMaximum)
		require.NotNil(t, p.MaximumPacketSize)
		assert.Equal(t, uint32(tern.DefaultMaxPacketSize), *p.MaximumPacketSize)
		require.NotNil(t, p.TopicAliasMaximum)
		assert.Equal(t, uint16(tern.DefaultTopicAliasMaximum), *p.TopicAliasMaximum)
	})
	t.Run("no topic aliases", func(t *testing.T) {
		// Absent means 0: the client may send none [v5 MQTT-3.2.2-18].
		_, addr := startBroker(t, tern.Options{TopicAliasMaximum: -1, ReceiveMaximum: 65535})
		_, ack := c5Connect(t, addr, c5Conn("noalias", true))
		assert.Nil(t, ack.Properties.TopicAliasMaximum)
		// 65535 is the default Receive Maximum of the protocol: no need to
		// announce it (section 3.2.2.3.3).
		assert.Nil(t, ack.Properties.ReceiveMaximum)
	})
}

func TestV5AssignedClientIdentifier(t *testing.T) {
	// [v5 MQTT-3.1.3-6] [v5 MQTT-3.1.3-7] [v5 MQTT-3.2.2-16] [v5 MQTT-3.1.3-2]
	b, addr := startBroker(t, tern.Options{})
	seen := map[string]bool{}
	var kept string
	for i, clean := range []bool{true, false, true, false} {
		c, ack := c5Connect(t, addr, c5Persistent("", clean, 60))
		id := ack.Properties.AssignedClientID
		require.NotEmptyf(t, id, "connection %d: no Assigned Client Identifier", i)
		assert.Falsef(t, seen[id], "identifier %q assigned twice", id)
		assert.False(t, ack.SessionPresent, "a new identifier has no session")
		seen[id] = true
		if !clean {
			// The session is stored under the assigned identifier: the
			// client resumes it by that name.
			c5Subscribe(c, 1, "assigned/"+id, 1)
			kept = id
		}
		c.send(&packets.Disconnect{Version: packets.Level5})
		c.expectClosed()
	}
	// A client that chose the identifier the broker would assign next
	// holds it: the broker assigns another one.
	var next string
	last := -1
	for id := range seen {
		i := strings.LastIndexByte(id, '-')
		if n, err := strconv.Atoi(id[i+1:]); err == nil && n > last {
			next, last = fmt.Sprintf("%s%d", id[:i+1], n+1), n
		}
	}
	if next != "" {
		t.Logf("a client takes %q", next)
		squatter, _ := c5Connect(t, addr, c5Persistent(next, true, 60))
		_, ack := c5Connect(t, addr, c5Conn("", true))
		assert.NotEqual(t, next, ack.Properties.AssignedClientID, "assigned the identifier of a live session")
		assert.NotContains(t, seen, ack.Properties.AssignedClientID)
		c5Ping(squatter)
	}

	c, ack := c5Connect(t, addr, c5Persistent(kept, false, 60))
	assert.True(t, ack.SessionPresent, "the session of the assigned identifier was not kept")
	assert.Empty(t, ack.Properties.AssignedClientID, "assigned an identifier to a client that gave one")
	c5Publish(t, b, "assigned/"+kept, "hello")
	assert.Equal(t, "assigned/"+kept, c5Recv(c).Topic, "the subscription came with the session")
}

func TestV5ServerKeepAlive(t *testing.T) {
	// [v5 MQTT-3.1.2-21] [v5 MQTT-3.2.2-21] [v5 MQTT-3.2.2-22]
	// [v5 MQTT-3.1.2-22]
	_, addr := startBroker(t, tern.Options{MaxKeepAlive: time.Second})
	keepAlive := func(id string, asked uint16) (*rawClient, *packets.Connack) {
		cp := c5Conn(id, true)
		cp.KeepAlive = asked
		return c5Connect(t, addr, cp)
	}
	// A client that asks for less than the maximum keeps its own value:
	// no Server Keep Alive.
	short := c5Dial(t, addr)
	cp := c5Conn("short", true)
	cp.KeepAlive = 1
	ack := c5Connack(short, cp)
	assert.Nil(t, ack.Properties.ServerKeepAlive, "Server Keep Alive for a client within the maximum")
	c5Ping(short)

	// No keepalive, or a longer one: the broker's maximum, announced and
	// enforced. Both clients stay silent; each is closed after one and a
	// half times the Server Keep Alive, with DISCONNECT 0x8D.
	none, ackNone := keepAlive("none", 0)
	long, ackLong := keepAlive("long", 60)
	start := time.Now()
	for _, ack := range []*packets.Connack{ackNone, ackLong} {
		require.NotNil(t, ack.Properties.ServerKeepAlive, "no Server Keep Alive")
		assert.Equal(t, uint16(1), *ack.Properties.ServerKeepAlive)
	}
	c5Disconnected(none, packets.KeepAliveTimeout)
	c5Disconnected(long, packets.KeepAliveTimeout)
	// Closed for the Server Keep Alive (1.5 s after the CONNACK was
	// written, shortly before start), not the client's 60 s nor at once;
	// the upper bound is the read deadline of c5Disconnected.
	assert.GreaterOrEqual(t, time.Since(start), 700*time.Millisecond, "closed well before one and a half Server Keep Alive")
}

func TestV5ResponseInformationOnlyWhenRequested(t *testing.T) {
	// [v5 MQTT-3.1.2-28]
	ask := func(addr, id string, req *byte) string {
		cp := c5Conn(id, true)
		cp.Properties.RequestResponseInfo = req
		_, ack := c5Connect(t, addr, cp)
		return ack.Properties.ResponseInfo
	}
	_, addr := startBroker(t, tern.Options{ResponseInformation: "replies/"})
	assert.Equal(t, "replies/", ask(addr, "asks", new(byte(1))))
	assert.Empty(t, ask(addr, "declines", new(byte(0))), "Response Information after Request Response Information 0")
	assert.Empty(t, ask(addr, "silent", nil), "Response Information without a request")
	_, bare := startBroker(t, tern.Options{})
	assert.Empty(t, ask(bare, "asks-none", new(byte(1))), "Response Information that is not configured")
}

func TestV5RequestProblemInformation(t *testing.T) {
	// [v5 MQTT-3.1.2-29]: with Request Problem Information 0, a refused
	// PUBACK, PUBREC or SUBACK carries its reason code but no Reason String;
	// with 1 (or absent) it carries the hook's Reason String. CONNACK and
	// DISCONNECT may carry one either way.
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, hkPubAuth(func(_ tern.Client, m tern.Message) error {
		return &tern.ReasonError{Code: packets.NotAuthorized, Reason: "no publishing to " + m.Topic}
	}))
	hkAdd(t, b, hkSubAuth(func(_ tern.Client, filter string, _ byte) error {
		return &tern.ReasonError{Code: packets.NotAuthorized, Reason: "no subscribing to " + filter}
	}))
	hkAdd(t, b, hkAuth(func(ci tern.ConnectInfo) error {
		if ci.Username == "intruder" {
			return &tern.ReasonError{Code: packets.BadUserNameOrPassword, Reason: "unknown user"}
		}
		return nil
	}))
	for _, tc := range []struct {
		name   string
		rpi    *byte
		reason bool
	}{
		{"absent", nil, true},
		{"one", new(byte(1)), true},
		{"zero", new(byte(0)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := c5Conn("rpi-"+tc.name, true)
			cp.Properties.RequestProblemInfo = tc.rpi
			c, _ := c5Connect(t, addr, cp)
			want := func(s string) string {
				if tc.reason {
					return s
				}
				return ""
			}

			c.send(&packets.Publish{Version: packets.Level5, Topic: "closed/1", QoS: 1, PacketID: 1, Payload: []byte("x")})
			puback, ok := c.recv().(*packets.Puback)
			require.True(t, ok, "expected PUBACK")
			assert.Equal(t, packets.NotAuthorized, puback.ReasonCode)
			assert.Equal(t, want("no publishing to closed/1"), puback.Properties.ReasonString)

			c.send(&packets.Publish{Version: packets.Level5, Topic: "closed/2", QoS: 2, PacketID: 2, Payload: []byte("x")})
			pubrec, ok := c.recv().(*packets.Pubrec)
			require.True(t, ok, "expected PUBREC")
			assert.Equal(t, packets.NotAuthorized, pubrec.ReasonCode)
			assert.Equal(t, want("no publishing to closed/2"), pubrec.Properties.ReasonString)

			c.send(&packets.Subscribe{Version: packets.Level5, PacketID: 3, Subscriptions: []packets.Subscription{{Filter: "closed/#"}}})
			suback, ok := c.recv().(*packets.Suback)
			require.True(t, ok, "expected SUBACK")
			assert.Equal(t, []byte{byte(packets.NotAuthorized)}, suback.ReturnCodes)
			assert.Equal(t, want("no subscribing to closed/#"), suback.Properties.ReasonString)

			// A refused CONNACK may carry it whatever the client asked.
			cp = c5Conn("rpi-intruder-"+tc.name, true)
			cp.Properties.RequestProblemInfo = tc.rpi
			cp.UsernameFlag, cp.Username = true, "intruder"
			refused := c5Dial(t, addr)
			refused.send(cp)
			ack := c5Refused(refused, packets.BadUserNameOrPassword)
			assert.Equal(t, "unknown user", ack.Properties.ReasonString)
		})
	}
}

func TestV5ClientIdentifierNotValid(t *testing.T) {
	// [v5 MQTT-3.1.3-8] [v5 MQTT-3.2.2-6] [v5 MQTT-3.2.2-7] [v5 MQTT-4.13.2-1]
	_, addr := startBroker(t, tern.Options{MaxClientIDLength: 8})
	c := c5Dial(t, addr)
	c.send(c5Conn("much-too-long", true))
	c5Refused(c, packets.ClientIdentifierNotValid)
	c5Ping(c5Must(t, addr, "short"))
}

func TestV5ConnackComesFirstAndOnce(t *testing.T) {
	// [v5 MQTT-3.2.0-1] [v5 MQTT-3.2.0-2] [v5 MQTT-3.12.4-1]: packets sent
	// right behind the CONNECT, in the same write, are answered after the
	// CONNACK, and no second CONNACK follows.
	b, addr := startBroker(t, tern.Options{})
	require.NoError(t, b.Publish(context.Background(), "first/retained", []byte("r"), 1, true))
	c := c5Dial(t, addr)
	var out []byte
	for _, p := range []packets.Packet{
		c5Conn("first", true),
		&packets.Subscribe{Version: packets.Level5, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "first/#", QoS: 1}}},
		&packets.Pingreq{Version: packets.Level5},
	} {
		var err error
		out, err = p.Append(out)
		require.NoError(t, err)
	}
	c.sendRaw(out)
	var got []packets.Type
	for range 4 {
		p := c.recv()
		got = append(got, p.Type())
		if pub, ok := p.(*packets.Publish); ok {
			c.send(&packets.Puback{Version: packets.Level5, PacketID: pub.PacketID})
		}
	}
	require.Equal(t, packets.TypeConnack, got[0], "the first packet is not CONNACK: %v", got)
	assert.ElementsMatch(t, []packets.Type{packets.TypeSuback, packets.TypePublish, packets.TypePingresp}, got[1:])
	c5Ping(c)
}

func TestV5RefusedConnectProcessesNothingAfterIt(t *testing.T) {
	// [v5 MQTT-3.1.4-6] [v5 MQTT-3.1.4-2]: a PUBLISH right behind a refused
	// CONNECT is not routed.
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, hkAuth(func(ci tern.ConnectInfo) error {
		if ci.ClientID == "refused" {
			return tern.ErrNotAuthorized
		}
		return nil
	}))
	w := c5Must(t, addr, "watcher")
	c5Subscribe(w, 1, "after/#", 0)
	c := c5Dial(t, addr)
	out, err := c5Conn("refused", true).Append(nil)
	require.NoError(t, err)
	out, err = (&packets.Publish{Version: packets.Level5, Topic: "after/refusal", Payload: []byte("no")}).Append(out)
	require.NoError(t, err)
	c.sendRaw(out)
	c5Refused(c, packets.NotAuthorized)
	c5Publish(t, b, "after/marker", "m")
	assert.Equal(t, "after/marker", c5Recv(w).Topic, "a PUBLISH behind a refused CONNECT was routed")
}

func TestV5AndV311ClientsOnOneBroker(t *testing.T) {
	// Each connection gets the CONNACK of its own protocol level: the
	// two-byte 3.1.1 form with a return code, the MQTT 5 form with a reason
	// code and properties. [MQTT-3.2.2-4] [v5 MQTT-3.2.2-3] [v5 MQTT-3.2.2-6]
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, hkAuth(func(ci tern.ConnectInfo) error {
		switch ci.Username {
		case "stranger":
			return tern.ErrNotAuthorized
		case "typo":
			return tern.ErrBadCredentials
		}
		return nil
	}))
	raw := func(c *rawClient) []byte {
		c.t.Helper()
		c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
		fh, body, err := c.r.ReadRaw()
		require.NoError(c.t, err)
		require.Equal(c.t, packets.TypeConnack, fh.Type)
		return body
	}
	for _, tc := range []struct {
		user   string
		code5  packets.ReasonCode
		code31 byte
	}{
		{"", packets.Success, packets.Accepted},
		{"stranger", packets.NotAuthorized, packets.RefusedNotAuthorized},
		{"typo", packets.BadUserNameOrPassword, packets.RefusedBadUsernamePassword},
	} {
		t.Run(fmt.Sprintf("user %q", tc.user), func(t *testing.T) {
			old := dialRaw(t, addr)
			cp := &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "old-" + tc.user, CleanSession: true, KeepAlive: 60}
			cp.UsernameFlag, cp.Username = tc.user != "", tc.user
			old.send(cp)
			assert.Equal(t, []byte{0, tc.code31}, raw(old), "3.1.1 CONNACK")

			v5 := c5Dial(t, addr)
			cp = c5Conn("new-"+tc.user, true)
			cp.UsernameFlag, cp.Username = tc.user != "", tc.user
			v5.send(cp)
			body := raw(v5)
			require.Greater(t, len(body), 2, "MQTT 5 CONNACK without properties")
			ack := packets.Connack{Version: packets.Level5}
			require.NoError(t, ack.Decode(packets.FixedHeader{Type: packets.TypeConnack, Remaining: len(body)}, body))
			assert.Equal(t, tc.code5, packets.ReasonCode(ack.ReturnCode))
			if tc.code5 != packets.Success {
				old.expectClosed()
				v5.expectClosed()
				return
			}
			assert.NotNil(t, ack.Properties.MaximumPacketSize)
			pingOK(old)
			c5Ping(v5)
		})
	}
}

func TestV5ClientMaximumPacketSize(t *testing.T) {
	// [v5 MQTT-3.1.2-24] nothing larger than the client's Maximum Packet
	// Size is sent; [v5 MQTT-3.1.2-25] a message too large is discarded as
	// if it had been sent: not resent, not left in flight.
	b, addr := startBroker(t, tern.Options{})
	cp := c5Persistent("small", false, 60)
	cp.Properties.MaximumPacketSize = new(uint32(64))
	c, _ := c5Connect(t, addr, cp)
	c5Subscribe(c, 1, "mps/#", 1)
	c5Publish(t, b, "mps/big", strings.Repeat("x", 100))
	c5Publish(t, b, "mps/small", "fits")
	assert.Equal(t, "fits", string(c5Recv(c).Payload))
	c5Ping(c)
	assert.Zero(t, clientInfo(t, b, "small").Inflight, "the discarded message is still in flight")
	c5Leave(c, nil)
	c, ack := c5Connect(t, addr, cp)
	assert.True(t, ack.SessionPresent)
	c5Ping(c) // nothing resent
	ci := clientInfo(t, b, "small")
	assert.Zero(t, ci.Inflight+ci.Queued, "the discarded message came back")
}

func TestV5ConnackFitsTheClientsMaximumPacketSize(t *testing.T) {
	// [v5 MQTT-3.2.2-19] [v5 MQTT-3.2.2-20] [v5 MQTT-3.1.2-24] the Reason
	// String (and User Properties) of a CONNACK are left out when they
	// would make it larger than the client accepts.
	b, addr := startBroker(t, tern.Options{})
	long := strings.Repeat("refused ", 40)
	hkAdd(t, b, hkAuth(func(ci tern.ConnectInfo) error {
		if ci.Username == "refused" {
			return &tern.ReasonError{Code: packets.NotAuthorized, Reason: long}
		}
		return nil
	}))
	for _, tc := range []struct {
		name    string
		maxSize *uint32
		reason  string
	}{
		{"no limit", nil, long},
		{"small limit", new(uint32(32)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, user := range []string{"refused", "welcome"} {
				cp := c5Conn("fit-"+user, true)
				cp.UsernameFlag, cp.Username = true, user
				cp.Properties.MaximumPacketSize = tc.maxSize
				c := c5Dial(t, addr)
				c.send(cp)
				c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
				fh, body, err := c.r.ReadRaw()
				require.NoError(t, err)
				require.Equal(t, packets.TypeConnack, fh.Type)
				if tc.maxSize != nil {
					assert.LessOrEqual(t, fh.Size(), int(*tc.maxSize), "CONNACK larger than the client accepts")
				}
				ack := packets.Connack{Version: packets.Level5}
				require.NoError(t, ack.Decode(fh, body))
				if user == "refused" {
					assert.Equal(t, byte(packets.NotAuthorized), ack.ReturnCode)
					assert.Equal(t, tc.reason, ack.Properties.ReasonString)
					c.expectClosed()
				} else {
					assert.Equal(t, byte(packets.Success), ack.ReturnCode)
				}
			}
		})
	}
}

func TestV5PasswordWithoutUserName(t *testing.T) {
	// Section 3.1.2.9: MQTT 5 allows a password without a user name.
	// [v5 MQTT-3.1.2-18] [v5 MQTT-3.1.2-19]
	b, addr := startBroker(t, tern.Options{})
	seen := make(chan tern.ConnectInfo, 1)
	hkAdd(t, b, hkAuth(func(ci tern.ConnectInfo) error {
		seen <- ci
		return nil
	}))
	cp := c5Conn("token", true)
	cp.PasswordFlag, cp.Password = true, []byte("s3cret")
	c, _ := c5Connect(t, addr, cp)
	var ci tern.ConnectInfo
	select {
	case ci = <-seen:
	case <-time.After(waitTimeout):
		require.FailNow(t, "the Authenticator was not asked")
	}
	assert.False(t, ci.HasUsername)
	assert.True(t, ci.HasPassword)
	assert.Equal(t, []byte("s3cret"), ci.Password)
	c5Ping(c)
}

func TestV5AssignedIdentifierIgnoresTheClientIdentifierLimit(t *testing.T) {
	// [v5 MQTT-3.1.3-6] [v5 MQTT-3.1.3-7] Options.MaxClientIDLength bounds
	// the identifiers clients send, not the ones the broker assigns.
	_, addr := startBroker(t, tern.Options{MaxClientIDLength: 4})
	c, ack := c5Connect(t, addr, c5Conn("", true))
	assert.NotEmpty(t, ack.Properties.AssignedClientID)
	c5Ping(c)
	old := mustConnect(t, addr, "", true) // 3.1.1 [MQTT-3.1.3-6]
	pingOK(old)
}

func TestV5ConnectionLimitAnswersInTheClientsForm(t *testing.T) {
	// [v5 MQTT-3.2.2-8] [v5 MQTT-3.2.2-6] [v5 MQTT-3.2.2-7] a CONNECT over
	// Options.MaxConnections gets a CONNACK the client can read: for MQTT 5
	// a Connect Reason Code, 0x89 (server busy), with its properties; for
	// 3.1.1 the return code 0x03.
	_, addr := startBroker(t, tern.Options{MaxConnections: 1})
	c5Ping(c5Must(t, addr, "first"))
	over := c5Dial(t, addr)
	over.send(c5Conn("second", true))
	c5Refused(over, packets.ServerBusy)
	old := dialRaw(t, addr)
	old.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "third", CleanSession: true})
	expectRefused(old, packets.RefusedServerUnavailable)
}

func TestV5NoTopicAliasesToClients(t *testing.T) {
	// [v5 MQTT-3.1.2-26] [v5 MQTT-3.1.2-27] Tern sends no Topic Alias: not
	// to a client that allows none, nor to one that allows some.
	b, addr := startBroker(t, tern.Options{})
	none := c5Must(t, addr, "no-aliases")
	c5Subscribe(none, 1, "alias/#", 1)
	cp := c5Conn("aliases", true)
	cp.Properties.TopicAliasMaximum = new(uint16(10))
	some, _ := c5Connect(t, addr, cp)
	c5Subscribe(some, 1, "alias/#", 1)
	for range 2 {
		c5Publish(t, b, "alias/topic", "x")
		for _, c := range []*rawClient{none, some} {
			p := c5Recv(c)
			assert.Equal(t, "alias/topic", p.Topic)
			assert.False(t, p.Props.HasTopicAlias, "a Topic Alias from the server")
		}
	}
}
