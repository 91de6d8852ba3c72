package tern_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// The MQTT 5 side of FuzzBroker. An input whose first byte is below 0x10
// (packet type 0, with which no valid stream starts, so no 3.1.1 input loses
// its meaning) is an MQTT 5 input: a valid MQTT 5 CONNECT with properties
// chosen by that byte's low three bits comes first, then, when bit 0x08 is
// clear, the rest of the input as raw bytes, or, when it is set, a program
// of MQTT 5 packets with properties and reason codes (fzProgram5).

// fzIsV5 reports whether an input is an MQTT 5 input.
func fzIsV5(data []byte) bool { return len(data) > 0 && data[0] < 0x10 }

// fzChunks5 turns an MQTT 5 input into the writes to make.
func fzChunks5(data []byte) [][]byte {
	sel, rest := data[0], data[1:]
	first, err := fzConnect5(sel&7, 0).Append(nil)
	if err != nil {
		panic(fmt.Sprintf("fzConnect5(%d): %v", sel&7, err)) // a bug in the fuzz target
	}
	if sel&0x08 == 0 {
		return [][]byte{append(first, rest...)}
	}
	p := fzProgram5{fzProgram: fzProgram{in: rest, cur: first}}
	return p.compile()
}

// fzConnect5 is a valid MQTT 5 CONNECT; sel chooses its properties and
// will, a its client identifier.
func fzConnect5(sel, a byte) *packets.Connect {
	c := &packets.Connect{ProtocolLevel: packets.Level5, ClientID: fmt.Sprintf("fz5-%d", a%8), CleanSession: sel&1 == 0, KeepAlive: 30}
	p := &c.Properties
	p.User = []packets.UserProperty{{Key: "fz", Value: "5"}}
	p.ReceiveMaximum = new(uint16(2 + uint16(a)%3))
	p.TopicAliasMaximum = new(uint16(4))
	switch sel % 8 {
	case 1: // a session that outlives the connection for a moment
		p.SessionExpiry = new(uint32(1 + uint32(a)%2))
	case 2: // small packets only, no problem information
		p.MaximumPacketSize = new(uint32(64 + 32*uint32(a%4)))
		p.RequestProblemInfo = new(byte(0))
	case 3: // a will with properties and a short delay
		c.WillFlag, c.WillTopic, c.WillMessage, c.WillQoS = true, fzTopic(a), []byte("will5"), 1
		c.WillProperties = packets.Properties{WillDelay: new(uint32(uint32(a) % 2)), PayloadFormat: new(byte(1)),
			MessageExpiry: new(uint32(5)), ContentType: "text/plain", ResponseTopic: "fz/reply", CorrelationData: []byte{a},
			User: []packets.UserProperty{{Key: "w", Value: "1"}}}
		p.SessionExpiry = new(uint32(1))
	case 4: // enhanced authentication that succeeds at once
		p.AuthMethod, p.AuthData = "fz-auth", []byte("token")
	case 5: // response information asked for
		p.RequestResponseInfo = new(byte(1))
	case 6: // an assigned client identifier
		c.ClientID = ""
	case 7: // user name and password
		c.UsernameFlag, c.Username, c.PasswordFlag, c.Password = true, "user", true, []byte{0, 0xff}
	}
	return c
}

// fzAuth answers the fuzz broker's enhanced authentication: "fz-auth"
// succeeds at the first step and on every re-authentication.
type fzAuth struct{}

func (fzAuth) AuthStep(_ context.Context, x *tern.AuthExchange) ([]byte, bool, error) {
	if x.Method != "fz-auth" {
		return nil, false, tern.ErrAuthMethodNotSupported
	}
	return []byte("ok"), true, nil
}

// fzProgram5 compiles an MQTT 5 program: like fzProgram, each operation
// byte chooses a packet, here in its MQTT 5 form with properties and
// reason codes, and the bytes after it its parameters.
type fzProgram5 struct {
	fzProgram
}

// fzReasons are the Reason Codes an acknowledgement, DISCONNECT or AUTH may
// carry, and a few it may not.
var fzReasons = [...]packets.ReasonCode{0x00, 0x04, 0x10, 0x18, 0x19, 0x80, 0x83, 0x87, 0x8E, 0x92, 0x97, 0x99, 0x05, 0xFF}

func (p *fzProgram5) reason() packets.ReasonCode { return fzReasons[int(p.arg())%len(fzReasons)] }

