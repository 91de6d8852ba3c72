package scram_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	mqttpackets "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/brokertest"
	"github.com/ternmq/tern/examples/enhancedauth/scram"
)

const timeout = 5 * time.Second

// start runs a broker whose only user is alice, password s3cret.
func start(t *testing.T) (*brokertest.Server, *scram.Server) {
	t.Helper()
	hook := scram.NewServer()
	hook.SetUser("alice", credentials(t, "s3cret"))
	return brokertest.New(t, brokertest.WithHook(hook)), hook
}

func credentials(t *testing.T, password string) scram.Credentials {
	t.Helper()
	c, err := scram.NewCredentials(password, scram.MinIterations)
	require.NoError(t, err, "NewCredentials")
	return c
}

// connect connects a paho.golang client id over an in-memory connection,
// as user (in the CONNECT) with sc and the Authentication Method method,
// and disconnects it at cleanup if it connected.
func connect(t *testing.T, srv *brokertest.Server, id, user string, sc *scram.Client, method string) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := srv.Dial()
	require.NoError(t, err, "Dial")
	c := paho.NewClient(paho.ClientConfig{Conn: conn, AuthHandler: sc})
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true, UsernameFlag: true, Username: user}
	if method != "" {
		cp.Properties = &paho.ConnectProperties{AuthMethod: method, AuthData: sc.First()}
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err == nil {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	}
	return c, ack, err
}

// reasonString is the Reason String of a CONNACK, or "".
func reasonString(ack *paho.Connack) string {
	if ack == nil || ack.Properties == nil {
		return ""
	}
	return ack.Properties.ReasonString
}

// TestConnect: the right password connects, the client verifies the
// server's signature, and the connection's user name, which the ACL hooks
// see, is the one SCRAM proved.
func TestConnect(t *testing.T) {
	srv, _ := start(t)
	sc := &scram.Client{User: "alice", Password: "s3cret"}
	c, ack, err := connect(t, srv, "dev1", "alice", sc, scram.Method)
	require.NoError(t, err, "connect: CONNACK %+v, reason %q", ack, reasonString(ack))
	require.NotNil(t, ack.Properties, "CONNACK properties")
	assert.Equal(t, scram.Method, ack.Properties.AuthMethod, "CONNACK Authentication Method [v5 MQTT-4.12.0-5]")
	assert.NoError(t, sc.Verify(ack.Properties.AuthData), "the server's signature")

	_, err = c.Publish(t.Context(), &paho.Publish{Topic: "devices/alice/temp", QoS: 1, Payload: []byte("21")})
	require.NoError(t, err, "publish")
	srv.Expect(t, "devices/alice/temp", "21")
	clients := srv.Broker.Clients()
	require.Len(t, clients, 1, "clients")
	assert.Equal(t, "alice", clients[0].Username, "the connection's user name")
}

// TestRefused: a wrong password and an unknown user get the same answer,
// CONNACK 0x86; a SCRAM user name other than the CONNECT's gets 0x87.
func TestRefused(t *testing.T) {
	srv, _ := start(t)
	cases := []struct {
		name, connectUser, scramUser, password string
		code                                   byte
		reason                                 string
	}{
		{"wrong password", "alice", "alice", "guess", 0x86, "wrong user name or password"},
		{"unknown user", "mallory", "mallory", "s3cret", 0x86, "wrong user name or password"},
		{"empty password", "alice", "alice", "", 0x86, "wrong user name or password"},
		{"another user name in the CONNECT", "bob", "alice", "s3cret", 0x87, "SCRAM exchange failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := &scram.Client{User: tc.scramUser, Password: tc.password}
			_, ack, err := connect(t, srv, "dev1", tc.connectUser, sc, scram.Method)
			require.Error(t, err, "connect succeeded")
			require.NotNil(t, ack, "no CONNACK: %v", err)
			assert.Equal(t, tc.code, ack.ReasonCode, "CONNACK reason code")
			assert.Equal(t, tc.reason, reasonString(ack), "CONNACK Reason String")
		})
	}
	assert.Zero(t, srv.Broker.Stats().ClientsConnected, "clients connected")
}

