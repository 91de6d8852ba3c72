package packets

import (
	"strconv"
	"strings"
)

// Bits of the MQTT 5 Subscription Options byte (section 3.8.3.1); bits 0
// and 1 are the QoS, 4 and 5 Retain Handling.
const (
	optNoLocal           = 0x04
	optRetainAsPublished = 0x08
	optReserved          = 0xC0
)

// Type reports TypeSubscribe.
func (*Subscribe) Type() Type { return TypeSubscribe }

// Decode parses a SUBSCRIBE body of the form s.Version selects into s,
// overwriting every field but Version with new values that do not alias
// body. Filters are checked as UTF-8 strings of at least one character;
// their wildcard syntax is checked by package topics.
func (s *Subscribe) Decode(fh FixedHeader, body []byte) error {
	e := errsFor(s.Version)
	// The fixed header flags are 0b0010 [MQTT-3.8.1-1] [v5 MQTT-3.8.1-1].
	if err := checkHeader(fh, TypeSubscribe, body, e); err != nil {
		return err
	}
	d := decoder{t: TypeSubscribe, b: body, e: e}
	id, err := d.packetID() // [MQTT-2.3.1-1] [v5 MQTT-2.2.1-3]
	if err != nil {
		return err
	}
	var props Properties
	if e.v5 {
		if props, err = d.props(propCtx(TypeSubscribe)); err != nil {
			return err
		}
	}
	if len(d.b) == 0 {
		if e.v5 {
			// "A SUBSCRIBE packet with no Payload is a Protocol Error."
			return e.protocol(TypeSubscribe, "MQTT-3.8.3-2", "no topic filter")
		}
		return e.malformed(TypeSubscribe, "MQTT-3.8.3-3", "no topic filter")
	}
	var subs []Subscription
	for len(d.b) > 0 {
		// [MQTT-3.8.3-1] [v5 MQTT-3.8.3-1] [MQTT-4.7.3-1]
		f, err := d.str("topic filter", filter)
		if err != nil {
			return err
		}
		opts, err := d.byte("subscription options")
		if err != nil {
			return err
		}
		sub := Subscription{Filter: string(f), QoS: opts & 3}
		if e.v5 {
			sub.NoLocal = opts&optNoLocal != 0
			sub.RetainAsPublished = opts&optRetainAsPublished != 0
			sub.RetainHandling = opts >> 4 & 3
		}
		if err := sub.check(e, opts); err != nil {
			return err
		}
		subs = append(subs, sub)
	}
	*s = Subscribe{Version: s.Version, PacketID: id, Properties: props, Subscriptions: subs}
	return nil
}

// check applies the rules of the options byte opts (0 when encoding) and
// the options of sub. In 3.1.1 the six upper bits are reserved and QoS is
// 0, 1 or 2; the specification spells that identifier "MQTT-3-8.3-4". In
// MQTT 5, non-zero reserved bits are a Malformed Packet [v5 MQTT-3.8.3-5];
// QoS 3, Retain Handling 3 (section 3.8.3.1) and No Local on a Shared
// Subscription [v5 MQTT-3.8.3-4] are Protocol Errors.
func (sub *Subscription) check(e errs, opts byte) error {
	t := TypeSubscribe
	switch {
	case !e.v5 && (opts > 2 || sub.QoS > 2):
		return e.malformed(t, "MQTT-3-8.3-4", "requested QoS byte 0x"+strconv.FormatUint(uint64(max(opts, sub.QoS)), 16))
	case !e.v5:
		return nil
	case opts&optReserved != 0:
		return e.malformed(t, "MQTT-3.8.3-5", "reserved subscription option bits are set")
	case sub.QoS > 2:
		return e.protocol(t, "3.8.3.1", "maximum QoS "+strconv.Itoa(int(sub.QoS)))
	case sub.RetainHandling > 2:
		return e.protocol(t, "3.8.3.1", "retain handling "+strconv.Itoa(int(sub.RetainHandling)))
	case sub.NoLocal && strings.HasPrefix(sub.Filter, "$share/"):
		return e.protocol(t, "MQTT-3.8.3-4", "no local on a shared subscription")
	}
	return nil
}

