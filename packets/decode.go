package packets

import "strconv"

// Decode parses a packet of any type from its fixed header and body and
// returns a new value of the matching type (*Connect, *Publish, ...). body
// is exactly fh.Remaining bytes. A *Publish's Payload aliases body; no other
// field does. On failure the packet is nil and the error is an *Error.
func Decode(fh FixedHeader, body []byte) (Packet, error) {
	p := newPacket(fh.Type)
	if p == nil {
		// Types 0 and 15 are forbidden (section 2.2.1) [MQTT-2.2.2-2].
		return nil, malformed(fh.Type, "2.2.1", "reserved control packet type "+strconv.Itoa(int(fh.Type)))
	}
	if err := p.Decode(fh, body); err != nil {
		return nil, err
	}
	return p, nil
}

// newPacket returns a new zero value of type t, nil for a reserved type.
func newPacket(t Type) Packet {
	switch t {
	case TypeConnect:
		return new(Connect)
	case TypeConnack:
		return new(Connack)
	case TypePublish:
		return new(Publish)
	case TypePuback:
		return new(Puback)
	case TypePubrec:
		return new(Pubrec)
	case TypePubrel:
		return new(Pubrel)
	case TypePubcomp:
		return new(Pubcomp)
	case TypeSubscribe:
		return new(Subscribe)
	case TypeSuback:
		return new(Suback)
	case TypeUnsubscribe:
		return new(Unsubscribe)
	case TypeUnsuback:
		return new(Unsuback)
	case TypePingreq:
		return new(Pingreq)
	case TypePingresp:
		return new(Pingresp)
	case TypeDisconnect:
		return new(Disconnect)
	}
	return nil
}
