package packets

import "strconv"

// MaxPacketSize is the largest total size of a packet on the wire: the type
// byte, four Remaining Length bytes and MaxRemainingLength bytes.
const MaxPacketSize = 1 + 4 + MaxRemainingLength

// Size reports the total size of the packet fh heads: the type byte, the
// Remaining Length bytes and the Remaining Length itself.
func (fh FixedHeader) Size() int {
	return 1 + remainingLengthLen(fh.Remaining) + fh.Remaining
}

// requiredFlags is the value the low nibble of the first byte must hold for
// each type other than PUBLISH, whose flags carry DUP, QoS and RETAIN
// (section 2.2.2, Table 2.2; section 2.1.3 of MQTT 5).
func requiredFlags(t Type) byte {
	switch t {
	case TypePubrel, TypeSubscribe, TypeUnsubscribe:
		return 0b0010
	}
	return 0
}

// flagsRule names the statement that fixes the flags of type t. The ids
// are the same in both versions, except for the general rule and AUTH.
func flagsRule(t Type, v5 bool) string {
	switch t {
	case TypePubrel:
		return "MQTT-3.6.1-1"
	case TypeSubscribe:
		return "MQTT-3.8.1-1"
	case TypeUnsubscribe:
		return "MQTT-3.10.1-1"
	case TypeDisconnect:
		return "MQTT-3.14.1-1"
	case TypeAuth:
		return "MQTT-3.15.1-1"
	}
	if v5 {
		return "MQTT-2.1.3-1"
	}
	return "MQTT-2.2.2-1"
}

// checkFirstByte validates the type and flags of a fixed header: reserved
// types and flags that differ from Table 2.2 are malformed, and the receiver
// closes the connection [MQTT-2.2.2-1, MQTT-2.2.2-2]. In MQTT 5, type 15 is
// AUTH and invalid flags are a Malformed Packet too [v5 MQTT-2.1.3-1].
func checkFirstByte(t Type, flags byte, e errs) error {
	switch {
	case t == TypeReserved || t == TypeAuth && !e.v5 || t > TypeAuth:
		// Type 0 is "Forbidden", and so is 15 in 3.1.1 (section 2.2.1,
		// Table 2.1; section 2.1.2 of MQTT 5).
		return e.malformed(t, sectionType(e.v5), "reserved control packet type "+strconv.Itoa(int(t)))
	case flags > 0x0f:
		return e.malformed(t, flagsRule(TypeReserved, e.v5), "flags do not fit in four bits")
	case t == TypePublish:
		qos := flags >> 1 & 3
		if qos == 3 {
			return e.malformed(t, "MQTT-3.3.1-4", "QoS 3 (both QoS bits set)") // [MQTT-3.3.1-4] [v5 MQTT-3.3.1-4]
		}
		if qos == 0 && flags&0b1000 != 0 {
			// [MQTT-3.3.1-2] [v5 MQTT-3.3.1-2]: in MQTT 5 an invalid flag
			// combination is a Malformed Packet (section 2.1.3).
			return e.malformed(t, "MQTT-3.3.1-2", "DUP set on a QoS 0 message")
		}
	case flags != requiredFlags(t):
		// [MQTT-2.2.2-1] [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] [MQTT-3.14.1-1]
		// [v5 MQTT-2.1.3-1] [v5 MQTT-3.15.1-1]
		return e.malformed(t, flagsRule(t, e.v5), "fixed header flags 0b"+strconv.FormatUint(uint64(flags|0x10), 2)[1:]+
			", want 0b"+strconv.FormatUint(uint64(requiredFlags(t)|0x10), 2)[1:])
	}
	return nil
}

// sectionType is the section that lists the packet types.
func sectionType(v5 bool) string {
	if v5 {
		return "2.1.2"
	}
	return "2.2.1"
}

// sectionLength is the section that defines the Remaining Length, which
// must agree with the fields of the packet.
func sectionLength(v5 bool) string {
	if v5 {
		return "2.1.4"
	}
	return "2.2.3"
}

