package packets

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxStringLen is the longest UTF-8 string or binary field: its length is
// a two byte integer (section 1.5.3).
const maxStringLen = 65535

// strKind says which rules a string field obeys beyond those of section
// 1.5.3 (1.5.4 in MQTT 5). The kinds from topicName on exclude wildcards.
type strKind uint8

const (
	text       strKind = iota // any UTF-8 string, empty included
	filter                    // at least one character
	topicName                 // at least one character, no wildcards
	aliasTopic                // an MQTT 5 PUBLISH topic: no wildcards, empty when a Topic Alias stands for it
	respTopic                 // an MQTT 5 Response Topic: a topic name
)

// strProblem is the first rule a string breaks, strOK if none.
type strProblem uint8

const (
	strOK strProblem = iota
	strIllFormed
	strNUL
	strEmpty
	strWildcard
)

// checkBytes finds the first rule b breaks as a string of kind k.
//
// Well-formed UTF-8 excludes the encodings of U+D800..U+DFFF and overlong
// forms, which utf8.Valid rejects [MQTT-1.5.3-1] [v5 MQTT-1.5.4-1]; U+0000
// is refused [MQTT-1.5.3-2] [v5 MQTT-1.5.4-2]. U+FEFF (a BOM) is an
// ordinary character and is kept [MQTT-1.5.3-3] [v5 MQTT-1.5.4-3]. The
// control characters and non-characters that the specifications only
// discourage are accepted.
//
// ASCII, always well formed, is checked in one pass for U+0000 and the
// wildcards; a string with other characters takes checkUTF8.
func checkBytes(b []byte, k strKind) strProblem {
	if len(b) == 0 {
		if k != text && k != aliasTopic {
			return strEmpty // [MQTT-4.7.3-1] [v5 MQTT-4.7.3-1]
		}
		return strOK
	}
	wild := k >= topicName
	p := strOK
	for _, c := range b {
		switch {
		case c >= 0x80:
			return checkUTF8(b, wild)
		case c > '+' || p != strOK:
		case c == 0:
			p = strNUL // [MQTT-1.5.3-2]
		case wild && (c == '+' || c == '#'):
			p = strWildcard // [MQTT-3.3.2-2] [MQTT-4.7.1-1]
		}
	}
	return p
}

// checkUTF8 is checkBytes for a string that is not all ASCII: well-formed
// UTF-8 first, then U+0000 and, if wild, the wildcards, whichever comes
// first. Multi-byte sequences never hold bytes below 0x80.
func checkUTF8(b []byte, wild bool) strProblem {
	switch {
	case !utf8.Valid(b):
		return strIllFormed // [MQTT-1.5.3-1]
	case wild:
		for _, c := range b {
			if c <= '+' && (c == 0 || c == '+' || c == '#') {
				if c == 0 {
					return strNUL
				}
				return strWildcard
			}
		}
	case bytes.IndexByte(b, 0) >= 0:
		return strNUL
	}
	return strOK
}

// checkString is checkBytes for a string about to be encoded.
func checkString(s string, k strKind) strProblem {
	switch {
	case len(s) == 0 && k != text && k != aliasTopic:
		return strEmpty
	case !utf8.ValidString(s):
		return strIllFormed
	case k >= topicName:
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= '+' && (c == 0 || c == '+' || c == '#') {
				if c == 0 {
					return strNUL
				}
				return strWildcard
			}
		}
	case strings.IndexByte(s, 0) >= 0:
		return strNUL
	}
	return strOK
}

// error builds the failure for a field of kind k of a packet of type t.
// Ill-formed UTF-8 and U+0000 make a Malformed Packet [v5 MQTT-1.5.4-1,
// MQTT-1.5.4-2]; an empty topic or a wildcard in a topic name parse, but
// the protocol forbids them: in MQTT 5, a Protocol Error.
func (p strProblem) error(t Type, field string, k strKind, e errs) error {
	switch p {
	case strIllFormed:
		if e.v5 {
			return e.malformed(t, "MQTT-1.5.4-1", field+" is not well-formed UTF-8")
		}
		return e.malformed(t, "MQTT-1.5.3-1", field+" is not well-formed UTF-8")
	case strNUL:
		if e.v5 {
			return e.malformed(t, "MQTT-1.5.4-2", field+" contains U+0000")
		}
		return e.malformed(t, "MQTT-1.5.3-2", field+" contains U+0000")
	case strEmpty:
		return e.protocol(t, "MQTT-4.7.3-1", field+" is empty")
	case strWildcard:
		rule := "MQTT-4.7.1-1"
		switch {
		case k == respTopic:
			rule = "MQTT-3.3.2-14" // [v5 MQTT-3.3.2-14]
		case t == TypePublish:
			rule = "MQTT-3.3.2-2" // [MQTT-3.3.2-2] [v5 MQTT-3.3.2-2]
		case e.v5:
			rule = "MQTT-4.7.0-1" // [v5 MQTT-4.7.0-1], a will topic
		}
		return e.protocol(t, rule, field+" contains a wildcard character")
	}
	return nil
}