// ackProps are the properties of an acknowledgement: a Reason String and
// a User Property, or none.
func (p *fzProgram5) ackProps() packets.Properties {
	a := p.arg()
	var props packets.Properties
	if a&1 != 0 {
		props.ReasonString = "fz"
	}
	if a&2 != 0 {
		props.User = []packets.UserProperty{{Key: "k", Value: "v"}}
	}
	return props
}

func (p *fzProgram5) compile() [][]byte {
	for len(p.in) > 0 {
		op := p.arg() % 18
		switch op {
		case 0:
			a := p.arg()
			p.add(fzConnect5(a, p.arg()))
		case 1, 2, 3:
			p.add(p.publish(op - 1))
		case 4:
			p.add(&packets.Pubrel{Version: packets.Level5, PacketID: uint16(p.arg()%4) + 1, ReasonCode: p.reason(), Properties: p.ackProps()})
		case 5:
			p.add(&packets.Puback{Version: packets.Level5, PacketID: uint16(p.arg()%4) + 1, ReasonCode: p.reason(), Properties: p.ackProps()})
		case 6:
			p.add(&packets.Pubrec{Version: packets.Level5, PacketID: uint16(p.arg()%4) + 1, ReasonCode: p.reason(), Properties: p.ackProps()})
		case 7:
			p.add(&packets.Pubcomp{Version: packets.Level5, PacketID: uint16(p.arg()%4) + 1, ReasonCode: p.reason(), Properties: p.ackProps()})
		case 8:
			p.add(p.subscribe())
		case 9:
			a := p.arg()
			f := fzFilter(a >> 2)
			if a&2 != 0 {
				f = "$share/g/" + f
			}
			p.add(&packets.Unsubscribe{Version: packets.Level5, PacketID: uint16(a%4) + 1, Filters: []string{f}})
		case 10:
			p.add(&packets.Pingreq{Version: packets.Level5})
		case 11:
			d := &packets.Disconnect{Version: packets.Level5, ReasonCode: p.reason()}
			if a := p.arg(); a&1 != 0 {
				d.Properties.SessionExpiry = new(uint32(a>>1) % 3)
			}
			p.add(d)
		case 12: // raw bytes
			n := int(p.arg() % 16)
			for range n {
				p.cur = append(p.cur, p.arg())
			}
		case 13: // a write boundary
			p.flush()
		case 14: // a packet the client should never send
			p.cur = append(p.cur, [][]byte{{0x20, 3, 0, 0, 0}, {0x90, 4, 0, 1, 0, 0}, {0xB0, 4, 0, 1, 0, 0}, {0xD0, 0}}[p.arg()%4]...)
		case 15: // AUTH: re-authentication or its continuation, right or wrong method
			a := p.arg()
			au := &packets.Auth{Version: packets.Level5, ReasonCode: packets.ReAuthenticate}
			if a&1 != 0 {
				au.ReasonCode = packets.ContinueAuthentication
			}
			au.Properties.AuthMethod = [...]string{"fz-auth", "other"}[a>>1&1]
			au.Properties.AuthData = []byte{a}
			p.add(au)
		case 16: // a PUBLISH whose property block is input bytes
			n := int(p.arg() % 24)
			props := make([]byte, 0, n)
			for range n {
				props = append(props, p.arg())
			}
			p.cur = append(p.cur, packetBytes(0x30, mqttString(fzTopic(p.arg())), remainingLength(len(props)), props, []byte("p"))...)
		case 17: // a SUBSCRIBE whose options byte is input
			a := p.arg()
			p.cur = append(p.cur, packetBytes(0x82, hoID(uint16(a%4)+1), []byte{0}, mqttString(fzFilter(a>>2)), []byte{p.arg()})...)
		}
	}
	p.flush()
	return p.chunks
}

// publish builds an MQTT 5 PUBLISH at qos whose properties the next
// parameter bytes choose: payload format (with a payload that matches it
// or not), expiry, topic alias (setting or using one), response topic and
// correlation data, user properties, content type.
func (p *fzProgram5) publish(qos byte) *packets.Publish {
	a, f := p.arg(), p.arg()
	pub := &packets.Publish{Version: packets.Level5, Topic: fzTopic(a), QoS: qos, Retain: a&0x80 != 0,
		Payload: bytes.Repeat([]byte{'x'}, int(p.arg()%8)*37)}
	if qos > 0 {
		pub.PacketID = uint16(p.arg()%4) + 1
		pub.Dup = a&0x40 != 0
	}
	pp := &pub.Props
	if f&1 != 0 {
		pp.HasPayloadFormat, pp.PayloadFormat = true, 1
		if f&0x80 != 0 {
			pub.Payload = append(pub.Payload, 0xff) // not UTF-8
		}
	}
	if f&2 != 0 {
		pp.HasMessageExpiry, pp.MessageExpiry = true, uint32(f>>4)%3
	}
	if f&4 != 0 {
		pp.HasTopicAlias, pp.TopicAlias = true, uint16(a>>3)%5+1 // 5 is over the maximum of 4
		if f&0x40 != 0 {
			pub.Topic = "" // use the alias
		}
	}
	var raw packets.Properties
	if f&8 != 0 {
		raw.ResponseTopic, raw.CorrelationData = "fz/reply", []byte{f}
	}
	if f&0x10 != 0 {
		raw.User = []packets.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}}
	}
	if f&0x20 != 0 {
		raw.ContentType = "text/plain"
	}
	pp.Raw, _ = packets.AppendPublishRaw(nil, &raw)
	return pub
}

