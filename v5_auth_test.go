package tern_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Conformance tests of MQTT 5 enhanced authentication and
// re-authentication (sections 3.15 and 4.12), with a challenge–response
// method of the tests' own, TEST-CR: the server sends a nonce in AUTH 0x18,
// the client answers with HMAC-SHA256(secret, nonce) in AUTH 0x18, and the
// server is done.

const (
	c5Method = "TEST-CR"
	c5Secret = "c5 shared secret"
)

// c5Challenger is an EnhancedAuthenticator for TEST-CR. A wrong answer is
// refused with refusal, or a plain error when it is nil.
type c5Challenger struct{ refusal error }

func (h c5Challenger) AuthStep(_ context.Context, x *tern.AuthExchange) ([]byte, bool, error) {
	if x.Method != c5Method {
		return nil, false, tern.ErrAuthMethodNotSupported
	}
	nonce, _ := x.State.([]byte)
	if nonce == nil {
		// The first step (CONNECT, or AUTH 0x19): challenge.
		nonce = make([]byte, 16)
		rand.Read(nonce)
		x.State = nonce
		return nonce, false, nil
	}
	if !hmac.Equal(x.Data, c5Answer(nonce)) {
		if h.refusal != nil {
			return nil, false, h.refusal
		}
		return nil, false, errors.New("wrong answer to the challenge")
	}
	return []byte("welcome"), true, nil
}

// c5Answer is the right answer to nonce.
func c5Answer(nonce []byte) []byte {
	m := hmac.New(sha256.New, []byte(c5Secret))
	m.Write(nonce)
	return m.Sum(nil)
}

// c5AuthConnect is a CONNECT that starts a TEST-CR exchange.
func c5AuthConnect(id string) *packets.Connect {
	cp := c5Conn(id, true)
	cp.Properties.AuthMethod, cp.Properties.AuthData = c5Method, []byte("hello")
	return cp
}

// c5Auth is an AUTH of the TEST-CR method.
func c5Auth(code packets.ReasonCode, data []byte) *packets.Auth {
	return &packets.Auth{Version: packets.Level5, ReasonCode: code, Properties: packets.Properties{AuthMethod: c5Method, AuthData: data}}
}

// c5Challenge requires the next packet to be the server's challenge: AUTH
// 0x18 with the method [v5 MQTT-4.12.0-2] [v5 MQTT-4.12.0-5]
// [v5 MQTT-3.15.2-1], without Reason String or User Properties (Tern sends
// none on AUTH, so none can exceed the client's Maximum Packet Size
// [v5 MQTT-3.15.2-2, MQTT-3.15.2-3]), and returns its nonce.
func c5Challenge(c *rawClient) []byte {
	c.t.Helper()
	p := c.recv()
	a, ok := p.(*packets.Auth)
	require.Truef(c.t, ok, "expected AUTH, got %v %+v", p.Type(), p)
	assert.Equal(c.t, packets.ContinueAuthentication, a.ReasonCode)
	assert.Equal(c.t, c5Method, a.Properties.AuthMethod)
	assert.Empty(c.t, a.Properties.ReasonString)
	assert.Empty(c.t, a.Properties.User)
	require.Len(c.t, a.Properties.AuthData, 16, "nonce")
	return a.Properties.AuthData
}

// c5AuthBroker starts a broker with the TEST-CR authenticator.
func c5AuthBroker(t *testing.T, h c5Challenger) (*tern.Broker, string) {
	t.Helper()
	b, addr := startBroker(t, tern.Options{})
	hkAdd(t, b, h)
	return b, addr
}

func TestV5EnhancedAuthentication(t *testing.T) {
	// [v5 MQTT-4.12.0-2] [v5 MQTT-4.12.0-3] [v5 MQTT-4.12.0-5]
	// [v5 MQTT-3.15.2-1] [v5 MQTT-3.2.0-1]: AUTH 0x18 goes back and forth
	// before CONNACK, which carries the Authentication Method.
	_, addr := c5AuthBroker(t, c5Challenger{})
	c := c5Dial(t, addr)
	c.send(c5AuthConnect("authed"))
	nonce := c5Challenge(c)
	c.send(c5Auth(packets.ContinueAuthentication, c5Answer(nonce)))
	p := c.recv()
	ack, ok := p.(*packets.Connack)
	require.Truef(t, ok, "expected CONNACK, got %v %+v", p.Type(), p)
	assert.Equal(t, byte(packets.Success), ack.ReturnCode)
	assert.Equal(t, c5Method, ack.Properties.AuthMethod)
	assert.Equal(t, []byte("welcome"), ack.Properties.AuthData)
	c5Ping(c)
}

