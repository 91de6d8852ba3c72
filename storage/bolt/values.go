package bolt

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/ternmq/tern/storage"
)

// Value formats: the first byte of every value. A later format gets a new
// byte, and this package reads every earlier one.
const (
	// formatV1: the MQTT 3.1.1 fields (layout 1).
	formatV1 = 1
	// formatV2: formatV1's fields, then each MQTT 5 field behind a flag,
	// so that a record without them costs what it did in formatV1.
	formatV2 = 2
)

// Value flags.
const (
	// sessions
	fClean  = 1 << 0
	fSeen   = 1 << 1
	fExpiry = 1 << 2 // V2: Expiry is not NeverExpires; a uvarint follows
	fWill   = 1 << 3 // V2: a will follows
	// subscriptions (V2)
	fNoLocal           = 1 << 0
	fRetainAsPublished = 1 << 1
	fRetainHandling    = 1 << 2 // a byte follows
	fSubID             = 1 << 3 // a uvarint follows
	// deliveries
	fRetain    = 1 << 0
	fReleased  = 1 << 1
	fMsgRetain = 1 << 2
	// retained messages
	fRetainedRetain = 1 << 0
	// deliveries and retained messages (V2): an extension byte and the
	// MQTT 5 fields it flags follow
	fExt = 1 << 3
	// every value: an identifier or name too long for its key follows
	fClientID = 1 << 6
	fName     = 1 << 7
)

// Known flags, by value kind and format.
const (
	sessionFlagsV1      = fClean | fSeen | fClientID
	sessionFlagsV2      = sessionFlagsV1 | fExpiry | fWill
	subscriptionFlagsV1 = fClientID | fName
	subscriptionFlagsV2 = subscriptionFlagsV1 | fNoLocal | fRetainAsPublished | fRetainHandling | fSubID
	deliveryFlagsV1     = fRetain | fReleased | fMsgRetain | fClientID
	deliveryFlagsV2     = deliveryFlagsV1 | fExt
	inboundFlags        = fClientID
	retainedFlagsV1     = fRetainedRetain | fName
	retainedFlagsV2     = retainedFlagsV1 | fExt
)

// Extension flags: the MQTT 5 fields of a message, and of a delivery.
const (
	xHasFormat = 1 << 0 // Message.HasFormat
	xFormat    = 1 << 1 // Message.Format, a byte
	xProps     = 1 << 2 // Message.Props, length-prefixed
	xExpires   = 1 << 3 // Message.Expires, a varint
	xSubIDs    = 1 << 4 // Delivery.SubIDs: a uvarint count, then uvarints
	xShare     = 1 << 5 // Delivery.Share, a string

	msgExtFlags      = xHasFormat | xFormat | xProps | xExpires
	deliveryExtFlags = msgExtFlags | xSubIDs | xShare
)