// Append appends the encoded SUBSCRIBE to dst, in the form s.Version
// selects. The 3.1.1 form ignores the properties and the options but QoS.
func (s *Subscribe) Append(dst []byte) ([]byte, error) {
	t := TypeSubscribe
	e := encodeErrs(s.Version)
	if err := checkID(e, t, s.PacketID); err != nil {
		return dst, err
	}
	if len(s.Subscriptions) == 0 {
		if e.v5 {
			return dst, e.protocol(t, "MQTT-3.8.3-2", "no topic filter")
		}
		return dst, e.malformed(t, "MQTT-3.8.3-3", "no topic filter")
	}
	n := 2
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		if err := checkField(e, t, "topic filter", sub.Filter, filter); err != nil {
			return dst, err
		}
		if err := sub.check(e, 0); err != nil {
			return dst, err
		}
		n += 2 + len(sub.Filter) + 1
	}
	if e.v5 {
		if err := s.Properties.check(t, propCtx(t)); err != nil {
			return dst, err
		}
		n += s.Properties.Len(t)
	}
	if err := checkRemainingV(e, t, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, t, requiredFlags(t), n)
	dst = appendUint16(dst, s.PacketID)
	if e.v5 {
		dst = s.Properties.appendProps(dst, propCtx(t))
	}
	for _, sub := range s.Subscriptions {
		opts := sub.QoS
		if e.v5 {
			opts |= sub.RetainHandling << 4
			if sub.NoLocal {
				opts |= optNoLocal
			}
			if sub.RetainAsPublished {
				opts |= optRetainAsPublished
			}
		}
		dst = append(appendString(dst, sub.Filter), opts)
	}
	return dst, nil
}

// checkID refuses to encode a zero Packet Identifier [MQTT-2.3.1-1] [v5
// MQTT-2.2.1-3].
func checkID(e errs, t Type, id uint16) error {
	switch {
	case id != 0:
		return nil
	case e.v5:
		return e.protocol(t, "MQTT-2.2.1-3", "packet identifier is zero")
	}
	return e.malformed(t, "MQTT-2.3.1-1", "packet identifier is zero")
}

// Type reports TypeUnsubscribe.
func (*Unsubscribe) Type() Type { return TypeUnsubscribe }

// Decode parses an UNSUBSCRIBE body of the form u.Version selects into u,
// overwriting every field but Version with new values that do not alias
// body.
func (u *Unsubscribe) Decode(fh FixedHeader, body []byte) error {
	e := errsFor(u.Version)
	// The fixed header flags are 0b0010 [MQTT-3.10.1-1] [v5 MQTT-3.10.1-1].
	if err := checkHeader(fh, TypeUnsubscribe, body, e); err != nil {
		return err
	}
	d := decoder{t: TypeUnsubscribe, b: body, e: e}
	id, err := d.packetID() // [MQTT-2.3.1-1] [v5 MQTT-2.2.1-3]
	if err != nil {
		return err
	}
	var props Properties
	if e.v5 {
		if props, err = d.props(propCtx(TypeUnsubscribe)); err != nil {
			return err
		}
	}
	if len(d.b) == 0 {
		// [MQTT-3.10.3-2]; in MQTT 5 "An UNSUBSCRIBE packet with no
		// Payload is a Protocol Error" [v5 MQTT-3.10.3-2].
		return e.protocol(TypeUnsubscribe, "MQTT-3.10.3-2", "no topic filter")
	}
	var filters []string
	for len(d.b) > 0 {
		// [MQTT-3.10.3-1] [v5 MQTT-3.10.3-1] [MQTT-4.7.3-1]
		f, err := d.str("topic filter", filter)
		if err != nil {
			return err
		}
		filters = append(filters, string(f))
	}
	*u = Unsubscribe{Version: u.Version, PacketID: id, Properties: props, Filters: filters}
	return nil
}

// Append appends the encoded UNSUBSCRIBE to dst, in the form u.Version
// selects. The 3.1.1 form ignores Properties.
func (u *Unsubscribe) Append(dst []byte) ([]byte, error) {
	t := TypeUnsubscribe
	e := encodeErrs(u.Version)
	if err := checkID(e, t, u.PacketID); err != nil {
		return dst, err
	}
	if len(u.Filters) == 0 {
		return dst, e.protocol(t, "MQTT-3.10.3-2", "no topic filter")
	}
	n := 2
	for _, f := range u.Filters {
		if err := checkField(e, t, "topic filter", f, filter); err != nil {
			return dst, err
		}
		n += 2 + len(f)
	}
	if e.v5 {
		if err := u.Properties.check(t, propCtx(t)); err != nil {
			return dst, err
		}
		n += u.Properties.Len(t)
	}
	if err := checkRemainingV(e, t, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, t, requiredFlags(t), n)
	dst = appendUint16(dst, u.PacketID)
	if e.v5 {
		dst = u.Properties.appendProps(dst, propCtx(t))
	}
	for _, f := range u.Filters {
		dst = appendString(dst, f)
	}
	return dst, nil
}
