// Package mqtttest is a small MQTT client for the cluster's tests: it
// speaks the packets as they are, so a test can stop a flow half way
// (a QoS 2 publisher that moves to another node between PUBLISH and
// PUBREL) and see flags such as DUP and session present.
package mqtttest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/ternmq/tern/packets"
)

// Client is one MQTT connection. Received PUBLISH packets are
// acknowledged (PUBACK, or PUBREC then PUBCOMP on PUBREL) and queued for
// Message; other packets are queued for Packet.
type Client struct {
	conn    net.Conn
	version byte
	wmu     sync.Mutex
	msgs    chan *packets.Publish
	ctrl    chan packets.Packet
	done    chan struct{}
	err     error // why the connection ended, after done
	mu      sync.Mutex
	nextID  uint16
}

// Options are the CONNECT's fields that tests vary.
type Options struct {
	ClientID string
	Clean    bool
	V5       bool
	// Expiry is the MQTT 5 Session Expiry Interval.
	Expiry uint32
	// Will, if Topic is set.
	WillTopic   string
	WillPayload []byte
	WillQoS     byte
	// WillDelay is the MQTT 5 Will Delay Interval.
	WillDelay uint32
	KeepAlive uint16
}

// ErrRefused wraps a CONNACK that refused the connection.
var ErrRefused = errors.New("mqtttest: CONNECT refused")

// Dial connects to addr and sends CONNECT; it returns the CONNACK (also
// when it refuses: the error then wraps ErrRefused).
func Dial(addr string, o Options, timeout time.Duration) (*Client, *packets.Connack, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, nil, err
	}
	c := &Client{
		conn: nc, version: packets.Level311,
		msgs: make(chan *packets.Publish, 1<<16), ctrl: make(chan packets.Packet, 1024), done: make(chan struct{}),
	}
	cp := &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: packets.Level311, CleanSession: o.Clean, KeepAlive: o.KeepAlive, ClientID: o.ClientID}
	if o.V5 {
		c.version = packets.Level5
		cp.ProtocolLevel = packets.Level5
		if o.Expiry > 0 {
			cp.Properties.SessionExpiry = &o.Expiry
		}
	}
	if o.WillTopic != "" {
		cp.WillFlag, cp.WillTopic, cp.WillMessage, cp.WillQoS = true, o.WillTopic, o.WillPayload, o.WillQoS
		if o.V5 && o.WillDelay > 0 {
			cp.WillProperties.WillDelay = &o.WillDelay
		}
	}
	if err := c.write(cp); err != nil {
		nc.Close()
		return nil, nil, err
	}
	r := packets.NewReader(nc, 0)
	r.SetVersion(c.version)
	nc.SetReadDeadline(time.Now().Add(timeout))
	p, err := r.ReadPacket()
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("mqtttest: reading CONNACK: %w", err)
	}
	ack, ok := p.(*packets.Connack)
	if !ok {
		nc.Close()
		return nil, nil, fmt.Errorf("mqtttest: %v instead of CONNACK", p.Type())
	}
	if ack.ReturnCode != 0 {
		nc.Close()
		return nil, ack, fmt.Errorf("%w: code 0x%02x", ErrRefused, ack.ReturnCode)
	}
	nc.SetReadDeadline(time.Time{})
	go c.read(r)
	return c, ack, nil
}

// read receives packets until the connection ends.
func (c *Client) read(r *packets.Reader) {
	defer close(c.done)
	for {
		p, err := r.ReadPacket()
		if err != nil {
			c.err = err
			return
		}
		switch p := p.(type) {
		case *packets.Publish:
			switch p.QoS {
			case 1:
				c.write(&packets.Puback{Version: c.version, PacketID: p.PacketID})
			case 2:
				c.write(&packets.Pubrec{Version: c.version, PacketID: p.PacketID})
			}
			c.msgs <- p
		case *packets.Pubrel:
			c.write(&packets.Pubcomp{Version: c.version, PacketID: p.PacketID})
		default:
			c.ctrl <- p
		}
	}
}

// write sends one packet.
func (c *Client) write(p packets.Packet) error {
	b, err := p.Append(nil)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.conn.Write(b)
	return err
}

// Send writes p as it is.
func (c *Client) Send(p packets.Packet) error { return c.write(p) }

// ID returns a new packet identifier.
func (c *Client) ID() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// Packet returns the next packet other than PUBLISH and PUBREL.
func (c *Client) Packet(timeout time.Duration) (packets.Packet, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-c.ctrl:
		return p, nil
	case <-c.done:
		select {
		case p := <-c.ctrl:
			return p, nil
		default:
		}
		return nil, fmt.Errorf("mqtttest: connection ended: %w", c.err)
	case <-t.C:
		return nil, errors.New("mqtttest: no packet in time")
	}
}

