package packets

import (
	"bytes"
	"strconv"
)

// props reads a Property Length and the properties it announces (section
// 2.2.2) of a packet of type d.t, or of the Will Properties (c == ctxWill).
func (d *decoder) props(c propCtx) (Properties, error) {
	n, err := d.varInt("property length")
	if err != nil {
		return Properties{}, err
	}
	if n > len(d.b) {
		return Properties{}, d.e.malformed(d.t, "2.2.2.1", "property length "+strconv.Itoa(n)+
			" runs past the end of the packet")
	}
	pd := decoder{t: d.t, b: d.b[:n], e: d.e, inProps: true}
	d.b = d.b[n:]
	return pd.propBlock(c)
}

// propBlock decodes the properties in d.b, a whole property block without
// its Property Length, as they appear in c.
//
// An identifier Table 2-4 does not define or does not allow in c, or a
// value not of its type, is a Malformed Packet (section 2.2.2.2), and so is
// ill-formed UTF-8 [v5 MQTT-1.5.4-1, MQTT-1.5.4-2, MQTT-1.5.7-1]. A property
// given twice where the specification allows one, and the values it forbids,
// parse: they are Protocol Errors, each stated in the property's section.
func (d *decoder) propBlock(c propCtx) (Properties, error) {
	var p Properties
	var seen uint64
	for len(d.b) > 0 {
		id, pi, err := d.propID(c)
		if err != nil {
			return Properties{}, err
		}
		if id != PropUserProperty && (id != PropSubscriptionID || c != propCtx(TypePublish)) {
			// Only User Properties, and Subscription Identifiers in a
			// PUBLISH (section 3.3.4), may repeat.
			if seen&(1<<id) != 0 {
				return Properties{}, d.e.protocol(d.t, pi.section, pi.name+" included more than once")
			}
			seen |= 1 << id
		}
		v, err := d.value(pi)
		if err != nil {
			return Properties{}, err
		}
		if err := checkValue(d.e, d.t, id, v); err != nil {
			return Properties{}, err
		}
		p.set(id, v)
	}
	if err := checkAuth(d.e, d.t, c, p.AuthMethod != "", p.AuthData != nil); err != nil {
		return Properties{}, err
	}
	return p, nil
}

// propID reads a property identifier, a Variable Byte Integer (section
// 2.2.2.2), and looks it up.
func (d *decoder) propID(c propCtx) (PropID, propInfo, error) {
	v, err := d.varInt("property identifier")
	if err != nil {
		return 0, propInfo{}, err
	}
	pi, ok := PropID(v).info()
	switch {
	case v > 0xff || !ok:
		return 0, propInfo{}, d.e.malformed(d.t, "2.2.2.2", "unknown property identifier 0x"+strconv.FormatUint(uint64(v), 16))
	case pi.allowed&(1<<c) == 0:
		return 0, propInfo{}, d.e.malformed(d.t, "2.2.2.2", pi.name+" is not allowed in "+c.name())
	}
	return PropID(v), pi, nil
}

// value reads a value of the type of pi. Strings and binary data are
// copies that do not alias the body.
func (d *decoder) value(pi propInfo) (propValue, error) {
	v := propValue{typ: pi.typ}
	var err error
	switch pi.typ {
	case ptByte:
		var b byte
		b, err = d.byte(pi.name)
		v.num = uint32(b)
	case ptUint16:
		var n uint16
		n, err = d.uint16(pi.name)
		v.num = uint32(n)
	case ptUint32:
		v.num, err = d.uint32(pi.name)
	case ptVarInt:
		var n int
		n, err = d.varInt(pi.name)
		v.num = uint32(n)
	case ptString:
		var b []byte
		if b, err = d.binary(pi.name); err == nil {
			v.str = string(b)
		}
	case ptBinary:
		var b []byte
		if b, err = d.binary(pi.name); err == nil {
			v.bin = bytes.Clone(b) // present, so never nil
		}
	case ptPair:
		var k, val []byte
		if k, err = d.binary("User Property name"); err == nil {
			if val, err = d.binary("User Property value"); err == nil {
				v.str, v.str2 = string(k), string(val)
			}
		}
	}
	return v, err
}

