package tern_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

func TestNewRejectsBadOptionsNamingTheField(t *testing.T) {
	cases := []struct {
		field string
		opts  tern.Options
	}{
		{"ConnectTimeout", tern.Options{ConnectTimeout: -1}},
		{"MaxPacketSize", tern.Options{MaxPacketSize: -5}},
		{"MaxPacketSize", tern.Options{MaxPacketSize: 10}},
		{"MaxConnections", tern.Options{MaxConnections: -1}},
		{"MaxInflight", tern.Options{MaxInflight: 70000}},
		{"MaxQueued", tern.Options{MaxQueued: -2}},
		{"MaxPending", tern.Options{MaxPending: -1}},
		{"WriteTimeout", tern.Options{WriteTimeout: -time.Second}},
		{"HandlerQueue", tern.Options{HandlerQueue: -1}},
		{"MaxClientIDLength", tern.Options{MaxClientIDLength: 1 << 20}},
	}
	for _, tc := range cases {
		_, err := tern.New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), "Options."+tc.field) {
			t.Errorf("New(%+v) = %v, want an error naming Options.%s", tc.opts, err, tc.field)
		}
	}
}

func TestCloseIsIdempotentAndStopsServe(t *testing.T) {
	b, err := tern.New(tern.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	c := mustConnect(t, l.Addr().String(), "c1", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := <-served; !errors.Is(err, tern.ErrClosed) {
		t.Fatalf("Serve = %v, want ErrClosed", err)
	}
	c.expectClosed()
	if err := b.Serve(l); !errors.Is(err, tern.ErrClosed) {
		t.Fatalf("Serve after Close = %v", err)
	}
}

func TestPublishSubscribeEachQoS(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	ack := sub.subscribe(1, packets.Subscription{Filter: "a/+", QoS: 2})
	if len(ack.ReturnCodes) != 1 || ack.ReturnCodes[0] != 2 {
		t.Fatalf("SUBACK %v", ack.ReturnCodes)
	}
	pub := mustConnect(t, addr, "pub", true)
	for qos := byte(0); qos <= 2; qos++ {
		pub.publishQoS(uint16(qos+1), "a/b", "hello", qos, false)
		got := sub.recvPublish()
		if got.Topic != "a/b" || string(got.Payload) != "hello" || got.QoS != qos || got.Retain || got.Dup {
			t.Fatalf("qos %d: got %+v", qos, got)
		}
		switch qos {
		case 1:
			sub.send(&packets.Puback{PacketID: got.PacketID})
		case 2:
			sub.send(&packets.Pubrec{PacketID: got.PacketID})
			if rel, ok := sub.recv().(*packets.Pubrel); !ok || rel.PacketID != got.PacketID {
				t.Fatalf("expected PUBREL")
			}
			sub.send(&packets.Pubcomp{PacketID: got.PacketID})
		}
	}
}

func TestClientPublishToSysBrokerIsAcknowledgedButDropped(t *testing.T) {
	b, addr := startBroker(t, tern.Options{})
	sub := mustConnect(t, addr, "sub", true)
	sub.subscribe(1, packets.Subscription{Filter: "$SYS/#", QoS: 1}, packets.Subscription{Filter: "ok", QoS: 1})
	pub := mustConnect(t, addr, "pub", true)
	pub.publishQoS(1, "$SYS/broker/version", "forged", 1, true)
	pub.publishQoS(2, "$SYS/broker/uptime", "forged", 2, false)
	pub.publishQoS(3, "ok", "marker", 0, false)
	// The marker is the first thing the subscriber sees: nothing from $SYS.
	if got := sub.recvPublish(); got.Topic != "ok" {
		t.Fatalf("got %q, want only the marker", got.Topic)
	}
	if st := b.Stats(); st.Retained != 0 || st.PublishDropped != 2 {
		t.Fatalf("retained %d, dropped %d; want 0 and 2", st.Retained, st.PublishDropped)
	}
}

// A violation right behind an accepted CONNECT, in the same write, still
// lets the CONNACK out before the close [MQTT-3.2.0-1] [MQTT-4.8.0-1].
func TestConnackLeavesBeforeTheCloseOfAViolationInTheSameWrite(t *testing.T) {
	_, addr := startBroker(t, tern.Options{})
	for i := 0; i < 20; i++ {
		c := dialRaw(t, addr)
		connect, _ := (&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "v", CleanSession: true}).Append(nil)
		c.sendRaw(append(connect, 0xC1, 0)) // PINGREQ with a reserved flag set
		if ack, ok := c.recv().(*packets.Connack); !ok || ack.ReturnCode != 0 {
			t.Fatalf("run %d: expected CONNACK 0, got %+v", i, ack)
		}
		c.expectClosed()
	}
}