func TestV5EnhancedAuthenticationRefused(t *testing.T) {
	// [v5 MQTT-4.12.0-4] [v5 MQTT-4.12.0-1] a refusal: CONNACK 0x80 or
	// above, then the connection closes [v5 MQTT-3.2.2-7].
	wrong := func(t *testing.T, h c5Challenger) *packets.Connack {
		_, addr := c5AuthBroker(t, h)
		c := c5Dial(t, addr)
		c.send(c5AuthConnect("wrong"))
		c5Challenge(c)
		c.send(c5Auth(packets.ContinueAuthentication, []byte("a guess")))
		return c5Refused(c, packets.NotAuthorized)
	}
	t.Run("wrong answer", func(t *testing.T) { wrong(t, c5Challenger{}) })
	t.Run("wrong answer with a reason", func(t *testing.T) {
		ack := wrong(t, c5Challenger{refusal: &tern.ReasonError{Code: packets.NotAuthorized, Reason: "that is not the answer"}})
		assert.Equal(t, "that is not the answer", ack.Properties.ReasonString)
	})
	t.Run("wrong answer with another code", func(t *testing.T) {
		_, addr := c5AuthBroker(t, c5Challenger{refusal: &tern.ReasonError{Code: packets.Banned}})
		c := c5Dial(t, addr)
		c.send(c5AuthConnect("banned"))
		c5Challenge(c)
		c.send(c5Auth(packets.ContinueAuthentication, nil))
		c5Refused(c, packets.Banned)
	})
	t.Run("unknown method", func(t *testing.T) {
		_, addr := c5AuthBroker(t, c5Challenger{})
		c := c5Dial(t, addr)
		cp := c5AuthConnect("unknown")
		cp.Properties.AuthMethod = "SCRAM-SHA-1"
		c.send(cp)
		c5Refused(c, packets.BadAuthenticationMethod)
	})
	t.Run("no enhanced authenticator", func(t *testing.T) {
		_, addr := startBroker(t, tern.Options{})
		c := c5Dial(t, addr)
		c.send(c5AuthConnect("nobody"))
		c5Refused(c, packets.BadAuthenticationMethod)
	})
}

func TestV5EnhancedAuthenticationProtocolErrors(t *testing.T) {
	// Before CONNACK the client sends only AUTH (or DISCONNECT)
	// [v5 MQTT-3.1.2-30], with the CONNECT's method and reason code 0x18:
	// anything else is a Protocol Error, answered with CONNACK 0x82
	// (never DISCONNECT before a successful CONNACK [v5 MQTT-3.14.0-1]),
	// and nothing it sent is processed [v5 MQTT-3.1.4-6].
	b, addr := c5AuthBroker(t, c5Challenger{})
	w := c5Watch(t, addr, "watcher", "during/#")
	cases := []struct {
		name   string
		answer func(nonce []byte) packets.Packet
		code   packets.ReasonCode
	}{
		{"another method", func(nonce []byte) packets.Packet {
			a := c5Auth(packets.ContinueAuthentication, c5Answer(nonce))
			a.Properties.AuthMethod = "OTHER"
			return a
		}, packets.ProtocolError},
		{"re-authenticate code", func(nonce []byte) packets.Packet {
			return c5Auth(packets.ReAuthenticate, c5Answer(nonce))
		}, packets.ProtocolError},
		{"PUBLISH", func([]byte) packets.Packet {
			return &packets.Publish{Version: packets.Level5, Topic: "during/auth", Payload: []byte("early")}
		}, packets.ProtocolError},
		{"SUBSCRIBE", func([]byte) packets.Packet {
			return &packets.Subscribe{Version: packets.Level5, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "#"}}}
		}, packets.ProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c5Dial(t, addr)
			c.send(c5AuthConnect("errant"))
			c.send(tc.answer(c5Challenge(c)))
			c5Refused(c, tc.code)
		})
	}
	t.Run("malformed AUTH", func(t *testing.T) {
		// [v5 MQTT-3.15.1-1]
		c := c5Dial(t, addr)
		c.send(c5AuthConnect("errant"))
		c5Challenge(c)
		c.sendRaw([]byte{0xF1, 0})
		c5Refused(c, packets.MalformedPacket)
	})
	t.Run("DISCONNECT", func(t *testing.T) {
		// The client may give up with DISCONNECT: the connection closes.
		c := c5Dial(t, addr)
		c.send(c5AuthConnect("quitter"))
		c5Challenge(c)
		c.send(&packets.Disconnect{Version: packets.Level5})
		c.expectClosed()
	})
	c5NoWill(t, b, w, "during/marker")
	assert.False(t, c5Session(b, "errant"))
}

