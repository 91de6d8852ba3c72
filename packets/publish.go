package packets

// Bits of the PUBLISH fixed header flags (section 3.3.1).
const (
	flagDup    = 0b1000
	flagRetain = 0b0001
)

// Type reports TypePublish.
func (*Publish) Type() Type { return TypePublish }

// Decode parses a PUBLISH body of the form p.Version selects into p,
// overwriting every field but Version. Payload aliases body (nil when
// empty). Topic is the only allocation, and is skipped when p already holds
// the same topic name (strings are immutable, so a previous value's Topic
// stays valid). In MQTT 5, Props.Raw aliases body too, except when other
// properties sit between its own on the wire (then it is a new copy), and
// Props.SubscriptionIDs reuses its backing array. p is left unchanged when
// Decode fails.
func (p *Publish) Decode(fh FixedHeader, body []byte) error {
	if p.Version == Level5 {
		return p.decode5(fh, body)
	}
	// DUP with QoS 0 and QoS 3 fail here [MQTT-3.3.1-2, MQTT-3.3.1-4].
	if err := checkHeader(fh, TypePublish, body, errs{}); err != nil {
		return err
	}
	d := decoder{t: TypePublish, b: body}
	// The topic name comes first [MQTT-3.3.2-1]: at least one character
	// [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2].
	topic, err := d.str("topic name", topicName)
	if err != nil {
		return err
	}
	qos := fh.Flags >> 1 & 3
	var id uint16
	if qos > 0 {
		// Only QoS 1 and 2 carry an identifier [MQTT-2.3.1-5], never zero
		// [MQTT-2.3.1-1].
		if id, err = d.packetID(); err != nil {
			return err
		}
	}
	payload := d.b // the payload takes the rest of the body (section 3.3.3)
	if len(payload) == 0 {
		payload = nil
	}
	name := p.Topic
	if name != string(topic) { // compares without converting
		name = string(topic)
	}
	*p = Publish{
		Version:  p.Version,
		Dup:      fh.Flags&flagDup != 0,
		QoS:      qos,
		Retain:   fh.Flags&flagRetain != 0,
		Topic:    name,
		PacketID: id,
		Payload:  payload,
	}
	return nil
}

// Append appends the encoded PUBLISH to dst, in the form p.Version
// selects. A QoS 0 PUBLISH carries no packet identifier [MQTT-2.3.1-5]
// [v5 MQTT-2.2.1-2], so PacketID is ignored at QoS 0. The 3.1.1 form
// ignores Props.
func (p *Publish) Append(dst []byte) ([]byte, error) {
	dst, err := p.AppendHeader(dst)
	if err != nil {
		return dst, err
	}
	return append(dst, p.Payload...), nil
}

// AppendHeader appends everything of the encoded PUBLISH but the payload:
// the fixed header (whose Remaining Length counts the payload), the topic
// name, for QoS 1 and 2 the packet identifier, and in MQTT 5 the
// properties. Writing the result and
// then p.Payload (for example with net.Buffers) sends the packet without
// copying the payload.
func (p *Publish) AppendHeader(dst []byte) ([]byte, error) {
	if p.Version == Level5 {
		return p.appendHeader5(dst)
	}
	if err := p.check(); err != nil {
		return dst, err
	}
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if err := checkRemaining(TypePublish, n); err != nil {
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
	if p.QoS > 0 { // [MQTT-2.3.1-5] no identifier at QoS 0
		dst = appendUint16(dst, p.PacketID)
	}
	return dst, nil
}

// check refuses what a receiver would reject.
func (p *Publish) check() error {
	switch {
	case p.QoS > 2:
		return invalid(TypePublish, "MQTT-3.3.1-4", "QoS above 2")
	case p.Dup && p.QoS == 0:
		return invalid(TypePublish, "MQTT-3.3.1-2", "DUP set on a QoS 0 message")
	case p.QoS > 0 && p.PacketID == 0:
		return invalid(TypePublish, "MQTT-2.3.1-1", "packet identifier is zero")
	}
	return checkField(errs{encode: true}, TypePublish, "topic name", p.Topic, topicName)
}

// PublishIDOffset returns the offset of the two byte packet identifier in
// pkt, the start of an encoded QoS 1 or QoS 2 PUBLISH (as Append or
// AppendHeader produce it), in either version: the properties of MQTT 5
// follow the identifier.
//
// A broker that sends one message to many subscribers encodes it once per
// (QoS, retain) shape, with any non-zero packet identifier, and for each
// subscriber copies the bytes and patches the identifier with SetPublishID
// (only the first PublishIDOffset+2 bytes differ between subscribers, so a
// shared payload can follow them in net.Buffers).
func PublishIDOffset(pkt []byte) (int, error) {
	fh, n, err := ParseFixedHeader(pkt)
	switch {
	case err != nil:
		return 0, err
	case n == 0:
		return 0, malformed(TypePublish, "2.2.3", "incomplete fixed header")
	case fh.Type != TypePublish:
		return 0, malformed(fh.Type, "2.2.1", "not a PUBLISH packet")
	case fh.Flags>>1&3 == 0:
		return 0, malformed(TypePublish, "MQTT-2.3.1-5", "a QoS 0 PUBLISH has no packet identifier")
	case len(pkt) < n+2:
		return 0, malformed(TypePublish, "2.2.3", "topic name runs past the end of the packet")
	}
	off := n + 2 + (int(pkt[n])<<8 | int(pkt[n+1]))
	if len(pkt) < off+2 || fh.Remaining < off+2-n {
		return 0, malformed(TypePublish, "2.2.3", "packet identifier runs past the end of the packet")
	}
	return off, nil
}

// SetPublishID overwrites the packet identifier of pkt, the start of an
// encoded QoS 1 or QoS 2 PUBLISH, with id, which must not be zero
// [MQTT-2.3.1-1].
func SetPublishID(pkt []byte, id uint16) error {
	if id == 0 {
		return invalid(TypePublish, "MQTT-2.3.1-1", "packet identifier is zero")
	}
	off, err := PublishIDOffset(pkt)
	if err != nil {
		return err
	}
	pkt[off], pkt[off+1] = byte(id>>8), byte(id)
	return nil
}

// SetPublishDup sets or clears the DUP flag of pkt, an encoded QoS 1 or
// QoS 2 PUBLISH. A sender sets it when it re-delivers the message
// [MQTT-3.3.1-1]; QoS 0 messages never carry it [MQTT-3.3.1-2].
func SetPublishDup(pkt []byte, dup bool) error {
	if _, err := PublishIDOffset(pkt); err != nil {
		return err
	}
	if dup {
		pkt[0] |= flagDup
	} else {
		pkt[0] &^= flagDup
	}
	return nil
}
