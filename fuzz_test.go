package tern_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/packets"
)

// FuzzBroker feeds each input to a running broker over one connection and
// checks that the broker survives it: no panic (a panic in any broker
// goroutine ends the process, which the fuzzer reports), no deadlock (a
// second, well-behaved client completes a QoS 1 round trip after every
// input, within a deadline), and no goroutine left behind once the fuzzed
// connection is closed.
//
// The first byte of an input chooses what it is. From 0x10 to 0x7F, it is
// written as it is: a raw byte stream (the seeds are valid MQTT 3.1.1
// packet sequences, which the fuzzer mutates). From 0x80, it is a program:
// the bytes after it choose well-formed MQTT 3.1.1 packets (CONNECT,
// PUBLISH at each QoS, the acknowledgements, SUBSCRIBE, UNSUBSCRIBE,
// PINGREQ, DISCONNECT), raw bytes and write boundaries, so that valid
// packets arrive in every order. Below 0x10 (packet type 0, which no valid
// stream starts with), it is an MQTT 5 input: a valid MQTT 5 CONNECT with
// properties, then raw bytes or an MQTT 5 program (fuzz_v5_test.go).
//
// Two well-behaved clients, one of each protocol level, are served after
// every input.
//
// One broker, on the in-memory listener, serves every input of a fuzzing
// process. Run it with
//
//	go test -run='^$' -fuzz=FuzzBroker -fuzztime=10m -parallel=1 .
//
// Crashers are kept under testdata/fuzz/FuzzBroker and run by plain go test.
func FuzzBroker(f *testing.F) {
	for _, seed := range append(fzSeeds(), fzSeeds5()...) {
		f.Add(seed)
	}
	var (
		once sync.Once
		env  *fzEnv
		err  error
	)
	f.Cleanup(func() {
		if env != nil {
			env.close(f)
		}
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		once.Do(func() { env, err = newFzEnv() })
		if err != nil {
			t.Fatalf("starting the broker: %v", err)
		}
		env.run(t, data)
	})
}

// fzDeadline bounds every wait of one fuzz input; past it the broker is
// taken to be deadlocked.
const fzDeadline = 10 * time.Second

// fzMaxInput bounds the bytes of one input that are written.
const fzMaxInput = 64 << 10

// fzEnv is the broker of one fuzzing process and its well-behaved client.
type fzEnv struct {
	b        *tern.Broker
	l        *listeners.Memory
	served   chan error
	before   int     // goroutines before the broker started
	baseline int     // goroutines with the broker and the good client idle
	idle     int     // reader goroutines waiting for work at the baseline
	good     *fzGood // MQTT 3.1.1
	good5    *fzGood // MQTT 5
}

func newFzEnv() (*fzEnv, error) {
	e := &fzEnv{before: runtime.NumGoroutine(), l: listeners.NewMemory(), served: make(chan error, 1)}
	b, err := tern.New(tern.Options{
		SysInterval:           -1,
		MaxQueued:             64,
		MaxInflight:           16,
		MaxPacketSize:         256 << 10,
		ConnectTimeout:        2 * time.Second,
		WriteTimeout:          2 * time.Second,
		ReceiveMaximum:        8,
		TopicAliasMaximum:     4,
		ValidatePayloadFormat: true,
		ResponseInformation:   "fz/response/",
	})
	if err != nil {
		return nil, err
	}
	if err := b.AddHook(fzAuth{}); err != nil {
		return nil, err
	}
	e.b = b
	go func() { e.served <- b.Serve(e.l) }()
	if e.good, err = newFzGood(e.l, packets.Level311); err == nil {
		e.good5, err = newFzGood(e.l, packets.Level5)
	}
	if err != nil {
		b.Close(context.Background())
		return nil, err
	}
	e.baseline, e.idle = runtime.NumGoroutine(), tern.IdleReaders(b)
	return e, nil
}

func (e *fzEnv) close(tb testing.TB) {
	e.good.nc.Close()
	e.good5.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), fzDeadline)
	defer cancel()
	if err := e.b.Close(ctx); err != nil {
		tb.Errorf("Close: %v", err)
	}
	if err := <-e.served; !errors.Is(err, tern.ErrClosed) {
		tb.Errorf("Serve returned %v, want ErrClosed", err)
	}
	waitGoroutines(tb, e.before)
}