// subscribe builds an MQTT 5 SUBSCRIBE: a filter, maybe shared, with
// options and maybe a Subscription Identifier.
func (p *fzProgram5) subscribe() *packets.Subscribe {
	a, o := p.arg(), p.arg()
	f := fzFilter(a >> 2)
	if o&0x40 != 0 {
		f = "$share/" + [...]string{"g", "h"}[o>>7] + "/" + f
	}
	s := &packets.Subscribe{Version: packets.Level5, PacketID: uint16(a%4) + 1, Subscriptions: []packets.Subscription{{
		Filter: f, QoS: o % 3, NoLocal: o&4 != 0 && o&0x40 == 0, RetainAsPublished: o&8 != 0, RetainHandling: (o >> 4) % 3,
	}}}
	if a&2 != 0 {
		s.Properties.SubscriptionIDs = []uint32{uint32(a) + 1}
	}
	return s
}

// fzSeeds5 are MQTT 5 inputs: raw streams after each kind of CONNECT, and
// programs.
func fzSeeds5() [][]byte {
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
	alias := uint16(1)
	pub := &packets.Publish{Version: packets.Level5, Topic: "fz/a", QoS: 1, PacketID: 1, Payload: []byte("v5"),
		Props: packets.PublishProps{HasTopicAlias: true, TopicAlias: alias, HasMessageExpiry: true, MessageExpiry: 1}}
	byAlias := &packets.Publish{Version: packets.Level5, QoS: 2, PacketID: 2, Payload: []byte("alias"),
		Props: packets.PublishProps{HasTopicAlias: true, TopicAlias: alias}}
	sub := &packets.Subscribe{Version: packets.Level5, PacketID: 3, Properties: packets.Properties{SubscriptionIDs: []uint32{9}},
		Subscriptions: []packets.Subscription{{Filter: "fz/#", QoS: 2, NoLocal: true, RetainHandling: 1}, {Filter: "$share/g/fz/+", QoS: 1}}}
	stream := enc(sub, pub, byAlias, &packets.Pubrel{Version: packets.Level5, PacketID: 2},
		&packets.Disconnect{Version: packets.Level5, ReasonCode: packets.DisconnectWithWill})
	return [][]byte{
		append([]byte{0x00}, stream...),
		append([]byte{0x03}, stream...), // after a CONNECT with a will
		append([]byte{0x04}, enc(&packets.Auth{Version: packets.Level5, ReasonCode: packets.ReAuthenticate,
			Properties: packets.Properties{AuthMethod: "fz-auth"}})...),
		append([]byte{0x01}, packetBytes(0x30, mqttString(""), []byte{3, 0x23, 0, 9})...),            // an alias never set
		{0x02, 0x30, 0x0D, 0x00, 0x04, 'f', 'z', '/', 'a', 0x06, 0x0B, 0x01, 0x01, 0x01, 0x01, 0x01}, // a client Subscription Identifier, Payload Format twice
		// Programs: subscribe with options, publish with properties at each
		// QoS, acknowledgements with reason codes, AUTH, DISCONNECT with
		// a Session Expiry Interval.
		{0x08, 8, 2, 0x1d, 1, 0, 0x3f, 2, 2, 5, 0x07, 1, 3, 3, 0x55, 1, 2, 13, 4, 2, 0, 5, 1, 3, 10, 11, 4, 3},
		{0x0c, 15, 0, 15, 3, 16, 6, 0x23, 0, 0, 0x01, 0x02, 0x01, 0x01, 17, 1, 0x30, 9, 6, 2, 0, 0x44, 1, 1},
		{0x0b, 8, 0, 0x42, 3, 0, 0x41, 1, 1, 6, 1, 5, 7, 1, 9, 3, 0, 2, 0x11, 14, 1, 11, 0},
	}
}