// checkHeader validates fh against the type a Decode method parses and the
// body it was given.
func checkHeader(fh FixedHeader, want Type, body []byte, e errs) error {
	if fh.Type != want {
		return e.malformed(want, sectionType(e.v5), "fixed header is for "+fh.Type.String())
	}
	if err := checkFirstByte(fh.Type, fh.Flags, e); err != nil {
		return err
	}
	if fh.Remaining != len(body) {
		return e.malformed(want, sectionLength(e.v5), "Remaining Length "+strconv.Itoa(fh.Remaining)+
			" but the body holds "+strconv.Itoa(len(body))+" bytes")
	}
	if fh.Remaining > MaxRemainingLength {
		return e.malformed(want, sectionLength(e.v5), "Remaining Length over 268435455")
	}
	return nil
}

// ParseFixedHeader parses the fixed header of an MQTT 3.1.1 packet at the
// start of b and returns it with its length in bytes. When b holds only
// the start of a valid header it returns n == 0 and a nil error: more bytes
// are needed. The type and flags are validated [MQTT-2.2.2-1, MQTT-2.2.2-2]
// (type 15 is reserved) and a Remaining Length longer than four bytes is
// malformed (section 2.2.3). A Reader set to MQTT 5 parses the MQTT 5 form.
func ParseFixedHeader(b []byte) (fh FixedHeader, n int, err error) {
	return parseFixedHeader(b, false)
}

// parseFixedHeader is ParseFixedHeader for either version. In MQTT 5, type
// 15 is AUTH, and the Remaining Length is a Variable Byte Integer, which
// must use the fewest bytes that hold its value [v5 MQTT-1.5.5-1].
func parseFixedHeader(b []byte, v5 bool) (fh FixedHeader, n int, err error) {
	if len(b) == 0 {
		return fh, 0, nil
	}
	e := errs{v5: v5}
	fh.Type, fh.Flags = Type(b[0]>>4), b[0]&0x0f
	if err := checkFirstByte(fh.Type, fh.Flags, e); err != nil {
		return fh, 0, err
	}
	// Remaining Length: seven bits a byte, least significant group first,
	// the high bit set on every byte but the last, at most four bytes
	// (section 2.2.3).
	shift := 0
	for i := 1; i < len(b); i++ {
		c := b[i]
		fh.Remaining |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			if v5 && c == 0 && i > 1 {
				return fh, 0, e.malformed(fh.Type, "MQTT-1.5.5-1", "Remaining Length is not in its shortest form")
			}
			return fh, i + 1, nil
		}
		if i == 4 {
			return fh, 0, e.malformed(fh.Type, sectionLength(v5), "Remaining Length longer than four bytes")
		}
		shift += 7
	}
	return FixedHeader{}, 0, nil
}

// Append appends the encoded fixed header to dst: the type and flags byte,
// then the Remaining Length in one to four bytes (section 2.2.3). It fails,
// appending nothing, when ParseFixedHeader would refuse the result.
func (fh FixedHeader) Append(dst []byte) ([]byte, error) {
	if err := checkFirstByte(fh.Type, fh.Flags, errs{encode: true}); err != nil {
		return dst, err
	}
	if fh.Remaining < 0 || fh.Remaining > MaxRemainingLength {
		return dst, invalid(fh.Type, "2.2.3", "Remaining Length "+strconv.Itoa(fh.Remaining)+" out of range")
	}
	return appendFixedHeader(dst, fh.Type, fh.Flags, fh.Remaining), nil
}

// remainingLengthLen is the number of bytes that encode n as a Variable
// Byte Integer.
func remainingLengthLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}

// appendFixedHeader appends the first byte and the Remaining Length n,
// which the caller has checked is at most MaxRemainingLength.
func appendFixedHeader(dst []byte, t Type, flags byte, n int) []byte {
	return appendVarInt(append(dst, byte(t)<<4|flags), n)
}

// appendVarInt appends n, at most MaxRemainingLength, as a Variable Byte
// Integer in its shortest form (section 2.2.3; [v5 MQTT-1.5.5-1]).
func appendVarInt(dst []byte, n int) []byte {
	for n >= 128 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	return append(dst, byte(n))
}

// checkRemaining refuses to encode a body longer than the protocol allows.
func checkRemaining(t Type, n int) error {
	return checkRemainingV(encodeErrs(0), t, n)
}

// checkRemainingV is checkRemaining naming the rule of either version.
func checkRemainingV(e errs, t Type, n int) error {
	if n > MaxRemainingLength {
		return e.malformed(t, sectionLength(e.v5), "packet body of "+strconv.Itoa(n)+" bytes exceeds the maximum Remaining Length")
	}
	return nil
}
