package packets

import "strconv"

// Type reports TypeConnack.
func (*Connack) Type() Type { return TypeConnack }

// Decode parses a CONNACK body of the form c.Version selects into c,
// overwriting every field but Version.
func (c *Connack) Decode(fh FixedHeader, body []byte) error {
	e := errsFor(c.Version)
	if err := checkHeader(fh, TypeConnack, body, e); err != nil {
		return err
	}
	d := decoder{t: TypeConnack, b: body, e: e}
	flags, err := d.byte("acknowledge flags")
	if err != nil {
		return err
	}
	rc, err := d.byte("return code")
	if err != nil {
		return err
	}
	var props Properties
	end := "3.2.1" // the Remaining Length is 2
	if e.v5 {
		// The properties end the variable header; there is no payload
		// (sections 3.2.2.3, 3.2.3).
		if props, err = d.props(propCtx(TypeConnack)); err != nil {
			return err
		}
		end = "3.2.3"
	}
	if err := d.end(end); err != nil {
		return err
	}
	if err := checkConnack(e, flags&1 != 0, rc, flags&^1 != 0); err != nil {
		return err
	}
	*c = Connack{Version: c.Version, SessionPresent: flags&1 != 0, ReturnCode: rc, Properties: props}
	return nil
}

// checkConnack applies the rules of section 3.2.2: the reserved flags are
// zero [v5 MQTT-3.2.2-1], the code is one of the table's [v5 MQTT-3.2.2-8]
// and a refusal never has Session Present set [MQTT-3.2.2-4] [v5
// MQTT-3.2.2-6]. In MQTT 5 the last two parse: Protocol Errors.
func checkConnack(e errs, sp bool, rc byte, reserved bool) error {
	if !e.v5 {
		switch {
		case reserved:
			return e.malformed(TypeConnack, "3.2.2.1", "reserved acknowledge flags are set")
		case rc > RefusedNotAuthorized:
			return e.malformed(TypeConnack, "3.2.2.3", "reserved return code "+strconv.Itoa(int(rc)))
		case sp && rc != Accepted:
			return e.malformed(TypeConnack, "MQTT-3.2.2-4", "session present with a non-zero return code")
		}
		return nil
	}
	if reserved {
		return e.malformed(TypeConnack, "MQTT-3.2.2-1", "reserved acknowledge flags are set")
	}
	if err := checkReason(e, TypeConnack, ReasonCode(rc)); err != nil {
		return err
	}
	if sp && rc != byte(Success) {
		return e.protocol(TypeConnack, "MQTT-3.2.2-6", "session present with a non-zero Reason Code")
	}
	return nil
}

// Append appends the encoded CONNACK to dst, in the form c.Version
// selects. The 3.1.1 form ignores Properties.
func (c *Connack) Append(dst []byte) ([]byte, error) {
	e := encodeErrs(c.Version)
	if err := checkConnack(e, c.SessionPresent, c.ReturnCode, false); err != nil {
		return dst, err
	}
	var sp byte
	if c.SessionPresent {
		sp = 1
	}
	if !e.v5 {
		return append(appendFixedHeader(dst, TypeConnack, 0, 2), sp, c.ReturnCode), nil
	}
	if err := c.Properties.check(TypeConnack, propCtx(TypeConnack)); err != nil {
		return dst, err
	}
	n := 2 + c.Properties.Len(TypeConnack)
	if err := checkRemainingV(e, TypeConnack, n); err != nil {
		return dst, err
	}
	dst = append(appendFixedHeader(dst, TypeConnack, 0, n), sp, c.ReturnCode)
	return c.Properties.appendProps(dst, propCtx(TypeConnack)), nil
}
