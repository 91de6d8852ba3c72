package packets

import "strconv"

// Decode parses a packet of any type, in its MQTT 3.1.1 form, from its
// fixed header and body and returns a new value of the matching type
// (*Connect, *Publish, ...). body is exactly fh.Remaining bytes. A
// *Publish's Payload aliases body; no other field does. On failure the
// packet is nil and the error is an *Error. A CONNECT decodes in the form
// its protocol level selects.
func Decode(fh FixedHeader, body []byte) (Packet, error) {
	return DecodeVersion(0, fh, body)
}

// DecodeVersion is Decode for the form version selects: 0, Level31 or
// Level311 for MQTT 3.1.1, Level5 for MQTT 5, in which type 15 is AUTH. The
// packet's Version field is set to version. In MQTT 5 a *Publish's
// Props.Raw may alias body as well.
func DecodeVersion(version byte, fh FixedHeader, body []byte) (Packet, error) {
	p := newPacket(fh.Type, version)
	if p == nil {
		// Type 0, and 15 in 3.1.1, are forbidden (section 2.2.1)
		// [MQTT-2.2.2-2] [v5 section 2.1.2].
		v5 := version == Level5
		return nil, errs{v5: v5}.malformed(fh.Type, sectionType(v5), "reserved control packet type "+strconv.Itoa(int(fh.Type)))
	}
	if err := p.Decode(fh, body); err != nil {
		return nil, err
	}
	return p, nil
}

// newPacket returns a new value of type t in the form version selects, nil
// for a reserved type.
func newPacket(t Type, version byte) Packet {
	switch t {
	case TypeConnect:
		return new(Connect)
	case TypeConnack:
		return &Connack{Version: version}
	case TypePublish:
		return &Publish{Version: version}
	case TypePuback:
		return &Puback{Version: version}
	case TypePubrec:
		return &Pubrec{Version: version}
	case TypePubrel:
		return &Pubrel{Version: version}
	case TypePubcomp:
		return &Pubcomp{Version: version}
	case TypeSubscribe:
		return &Subscribe{Version: version}
	case TypeSuback:
		return &Suback{Version: version}
	case TypeUnsubscribe:
		return &Unsubscribe{Version: version}
	case TypeUnsuback:
		return &Unsuback{Version: version}
	case TypePingreq:
		return &Pingreq{Version: version}
	case TypePingresp:
		return &Pingresp{Version: version}
	case TypeDisconnect:
		return &Disconnect{Version: version}
	case TypeAuth:
		if version == Level5 {
			return &Auth{Version: version}
		}
	}
	return nil
}
