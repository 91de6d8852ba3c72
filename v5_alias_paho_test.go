package tern_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// oaTee is a net.Conn that keeps a copy of what it reads.
type oaTee struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
}

func (c *oaTee) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// bytes returns a copy of what was read so far.
func (c *oaTee) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.got.Bytes())
}

// TestV5OutboundAliasPaho: Eclipse Paho's MQTT 5 client (paho.golang),
// announcing a Topic Alias Maximum, receives PUBLISHes that set and then
// use topic aliases, and its router gives each message to the handler of
// its topic.
// [v5 MQTT-3.3.2-11] [v5 MQTT-3.1.2-26] (and the client side of
// [v5 MQTT-3.3.2-10])
func TestV5OutboundAliasPaho(t *testing.T) {
	b, addr := startBroker(t, tern.Options{OutboundTopicAliases: 4})
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	tee := &oaTee{Conn: nc}

	router := paho.NewStandardRouter()
	gotA, gotB, other := make(chan string, 8), make(chan string, 8), make(chan string, 8)
	router.RegisterHandler("oa/paho/a", func(p *paho.Publish) { gotA <- string(p.Payload) })
	router.RegisterHandler("oa/paho/b", func(p *paho.Publish) { gotB <- string(p.Payload) })
	router.DefaultHandler(func(p *paho.Publish) { other <- string(p.Payload) })
	c := paho.NewClient(paho.ClientConfig{
		ClientID: "oa-paho",
		Conn:     tee,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			router.Route(pr.Packet.Packet())
			return true, nil
		}},
	})
	ack, err := c.Connect(m5PahoCtx(t), &paho.Connect{
		ClientID: "oa-paho", KeepAlive: 30, CleanStart: true,
		Properties: &paho.ConnectProperties{TopicAliasMaximum: new(uint16(4))},
	})
	require.NoError(t, err)
	require.Equal(t, byte(0), ack.ReasonCode)
	m5PahoStopAtCleanup(t, c, "oa-paho")
	_, err = c.Subscribe(m5PahoCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "oa/paho/#", QoS: 1}}})
	require.NoError(t, err)

	for i, topic := range []string{"oa/paho/a", "oa/paho/b", "oa/paho/a", "oa/paho/b", "oa/paho/a"} {
		c5Publish(t, b, topic, fmt.Sprint(i))
	}
	recv := func(ch <-chan string) string {
		t.Helper()
		select {
		case s := <-ch:
			return s
		case <-time.After(waitTimeout):
			t.Fatal("timed out waiting for a message")
			return ""
		}
	}
	assert.Equal(t, []string{"0", "2", "4"}, []string{recv(gotA), recv(gotA), recv(gotA)})
	assert.Equal(t, []string{"1", "3"}, []string{recv(gotB), recv(gotB)})
	assert.Empty(t, other, "every message went to its topic's handler")

	// What Paho read: two PUBLISHes setting an alias, three using one.
	r := packets.NewReader(bytes.NewReader(tee.bytes()), 0)
	r.SetVersion(packets.Level5)
	set, used := 0, 0
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if pub, ok := p.(*packets.Publish); ok {
			require.True(t, pub.Props.HasTopicAlias, "a Topic Alias on %q", pub.Payload)
			if pub.Topic != "" {
				set++
			} else {
				used++
			}
		}
	}
	assert.Equal(t, 2, set, "PUBLISHes setting an alias")
	assert.Equal(t, 3, used, "PUBLISHes using an alias")
}
