package brokertest_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/brokertest"
	"github.com/ternmq/tern/packets"
)

// TestPahoOverTCP drives the server with real client code over Addr:
// messages flow both ways.
func TestPahoOverTCP(t *testing.T) {
	srv := brokertest.New(t)
	host, _, err := net.SplitHostPort(srv.Addr())
	require.NoError(t, err, "Addr() = %q, want 127.0.0.1:port", srv.Addr())
	require.Equal(t, "127.0.0.1", host, "Addr() = %q, want 127.0.0.1:port", srv.Addr())
	assert.Equal(t, "tcp://"+srv.Addr(), srv.URL(), "URL()")

	got := make(chan string, 1)
	c := pahoConnect(t, mqtt.NewClientOptions().AddBroker(srv.URL()).SetClientID("device-1"))
	wait(t, "subscribe", c.Subscribe("devices/1/cmd", 1, func(_ mqtt.Client, m mqtt.Message) {
		got <- string(m.Payload())
	}))
	srv.Publish("devices/1/cmd", "reboot")
	select {
	case p := <-got:
		assert.Equal(t, "reboot", p, "payload the client got")
	case <-time.After(waitTimeout):
		require.FailNow(t, "client got no message")
	}

	wait(t, "publish", c.Publish("devices/1/status", 1, false, "up"))
	srv.Expect(t, "devices/1/status", "up")
}

// TestPahoInMemory connects Paho through Dial: no network at all.
func TestPahoInMemory(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	opts := mqtt.NewClientOptions().AddBroker("tcp://in-memory").SetClientID("mem-1").
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) { return srv.Dial() })
	c := pahoConnect(t, opts)
	wait(t, "publish", c.Publish("sensors/1/temp", 0, false, "21.5"))
	srv.Expect(t, "sensors/+/temp", "21.5")
	ids := srv.Broker.Clients()
	if assert.Len(t, ids, 1, "Clients() = %+v, want mem-1 only", ids) {
		assert.Equal(t, "mem-1", ids[0].ID, "Clients() = %+v, want mem-1 only", ids)
	}
}

// TestRawConnectInMemory speaks MQTT by hand over DialContext.
func TestRawConnectInMemory(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	conn := dialRaw(t, srv, "raw-1")
	r := packets.NewReader(conn, 1<<16)

	pub := &packets.Publish{Topic: "raw/topic", Payload: []byte("hello"), QoS: 1, PacketID: 7}
	write(t, conn, pub)
	ack, err := r.ReadPacket()
	require.NoError(t, err, "reading the PUBACK")
	require.Equal(t, &packets.Puback{PacketID: 7}, ack, "answer to a QoS 1 PUBLISH")
	m := srv.Next(t, "raw/#")
	assert.Equal(t, "raw/topic", m.Topic, "Next = %+v, want raw/topic hello at QoS 1", m)
	assert.Equal(t, "hello", string(m.Payload), "Next = %+v, want raw/topic hello at QoS 1", m)
	assert.Equal(t, byte(1), m.QoS, "Next = %+v, want raw/topic hello at QoS 1", m)
	write(t, conn, &packets.Disconnect{})
}

// dialRaw connects over memory, sends CONNECT and checks the CONNACK.
func dialRaw(t *testing.T, srv *brokertest.Server, id string) net.Conn {
	t.Helper()
	conn, err := srv.DialContext(t.Context())
	require.NoError(t, err, "DialContext")
	t.Cleanup(func() { conn.Close() })
	write(t, conn, &packets.Connect{ClientID: id, CleanSession: true, KeepAlive: 30})
	require.Equal(t, packets.Accepted, connack(t, conn), "CONNACK return code")
	return conn
}

func connack(t *testing.T, conn net.Conn) byte {
	t.Helper()
	p, err := packets.NewReader(conn, 16).ReadPacket()
	require.NoError(t, err, "reading the CONNACK")
	require.IsType(t, &packets.Connack{}, p, "answer to CONNECT")
	return p.(*packets.Connack).ReturnCode
}

