package brokertest_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/brokertest"
	"github.com/ternmq/tern/packets"
)

// TestPahoOverTCP drives the server with real client code over Addr:
// messages flow both ways.
func TestPahoOverTCP(t *testing.T) {
	srv := brokertest.New(t)
	host, _, err := net.SplitHostPort(srv.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr() = %q (%v), want 127.0.0.1:port", srv.Addr(), err)
	}
	if srv.URL() != "tcp://"+srv.Addr() {
		t.Errorf("URL() = %q, want tcp://%s", srv.URL(), srv.Addr())
	}

	got := make(chan string, 1)
	c := pahoConnect(t, mqtt.NewClientOptions().AddBroker(srv.URL()).SetClientID("device-1"))
	wait(t, "subscribe", c.Subscribe("devices/1/cmd", 1, func(_ mqtt.Client, m mqtt.Message) {
		got <- string(m.Payload())
	}))
	srv.Publish("devices/1/cmd", "reboot")
	select {
	case p := <-got:
		if p != "reboot" {
			t.Errorf("client got %q, want reboot", p)
		}
	case <-time.After(waitTimeout):
		t.Fatal("client got no message")
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
	if ids := srv.Broker.Clients(); len(ids) != 1 || ids[0].ID != "mem-1" {
		t.Errorf("Clients() = %+v, want mem-1 only", ids)
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
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := ack.(*packets.Puback); !ok || a.PacketID != 7 {
		t.Fatalf("got %#v, want PUBACK 7", ack)
	}
	m := srv.Next(t, "raw/#")
	if m.Topic != "raw/topic" || string(m.Payload) != "hello" || m.QoS != 1 {
		t.Errorf("Next = %+v, want raw/topic hello at QoS 1", m)
	}
	write(t, conn, &packets.Disconnect{})
}

// dialRaw connects over memory, sends CONNECT and checks the CONNACK.
func dialRaw(t *testing.T, srv *brokertest.Server, id string) net.Conn {
	t.Helper()
	conn, err := srv.DialContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	write(t, conn, &packets.Connect{ClientID: id, CleanSession: true, KeepAlive: 30})
	if rc := connack(t, conn); rc != packets.Accepted {
		t.Fatalf("CONNACK return code %#x, want 0", rc)
	}
	return conn
}

func connack(t *testing.T, conn net.Conn) byte {
	t.Helper()
	p, err := packets.NewReader(conn, 16).ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	ca, ok := p.(*packets.Connack)
	if !ok {
		t.Fatalf("got %#v, want CONNACK", p)
	}
	return ca.ReturnCode
}

func write(t *testing.T, conn net.Conn, p interface {
	Append([]byte) ([]byte, error)
}) {
	t.Helper()
	b, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestWithOptions passes tern.Options through: a second connection over
// MaxConnections is refused with CONNACK 0x03.
func TestWithOptions(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP(), brokertest.WithOptions(tern.Options{MaxConnections: 1}))
	dialRaw(t, srv, "first")
	conn, err := srv.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	write(t, conn, &packets.Connect{ClientID: "second", CleanSession: true})
	if rc := connack(t, conn); rc != packets.RefusedServerUnavailable {
		t.Errorf("CONNACK return code %#x, want 0x03", rc)
	}
}

// refuseInternal refuses the application's publishes to "private/#".
type refuseInternal struct{}

var errPrivate = errors.New("private topic")

func (refuseInternal) AuthorizePublish(_ context.Context, c tern.Client, m tern.Message) error {
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
	if got := f.failed(); got != "" {
		t.Fatalf("unexpected failure: %s", got)
	}
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
	if got := f.failed(); got != "" {
		t.Fatalf("unexpected failure: %s", got)
	}
	if _, err := srv.Dial(); err == nil {
		t.Error("Dial after Close succeeded")
	}
	if _, err := net.Dial("tcp", srv.Addr()); err == nil {
		t.Error("TCP dial after Close succeeded")
	}
	if n := len(srv.Messages("a")); n != 1 {
		t.Errorf("Messages after Close: %d, want 1", n)
	}
	f.run(func() { srv.Expect(f, "a", "2") })
	mustFail(t, f, "server is closed", `a "1" (taken)`)
}
