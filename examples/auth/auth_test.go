package main

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/brokertest"
)

const timeout = 5 * time.Second

var tokens = tokenAuth{"dev1": "s3cret", "dev2": "hunter2"}

// connect connects a Paho device and reports the error of the CONNECT.
func connect(t *testing.T, srv *brokertest.Server, id, token string) (mqtt.Client, error) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(srv.URL()).
		SetClientID(id).SetUsername(id).SetPassword(token).
		SetAutoReconnect(false).SetConnectTimeout(timeout))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(timeout), "paho connect: timed out")
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(250) })
	}
	return c, tok.Error()
}

func wait(t *testing.T, tok mqtt.Token) {
	t.Helper()
	require.True(t, tok.WaitTimeout(timeout), "paho: timed out")
	require.NoError(t, tok.Error(), "paho")
}

func TestGoodTokenConnects(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithHook(tokens))
	c, err := connect(t, srv, "dev1", "s3cret")
	require.NoError(t, err, "connect")
	wait(t, c.Publish("devices/dev1/temp", 1, false, "21"))
	srv.Expect(t, "devices/dev1/temp", "21")
}

func TestBadTokenRefused(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithHook(tokens))
	cases := []struct{ name, id, token string }{
		{"wrong token", "dev1", "wrong"},
		{"another device's token", "dev1", "hunter2"},
		{"token prefix", "dev1", "s3c"},
		{"no token", "dev1", ""},
		{"unknown device", "dev3", "s3cret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connect(t, srv, tc.id, tc.token)
			assert.ErrorIs(t, err, packets.ErrorRefusedBadUsernameOrPassword, "connect: want CONNACK 0x04")
		})
	}
}

// TestPublishOutsideSubtreeDropped: a device's PUBLISH outside its subtree
// is acknowledged but not delivered; the application may publish anywhere.
func TestPublishOutsideSubtreeDropped(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithHook(tokens))
	c, err := connect(t, srv, "dev1", "s3cret")
	require.NoError(t, err, "connect")
	wait(t, c.Publish("devices/dev2/cmd", 1, false, "unlock"))
	wait(t, c.Publish("other/topic", 1, false, "x"))
	wait(t, c.Publish("devices/dev1/temp", 1, false, "21"))
	// The broker handles one client's messages in order: once the last is
	// delivered, the first two would have been.
	srv.Expect(t, "devices/dev1/temp", "21")
	got := srv.Messages("#")
	assert.Len(t, got, 1, "delivered %v, want devices/dev1/temp only", got)
	srv.Publish("devices/dev2/cmd", "from the application")
	srv.Expect(t, "devices/dev2/cmd", "from the application")
}

// TestSubscribeOutsideSubtreeRefused: filters outside the device's subtree
// get SUBACK 0x80; its own subtree is granted and delivers.
func TestSubscribeOutsideSubtreeRefused(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithHook(tokens))
	c, err := connect(t, srv, "dev1", "s3cret")
	require.NoError(t, err, "connect")
	// Paho calls the handler once per local filter that matches, refused
	// or not: room for each.
	got := make(chan string, 6)
	tok := c.SubscribeMultiple(map[string]byte{
		"devices/dev1/#":       1,
		"devices/dev2/#":       1,
		"devices/+/cmd":        1,
		"#":                    1,
		"devices/dev1":         1,
		"devices/dev1suffix/#": 1,
	}, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() + " " + string(m.Payload()) })
	wait(t, tok)
	want := map[string]byte{
		"devices/dev1/#":       1,
		"devices/dev2/#":       0x80,
		"devices/+/cmd":        0x80,
		"#":                    0x80,
		"devices/dev1":         0x80,
		"devices/dev1suffix/#": 0x80,
	}
	for filter, code := range tok.(*mqtt.SubscribeToken).Result() {
		assert.Equal(t, want[filter], code, "SUBACK for %q", filter)
	}
	srv.Publish("devices/dev1/cmd", "on")
	select {
	case m := <-got:
		assert.Equal(t, "devices/dev1/cmd on", m, "message on the granted subscription")
	case <-time.After(timeout):
		require.FailNow(t, "no message on the granted subscription")
	}
}

func TestParseTokens(t *testing.T) {
	cases := []struct {
		in      string
		want    tokenAuth
		wantErr bool
	}{
		{in: "dev1=s3cret", want: tokenAuth{"dev1": "s3cret"}},
		{in: "dev1=a, dev2=b=c", want: tokenAuth{"dev1": "a", "dev2": "b=c"}},
		{in: "", wantErr: true},
		{in: "dev1", wantErr: true},
		{in: "dev1=", wantErr: true},
		{in: "=tok", wantErr: true},
		{in: "dev+=tok", wantErr: true},
		{in: "a/b=tok", wantErr: true},
		{in: "dev1=a,dev1=b", wantErr: true},
	}
	for _, tc := range cases {
		got, err := parseTokens(tc.in)
		if !assert.Equal(t, tc.wantErr, err != nil, "parseTokens(%q) error %v: failed", tc.in, err) {
			continue
		}
		assert.Len(t, got, len(tc.want), "parseTokens(%q) = %v, want %v", tc.in, got, tc.want)
		for id, tok := range tc.want {
			assert.Equal(t, tok, got[id], "parseTokens(%q)[%s]", tc.in, id)
		}
	}
}
