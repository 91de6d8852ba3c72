package packets

import "strconv"

// Type reports TypeSubscribe.
func (*Subscribe) Type() Type { return TypeSubscribe }

// Decode parses a SUBSCRIBE body into s, overwriting every field with new
// values that do not alias body. Filters are checked as UTF-8 strings of at
// least one character; their wildcard syntax is checked by package topics.
func (s *Subscribe) Decode(fh FixedHeader, body []byte) error {
	// The fixed header flags are 0b0010 [MQTT-3.8.1-1].
	if err := checkHeader(fh, TypeSubscribe, body); err != nil {
		return err
	}
	d := decoder{t: TypeSubscribe, b: body}
	id, err := d.packetID() // [MQTT-2.3.1-1]
	if err != nil {
		return err
	}
	if len(d.b) == 0 {
		return malformed(TypeSubscribe, "MQTT-3.8.3-3", "no topic filter")
	}
	var subs []Subscription
	for len(d.b) > 0 {
		f, err := d.str("topic filter", filter) // [MQTT-3.8.3-1] [MQTT-4.7.3-1]
		if err != nil {
			return err
		}
		qos, err := d.byte("requested QoS")
		if err != nil {
			return err
		}
		if qos > 2 {
			// The six upper bits are reserved and QoS is 0, 1 or 2. The
			// specification spells this identifier "MQTT-3-8.3-4".
			return malformed(TypeSubscribe, "MQTT-3-8.3-4", "requested QoS byte 0x"+strconv.FormatUint(uint64(qos), 16))
		}
		subs = append(subs, Subscription{Filter: string(f), QoS: qos})
	}
	*s = Subscribe{PacketID: id, Subscriptions: subs}
	return nil
}

// Append appends the encoded SUBSCRIBE to dst.
func (s *Subscribe) Append(dst []byte) ([]byte, error) {
	t := TypeSubscribe
	if s.PacketID == 0 {
		return dst, invalid(t, "MQTT-2.3.1-1", "packet identifier is zero")
	}
	if len(s.Subscriptions) == 0 {
		return dst, invalid(t, "MQTT-3.8.3-3", "no topic filter")
	}
	n := 2
	for _, sub := range s.Subscriptions {
		if err := checkField(t, "topic filter", sub.Filter, filter); err != nil {
			return dst, err
		}
		if sub.QoS > 2 {
			return dst, invalid(t, "MQTT-3-8.3-4", "requested QoS above 2")
		}
		n += 2 + len(sub.Filter) + 1
	}
	if err := checkRemaining(t, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, t, requiredFlags(t), n)
	dst = appendUint16(dst, s.PacketID)
	for _, sub := range s.Subscriptions {
		dst = append(appendString(dst, sub.Filter), sub.QoS)
	}
	return dst, nil
}

// Type reports TypeSuback.
func (*Suback) Type() Type { return TypeSuback }

// validReturnCode reports whether c is a SUBACK return code: a granted QoS
// or the failure code; the others are reserved [MQTT-3.9.3-2].
func validReturnCode(c byte) bool { return c <= 2 || c == SubackFailure }

// Decode parses a SUBACK body into s. ReturnCodes is a copy.
func (s *Suback) Decode(fh FixedHeader, body []byte) error {
	if err := checkHeader(fh, TypeSuback, body); err != nil {
		return err
	}
	d := decoder{t: TypeSuback, b: body}
	id, err := d.packetID() // [MQTT-2.3.1-1]
	if err != nil {
		return err
	}
	if len(d.b) == 0 {
		// One return code per filter of the SUBSCRIBE, which has at least
		// one [MQTT-3.8.4-5, MQTT-3.8.3-3].
		return malformed(TypeSuback, "MQTT-3.8.4-5", "no return code")
	}
	for _, c := range d.b {
		if !validReturnCode(c) {
			return malformed(TypeSuback, "MQTT-3.9.3-2", "reserved return code 0x"+strconv.FormatUint(uint64(c), 16))
		}
	}
	*s = Suback{PacketID: id, ReturnCodes: copyBytes(d.b)}
	return nil
}

// Append appends the encoded SUBACK to dst.
func (s *Suback) Append(dst []byte) ([]byte, error) {
	t := TypeSuback
	switch {
	case s.PacketID == 0:
		return dst, invalid(t, "MQTT-2.3.1-1", "packet identifier is zero")
	case len(s.ReturnCodes) == 0:
		return dst, invalid(t, "MQTT-3.8.4-5", "no return code")
	}
	for _, c := range s.ReturnCodes {
		if !validReturnCode(c) {
			return dst, invalid(t, "MQTT-3.9.3-2", "reserved return code 0x"+strconv.FormatUint(uint64(c), 16))
		}
	}
	n := 2 + len(s.ReturnCodes)
	if err := checkRemaining(t, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, t, 0, n)
	dst = appendUint16(dst, s.PacketID)
	return append(dst, s.ReturnCodes...), nil
}

// Type reports TypeUnsubscribe.
func (*Unsubscribe) Type() Type { return TypeUnsubscribe }

// Decode parses an UNSUBSCRIBE body into u, overwriting every field with
// new values that do not alias body.
func (u *Unsubscribe) Decode(fh FixedHeader, body []byte) error {
	// The fixed header flags are 0b0010 [MQTT-3.10.1-1].
	if err := checkHeader(fh, TypeUnsubscribe, body); err != nil {
		return err
	}
	d := decoder{t: TypeUnsubscribe, b: body}
	id, err := d.packetID() // [MQTT-2.3.1-1]
	if err != nil {
		return err
	}
	if len(d.b) == 0 {
		return malformed(TypeUnsubscribe, "MQTT-3.10.3-2", "no topic filter")
	}
	var filters []string
	for len(d.b) > 0 {
		f, err := d.str("topic filter", filter) // [MQTT-3.10.3-1] [MQTT-4.7.3-1]
		if err != nil {
			return err
		}
		filters = append(filters, string(f))
	}
	*u = Unsubscribe{PacketID: id, Filters: filters}
	return nil
}

// Append appends the encoded UNSUBSCRIBE to dst.
func (u *Unsubscribe) Append(dst []byte) ([]byte, error) {
	t := TypeUnsubscribe
	if u.PacketID == 0 {
		return dst, invalid(t, "MQTT-2.3.1-1", "packet identifier is zero")
	}
	if len(u.Filters) == 0 {
		return dst, invalid(t, "MQTT-3.10.3-2", "no topic filter")
	}
	n := 2
	for _, f := range u.Filters {
		if err := checkField(t, "topic filter", f, filter); err != nil {
			return dst, err
		}
		n += 2 + len(f)
	}
	if err := checkRemaining(t, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, t, requiredFlags(t), n)
	dst = appendUint16(dst, u.PacketID)
	for _, f := range u.Filters {
		dst = appendString(dst, f)
	}
	return dst, nil
}