// run feeds one input to a fresh connection, checks that the good client
// is still served, closes the connection and waits for the broker to let
// go of it.
func (e *fzEnv) run(t *testing.T, data []byte) {
	if len(data) > fzMaxInput {
		data = data[:fzMaxInput]
	}
	// A deadlocked broker can block what has no deadline of its own (Dial
	// waits for Accept, Clients for the broker's locks): past every
	// deadline, end the process with every goroutine's stack, which the
	// fuzzer reports with the input.
	watchdog := time.AfterFunc(3*fzDeadline, func() {
		panic(fmt.Sprintf("FuzzBroker: input %x hung\n%s", data, fzStacks()))
	})
	defer watchdog.Stop()
	nc, err := e.l.Dial()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	drained := make(chan struct{})
	go func() { // read and discard what the broker answers
		defer close(drained)
		buf := make([]byte, 4096)
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}()
	nc.SetWriteDeadline(time.Now().Add(fzDeadline))
	for _, chunk := range fzChunks(data) {
		if _, err := nc.Write(chunk); err != nil {
			break // the broker closed the connection: that is allowed
		}
	}
	e.roundTrips(t, "after the input")
	nc.Close()
	<-drained
	e.waitIdle(t)
	e.roundTrips(t, "after the connection closed")
}

// roundTrips checks that both well-behaved clients are served.
func (e *fzEnv) roundTrips(t *testing.T, when string) {
	for _, g := range []*fzGood{e.good, e.good5} {
		if err := g.roundTrip(); err != nil {
			t.Fatalf("the well-behaved MQTT level %d client was not served %s: %v\n%s", g.version, when, err, fzStacks())
		}
	}
}

// waitIdle waits until the fuzzed connection is gone: no session but the
// good client's is connected, and the broker runs no more goroutines than
// when it was idle, besides the reader goroutines kept waiting for work
// (a bounded number).
func (e *fzEnv) waitIdle(t *testing.T) {
	deadline := time.Now().Add(fzDeadline)
	for {
		connected := 0
		for _, ci := range e.b.Clients() {
			if ci.Connected && ci.ID != e.good.id && ci.ID != e.good5.id {
				connected++
			}
		}
		n := runtime.NumGoroutine() - (tern.IdleReaders(e.b) - e.idle)
		if connected == 0 && n <= e.baseline {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed connection was not let go: %d other clients connected, %d goroutines (not counting waiting readers), want <= %d\n%s",
				connected, n, e.baseline, fzStacks())
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond) // polling interval
	}
}

func fzStacks() []byte {
	buf := make([]byte, 1<<20)
	return buf[:runtime.Stack(buf, true)]
}

// fzGood is a well-behaved client: subscribed at QoS 1 to a topic of its
// own, it publishes there at QoS 1 and expects both the PUBACK and its
// message back, acknowledging on the way what the inputs published. Its
// client identifier and topic are random, so that no input can take its
// session over. The MQTT 5 one publishes with properties, and subscribes
// with a Subscription Identifier and to a shared subscription as well.
type fzGood struct {
	version   byte
	id, topic string
	nc        net.Conn
	r         *packets.Reader
	seq       uint16
}

func newFzGood(l *listeners.Memory, version byte) (*fzGood, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	g := &fzGood{version: version, id: fmt.Sprintf("good%d-%s", version, hex.EncodeToString(rnd[:]))}
	g.topic = "good/" + g.id
	nc, err := l.Dial()
	if err != nil {
		return nil, err
	}
	g.nc, g.r = nc, packets.NewReader(nc, 0)
	g.r.SetVersion(version)
	if err := g.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: version, ClientID: g.id, CleanSession: true}); err != nil {
		return nil, err
	}
	if p, err := g.next(); err != nil {
		return nil, err
	} else if ack, ok := p.(*packets.Connack); !ok || ack.ReturnCode != 0 {
		return nil, fmt.Errorf("good client: got %v, want CONNACK 0", p.Type())
	}
	// It also takes everything the inputs publish under fz/, so that a
	// broker that stops writing to a subscriber after some input fails the
	// round trip.
	sub := &packets.Subscribe{Version: version, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: g.topic, QoS: 1}, {Filter: "fz/#", QoS: 1}}}
	if version == packets.Level5 {
		sub.Properties.SubscriptionIDs = []uint32{5}
		sub.Subscriptions = append(sub.Subscriptions, packets.Subscription{Filter: "$share/good/fz/#", QoS: 1})
	}
	if err := g.send(sub); err != nil {
		return nil, err
	}
	if p, err := g.next(); err != nil {
		return nil, err
	} else if _, ok := p.(*packets.Suback); !ok {
		return nil, fmt.Errorf("good client: got %v, want SUBACK", p.Type())
	}
	return g, nil
}

func (g *fzGood) send(p packets.Packet) error {
	b, err := p.Append(nil)
	if err != nil {
		return err
	}
	g.nc.SetWriteDeadline(time.Now().Add(fzDeadline))
	_, err = g.nc.Write(b)
	return err
}

func (g *fzGood) next() (packets.Packet, error) {
	g.nc.SetReadDeadline(time.Now().Add(fzDeadline))
	return g.r.ReadPacket()
}