// checkField validates a string field before it is encoded; e is the
// encode form of the packet's version.
func checkField(e errs, t Type, field, s string, k strKind) error {
	if len(s) > maxStringLen {
		return tooLong(e, t, field, len(s))
	}
	if p := checkString(s, k); p != strOK {
		return p.error(t, field, k, e)
	}
	return nil
}

// tooLong refuses to encode a string or binary field over 65535 bytes.
func tooLong(e errs, t Type, field string, n int) error {
	section := "1.5.3"
	if e.v5 {
		section = "1.5.4"
	}
	return e.malformed(t, section, field+" is "+strconv.Itoa(n)+" bytes, over 65535")
}

// decoder reads the fields of one packet body front to back. Every read
// checks that the field fits in what is left of the body.
type decoder struct {
	t       Type
	b       []byte // the unread rest of the body, or of a property block
	e       errs
	inProps bool // b is a property block, not the rest of the body
}

// short is the failure of a field that runs past the end of the body: the
// Remaining Length disagrees with the fields (section 2.2.3). In a property
// block, the value is not of its type (section 2.2.2.2 of MQTT 5).
func (d *decoder) short(field string) error {
	if d.inProps {
		return d.e.malformed(d.t, "2.2.2.2", field+" runs past the end of the properties")
	}
	return d.e.malformed(d.t, sectionLength(d.e.v5), field+" runs past the end of the packet")
}

func (d *decoder) byte(field string) (byte, error) {
	if len(d.b) < 1 {
		return 0, d.short(field)
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c, nil
}

func (d *decoder) uint16(field string) (uint16, error) {
	if len(d.b) < 2 {
		return 0, d.short(field)
	}
	v := uint16(d.b[0])<<8 | uint16(d.b[1])
	d.b = d.b[2:]
	return v, nil
}

func (d *decoder) uint32(field string) (uint32, error) {
	if len(d.b) < 4 {
		return 0, d.short(field)
	}
	v := uint32(d.b[0])<<24 | uint32(d.b[1])<<16 | uint32(d.b[2])<<8 | uint32(d.b[3])
	d.b = d.b[4:]
	return v, nil
}

// varInt reads a Variable Byte Integer: at most four bytes (section 1.5.5
// of MQTT 5), in the shortest form that holds the value [v5 MQTT-1.5.5-1].
func (d *decoder) varInt(field string) (int, error) {
	v, shift := 0, 0
	for i := range 4 {
		if i == len(d.b) {
			return 0, d.short(field)
		}
		c := d.b[i]
		v |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, d.e.malformed(d.t, "MQTT-1.5.5-1", field+" is not in its shortest form")
			}
			d.b = d.b[i+1:]
			return v, nil
		}
		shift += 7
	}
	return 0, d.e.malformed(d.t, "1.5.5", field+" is longer than four bytes")
}

// packetID reads a Packet Identifier, which is never zero [MQTT-2.3.1-1]
// [v5 MQTT-2.2.1-3, MQTT-2.2.1-4]. In MQTT 5 a zero parses but is not
// allowed: a Protocol Error.
func (d *decoder) packetID() (uint16, error) {
	id, err := d.uint16("packet identifier")
	if err == nil && id == 0 {
		if d.e.v5 {
			return 0, d.e.protocol(d.t, "MQTT-2.2.1-3", "packet identifier is zero")
		}
		err = malformed(d.t, "MQTT-2.3.1-1", "packet identifier is zero")
	}
	return id, err
}

// binary reads a field prefixed by its two byte length. The result aliases
// the body.
func (d *decoder) binary(field string) ([]byte, error) {
	if len(d.b) < 2 {
		return nil, d.short(field + " length")
	}
	n := int(d.b[0])<<8 | int(d.b[1])
	if len(d.b) < 2+n {
		return nil, d.short(field)
	}
	v := d.b[2 : 2+n : 2+n]
	d.b = d.b[2+n:]
	return v, nil
}

// str reads a UTF-8 string field of kind k. The result aliases the body.
func (d *decoder) str(field string, k strKind) ([]byte, error) {
	v, err := d.binary(field)
	if err != nil {
		return nil, err
	}
	if p := checkBytes(v, k); p != strOK {
		return nil, p.error(d.t, field, k, d.e)
	}
	return v, nil
}

// end fails when bytes remain after the last field (section 2.2.3).
func (d *decoder) end(rule string) error {
	if len(d.b) != 0 {
		return d.e.malformed(d.t, rule, strconv.Itoa(len(d.b))+" bytes after the last field")
	}
	return nil
}

// copyBytes returns a copy of b that does not alias the body, nil if empty.
func copyBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

func appendUint16(dst []byte, v uint16) []byte {
	return append(dst, byte(v>>8), byte(v))
}

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendString appends s with its two byte length; the caller has checked
// that len(s) <= 65535.
func appendString(dst []byte, s string) []byte {
	return append(appendUint16(dst, uint16(len(s))), s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	return append(appendUint16(dst, uint16(len(b))), b...)
}