func TestV5NoAuthenticationForAClientWithoutMethod(t *testing.T) {
	// [v5 MQTT-4.12.0-6] a client that gave no Authentication Method gets no
	// AUTH, and no Authentication Method in its CONNACK, even with an
	// EnhancedAuthenticator added.
	_, addr := c5AuthBroker(t, c5Challenger{})
	c, ack := c5Connect(t, addr, c5Conn("plain", true))
	assert.Empty(t, ack.Properties.AuthMethod)
	assert.Nil(t, ack.Properties.AuthData)
	c5Ping(c) // nothing came between CONNACK and PINGRESP
}

// c5Authed connects a client that passed TEST-CR, with Maximum Packet Size
// maxSize unless it is 0.
func c5Authed(t *testing.T, addr, id string, maxSize uint32) *rawClient {
	t.Helper()
	c := c5Dial(t, addr)
	cp := c5AuthConnect(id)
	if maxSize > 0 {
		cp.Properties.MaximumPacketSize = new(maxSize)
	}
	c.send(cp)
	c.send(c5Auth(packets.ContinueAuthentication, c5Answer(c5Challenge(c))))
	ack, ok := c.recv().(*packets.Connack)
	require.True(t, ok && ack.ReturnCode == 0, "expected CONNACK 0x00, got %+v", ack)
	return c
}

func TestV5Reauthentication(t *testing.T) {
	// Section 4.12.1: AUTH 0x19 starts a re-authentication, AUTH 0x18 goes
	// back and forth, the server ends it with AUTH 0x00; every AUTH carries
	// the method [v5 MQTT-4.12.0-5] [v5 MQTT-4.12.1-1]. The connection
	// goes on meanwhile.
	b, addr := c5AuthBroker(t, c5Challenger{})
	c := c5Authed(t, addr, "again", 0)
	c5Subscribe(c, 1, "again/topic", 1)
	for round := range 2 {
		c.send(c5Auth(packets.ReAuthenticate, []byte("again")))
		nonce := c5Challenge(c)
		c5Ping(c) // other packets flow during the exchange
		c.send(c5Auth(packets.ContinueAuthentication, c5Answer(nonce)))
		p := c.recv()
		a, ok := p.(*packets.Auth)
		require.Truef(t, ok, "round %d: expected AUTH, got %v %+v", round, p.Type(), p)
		assert.Equal(t, packets.Success, a.ReasonCode)
		assert.Equal(t, c5Method, a.Properties.AuthMethod)
		assert.Equal(t, []byte("welcome"), a.Properties.AuthData)
	}
	c5Publish(t, b, "again/topic", "still subscribed")
	assert.Equal(t, "still subscribed", string(c5Recv(c).Payload))
}

func TestV5ReauthenticationFailureDisconnects(t *testing.T) {
	// [v5 MQTT-4.12.1-2] a failed re-authentication: DISCONNECT 0x87, and
	// the connection closes. A Reason String that would make the
	// DISCONNECT larger than the client's Maximum Packet Size is left out
	// [v5 MQTT-3.14.2-3] (as User Properties would be [v5 MQTT-3.14.2-4];
	// Tern sends none on DISCONNECT).
	long := strings.Repeat("no ", 100)
	for _, tc := range []struct {
		name    string
		maxSize uint32
		reason  string
	}{
		{"reason string", 0, long},
		{"reason string too large for the client", 64, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := c5AuthBroker(t, c5Challenger{refusal: &tern.ReasonError{Code: packets.NotAuthorized, Reason: long}})
			c := c5Authed(t, addr, "failing", tc.maxSize)
			c.send(c5Auth(packets.ReAuthenticate, nil))
			c5Challenge(c)
			c.send(c5Auth(packets.ContinueAuthentication, []byte("a guess")))
			d := c5Disconnected(c, packets.NotAuthorized)
			assert.Equal(t, tc.reason, d.Properties.ReasonString)
			assert.Empty(t, d.Properties.User)
		})
	}
}

