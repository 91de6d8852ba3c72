package packets

// decode5 is Decode for the MQTT 5 form.
func (p *Publish) decode5(fh FixedHeader, body []byte) error {
	e := errs{v5: true}
	// DUP with QoS 0 and QoS 3 fail here [v5 MQTT-3.3.1-2, MQTT-3.3.1-4].
	if err := checkHeader(fh, TypePublish, body, e); err != nil {
		return err
	}
	d := decoder{t: TypePublish, b: body, e: e}
	// The topic name comes first [v5 MQTT-3.3.2-1], without wildcards
	// [v5 MQTT-3.3.2-2]; it may be empty when a Topic Alias stands for it.
	topic, err := d.str("topic name", aliasTopic)
	if err != nil {
		return err
	}
	qos := fh.Flags >> 1 & 3
	var id uint16
	if qos > 0 {
		// Only QoS 1 and 2 carry an identifier [v5 MQTT-2.2.1-2].
		if id, err = d.packetID(); err != nil {
			return err
		}
	}
	n, err := d.varInt("property length")
	if err != nil {
		return err
	}
	if n > len(d.b) {
		return e.malformed(TypePublish, "2.2.2.1", "property length runs past the end of the packet")
	}
	block := d.b[:n:n]
	var pp PublishProps
	var first [4]uint32
	ids, err := pp.scan(decoder{t: TypePublish, b: block, e: e, inProps: true}, false, &first)
	if err != nil {
		return err
	}
	if len(topic) == 0 && !pp.HasTopicAlias {
		// "It is a Protocol Error if the Topic Name is zero length and
		// there is no Topic Alias" (section 3.3.2.1).
		return e.protocol(TypePublish, "3.3.2.1", "empty topic name without a Topic Alias")
	}
	pp.SubscriptionIDs = p.Props.SubscriptionIDs[:0]
	if ids <= len(first) {
		pp.SubscriptionIDs = append(pp.SubscriptionIDs, first[:ids]...)
	} else {
		pp.SubscriptionIDs = appendSubscriptionIDs(pp.SubscriptionIDs, block)
	}
	payload := d.b[n:] // the payload takes the rest of the body (section 3.3.3)
	if len(payload) == 0 {
		payload = nil
	}
	name := p.Topic
	if name != string(topic) { // compares without converting
		name = string(topic)
	}
	*p = Publish{
		Version:  Level5,
		Dup:      fh.Flags&flagDup != 0,
		QoS:      qos,
		Retain:   fh.Flags&flagRetain != 0,
		Topic:    name,
		PacketID: id,
		Props:    pp,
		Payload:  payload,
	}
	return nil
}

// publishProp reports whether a PUBLISH may carry property id (Table 2-4).
func publishProp(id PropID) bool {
	switch id {
	case PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData,
		PropSubscriptionID, PropTopicAlias, PropUserProperty:
		return true
	}
	return false
}

// scan validates the PUBLISH property block in d.b and fills pp: the
// decoded properties and Raw, which aliases the block when its properties
// are contiguous there and is a copy otherwise. It returns the number of
// Subscription Identifiers, and stores the first len(ids) of them in ids,
// not in pp. With rawOnly, the block is a PublishProps.Raw about to be
// encoded, which may hold only the Raw kinds; pp is not filled.
//
// The rules are those of propBlock, without allocating: an unknown or
// misplaced identifier, a value not of its type and ill-formed UTF-8 are a
// Malformed Packet; a repeated property (only User Property and
// Subscription Identifier may repeat, section 3.3.4) and a forbidden value
// are Protocol Errors.
func (pp *PublishProps) scan(d decoder, rawOnly bool, ids *[4]uint32) (n int, err error) {
	block := d.b
	var seen uint64
	rawFirst, rawEnd, rawLen := -1, 0, 0
	for len(d.b) > 0 {
		start := len(block) - len(d.b)
		id := PropID(d.b[0])
		if d.b[0] >= 0x80 || !publishProp(id) {
			// All identifiers are one byte long (section 2.2.2.2); the
			// general reader names what is wrong with this one.
			if _, _, err := d.propID(propCtx(TypePublish)); err != nil {
				return 0, err
			}
			return 0, d.e.malformed(TypePublish, "2.2.2.2", "property not allowed in a PUBLISH")
		}
		d.b = d.b[1:]
		if rawOnly && !rawKind(id) {
			return 0, d.e.malformed(TypePublish, "2.2.2.2", id.String()+" does not belong in PublishProps.Raw")
		}
		if id != PropUserProperty && id != PropSubscriptionID {
			if seen&(1<<id) != 0 {
				pi, _ := id.info()
				return 0, d.e.protocol(TypePublish, pi.section, pi.name+" included more than once")
			}
			seen |= 1 << id
		}
		sub, err := pp.scanValue(&d, id)
		if err != nil {
			return 0, err
		}
		if id == PropSubscriptionID {
			if ids != nil && n < len(ids) {
				ids[n] = sub
			}
			n++
		}
		if rawKind(id) {
			end := len(block) - len(d.b)
			if rawFirst < 0 {
				rawFirst = start
			}
			rawEnd, rawLen = end, rawLen+end-start
		}
	}
	switch {
	case rawOnly || rawLen == 0:
	case rawEnd-rawFirst == rawLen:
		pp.Raw = block[rawFirst:rawEnd:rawEnd]
	default:
		pp.Raw = appendRaw(make([]byte, 0, rawLen), block)
	}
	return n, nil
}