// roundTrip publishes one QoS 1 message to the good client's topic and
// waits for its PUBACK and for the message itself, which it acknowledges.
func (g *fzGood) roundTrip() error {
	g.seq = g.seq%65535 + 1
	payload := []byte(fmt.Sprintf("good %d", g.seq))
	pub := &packets.Publish{Version: g.version, Topic: g.topic, QoS: 1, PacketID: g.seq, Payload: payload}
	if g.version == packets.Level5 {
		pub.Props = packets.PublishProps{HasMessageExpiry: true, MessageExpiry: 60, HasPayloadFormat: true, PayloadFormat: 1}
		pub.Props.Raw, _ = packets.AppendPublishRaw(nil, &packets.Properties{User: []packets.UserProperty{{Key: "good", Value: "5"}}})
	}
	if err := g.send(pub); err != nil {
		return err
	}
	gotAck, gotMsg := false, false
	for !gotAck || !gotMsg {
		p, err := g.next()
		if err != nil {
			return err
		}
		switch p := p.(type) {
		case *packets.Puback:
			if p.PacketID != g.seq || p.ReasonCode != packets.Success {
				return fmt.Errorf("PUBACK %d 0x%02x, want %d 0x00", p.PacketID, byte(p.ReasonCode), g.seq)
			}
			gotAck = true
		case *packets.Publish:
			if p.QoS > 0 {
				if err := g.send(&packets.Puback{Version: g.version, PacketID: p.PacketID}); err != nil {
					return err
				}
			}
			if p.Topic != g.topic {
				continue // published by an input
			}
			if !bytes.Equal(p.Payload, payload) {
				return fmt.Errorf("got %q, want %q", p.Payload, payload)
			}
			gotMsg = true
		default:
			return fmt.Errorf("unexpected %v", p.Type())
		}
	}
	return nil
}

// fzChunks turns an input into the writes to make: a raw input is one
// write; a program is compiled to packets, split where it says so.
func fzChunks(data []byte) [][]byte {
	if fzIsV5(data) {
		return fzChunks5(data)
	}
	if len(data) == 0 || data[0] < 0x80 {
		return [][]byte{data}
	}
	p := fzProgram{in: data[1:]}
	return p.compile()
}

// fzProgram compiles a program input: each operation byte chooses a packet
// and the bytes after it its parameters.
type fzProgram struct {
	in     []byte
	chunks [][]byte
	cur    []byte
}

// fzTopic and fzFilter choose among a few topic names and filters that
// overlap, so that programs publish to what they subscribed to.
func fzTopic(i byte) string {
	names := [...]string{"fz/a", "fz/b", "fz/a/b", "fz/\u00e9t\u00e9", "$SYS/fz"}
	return names[int(i)%len(names)]
}

func fzFilter(i byte) string {
	filters := [...]string{"#", "fz/#", "fz/+", "+/+/#", "fz/a", "$SYS/#", "fz/+/b"}
	return filters[int(i)%len(filters)]
}

// arg returns the next parameter byte, 0 once the input is used up.
func (p *fzProgram) arg() byte {
	if len(p.in) == 0 {
		return 0
	}
	c := p.in[0]
	p.in = p.in[1:]
	return c
}

func (p *fzProgram) add(pk packets.Packet) {
	if b, err := pk.Append(p.cur); err == nil {
		p.cur = b
	}
}

func (p *fzProgram) compile() [][]byte {
	for len(p.in) > 0 {
		op := p.arg() % 15
		switch op {
		case 0:
			p.add(p.connect())
		case 1, 2, 3:
			qos := op - 1
			a := p.arg()
			pub := &packets.Publish{Topic: fzTopic(a), QoS: qos, Retain: a&0x80 != 0,
				Payload: bytes.Repeat([]byte{'x'}, int(p.arg()%8)*37)}
			if qos > 0 {
				pub.PacketID = uint16(p.arg()%4) + 1
				pub.Dup = a&0x40 != 0
			}
			p.add(pub)
		case 4:
			p.add(&packets.Pubrel{PacketID: uint16(p.arg()%4) + 1})
		case 5:
			p.add(&packets.Puback{PacketID: uint16(p.arg()%4) + 1})
		case 6:
			p.add(&packets.Pubrec{PacketID: uint16(p.arg()%4) + 1})
		case 7:
			p.add(&packets.Pubcomp{PacketID: uint16(p.arg()%4) + 1})
		case 8:
			a := p.arg()
			p.add(&packets.Subscribe{PacketID: uint16(a%4) + 1, Subscriptions: []packets.Subscription{
				{Filter: fzFilter(a >> 2), QoS: p.arg() % 3}}})
		case 9:
			a := p.arg()
			p.add(&packets.Unsubscribe{PacketID: uint16(a%4) + 1, Filters: []string{fzFilter(a >> 2)}})
		case 10:
			p.add(&packets.Pingreq{})
		case 11:
			p.add(&packets.Disconnect{})
		case 12: // raw bytes
			n := int(p.arg() % 16)
			for range n {
				p.cur = append(p.cur, p.arg())
			}
		case 13: // a write boundary
			p.flush()
		case 14: // a packet the client should never send
			p.cur = append(p.cur, [][]byte{{0x20, 2, 0, 0}, {0x90, 3, 0, 1, 0}, {0xB0, 2, 0, 1}, {0xD0, 0}}[p.arg()%4]...)
		}
	}
	p.flush()
	return p.chunks
}