// checkValue applies the rules on the value of one property, for decoding
// and encoding alike.
func checkValue(e errs, t Type, id PropID, v propValue) error {
	zeroOne := func(section string) error {
		if v.num > 1 {
			return e.protocol(t, section, id.String()+" is "+strconv.Itoa(int(v.num))+", not 0 or 1")
		}
		return nil
	}
	switch id {
	case PropPayloadFormat:
		return zeroOne("3.3.2.3.2") // 0 unspecified bytes, 1 UTF-8 (also 3.1.3.2.3)
	case PropRequestProblemInfo:
		return zeroOne("3.1.2.11.7")
	case PropRequestResponseInfo:
		return zeroOne("3.1.2.11.6")
	case PropMaximumQoS:
		return zeroOne("3.2.2.3.4")
	case PropRetainAvailable:
		return zeroOne("3.2.2.3.5")
	case PropWildcardSubAvailable:
		return zeroOne("3.2.2.3.11")
	case PropSubIDAvailable:
		return zeroOne("3.2.2.3.12")
	case PropSharedSubAvailable:
		return zeroOne("3.2.2.3.13")
	case PropReceiveMaximum, PropMaximumPacketSize:
		if v.num == 0 {
			// "It is a Protocol Error ... for it to have the value 0"
			// (sections 3.1.2.11.3, 3.1.2.11.4, 3.2.2.3.3, 3.2.2.3.6).
			section := "3.1.2.11.4"
			if id == PropReceiveMaximum {
				section = "3.1.2.11.3"
			}
			return e.protocol(t, section, id.String()+" is 0")
		}
	case PropTopicAlias:
		if v.num == 0 {
			// [v5 MQTT-3.3.2-8]; the receiver answers 0x94 (section 3.3.4).
			return e.code(t, "MQTT-3.3.2-8", "Topic Alias is 0", TopicAliasInvalid)
		}
	case PropSubscriptionID:
		return checkSubscriptionID(e, t, v.num)
	case PropResponseTopic:
		// A topic name [v5 MQTT-3.3.2-13, MQTT-3.3.2-14, MQTT-4.7.3-1].
		if p := checkString(v.str, respTopic); p != strOK {
			return p.error(t, "Response Topic", respTopic, e)
		}
	case PropUserProperty:
		for _, s := range [2]string{v.str, v.str2} {
			switch checkString(s, text) {
			case strIllFormed:
				return e.malformed(t, "MQTT-1.5.7-1", "User Property is not well-formed UTF-8")
			case strNUL:
				return e.malformed(t, "MQTT-1.5.7-1", "User Property contains U+0000")
			}
		}
	default:
		if v.typ == ptString {
			if p := checkString(v.str, text); p != strOK {
				return p.error(t, id.String(), text, e)
			}
		}
	}
	return nil
}

// checkSubscriptionID applies the range of section 3.3.2.3.8: 1 to
// 268,435,455. 0 is a Protocol Error (sections 3.3.2.3.8, 3.8.2.1.2);
// beyond the range it does not fit a Variable Byte Integer (Append only).
func checkSubscriptionID(e errs, t Type, id uint32) error {
	switch {
	case id == 0:
		section := "3.8.2.1.2"
		if t == TypePublish {
			section = "3.3.2.3.8"
		}
		return e.protocol(t, section, "Subscription Identifier is 0")
	case id > MaxSubscriptionID:
		return e.malformed(t, "1.5.5", "Subscription Identifier "+strconv.FormatUint(uint64(id), 10)+
			" does not fit a Variable Byte Integer")
	}
	return nil
}

// set stores a decoded value in its field.
func (p *Properties) set(id PropID, v propValue) {
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = new(byte(v.num))
	case PropMessageExpiry:
		p.MessageExpiry = new(v.num)
	case PropContentType:
		p.ContentType = v.str
	case PropResponseTopic:
		p.ResponseTopic = v.str
	case PropCorrelationData:
		p.CorrelationData = v.bin
	case PropSubscriptionID:
		p.SubscriptionIDs = append(p.SubscriptionIDs, v.num)
	case PropSessionExpiry:
		p.SessionExpiry = new(v.num)
	case PropAssignedClientID:
		p.AssignedClientID = v.str
	case PropServerKeepAlive:
		p.ServerKeepAlive = new(uint16(v.num))
	case PropAuthMethod:
		p.AuthMethod = v.str
	case PropAuthData:
		p.AuthData = v.bin
	case PropRequestProblemInfo:
		p.RequestProblemInfo = new(byte(v.num))
	case PropWillDelay:
		p.WillDelay = new(v.num)
	case PropRequestResponseInfo:
		p.RequestResponseInfo = new(byte(v.num))
	case PropResponseInfo:
		p.ResponseInfo = v.str
	case PropServerReference:
		p.ServerReference = v.str
	case PropReasonString:
		p.ReasonString = v.str
	case PropReceiveMaximum:
		p.ReceiveMaximum = new(uint16(v.num))
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = new(uint16(v.num))
	case PropTopicAlias:
		p.TopicAlias = new(uint16(v.num))
	case PropMaximumQoS:
		p.MaximumQoS = new(byte(v.num))
	case PropRetainAvailable:
		p.RetainAvailable = new(byte(v.num))
	case PropUserProperty:
		p.User = append(p.User, UserProperty{Key: v.str, Value: v.str2})
	case PropMaximumPacketSize:
		p.MaximumPacketSize = new(v.num)
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = new(byte(v.num))
	case PropSubIDAvailable:
		p.SubIDAvailable = new(byte(v.num))
	case PropSharedSubAvailable:
		p.SharedSubAvailable = new(byte(v.num))
	}
}
