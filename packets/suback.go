package packets

import "strconv"

// This file holds SUBACK and UNSUBACK, whose payloads are lists of codes,
// one per filter of the SUBSCRIBE or UNSUBSCRIBE they acknowledge. The
// 3.1.1 UNSUBACK has none.

// Type reports TypeSuback.
func (*Suback) Type() Type { return TypeSuback }

// validReturnCode reports whether c is a 3.1.1 SUBACK return code: a
// granted QoS or the failure code; the others are reserved [MQTT-3.9.3-2].
func validReturnCode(c byte) bool { return c <= 2 || c == SubackFailure }

// checkCodes applies the rules on the code list of a SUBACK or, in MQTT 5,
// an UNSUBACK: at least one code, since the packet acknowledged has at
// least one filter [MQTT-3.8.4-5] [v5 MQTT-3.8.4-6, MQTT-3.11.3-1], and
// each from the table of the packet [MQTT-3.9.3-2] [v5 MQTT-3.9.3-2,
// MQTT-3.11.3-2]. In MQTT 5 both parse: Protocol Errors.
func checkCodes(e errs, t Type, codes []byte) error {
	if len(codes) == 0 {
		switch {
		case !e.v5:
			return e.malformed(t, "MQTT-3.8.4-5", "no return code")
		case t == TypeSuback:
			return e.protocol(t, "MQTT-3.8.4-6", "no reason code")
		}
		return e.protocol(t, "MQTT-3.11.3-1", "no reason code")
	}
	for _, c := range codes {
		if !e.v5 {
			if !validReturnCode(c) {
				return e.malformed(t, "MQTT-3.9.3-2", "reserved return code 0x"+strconv.FormatUint(uint64(c), 16))
			}
			continue
		}
		if err := checkReason(e, t, ReasonCode(c)); err != nil {
			return err
		}
	}
	return nil
}

// decodeCodes parses the body of a SUBACK, or of an MQTT 5 UNSUBACK: the
// packet identifier, the properties in MQTT 5, then the codes. The codes
// and properties do not alias body.
func decodeCodes(fh FixedHeader, body []byte, t Type, e errs) (uint16, Properties, []byte, error) {
	if err := checkHeader(fh, t, body, e); err != nil {
		return 0, Properties{}, nil, err
	}
	d := decoder{t: t, b: body, e: e}
	id, err := d.packetID() // [MQTT-2.3.1-1] [v5 MQTT-2.2.1-3]
	if err != nil {
		return 0, Properties{}, nil, err
	}
	var props Properties
	if e.v5 {
		if props, err = d.props(propCtx(t)); err != nil {
			return 0, Properties{}, nil, err
		}
	}
	if err := checkCodes(e, t, d.b); err != nil {
		return 0, Properties{}, nil, err
	}
	return id, props, copyBytes(d.b), nil
}

// appendCodes appends a SUBACK, or an MQTT 5 UNSUBACK.
func appendCodes(dst []byte, t Type, e errs, id uint16, p *Properties, codes []byte) ([]byte, error) {
	if err := checkID(e, t, id); err != nil {
		return dst, err
	}
	if err := checkCodes(e, t, codes); err != nil {
		return dst, err
	}
	n := 2 + len(codes)
	if e.v5 {
		if err := p.check(t, propCtx(t)); err != nil {
			return dst, err
		}
		n += p.Len(t)
	}
	if err := checkRemainingV(e, t, n); err != nil {
		return dst, err
	}
	dst = appendUint16(appendFixedHeader(dst, t, 0, n), id)
	if e.v5 {
		dst = p.appendProps(dst, propCtx(t))
	}
	return append(dst, codes...), nil
}

// Decode parses a SUBACK body of the form s.Version selects into s.
// ReturnCodes is a copy.
func (s *Suback) Decode(fh FixedHeader, body []byte) error {
	id, props, codes, err := decodeCodes(fh, body, TypeSuback, errsFor(s.Version))
	if err != nil {
		return err
	}
	*s = Suback{Version: s.Version, PacketID: id, Properties: props, ReturnCodes: codes}
	return nil
}

// Append appends the encoded SUBACK to dst, in the form s.Version selects.
// The 3.1.1 form ignores Properties.
func (s *Suback) Append(dst []byte) ([]byte, error) {
	return appendCodes(dst, TypeSuback, encodeErrs(s.Version), s.PacketID, &s.Properties, s.ReturnCodes)
}

// Type reports TypeUnsuback.
func (*Unsuback) Type() Type { return TypeUnsuback }

// Decode parses an UNSUBACK body of the form u.Version selects into u. In
// 3.1.1 the body is the packet identifier alone (section 3.11.1).
func (u *Unsuback) Decode(fh FixedHeader, body []byte) error {
	e := errsFor(u.Version)
	if !e.v5 {
		if err := checkHeader(fh, TypeUnsuback, body, e); err != nil {
			return err
		}
		d := decoder{t: TypeUnsuback, b: body}
		id, err := d.packetID() // [MQTT-2.3.1-1]
		if err != nil {
			return err
		}
		if err := d.end("3.11.1"); err != nil {
			return err
		}
		*u = Unsuback{Version: u.Version, PacketID: id}
		return nil
	}
	id, props, codes, err := decodeCodes(fh, body, TypeUnsuback, e)
	if err != nil {
		return err
	}
	*u = Unsuback{Version: Level5, PacketID: id, Properties: props, ReasonCodes: codes}
	return nil
}

// Append appends the encoded UNSUBACK to dst, in the form u.Version
// selects. The 3.1.1 form ignores Properties and ReasonCodes.
func (u *Unsuback) Append(dst []byte) ([]byte, error) {
	e := encodeErrs(u.Version)
	if !e.v5 {
		if err := checkID(e, TypeUnsuback, u.PacketID); err != nil {
			return dst, err
		}
		return appendUint16(appendFixedHeader(dst, TypeUnsuback, 0, 2), u.PacketID), nil
	}
	return appendCodes(dst, TypeUnsuback, e, u.PacketID, &u.Properties, u.ReasonCodes)
}