// scanValue reads and checks the value of property id of a PUBLISH, and
// stores the decoded kinds in pp; it returns a Subscription Identifier.
func (pp *PublishProps) scanValue(d *decoder, id PropID) (uint32, error) {
	switch id {
	case PropPayloadFormat:
		v, err := d.byte("Payload Format Indicator")
		if err == nil {
			err = checkValue(d.e, TypePublish, id, propValue{num: uint32(v)})
		}
		pp.PayloadFormat, pp.HasPayloadFormat = v, true
		return 0, err
	case PropMessageExpiry:
		v, err := d.uint32("Message Expiry Interval")
		pp.MessageExpiry, pp.HasMessageExpiry = v, true
		return 0, err
	case PropTopicAlias:
		v, err := d.uint16("Topic Alias")
		if err == nil {
			err = checkValue(d.e, TypePublish, id, propValue{num: uint32(v)})
		}
		pp.TopicAlias, pp.HasTopicAlias = v, true
		return 0, err
	case PropSubscriptionID:
		v, err := d.varInt("Subscription Identifier")
		if err == nil {
			err = checkSubscriptionID(d.e, TypePublish, uint32(v))
		}
		return uint32(v), err
	case PropCorrelationData:
		_, err := d.binary("Correlation Data")
		return 0, err
	case PropUserProperty:
		for _, field := range [2]string{"User Property name", "User Property value"} {
			b, err := d.binary(field)
			if err != nil {
				return 0, err
			}
			switch checkBytes(b, text) {
			case strIllFormed:
				return 0, d.e.malformed(TypePublish, "MQTT-1.5.7-1", field+" is not well-formed UTF-8")
			case strNUL:
				return 0, d.e.malformed(TypePublish, "MQTT-1.5.7-1", field+" contains U+0000")
			}
		}
		return 0, nil
	case PropResponseTopic:
		// A topic name [v5 MQTT-3.3.2-13, MQTT-3.3.2-14, MQTT-4.7.3-1].
		_, err := d.str("Response Topic", respTopic)
		return 0, err
	}
	_, err := d.str("Content Type", text) // [v5 MQTT-3.3.2-19]
	return 0, err
}

// nextProp splits the first property off b, a property block already
// validated, whose identifiers are all one byte long.
func nextProp(b []byte) (id PropID, value, rest []byte) {
	id = PropID(b[0])
	pi, _ := id.info()
	n := 0
	switch pi.typ {
	case ptByte:
		n = 1
	case ptUint16:
		n = 2
	case ptUint32:
		n = 4
	case ptVarInt:
		for b[1+n]&0x80 != 0 {
			n++
		}
		n++
	case ptString, ptBinary:
		n = 2 + (int(b[1])<<8 | int(b[2]))
	case ptPair:
		n = 2 + (int(b[1])<<8 | int(b[2]))
		n += 2 + (int(b[1+n])<<8 | int(b[2+n]))
	}
	return id, b[1 : 1+n], b[1+n:]
}

