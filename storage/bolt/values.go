package bolt

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ternmq/tern/storage"
)

// formatV1 is the first byte of every value. A later format gets a new
// byte and this package learns to read both.
const formatV1 = 1

// Value flags.
const (
	// sessions
	fClean = 1 << 0
	fSeen  = 1 << 1
	// deliveries
	fRetain    = 1 << 0
	fReleased  = 1 << 1
	fMsgRetain = 1 << 2
	// retained messages
	fRetainedRetain = 1 << 0
	// every value: an identifier or name too long for its key follows
	fClientID = 1 << 6
	fName     = 1 << 7
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// appendSessionValue: version, flags, [seconds varint, nanoseconds
// uvarint], username, [client].
func appendSessionValue(b []byte, s *storage.Session) []byte {
	var flags byte
	if s.Clean {
		flags |= fClean
	}
	if !s.LastSeen.IsZero() {
		flags |= fSeen
	}
	if !idInline(s.ClientID) {
		flags |= fClientID
	}
	b = append(b, formatV1, flags)
	if flags&fSeen != 0 {
		b = binary.AppendVarint(b, s.LastSeen.Unix())
		b = binary.AppendUvarint(b, uint64(s.LastSeen.Nanosecond()))
	}
	b = appendString(b, s.Username)
	if flags&fClientID != 0 {
		b = appendString(b, s.ClientID)
	}
	return b
}

// appendSubscriptionValue: version, flags, QoS, [client], [filter].
func appendSubscriptionValue(b []byte, s *storage.Subscription) []byte {
	var flags byte
	if !idInline(s.ClientID) {
		flags |= fClientID
	}
	if !nameInline(s.Filter, true) {
		flags |= fName
	}
	b = append(b, formatV1, flags, s.QoS)
	if flags&fClientID != 0 {
		b = appendString(b, s.ClientID)
	}
	if flags&fName != 0 {
		b = appendString(b, s.Filter)
	}
	return b
}

// appendDeliveryValue: version, flags, packet identifier (2 bytes big
// endian), delivered QoS, message QoS, topic, payload, [client].
func appendDeliveryValue(b []byte, d *storage.Delivery) []byte {
	var flags byte
	if d.Retain {
		flags |= fRetain
	}
	if d.Released {
		flags |= fReleased
	}
	if d.Msg.Retain {
		flags |= fMsgRetain
	}
	if !idInline(d.ClientID) {
		flags |= fClientID
	}
	b = append(b, formatV1, flags)
	b = binary.BigEndian.AppendUint16(b, d.PacketID)
	b = append(b, d.QoS, d.Msg.QoS)
	b = appendString(b, d.Msg.Topic)
	b = appendBytes(b, d.Msg.Payload)
	if flags&fClientID != 0 {
		b = appendString(b, d.ClientID)
	}
	return b
}

// appendInboundValue: version, flags, [client].
func appendInboundValue(b []byte, in *storage.Inbound) []byte {
	if idInline(in.ClientID) {
		return append(b, formatV1, 0)
	}
	b = append(b, formatV1, fClientID)
	return appendString(b, in.ClientID)
}

// appendRetainedValue: version, flags, QoS, payload, [topic].
func appendRetainedValue(b []byte, m *storage.Message) []byte {
	var flags byte
	if m.Retain {
		flags |= fRetainedRetain
	}
	if !nameInline(m.Topic, false) {
		flags |= fName
	}
	b = append(b, formatV1, flags, m.QoS)
	b = appendBytes(b, m.Payload)
	if flags&fName != 0 {
		b = appendString(b, m.Topic)
	}
	return b
}

// reader decodes a value; the first error sticks and later reads return
// zero values.
type reader struct {
	b   []byte
	err error
}

// header checks the version and that flags holds no bit outside known.
func (r *reader) header(known byte) byte {
	v, flags := r.byte(), r.byte()
	if r.err == nil && v != formatV1 {
		r.fail("unknown format version %d", v)
	}
	if r.err == nil && flags&^known != 0 {
		r.fail("unknown flags %#x", flags)
	}
	return flags
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("value too short")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uint16() uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.fail("value too short")
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns a copy of a length-prefixed field; empty is nil.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("field of %d bytes past the end of the value", n)
		return nil
	}
	var p []byte
	if n > 0 {
		p = append([]byte(nil), r.b[:n]...)
	}
	r.b = r.b[n:]
	return p
}

func (r *reader) string() string { return string(r.bytes()) }

// end reports the first error, or bytes left over.
func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the value", len(r.b))
	}
	return r.err
}

func decodeSession(v []byte, s *storage.Session) (flags byte, err error) {
	r := reader{b: v}
	flags = r.header(fClean | fSeen | fClientID)
	s.Clean = flags&fClean != 0
	if flags&fSeen != 0 {
		sec, nsec := r.varint(), r.uvarint()
		if r.err == nil && nsec >= 1e9 {
			r.fail("nanoseconds %d out of range", nsec)
		}
		s.LastSeen = time.Unix(sec, int64(nsec)).UTC()
	}
	s.Username = r.string()
	if flags&fClientID != 0 {
		s.ClientID = r.string()
	}
	return flags, r.end()
}

func decodeSubscription(v []byte, s *storage.Subscription) (flags byte, err error) {
	r := reader{b: v}
	flags = r.header(fClientID | fName)
	s.QoS = r.byte()
	if flags&fClientID != 0 {
		s.ClientID = r.string()
	}
	if flags&fName != 0 {
		s.Filter = r.string()
	}
	return flags, r.end()
}

func decodeDelivery(v []byte, d *storage.Delivery) (flags byte, err error) {
	r := reader{b: v}
	flags = r.header(fRetain | fReleased | fMsgRetain | fClientID)
	d.Retain = flags&fRetain != 0
	d.Released = flags&fReleased != 0
	d.Msg.Retain = flags&fMsgRetain != 0
	d.PacketID = r.uint16()
	d.QoS = r.byte()
	d.Msg.QoS = r.byte()
	d.Msg.Topic = r.string()
	d.Msg.Payload = r.bytes()
	if flags&fClientID != 0 {
		d.ClientID = r.string()
	}
	return flags, r.end()
}

func decodeInbound(v []byte, in *storage.Inbound) (flags byte, err error) {
	r := reader{b: v}
	flags = r.header(fClientID)
	if flags&fClientID != 0 {
		in.ClientID = r.string()
	}
	return flags, r.end()
}

func decodeRetained(v []byte, m *storage.Message) (flags byte, err error) {
	r := reader{b: v}
	flags = r.header(fRetainedRetain | fName)
	m.Retain = flags&fRetainedRetain != 0
	m.QoS = r.byte()
	m.Payload = r.bytes()
	if flags&fName != 0 {
		m.Topic = r.string()
	}
	return flags, r.end()
}