func TestV5ReauthenticationProtocolErrors(t *testing.T) {
	// [v5 MQTT-4.12.1-1] re-authentication uses the connection's method;
	// each step has its reason code: anything else is a Protocol Error,
	// DISCONNECT 0x82 [v5 MQTT-4.13.1-1].
	_, addr := c5AuthBroker(t, c5Challenger{})
	t.Run("another method", func(t *testing.T) {
		c := c5Authed(t, addr, "other-method", 0)
		a := c5Auth(packets.ReAuthenticate, nil)
		a.Properties.AuthMethod = "OTHER"
		c.send(a)
		c5Disconnected(c, packets.ProtocolError)
	})
	t.Run("continue without a re-authentication", func(t *testing.T) {
		c := c5Authed(t, addr, "no-reauth", 0)
		c.send(c5Auth(packets.ContinueAuthentication, nil))
		c5Disconnected(c, packets.ProtocolError)
	})
	t.Run("re-authenticate during one", func(t *testing.T) {
		c := c5Authed(t, addr, "twice", 0)
		c.send(c5Auth(packets.ReAuthenticate, nil))
		c5Challenge(c)
		c.send(c5Auth(packets.ReAuthenticate, nil))
		c5Disconnected(c, packets.ProtocolError)
	})
	t.Run("success code from the client", func(t *testing.T) {
		c := c5Authed(t, addr, "success", 0)
		c.send(c5Auth(packets.Success, bytes.Repeat([]byte{1}, 4)))
		c5Disconnected(c, packets.ProtocolError)
	})
}

func TestV5EnhancedAuthenticationComesBeforeTakeover(t *testing.T) {
	// A CONNECT for a connected client identifier takes the session over
	// only once it has authenticated: a failed exchange leaves the old
	// connection alone; a successful one ends it with DISCONNECT 0x8E
	// [v5 MQTT-3.1.4-3].
	_, addr := c5AuthBroker(t, c5Challenger{})
	old := c5Authed(t, addr, "held", 0)
	c := c5Dial(t, addr)
	c.send(c5AuthConnect("held"))
	c5Challenge(c)
	c.send(c5Auth(packets.ContinueAuthentication, []byte("a guess")))
	c5Refused(c, packets.NotAuthorized)
	c5Ping(old)

	c5Ping(c5Authed(t, addr, "held", 0))
	c5Disconnected(old, packets.SessionTakenOver)
}

func TestV5FailedReauthenticationPublishesTheWill(t *testing.T) {
	// The broker ends the connection: no DISCONNECT from the client, so
	// the will is published [v5 MQTT-3.1.2-8].
	b, addr := c5AuthBroker(t, c5Challenger{})
	w := c5Watch(t, addr, "watcher", "reauth/will")
	c := c5Dial(t, addr)
	cp := c5WithWill(c5AuthConnect("reauth-will"), "reauth/will", "failed again", 0)
	c.send(cp)
	c.send(c5Auth(packets.ContinueAuthentication, c5Answer(c5Challenge(c))))
	ack, ok := c.recv().(*packets.Connack)
	require.True(t, ok && ack.ReturnCode == 0, "expected CONNACK 0x00")
	c.send(c5Auth(packets.ReAuthenticate, nil))
	c5Challenge(c)
	c.send(c5Auth(packets.ContinueAuthentication, nil))
	c5Disconnected(c, packets.NotAuthorized)
	assert.Equal(t, "failed again", string(c5Recv(w).Payload))
	c5Gone(t, b, "reauth-will")
}

func TestV5EnhancedAuthenticationTimesOut(t *testing.T) {
	// A client that does not answer the challenge is closed at the connect
	// timeout, without CONNACK and without DISCONNECT [v5 MQTT-3.14.0-1].
	b, addr := startBroker(t, tern.Options{ConnectTimeout: time.Second})
	hkAdd(t, b, c5Challenger{})
	c := c5Dial(t, addr)
	c.send(c5AuthConnect("silent"))
	c5Challenge(c)
	c.expectClosed()
}