// Message returns the next PUBLISH received.
func (c *Client) Message(timeout time.Duration) (*packets.Publish, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-c.msgs:
		return p, nil
	case <-t.C:
		return nil, errors.New("mqtttest: no message in time")
	}
}

// MessageNotOn returns the next PUBLISH received within timeout that is
// not on topic skip (a test's probes, say), dropping those that are.
func (c *Client) MessageNotOn(skip string, timeout time.Duration) (*packets.Publish, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.Message(time.Until(deadline))
		if err != nil || m.Topic != skip {
			return m, err
		}
	}
}

// Drain drops what c receives until it has been quiet for quiet.
func (c *Client) Drain(quiet time.Duration) {
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case <-c.msgs:
			t.Reset(quiet)
		case <-t.C:
			return
		}
	}
}

// Probe publishes QoS 0 messages on topic from pub until sub receives one
// (its subscription has taken effect on every node), or timeout passes;
// it then drops what sub receives until it has been quiet for 200 ms.
// Probes still on their way may arrive later: see MessageNotOn.
func Probe(pub, sub *Client, topic string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := pub.Publish(topic, []byte("probe"), 0, false, timeout); err != nil {
			return err
		}
		if _, err := sub.Message(50 * time.Millisecond); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mqtttest: no probe on %s arrived in %s", topic, timeout)
		}
	}
	sub.Drain(200 * time.Millisecond)
	return nil
}

// DialAll connects to addrs[i] with opts[i], every one at once (clients
// racing for one identifier, say); a client is nil where its CONNECT
// failed or was refused.
func DialAll(addrs []string, opts []Options, timeout time.Duration) []*Client {
	clients := make([]*Client, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			if c, _, err := Dial(addr, opts[i], timeout); err == nil {
				clients[i] = c
			}
		})
	}
	wg.Wait()
	return clients
}

// Open counts the clients (nil ones aside) whose connection is open.
func Open(clients []*Client) int {
	n := 0
	for _, c := range clients {
		if c == nil {
			continue
		}
		select {
		case <-c.done:
		default:
			n++
		}
	}
	return n
}

// Messages is the channel of received PUBLISH packets.
func (c *Client) Messages() <-chan *packets.Publish { return c.msgs }

// Subscribe subscribes to filter and returns the SUBACK's code.
func (c *Client) Subscribe(filter string, qos byte, timeout time.Duration) (byte, error) {
	id := c.ID()
	if err := c.write(&packets.Subscribe{Version: c.version, PacketID: id, Subscriptions: []packets.Subscription{{Filter: filter, QoS: qos}}}); err != nil {
		return 0, err
	}
	p, err := c.Packet(timeout)
	if err != nil {
		return 0, err
	}
	sa, ok := p.(*packets.Suback)
	if !ok || sa.PacketID != id || len(sa.ReturnCodes) != 1 {
		return 0, fmt.Errorf("mqtttest: %v instead of SUBACK %d", p.Type(), id)
	}
	return sa.ReturnCodes[0], nil
}

// Publish publishes and completes the QoS flow; for QoS 1 and 2 it
// returns the acknowledgement's reason code (0 for 3.1.1).
func (c *Client) Publish(topic string, payload []byte, qos byte, retain bool, timeout time.Duration) (packets.ReasonCode, error) {
	p := &packets.Publish{Version: c.version, Topic: topic, Payload: payload, QoS: qos, Retain: retain}
	if qos > 0 {
		p.PacketID = c.ID()
	}
	if err := c.write(p); err != nil || qos == 0 {
		return 0, err
	}
	ack, err := c.Packet(timeout)
	if err != nil {
		return 0, err
	}
	switch a := ack.(type) {
	case *packets.Puback:
		return a.ReasonCode, nil
	case *packets.Pubrec:
		if a.ReasonCode >= 0x80 {
			return a.ReasonCode, nil
		}
		if err := c.write(&packets.Pubrel{Version: c.version, PacketID: p.PacketID}); err != nil {
			return 0, err
		}
		comp, err := c.Packet(timeout)
		if err != nil {
			return 0, err
		}
		if _, ok := comp.(*packets.Pubcomp); !ok {
			return 0, fmt.Errorf("mqtttest: %v instead of PUBCOMP", comp.Type())
		}
		return a.ReasonCode, nil
	}
	return 0, fmt.Errorf("mqtttest: %v instead of an acknowledgement", ack.Type())
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Disconnect sends DISCONNECT and closes the connection.
func (c *Client) Disconnect() {
	c.write(&packets.Disconnect{Version: c.version})
	c.conn.Close()
	<-c.done
}

// Drop closes the connection without DISCONNECT (the will goes out).
func (c *Client) Drop() {
	c.conn.Close()
	<-c.done
}
