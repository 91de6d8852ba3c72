package packets

// This file holds AUTH (section 3.15), and the body it shares with the MQTT
// 5 DISCONNECT (section 3.14): a Reason Code, then properties.

// decodeReasonBody parses the body of an MQTT 5 DISCONNECT or AUTH: no
// bytes mean Success (Normal disconnection) without properties; a Reason
// Code alone is allowed in a DISCONNECT, whose Property Length is 0 when
// the Remaining Length is under 2 (section 3.14.2.2.1), but not in an AUTH,
// where nothing says the Property Length may be missing (section
// 3.15.2.2.1).
func decodeReasonBody(fh FixedHeader, body []byte, t Type, reasonOnly bool) (ReasonCode, Properties, error) {
	e := errs{v5: true}
	if err := checkHeader(fh, t, body, e); err != nil {
		return 0, Properties{}, err
	}
	if len(body) == 0 {
		return Success, Properties{}, nil
	}
	d := decoder{t: t, b: body, e: e}
	b, _ := d.byte("reason code")
	rc := ReasonCode(b)
	var props Properties
	if len(d.b) > 0 || !reasonOnly {
		var err error
		if props, err = d.props(propCtx(t)); err != nil {
			return 0, Properties{}, err
		}
	}
	section := "3.14.3" // DISCONNECT and AUTH have no payload
	if t == TypeAuth {
		section = "3.15.3"
	}
	if err := d.end(section); err != nil {
		return 0, Properties{}, err
	}
	// [v5 MQTT-3.14.2-1] [v5 MQTT-3.15.2-1]
	if err := checkReason(e, t, rc); err != nil {
		return 0, Properties{}, err
	}
	return rc, props, nil
}

// appendReasonBody appends an MQTT 5 DISCONNECT or AUTH: with Success and
// no properties, an empty body (sections 3.14.2.1, 3.15.2.1); otherwise the
// Reason Code and, unless reasonOnly allows omitting an empty block, the
// properties.
func appendReasonBody(dst []byte, t Type, rc ReasonCode, p *Properties, reasonOnly bool) ([]byte, error) {
	e := encodeErrs(Level5)
	if err := checkReason(e, t, rc); err != nil {
		return dst, err
	}
	if err := p.check(t, propCtx(t)); err != nil {
		return dst, err
	}
	pl := p.size(propCtx(t))
	n := 0
	switch {
	case pl > 0 || rc != Success && !reasonOnly:
		n = 1 + remainingLengthLen(pl) + pl
	case rc != Success:
		n = 1
	}
	if err := checkRemainingV(e, t, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, t, 0, n)
	if n > 0 {
		dst = append(dst, byte(rc))
	}
	if n > 1 {
		dst = p.appendProps(dst, propCtx(t))
	}
	return dst, nil
}

// Type reports TypeAuth.
func (*Auth) Type() Type { return TypeAuth }

// Decode parses an AUTH body into a, whose Version must be Level5: in
// MQTT 3.1.1 type 15 is forbidden. A Remaining Length of 0 means Success
// without properties (section 3.15.2.1); otherwise the Authentication
// Method must be there ("It is a Protocol Error to omit the Authentication
// Method", section 3.15.2.2.2).
func (a *Auth) Decode(fh FixedHeader, body []byte) error {
	if a.Version != Level5 {
		// checkHeader refuses type 15 in the 3.1.1 form.
		return checkHeader(fh, TypeAuth, body, errs{})
	}
	rc, props, err := decodeReasonBody(fh, body, TypeAuth, false)
	if err != nil {
		return err
	}
	if len(body) > 0 && props.AuthMethod == "" {
		return errs{v5: true}.protocol(TypeAuth, "3.15.2.2.2", "no Authentication Method")
	}
	*a = Auth{Version: Level5, ReasonCode: rc, Properties: props}
	return nil
}

// Append appends the encoded AUTH to dst. It refuses an AUTH whose Version
// is not Level5, and one that holds anything but Success without
// properties (the empty AUTH) and has no Authentication Method.
func (a *Auth) Append(dst []byte) ([]byte, error) {
	if a.Version != Level5 {
		return dst, invalid(TypeAuth, "2.2.1", "AUTH exists only in MQTT 5 (Version 5)")
	}
	if a.Properties.AuthMethod == "" && (a.ReasonCode != Success || !a.Properties.empty()) {
		return dst, encodeErrs(Level5).protocol(TypeAuth, "3.15.2.2.2", "no Authentication Method")
	}
	return appendReasonBody(dst, TypeAuth, a.ReasonCode, &a.Properties, false)
}