// appendRaw appends the Raw kinds of the validated block b, in order.
func appendRaw(dst, b []byte) []byte {
	for len(b) > 0 {
		id, _, rest := nextProp(b)
		if rawKind(id) {
			dst = append(dst, b[:len(b)-len(rest)]...)
		}
		b = rest
	}
	return dst
}

// appendSubscriptionIDs appends the Subscription Identifiers of the
// validated block b to dst.
func appendSubscriptionIDs(dst []uint32, b []byte) []uint32 {
	for len(b) > 0 {
		id, v, rest := nextProp(b)
		if id == PropSubscriptionID {
			n, shift := uint32(0), 0
			for _, c := range v {
				n |= uint32(c&0x7f) << shift
				shift += 7
			}
			dst = append(dst, n)
		}
		b = rest
	}
	return dst
}

// propsLen is the size of the properties of the MQTT 5 form of p, without
// the Property Length.
func (p *Publish) propsLen() int {
	n := len(p.Props.Raw)
	if p.Props.HasPayloadFormat {
		n += 2
	}
	if p.Props.HasMessageExpiry {
		n += 5
	}
	if p.Props.HasTopicAlias {
		n += 3
	}
	for _, id := range p.Props.SubscriptionIDs {
		n += 1 + remainingLengthLen(int(id))
	}
	return n
}

// appendHeader5 is AppendHeader for the MQTT 5 form.
func (p *Publish) appendHeader5(dst []byte) ([]byte, error) {
	if err := p.check5(); err != nil {
		return dst, err
	}
	pl := p.propsLen()
	n := 2 + len(p.Topic) + remainingLengthLen(pl) + pl + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	e := encodeErrs(Level5)
	if err := checkRemainingV(e, TypePublish, n); err != nil {
		return dst, err
	}
	flags := p.QoS << 1
	if p.Dup {
		flags |= flagDup
	}
	if p.Retain {
		flags |= flagRetain
	}
	dst = appendFixedHeader(dst, TypePublish, flags, n)
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 { // [v5 MQTT-2.2.1-2] no identifier at QoS 0
		dst = appendUint16(dst, p.PacketID)
	}
	dst = appendVarInt(dst, pl)
	pp := &p.Props
	if pp.HasPayloadFormat {
		dst = append(dst, byte(PropPayloadFormat), pp.PayloadFormat)
	}
	if pp.HasMessageExpiry {
		dst = appendUint32(append(dst, byte(PropMessageExpiry)), pp.MessageExpiry)
	}
	if pp.HasTopicAlias {
		dst = appendUint16(append(dst, byte(PropTopicAlias)), pp.TopicAlias)
	}
	for _, id := range pp.SubscriptionIDs {
		dst = appendVarInt(append(dst, byte(PropSubscriptionID)), int(id))
	}
	return append(dst, pp.Raw...), nil
}

// check5 refuses what a receiver of an MQTT 5 PUBLISH would reject.
func (p *Publish) check5() error {
	e := encodeErrs(Level5)
	t := TypePublish
	pp := &p.Props
	switch {
	case p.QoS > 2:
		return e.malformed(t, "MQTT-3.3.1-4", "QoS above 2")
	case p.Dup && p.QoS == 0:
		return e.malformed(t, "MQTT-3.3.1-2", "DUP set on a QoS 0 message")
	case p.QoS > 0 && p.PacketID == 0:
		return e.protocol(t, "MQTT-2.2.1-3", "packet identifier is zero")
	case p.Topic == "" && !pp.HasTopicAlias:
		return e.protocol(t, "3.3.2.1", "empty topic name without a Topic Alias")
	case pp.HasPayloadFormat && pp.PayloadFormat > 1:
		return checkValue(e, t, PropPayloadFormat, propValue{num: uint32(pp.PayloadFormat)})
	case pp.HasTopicAlias && pp.TopicAlias == 0:
		return checkValue(e, t, PropTopicAlias, propValue{})
	}
	for _, id := range pp.SubscriptionIDs {
		if err := checkSubscriptionID(e, t, id); err != nil {
			return err
		}
	}
	if err := checkField(e, t, "topic name", p.Topic, aliasTopic); err != nil {
		return err
	}
	if len(pp.Raw) > 0 {
		var raw PublishProps
		if _, err := raw.scan(decoder{t: t, b: pp.Raw, e: e, inProps: true}, true, nil); err != nil {
			return err
		}
	}
	return nil
}
