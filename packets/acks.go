package packets

// This file holds the packets whose body is a packet identifier (PUBACK,
// PUBREC, PUBREL, PUBCOMP, UNSUBACK) or empty (PINGREQ, PINGRESP,
// DISCONNECT). Their Remaining Length is fixed: 2 or 0, as the fixed
// header section of each packet states.

// decodeID parses the body of a packet that holds only a packet identifier.
func decodeID(fh FixedHeader, body []byte, t Type, section string) (uint16, error) {
	if err := checkHeader(fh, t, body); err != nil {
		return 0, err
	}
	d := decoder{t: t, b: body}
	id, err := d.packetID() // [MQTT-2.3.1-1]
	if err != nil {
		return 0, err
	}
	return id, d.end(section)
}

// appendID appends a packet that holds only a packet identifier.
func appendID(dst []byte, t Type, id uint16) ([]byte, error) {
	if id == 0 {
		return dst, invalid(t, "MQTT-2.3.1-1", "packet identifier is zero")
	}
	dst = appendFixedHeader(dst, t, requiredFlags(t), 2)
	return appendUint16(dst, id), nil
}

// decodeEmpty checks the header of a packet without a body.
func decodeEmpty(fh FixedHeader, body []byte, t Type, section string) error {
	if err := checkHeader(fh, t, body); err != nil {
		return err
	}
	d := decoder{t: t, b: body}
	return d.end(section)
}

// Type reports TypePuback.
func (*Puback) Type() Type { return TypePuback }

// Decode parses a PUBACK body into p.
func (p *Puback) Decode(fh FixedHeader, body []byte) error {
	id, err := decodeID(fh, body, TypePuback, "3.4.1")
	if err == nil {
		p.PacketID = id
	}
	return err
}

// Append appends the encoded PUBACK to dst.
func (p *Puback) Append(dst []byte) ([]byte, error) { return appendID(dst, TypePuback, p.PacketID) }

// Type reports TypePubrec.
func (*Pubrec) Type() Type { return TypePubrec }

// Decode parses a PUBREC body into p.
func (p *Pubrec) Decode(fh FixedHeader, body []byte) error {
	id, err := decodeID(fh, body, TypePubrec, "3.5.1")
	if err == nil {
		p.PacketID = id
	}
	return err
}

// Append appends the encoded PUBREC to dst.
func (p *Pubrec) Append(dst []byte) ([]byte, error) { return appendID(dst, TypePubrec, p.PacketID) }

// Type reports TypePubrel.
func (*Pubrel) Type() Type { return TypePubrel }

// Decode parses a PUBREL body into p. Its fixed header flags are 0b0010
// [MQTT-3.6.1-1].
func (p *Pubrel) Decode(fh FixedHeader, body []byte) error {
	id, err := decodeID(fh, body, TypePubrel, "3.6.1")
	if err == nil {
		p.PacketID = id
	}
	return err
}

// Append appends the encoded PUBREL to dst.
func (p *Pubrel) Append(dst []byte) ([]byte, error) { return appendID(dst, TypePubrel, p.PacketID) }

// Type reports TypePubcomp.
func (*Pubcomp) Type() Type { return TypePubcomp }

// Decode parses a PUBCOMP body into p.
func (p *Pubcomp) Decode(fh FixedHeader, body []byte) error {
	id, err := decodeID(fh, body, TypePubcomp, "3.7.1")
	if err == nil {
		p.PacketID = id
	}
	return err
}

// Append appends the encoded PUBCOMP to dst.
func (p *Pubcomp) Append(dst []byte) ([]byte, error) { return appendID(dst, TypePubcomp, p.PacketID) }

// Type reports TypeUnsuback.
func (*Unsuback) Type() Type { return TypeUnsuback }

// Decode parses an UNSUBACK body into p.
func (p *Unsuback) Decode(fh FixedHeader, body []byte) error {
	id, err := decodeID(fh, body, TypeUnsuback, "3.11.1")
	if err == nil {
		p.PacketID = id
	}
	return err
}

// Append appends the encoded UNSUBACK to dst.
func (p *Unsuback) Append(dst []byte) ([]byte, error) {
	return appendID(dst, TypeUnsuback, p.PacketID)
}

// Type reports TypePingreq.
func (*Pingreq) Type() Type { return TypePingreq }

// Decode checks a PINGREQ, which has no body.
func (*Pingreq) Decode(fh FixedHeader, body []byte) error {
	return decodeEmpty(fh, body, TypePingreq, "3.12.1")
}

// Append appends the encoded PINGREQ to dst.
func (*Pingreq) Append(dst []byte) ([]byte, error) {
	return appendFixedHeader(dst, TypePingreq, 0, 0), nil
}

// Type reports TypePingresp.
func (*Pingresp) Type() Type { return TypePingresp }

// Decode checks a PINGRESP, which has no body.
func (*Pingresp) Decode(fh FixedHeader, body []byte) error {
	return decodeEmpty(fh, body, TypePingresp, "3.13.1")
}

// Append appends the encoded PINGRESP to dst.
func (*Pingresp) Append(dst []byte) ([]byte, error) {
	return appendFixedHeader(dst, TypePingresp, 0, 0), nil
}

// Type reports TypeDisconnect.
func (*Disconnect) Type() Type { return TypeDisconnect }

// Decode checks a DISCONNECT, which has no body and whose flags are zero
// [MQTT-3.14.1-1].
func (*Disconnect) Decode(fh FixedHeader, body []byte) error {
	return decodeEmpty(fh, body, TypeDisconnect, "3.14.1")
}

// Append appends the encoded DISCONNECT to dst.
func (*Disconnect) Append(dst []byte) ([]byte, error) {
	return appendFixedHeader(dst, TypeDisconnect, 0, 0), nil
}