func (p *fzProgram) flush() {
	if len(p.cur) > 0 {
		p.chunks = append(p.chunks, p.cur)
		p.cur = nil
	}
}

// connect builds a valid CONNECT from two parameter bytes: the flags (clean
// session, will and its QoS and retain, user name, password, MQTT 3.1) and
// the client identifier and keepalive.
func (p *fzProgram) connect() *packets.Connect {
	f, a := p.arg(), p.arg()
	c := &packets.Connect{
		ClientID:     fmt.Sprintf("fz-%d", a%8),
		CleanSession: f&1 != 0,
		KeepAlive:    uint16(a>>3) % 3, // 0 (none) to 2 s
	}
	if f&2 != 0 {
		c.WillFlag, c.WillTopic, c.WillMessage = true, fzTopic(f>>5), []byte("will")
		c.WillQoS, c.WillRetain = (f>>2&3)%3, f&0x10 != 0
	}
	if f&0x80 != 0 {
		c.UsernameFlag, c.Username = true, "user"
		c.PasswordFlag, c.Password = a&1 != 0, []byte{0xff, 0}
	}
	if a&0x80 != 0 {
		c.ProtocolName, c.ProtocolLevel = "MQIsdp", packets.Level31
	}
	return c
}

// fzSeeds are valid packet sequences, programs, and mutated sequences.
func fzSeeds() [][]byte {
	enc := func(ps ...packets.Packet) []byte {
		var out []byte
		for _, p := range ps {
			b, err := p.Append(out)
			if err != nil {
				panic(fmt.Sprintf("seed %v: %v", p.Type(), err)) // a bug in the seed list
			}
			out = b
		}
		return out
	}
	conn := &packets.Connect{ClientID: "fz-0", CleanSession: true, KeepAlive: 30}
	persistent := &packets.Connect{ClientID: "fz-1", KeepAlive: 1, WillFlag: true, WillTopic: "fz/will", WillMessage: []byte("gone"), WillQoS: 1, WillRetain: true}
	sub := &packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "fz/#", QoS: 2}, {Filter: "+/+", QoS: 1}}}
	pubs := []packets.Packet{
		&packets.Publish{Topic: "fz/a", Payload: []byte("q0")},
		&packets.Publish{Topic: "fz/a", QoS: 1, PacketID: 2, Payload: []byte("q1")},
		&packets.Publish{Topic: "fz/b", QoS: 2, PacketID: 3, Payload: []byte("q2"), Retain: true},
		&packets.Pubrel{PacketID: 3},
	}
	full := enc(append(append([]packets.Packet{conn, sub}, pubs...), &packets.Pingreq{}, &packets.Unsubscribe{PacketID: 4, Filters: []string{"fz/#"}}, &packets.Disconnect{})...)
	seeds := [][]byte{
		full,
		enc(persistent, sub, pubs[2], &packets.Publish{Topic: "fz/b", QoS: 2, PacketID: 3, Dup: true, Payload: []byte("again")}),
		enc(conn, &packets.Pubrel{PacketID: 9}, &packets.Pubrec{PacketID: 8}, &packets.Puback{PacketID: 7}, &packets.Pubcomp{PacketID: 6}),
		enc(conn, conn), // a second CONNECT
		enc(pubs[0]),    // PUBLISH first
		append(enc(conn), 0x30, 0xff, 0xff, 0x7f), // an oversized announcement
		append(enc(conn, sub), 0x82, 5, 0, 1, 0),  // a truncated SUBSCRIBE
		full[:len(full)/2],                        // cut in the middle
		{0x10, 0xff, 0xff, 0xff, 0xff, 0x01},      // five-byte Remaining Length
		// Programs: CONNECT, SUBSCRIBE, each QoS, acks and a write boundary;
		// then acks before CONNECT; then a persistent session with a will.
		{0x80, 0, 1, 0, 8, 0, 2, 1, 0, 1, 2, 1, 1, 3, 2, 2, 2, 13, 4, 2, 10, 11},
		{0x80, 4, 0, 5, 1, 10, 0, 1, 0, 3, 0, 0, 0},
		{0x80, 0, 0x16, 9, 8, 4, 2, 3, 0, 3, 1, 12, 3, 0x30, 0x02, 0x00, 13, 14, 2},
	}
	return seeds
}
