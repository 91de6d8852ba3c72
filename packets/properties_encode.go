package packets

// Len returns the size of p encoded in a packet of type t: the Property
// Length and the properties t may carry. It is what p adds to a packet's
// Remaining Length.
func (p *Properties) Len(t Type) int { return p.blockLen(propCtx(t)) }

// blockLen is Len for a context: the Property Length and the properties.
func (p *Properties) blockLen(c propCtx) int {
	n := p.size(c)
	return remainingLengthLen(n) + n
}

// empty reports whether p holds no property at all.
func (p *Properties) empty() bool { return p.size(0) == 0 }

// size is the encoded size of the properties of p allowed in c, without
// the Property Length.
func (p *Properties) size(c propCtx) int {
	n := 0
	p.each(c, func(id PropID, v propValue) {
		n += 1 + v.size()
	})
	return n
}

// propValue is one property value, of one of the types of section 1.5.
type propValue struct {
	typ  propType
	num  uint32 // ptByte, ptUint16, ptUint32, ptVarInt
	str  string // ptString, ptPair (the key)
	str2 string // ptPair (the value)
	bin  []byte // ptBinary
}

func (v propValue) size() int {
	switch v.typ {
	case ptByte:
		return 1
	case ptUint16:
		return 2
	case ptUint32:
		return 4
	case ptVarInt:
		return remainingLengthLen(int(v.num))
	case ptString:
		return 2 + len(v.str)
	case ptBinary:
		return 2 + len(v.bin)
	}
	return 4 + len(v.str) + len(v.str2)
}

func (v propValue) append(dst []byte) []byte {
	switch v.typ {
	case ptByte:
		return append(dst, byte(v.num))
	case ptUint16:
		return appendUint16(dst, uint16(v.num))
	case ptUint32:
		return appendUint32(dst, v.num)
	case ptVarInt:
		return appendVarInt(dst, int(v.num))
	case ptString:
		return appendString(dst, v.str)
	case ptBinary:
		return appendBinary(dst, v.bin)
	}
	return appendString(appendString(dst, v.str), v.str2)
}

// each calls f for every property of p that is present and allowed in c,
// in the order Append writes them: by identifier, User Properties and
// Subscription Identifiers in their slice order. c == 0 visits every
// present property.
func (p *Properties) each(c propCtx, f func(PropID, propValue)) {
	var all uint32 = 1<<32 - 1
	mask := all
	if c != 0 {
		mask = 1 << c
	}
	ok := func(id PropID) bool { pi, _ := id.info(); return pi.allowed&mask != 0 }
	b := func(id PropID, v *byte) {
		if v != nil && ok(id) {
			f(id, propValue{typ: ptByte, num: uint32(*v)})
		}
	}
	u16 := func(id PropID, v *uint16) {
		if v != nil && ok(id) {
			f(id, propValue{typ: ptUint16, num: uint32(*v)})
		}
	}
	u32 := func(id PropID, v *uint32) {
		if v != nil && ok(id) {
			f(id, propValue{typ: ptUint32, num: *v})
		}
	}
	s := func(id PropID, v string) {
		if v != "" && ok(id) {
			f(id, propValue{typ: ptString, str: v})
		}
	}
	bin := func(id PropID, v []byte) {
		if v != nil && ok(id) {
			f(id, propValue{typ: ptBinary, bin: v})
		}
	}
	b(PropPayloadFormat, p.PayloadFormat)
	u32(PropMessageExpiry, p.MessageExpiry)
	s(PropContentType, p.ContentType)
	s(PropResponseTopic, p.ResponseTopic)
	bin(PropCorrelationData, p.CorrelationData)
	if ok(PropSubscriptionID) {
		for _, id := range p.SubscriptionIDs {
			f(PropSubscriptionID, propValue{typ: ptVarInt, num: id})
		}
	}
	u32(PropSessionExpiry, p.SessionExpiry)
	s(PropAssignedClientID, p.AssignedClientID)
	u16(PropServerKeepAlive, p.ServerKeepAlive)
	s(PropAuthMethod, p.AuthMethod)
	bin(PropAuthData, p.AuthData)
	b(PropRequestProblemInfo, p.RequestProblemInfo)
	u32(PropWillDelay, p.WillDelay)
	b(PropRequestResponseInfo, p.RequestResponseInfo)
	s(PropResponseInfo, p.ResponseInfo)
	s(PropServerReference, p.ServerReference)
	s(PropReasonString, p.ReasonString)
	u16(PropReceiveMaximum, p.ReceiveMaximum)
	u16(PropTopicAliasMaximum, p.TopicAliasMaximum)
	u16(PropTopicAlias, p.TopicAlias)
	b(PropMaximumQoS, p.MaximumQoS)
	b(PropRetainAvailable, p.RetainAvailable)
	if ok(PropUserProperty) {
		for _, u := range p.User {
			f(PropUserProperty, propValue{typ: ptPair, str: u.Key, str2: u.Value})
		}
	}
	u32(PropMaximumPacketSize, p.MaximumPacketSize)
	b(PropWildcardSubAvailable, p.WildcardSubAvailable)
	b(PropSubIDAvailable, p.SubIDAvailable)
	b(PropSharedSubAvailable, p.SharedSubAvailable)
}

// appendProps appends the Property Length and the properties of p, which
// check has accepted for c.
func (p *Properties) appendProps(dst []byte, c propCtx) []byte {
	dst = appendVarInt(dst, p.size(c))
	p.each(c, func(id PropID, v propValue) {
		dst = v.append(append(dst, byte(id)))
	})
	return dst
}

// check refuses what a receiver of a packet of type t (or of the Will
// Properties, c == ctxWill) would reject: a property c may not carry, two
// Subscription Identifiers in a SUBSCRIBE, and the values that
// decodeProps refuses.
func (p *Properties) check(t Type, c propCtx) error {
	e := errs{v5: true, encode: true}
	var err error
	p.each(0, func(id PropID, v propValue) {
		if err != nil {
			return
		}
		if pi, _ := id.info(); pi.allowed&(1<<c) == 0 {
			err = e.malformed(t, "2.2.2.2", id.String()+" is not allowed in "+c.name())
			return
		}
		switch v.typ {
		case ptString:
			if len(v.str) > maxStringLen {
				err = tooLong(e, t, id.String(), len(v.str))
				return
			}
		case ptBinary:
			if len(v.bin) > maxStringLen {
				err = tooLong(e, t, id.String(), len(v.bin))
				return
			}
		case ptPair:
			if len(v.str) > maxStringLen || len(v.str2) > maxStringLen {
				err = tooLong(e, t, "User Property", max(len(v.str), len(v.str2)))
				return
			}
		}
		err = checkValue(e, t, id, v)
	})
	if err != nil {
		return err
	}
	if c == propCtx(TypeSubscribe) && len(p.SubscriptionIDs) > 1 {
		return e.protocol(t, "3.8.2.1.2", "more than one Subscription Identifier")
	}
	return checkAuth(e, t, c, p.AuthMethod != "", p.AuthData != nil)
}

// checkAuth applies the rules that tie Authentication Data to an
// Authentication Method: in a CONNECT, data without a method is a Protocol
// Error (section 3.1.2.11.10). An empty method names none, so it counts as
// absent.
func checkAuth(e errs, t Type, c propCtx, method, data bool) error {
	if c == propCtx(TypeConnect) && data && !method {
		return e.protocol(t, "3.1.2.11.10", "Authentication Data without an Authentication Method")
	}
	return nil
}