func write(t *testing.T, conn net.Conn, p interface {
	Append([]byte) ([]byte, error)
}) {
	t.Helper()
	b, err := p.Append(nil)
	require.NoError(t, err, "encoding %T", p)
	_, err = conn.Write(b)
	require.NoError(t, err, "writing %T", p)
}

// TestWithOptions passes tern.Options through: a second connection over
// MaxConnections is refused with CONNACK 0x03.
func TestWithOptions(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP(), brokertest.WithOptions(tern.Options{MaxConnections: 1}))
	dialRaw(t, srv, "first")
	conn, err := srv.Dial()
	require.NoError(t, err, "Dial")
	defer conn.Close()
	write(t, conn, &packets.Connect{ClientID: "second", CleanSession: true})
	assert.Equal(t, packets.RefusedServerUnavailable, connack(t, conn), "CONNACK return code over MaxConnections")
}

// refuseInternal drops the application's publishes to "private/#" (an
// interceptor: authorizers are not asked about application code).
type refuseInternal struct{}

var errPrivate = errors.New("private topic")

func (refuseInternal) InterceptPublish(_ context.Context, c tern.Client, m *tern.Message) error {
	if c.Internal && len(m.Topic) >= 8 && m.Topic[:8] == "private/" {
		return errPrivate
	}
	return nil
}

func TestWithHook(t *testing.T) {
	f := newFake(t)
	var srv *brokertest.Server
	f.run(func() { srv = brokertest.New(f, brokertest.WithHook(refuseInternal{}), brokertest.WithoutTCP()) })
	f.run(func() { srv.Publish("public/a", "ok") })
	require.Empty(t, f.failed(), "unexpected failure")
	f.run(func() { srv.PublishMessage(tern.Message{Topic: "private/a", Payload: []byte("no"), QoS: 1}) })
	mustFail(t, f, `publish to "private/a"`, "private topic")
}

// TestNewFails checks that New fails the test, naming the cause.
func TestNewFails(t *testing.T) {
	cases := []struct {
		name string
		opts []brokertest.Option
		want string
	}{
		{"not a hook", []brokertest.Option{brokertest.WithHook(42)}, "WithHook(int)"},
		{"bad options", []brokertest.Option{brokertest.WithOptions(tern.Options{MaxInflight: -1})}, "MaxInflight"},
		{"bad timeout", []brokertest.Option{brokertest.WithTimeout(0)}, "WithTimeout"},
		{"bad history", []brokertest.Option{brokertest.WithHistory(-1)}, "WithHistory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.run(func() { brokertest.New(f, tc.opts...) })
			mustFail(t, f, "brokertest", tc.want)
		})
	}
}

func TestAddrWithoutTCP(t *testing.T) {
	f := newFake(t)
	var srv *brokertest.Server
	f.run(func() { srv = brokertest.New(f, brokertest.WithoutTCP()) })
	f.run(func() { srv.Addr() })
	mustFail(t, f, "WithoutTCP")
}

// TestClose stops the broker early: clients are refused, the record stays,
// and waiting for a new message fails at once instead of at the timeout.
func TestClose(t *testing.T) {
	f := newFake(t)
	var srv *brokertest.Server
	f.run(func() { srv = brokertest.New(f) })
	f.run(func() { srv.Publish("a", "1"); srv.Expect(f, "a", "1") })
	srv.Close()
	srv.Close()
	require.Empty(t, f.failed(), "unexpected failure")
	_, err := srv.Dial()
	assert.Error(t, err, "Dial after Close succeeded")
	_, err = net.Dial("tcp", srv.Addr())
	assert.Error(t, err, "TCP dial after Close succeeded")
	assert.Len(t, srv.Messages("a"), 1, "Messages after Close")
	f.run(func() { srv.Expect(f, "a", "2") })
	mustFail(t, f, "server is closed", `a "1" (taken)`)
}