// Will flags: the byte that starts a session's will.
const (
	wRetain    = 1 << 0 // Msg.Retain
	wDelay     = 1 << 1 // Delay, a uvarint
	wPublishAt = 1 << 2 // PublishAt: seconds varint, nanoseconds uvarint
	wExt       = 1 << 3 // an extension byte and the message's MQTT 5 fields

	willFlags = wRetain | wDelay | wPublishAt | wExt
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// appendTime: seconds varint, nanoseconds uvarint.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// msgExt returns the extension flags of m's MQTT 5 fields; 0 when it has
// none.
func msgExt(m *storage.Message) byte {
	var x byte
	if m.HasFormat {
		x |= xHasFormat
	}
	if m.Format != 0 {
		x |= xFormat
	}
	if len(m.Props) > 0 {
		x |= xProps
	}
	if m.Expires != 0 {
		x |= xExpires
	}
	return x
}

// appendMsgExt appends the extension byte x and the message fields it
// flags; the delivery fields it flags follow, appended by the caller.
func appendMsgExt(b []byte, x byte, m *storage.Message) []byte {
	b = append(b, x)
	if x&xFormat != 0 {
		b = append(b, m.Format)
	}
	if x&xProps != 0 {
		b = appendBytes(b, m.Props)
	}
	if x&xExpires != 0 {
		b = binary.AppendVarint(b, m.Expires)
	}
	return b
}

// appendSessionValue: version, flags, [last seen], username, [expiry
// uvarint], [will], [client].
func appendSessionValue(b []byte, s *storage.Session) []byte {
	var flags byte
	if s.Clean {
		flags |= fClean
	}
	if !s.LastSeen.IsZero() {
		flags |= fSeen
	}
	if s.Expiry != storage.NeverExpires {
		flags |= fExpiry
	}
	if s.Will != nil {
		flags |= fWill
	}
	if !idInline(s.ClientID) {
		flags |= fClientID
	}
	b = append(b, formatV2, flags)
	if flags&fSeen != 0 {
		b = appendTime(b, s.LastSeen)
	}
	b = appendString(b, s.Username)
	if flags&fExpiry != 0 {
		b = binary.AppendUvarint(b, uint64(s.Expiry))
	}
	if flags&fWill != 0 {
		b = appendWill(b, s.Will)
	}
	if flags&fClientID != 0 {
		b = appendString(b, s.ClientID)
	}
	return b
}

// appendWill: will flags, message QoS, topic, payload, [delay uvarint],
// [publish at], [extension].
func appendWill(b []byte, w *storage.Will) []byte {
	var flags byte
	if w.Msg.Retain {
		flags |= wRetain
	}
	if w.Delay != 0 {
		flags |= wDelay
	}
	if !w.PublishAt.IsZero() {
		flags |= wPublishAt
	}
	x := msgExt(&w.Msg)
	if x != 0 {
		flags |= wExt
	}
	b = append(b, flags, w.Msg.QoS)
	b = appendString(b, w.Msg.Topic)
	b = appendBytes(b, w.Msg.Payload)
	if flags&wDelay != 0 {
		b = binary.AppendUvarint(b, uint64(w.Delay))
	}
	if flags&wPublishAt != 0 {
		b = appendTime(b, w.PublishAt)
	}
	if x != 0 {
		b = appendMsgExt(b, x, &w.Msg)
	}
	return b
}

// appendSubscriptionValue: version, flags, QoS, [retain handling],
// [subscription identifier uvarint], [client], [filter].
func appendSubscriptionValue(b []byte, s *storage.Subscription) []byte {
	var flags byte
	if s.NoLocal {
		flags |= fNoLocal
	}
	if s.RetainAsPublished {
		flags |= fRetainAsPublished
	}
	if s.RetainHandling != 0 {
		flags |= fRetainHandling
	}
	if s.ID != 0 {
		flags |= fSubID
	}
	if !idInline(s.ClientID) {
		flags |= fClientID
	}
	if !nameInline(s.Filter, true) {
		flags |= fName
	}
	b = append(b, formatV2, flags, s.QoS)
	if flags&fRetainHandling != 0 {
		b = append(b, s.RetainHandling)
	}
	if flags&fSubID != 0 {
		b = binary.AppendUvarint(b, uint64(s.ID))
	}
	if flags&fClientID != 0 {
		b = appendString(b, s.ClientID)
	}
	if flags&fName != 0 {
		b = appendString(b, s.Filter)
	}
	return b
}

// appendDeliveryValue: version, flags, packet identifier (2 bytes big
// endian), delivered QoS, message QoS, topic, payload, [extension], [client].
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
	x := msgExt(&d.Msg)
	if len(d.SubIDs) > 0 {
		x |= xSubIDs
	}
	if d.Share != "" {
		x |= xShare
	}
	if x != 0 {
		flags |= fExt
	}
	if !idInline(d.ClientID) {
		flags |= fClientID
	}
	b = append(b, formatV2, flags)
	b = binary.BigEndian.AppendUint16(b, d.PacketID)
	b = append(b, d.QoS, d.Msg.QoS)
	b = appendString(b, d.Msg.Topic)
	b = appendBytes(b, d.Msg.Payload)
	if x != 0 {
		b = appendMsgExt(b, x, &d.Msg)
		if x&xSubIDs != 0 {
			b = binary.AppendUvarint(b, uint64(len(d.SubIDs)))
			for _, id := range d.SubIDs {
				b = binary.AppendUvarint(b, uint64(id))
			}
		}
		if x&xShare != 0 {
			b = appendString(b, d.Share)
		}
	}
	if flags&fClientID != 0 {
		b = appendString(b, d.ClientID)
	}
	return b
}

// appendInboundValue: version, flags, [client]. Inbound records have no
// MQTT 5 field: they stay in format 1.
func appendInboundValue(b []byte, in *storage.Inbound) []byte {
	if idInline(in.ClientID) {
		return append(b, formatV1, 0)
	}
	b = append(b, formatV1, fClientID)
	return appendString(b, in.ClientID)
}

