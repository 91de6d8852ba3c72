package packets

// This file holds the acknowledgements of a PUBLISH (PUBACK, PUBREC,
// PUBREL, PUBCOMP) and the packets without a body in MQTT 3.1.1 (PINGREQ,
// PINGRESP, DISCONNECT). In 3.1.1 their Remaining Length is fixed: 2 or 0,
// as the fixed header section of each packet states. In MQTT 5 the
// acknowledgements and DISCONNECT may add a Reason Code and properties,
// which are omitted when they hold nothing but the defaults.

// ack is the layout shared by PUBACK, PUBREC, PUBREL and PUBCOMP, whose
// pointers convert to *ack.
type ack struct {
	Version    byte
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// ackSection is the section whose end no byte may pass: in 3.1.1 the fixed
// header's (the Remaining Length is 2), in MQTT 5 the payload's (there is
// none).
func ackSection(t Type, v5 bool) string {
	// Constants, not built: every acknowledgement decoded names its
	// section. PUBACK is section 3.4, ... PUBCOMP 3.7.
	i := int(t) - int(TypePuback)
	switch {
	case i < 0 || i > 3:
		return "3"
	case v5:
		return [...]string{"3.4.3", "3.5.3", "3.6.3", "3.7.3"}[i]
	}
	return [...]string{"3.4.1", "3.5.1", "3.6.1", "3.7.1"}[i]
}

// decode parses the body of an acknowledgement of type t into a. In MQTT 5
// a Remaining Length of 2 means Success without properties, 3 a Reason
// Code without properties (sections 3.4.2.1, 3.4.2.2.1 and their
// counterparts).
func (a *ack) decode(fh FixedHeader, body []byte, t Type) error {
	var props Properties
	id, rc, err := decodeAck(errsFor(a.Version), fh, body, t, &props)
	if err != nil {
		return err
	}
	*a = ack{Version: a.Version, PacketID: id, ReasonCode: rc, Properties: props}
	return nil
}

// decodeAck parses the body of an acknowledgement of type t, storing its
// properties in props when it is not nil. With props nil they are checked
// as fully and dropped.
func decodeAck(e errs, fh FixedHeader, body []byte, t Type, props *Properties) (uint16, ReasonCode, error) {
	if err := checkHeader(fh, t, body, e); err != nil {
		return 0, 0, err
	}
	d := decoder{t: t, b: body, e: e}
	id, err := d.packetID() // [MQTT-2.3.1-1] [v5 MQTT-2.2.1-3]
	if err != nil {
		return 0, 0, err
	}
	rc := Success
	if e.v5 && len(d.b) > 0 {
		b, _ := d.byte("reason code")
		rc = ReasonCode(b)
		if len(d.b) > 0 {
			p, err := d.props(propCtx(t))
			if err != nil {
				return 0, 0, err
			}
			if props != nil {
				*props = p
			}
		}
	}
	if err := d.end(ackSection(t, e.v5)); err != nil {
		return 0, 0, err
	}
	if e.v5 {
		// [v5 MQTT-3.4.2-1] [v5 MQTT-3.5.2-1] [v5 MQTT-3.6.2-1] [v5 MQTT-3.7.2-1]
		if err := checkReason(e, t, rc); err != nil {
			return 0, 0, err
		}
	}
	return id, rc, nil
}

// DecodeAckID parses the body of the PUBACK, PUBREC, PUBREL or PUBCOMP that
// fh announces, in the form version selects, with every check Decode makes,
// and returns its Packet Identifier and Reason Code (Success in 3.1.1 and
// when omitted). Its properties are checked and not kept. It is for a
// receiver that acts on the identifier and code alone, and costs less than
// Decode, which fills the packet's Properties.
func DecodeAckID(version byte, fh FixedHeader, body []byte) (uint16, ReasonCode, error) {
	e := errsFor(version)
	if fh.Type < TypePuback || fh.Type > TypePubcomp {
		return 0, 0, e.malformed(fh.Type, sectionType(e.v5), fh.Type.String()+" is not an acknowledgement of a PUBLISH")
	}
	return decodeAck(e, fh, body, fh.Type, nil)
}

// append appends the acknowledgement a of type t. The MQTT 5 form omits the
// Reason Code when it is Success and there are no properties, and the
// Property Length when there are none (section 3.4.2.1 and its
// counterparts).
func (a *ack) append(dst []byte, t Type) ([]byte, error) {
	e := encodeErrs(a.Version)
	if a.PacketID == 0 {
		if e.v5 {
			return dst, e.protocol(t, "MQTT-2.2.1-3", "packet identifier is zero")
		}
		return dst, invalid(t, "MQTT-2.3.1-1", "packet identifier is zero")
	}
	if !e.v5 {
		dst = appendFixedHeader(dst, t, requiredFlags(t), 2)
		return appendUint16(dst, a.PacketID), nil
	}
	if err := checkReason(e, t, a.ReasonCode); err != nil {
		return dst, err
	}
	if err := a.Properties.check(t, propCtx(t)); err != nil {
		return dst, err
	}
	pl := a.Properties.size(propCtx(t))
	n := 2
	switch {
	case pl > 0:
		n += 1 + remainingLengthLen(pl) + pl
	case a.ReasonCode != Success:
		n++
	}
	if err := checkRemainingV(e, t, n); err != nil {
		return dst, err
	}
	dst = appendUint16(appendFixedHeader(dst, t, requiredFlags(t), n), a.PacketID)
	if n > 2 {
		dst = append(dst, byte(a.ReasonCode))
	}
	if pl > 0 {
		dst = a.Properties.appendProps(dst, propCtx(t))
	}
	return dst, nil
}

// Type reports TypePuback.
func (*Puback) Type() Type { return TypePuback }

// Decode parses a PUBACK body of the form p.Version selects into p.
func (p *Puback) Decode(fh FixedHeader, body []byte) error {
	return (*ack)(p).decode(fh, body, TypePuback)
}

// Append appends the encoded PUBACK to dst.
func (p *Puback) Append(dst []byte) ([]byte, error) { return (*ack)(p).append(dst, TypePuback) }

// Type reports TypePubrec.
func (*Pubrec) Type() Type { return TypePubrec }

// Decode parses a PUBREC body of the form p.Version selects into p.
func (p *Pubrec) Decode(fh FixedHeader, body []byte) error {
	return (*ack)(p).decode(fh, body, TypePubrec)
}

// Append appends the encoded PUBREC to dst.
func (p *Pubrec) Append(dst []byte) ([]byte, error) { return (*ack)(p).append(dst, TypePubrec) }

// Type reports TypePubrel.
func (*Pubrel) Type() Type { return TypePubrel }

// Decode parses a PUBREL body of the form p.Version selects into p. Its
// fixed header flags are 0b0010 [MQTT-3.6.1-1] [v5 MQTT-3.6.1-1].
func (p *Pubrel) Decode(fh FixedHeader, body []byte) error {
	return (*ack)(p).decode(fh, body, TypePubrel)
}

// Append appends the encoded PUBREL to dst.
func (p *Pubrel) Append(dst []byte) ([]byte, error) { return (*ack)(p).append(dst, TypePubrel) }

// Type reports TypePubcomp.
func (*Pubcomp) Type() Type { return TypePubcomp }

// Decode parses a PUBCOMP body of the form p.Version selects into p.
func (p *Pubcomp) Decode(fh FixedHeader, body []byte) error {
	return (*ack)(p).decode(fh, body, TypePubcomp)
}

// Append appends the encoded PUBCOMP to dst.
func (p *Pubcomp) Append(dst []byte) ([]byte, error) { return (*ack)(p).append(dst, TypePubcomp) }

// decodeEmpty checks the header of a packet without a body, in the form
// version selects.
func decodeEmpty(fh FixedHeader, body []byte, t Type, section string, version byte) error {
	e := errsFor(version)
	if err := checkHeader(fh, t, body, e); err != nil {
		return err
	}
	d := decoder{t: t, b: body, e: e}
	return d.end(section)
}

// Type reports TypePingreq.
func (*Pingreq) Type() Type { return TypePingreq }

// Decode checks a PINGREQ, which has no body.
func (p *Pingreq) Decode(fh FixedHeader, body []byte) error {
	return decodeEmpty(fh, body, TypePingreq, "3.12.1", p.Version)
}

// Append appends the encoded PINGREQ to dst.
func (*Pingreq) Append(dst []byte) ([]byte, error) {
	return appendFixedHeader(dst, TypePingreq, 0, 0), nil
}

// Type reports TypePingresp.
func (*Pingresp) Type() Type { return TypePingresp }

// Decode checks a PINGRESP, which has no body.
func (p *Pingresp) Decode(fh FixedHeader, body []byte) error {
	return decodeEmpty(fh, body, TypePingresp, "3.13.1", p.Version)
}

// Append appends the encoded PINGRESP to dst.
func (*Pingresp) Append(dst []byte) ([]byte, error) {
	return appendFixedHeader(dst, TypePingresp, 0, 0), nil
}

// Type reports TypeDisconnect.
func (*Disconnect) Type() Type { return TypeDisconnect }

// Decode parses a DISCONNECT of the form p.Version selects into p. Its
// flags are zero [MQTT-3.14.1-1] [v5 MQTT-3.14.1-1]. The 3.1.1 DISCONNECT
// has no body; the MQTT 5 one has a Reason Code, Normal disconnection when
// the Remaining Length is 0, and properties when it is 2 or more (sections
// 3.14.2.1, 3.14.2.2.1).
func (p *Disconnect) Decode(fh FixedHeader, body []byte) error {
	if p.Version != Level5 {
		if err := decodeEmpty(fh, body, TypeDisconnect, "3.14.1", p.Version); err != nil {
			return err
		}
		*p = Disconnect{Version: p.Version}
		return nil
	}
	rc, props, err := decodeReasonBody(fh, body, TypeDisconnect, true)
	if err != nil {
		return err
	}
	*p = Disconnect{Version: Level5, ReasonCode: rc, Properties: props}
	return nil
}

// Append appends the encoded DISCONNECT to dst. The MQTT 5 form omits the
// Reason Code and the Property Length when they hold the defaults; the
// 3.1.1 form ignores both.
func (p *Disconnect) Append(dst []byte) ([]byte, error) {
	if p.Version != Level5 {
		return appendFixedHeader(dst, TypeDisconnect, 0, 0), nil
	}
	return appendReasonBody(dst, TypeDisconnect, p.ReasonCode, &p.Properties, true)
}