// TestWithoutSCRAM: clients that do not use SCRAM are refused: MQTT 5 with
// 0x8C (bad authentication method), MQTT 3.1.1 with 0x05.
func TestWithoutSCRAM(t *testing.T) {
	srv, _ := start(t)
	for _, method := range []string{"", "PLAIN"} {
		_, ack, err := connect(t, srv, "dev1", "alice", &scram.Client{User: "alice", Password: "s3cret"}, method)
		require.Error(t, err, "connect with method %q succeeded", method)
		require.NotNil(t, ack, "no CONNACK with method %q: %v", method, err)
		assert.Equal(t, byte(0x8C), ack.ReasonCode, "CONNACK reason code with method %q", method)
	}

	v3 := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(srv.URL()).SetClientID("old").
		SetUsername("alice").SetPassword("s3cret").SetAutoReconnect(false).SetConnectTimeout(timeout))
	tok := v3.Connect()
	require.True(t, tok.WaitTimeout(timeout), "MQTT 3.1.1 connect timed out")
	assert.ErrorIs(t, tok.Error(), mqttpackets.ErrorRefusedNotAuthorised, "MQTT 3.1.1 CONNACK")
}

// TestReauthenticate: a connected client proves its password again (AUTH
// 0x19 ... AUTH 0x00); after its password changed on the server, a
// re-authentication with the old one ends the connection with DISCONNECT
// 0x87, and one with the new one succeeds.
func TestReauthenticate(t *testing.T) {
	srv, hook := start(t)
	ctx := t.Context()
	stale := &scram.Client{User: "alice", Password: "s3cret"}
	c1, _, err := connect(t, srv, "dev1", "alice", stale, scram.Method)
	require.NoError(t, err, "connect")
	resp, err := c1.Authenticate(ctx, stale.Reauth())
	require.NoError(t, err, "re-authenticate")
	assert.True(t, resp.Success, "re-authentication: %+v", resp)
	assert.Equal(t, byte(0x00), resp.ReasonCode, "AUTH reason code")

	fresh := &scram.Client{User: "alice", Password: "s3cret"}
	c2, _, err := connect(t, srv, "dev2", "alice", fresh, scram.Method)
	require.NoError(t, err, "connect a second client")

	hook.SetUser("alice", credentials(t, "n3w-s3cret")) // the password changes
	resp, err = c1.Authenticate(ctx, stale.Reauth())
	require.NoError(t, err, "re-authenticate with the old password")
	assert.False(t, resp.Success, "re-authentication with the old password succeeded")
	assert.Equal(t, byte(0x87), resp.ReasonCode, "DISCONNECT reason code [v5 MQTT-4.12.1-2]")
	select {
	case <-c1.Done():
	case <-time.After(timeout):
		require.FailNow(t, "the client is still connected after a failed re-authentication")
	}

	fresh.Password = "n3w-s3cret"
	resp, err = c2.Authenticate(ctx, fresh.Reauth())
	require.NoError(t, err, "re-authenticate with the new password")
	assert.True(t, resp.Success, "re-authentication with the new password: %+v", resp)
	_, err = c2.Publish(ctx, &paho.Publish{Topic: "still/here", QoS: 1, Payload: []byte("yes")})
	require.NoError(t, err, "publish after re-authenticating")
	srv.Expect(t, "still/here", "yes")
}

// impostor accepts any SCRAM client without knowing its password, as a
// server that is not the real one could.
type impostor struct{}

func (impostor) AuthStep(_ context.Context, x *tern.AuthExchange) ([]byte, bool, error) {
	if x.Step == 1 {
		_, nonce, _ := strings.Cut(string(x.Data), ",r=")
		return []byte("r=" + nonce + "fake,s=c2FsdHNhbHRzYWx0c2FsdA==,i=4096"), false, nil
	}
	return []byte("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), true, nil
}

// TestImpostorDetected: a server that accepts the client without its
// credentials cannot sign the exchange; Verify tells.
func TestImpostorDetected(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithHook(impostor{}))
	sc := &scram.Client{User: "alice", Password: "s3cret"}
	_, ack, err := connect(t, srv, "dev1", "alice", sc, scram.Method)
	require.NoError(t, err, "connect to the impostor")
	assert.Error(t, sc.Verify(ack.Properties.AuthData), "Verify accepted the impostor's signature")
}