// appendRetainedValue: version, flags, QoS, payload, [extension], [topic].
func appendRetainedValue(b []byte, m *storage.Message) []byte {
	var flags byte
	if m.Retain {
		flags |= fRetainedRetain
	}
	x := msgExt(m)
	if x != 0 {
		flags |= fExt
	}
	if !nameInline(m.Topic, false) {
		flags |= fName
	}
	b = append(b, formatV2, flags, m.QoS)
	b = appendBytes(b, m.Payload)
	if x != 0 {
		b = appendMsgExt(b, x, m)
	}
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

// header reads the version and the flags, and checks that the version is
// one this package reads and that flags holds no bit outside the ones
// known for it (v1 for formatV1, v2 for formatV2; v2 == 0: format 1 only),
// and returns the flags.
func (r *reader) header(v1, v2 byte) (flags byte) {
	version, flags := r.byte(), r.byte()
	if r.err != nil {
		return flags
	}
	var known byte
	switch {
	case version == formatV1:
		known = v1
	case version == formatV2 && v2 != 0:
		known = v2
	default:
		r.fail("unknown format version %d", version)
		return flags
	}
	if flags&^known != 0 {
		r.fail("unknown flags %#x in a format %d value", flags&^known, version)
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

// uint32 reads a uvarint that must fit 32 bits.
func (r *reader) uint32(field string) uint32 {
	v := r.uvarint()
	if r.err == nil && v > math.MaxUint32 {
		r.fail("%s %d out of range", field, v)
		return 0
	}
	return uint32(v)
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

// time reads what appendTime wrote.
func (r *reader) time() time.Time {
	sec, nsec := r.varint(), r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		r.fail("nanoseconds %d out of range", nsec)
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// ext reads an extension byte, which must be non-zero and hold no flag
// outside known, and the message fields it flags; the caller reads the
// delivery fields it flags.
func (r *reader) ext(known byte, m *storage.Message) byte {
	x := r.byte()
	if r.err != nil {
		return 0
	}
	if x == 0 || x&^known != 0 {
		r.fail("bad extension flags %#x", x)
		return 0
	}
	m.HasFormat = x&xHasFormat != 0
	if x&xFormat != 0 {
		m.Format = r.byte()
	}
	if x&xProps != 0 {
		m.Props = r.bytes()
	}
	if x&xExpires != 0 {
		m.Expires = r.varint()
	}
	return x
}

func decodeSession(v []byte, s *storage.Session) (flags byte, err error) {
	r := reader{b: v}
	flags = r.header(sessionFlagsV1, sessionFlagsV2)
	s.Clean = flags&fClean != 0
	if flags&fSeen != 0 {
		s.LastSeen = r.time()
	}
	s.Username = r.string()
	// Absent, and in every format 1 value: the session never expires, as
	// every session did before MQTT 5.
	s.Expiry = storage.NeverExpires
	if flags&fExpiry != 0 {
		s.Expiry = r.uint32("session expiry")
	}
	if flags&fWill != 0 {
		s.Will = r.will()
	}
	if flags&fClientID != 0 {
		s.ClientID = r.string()
	}
	return flags, r.end()
}

// will reads what appendWill wrote.
func (r *reader) will() *storage.Will {
	w := &storage.Will{}
	flags := r.byte()
	if r.err == nil && flags&^willFlags != 0 {
		r.fail("unknown will flags %#x", flags)
	}
	w.Msg.Retain = flags&wRetain != 0
	w.Msg.QoS = r.byte()
	w.Msg.Topic = r.string()
	w.Msg.Payload = r.bytes()
	if flags&wDelay != 0 {
		w.Delay = r.uint32("will delay")
	}
	if flags&wPublishAt != 0 {
		w.PublishAt = r.time()
	}
	if flags&wExt != 0 {
		r.ext(msgExtFlags, &w.Msg)
	}
	return w
}

func decodeSubscription(v []byte, s *storage.Subscription) (flags byte, err error) {
	r := reader{b: v}
	flags = r.header(subscriptionFlagsV1, subscriptionFlagsV2)
	s.QoS = r.byte()
	s.NoLocal = flags&fNoLocal != 0
	s.RetainAsPublished = flags&fRetainAsPublished != 0
	if flags&fRetainHandling != 0 {
		s.RetainHandling = r.byte()
	}
	if flags&fSubID != 0 {
		s.ID = r.uint32("subscription identifier")
	}
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
	flags = r.header(deliveryFlagsV1, deliveryFlagsV2)
	d.Retain = flags&fRetain != 0
	d.Released = flags&fReleased != 0
	d.Msg.Retain = flags&fMsgRetain != 0
	d.PacketID = r.uint16()
	d.QoS = r.byte()
	d.Msg.QoS = r.byte()
	d.Msg.Topic = r.string()
	d.Msg.Payload = r.bytes()
	if flags&fExt != 0 {
		x := r.ext(deliveryExtFlags, &d.Msg)
		if x&xSubIDs != 0 {
			d.SubIDs = r.subIDs()
		}
		if x&xShare != 0 {
			d.Share = r.string()
		}
	}
	if flags&fClientID != 0 {
		d.ClientID = r.string()
	}
	return flags, r.end()
}

// subIDs reads a count, which must be non-zero, and that many
// subscription identifiers.
func (r *reader) subIDs() []uint32 {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n == 0 || n > uint64(len(r.b)) { // each takes a byte at least
		r.fail("%d subscription identifiers in %d bytes", n, len(r.b))
		return nil
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = r.uint32("subscription identifier")
	}
	return ids
}

func decodeInbound(v []byte, in *storage.Inbound) (flags byte, err error) {
	r := reader{b: v}
	flags = r.header(inboundFlags, 0)
	if flags&fClientID != 0 {
		in.ClientID = r.string()
	}
	return flags, r.end()
}

func decodeRetained(v []byte, m *storage.Message) (flags byte, err error) {
	r := reader{b: v}
	flags = r.header(retainedFlagsV1, retainedFlagsV2)
	m.Retain = flags&fRetainedRetain != 0
	m.QoS = r.byte()
	m.Payload = r.bytes()
	if flags&fExt != 0 {
		r.ext(msgExtFlags, m)
	}
	if flags&fName != 0 {
		m.Topic = r.string()
	}
	return flags, r.end()
}
