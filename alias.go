package tern

// Topic aliases Tern defines towards an MQTT 5 client (section 3.3.2.3.4),
// when Options.OutboundTopicAliases is set and the client announced a Topic
// Alias Maximum.
//
// Every PUBLISH is first encoded as usual (the fan-out shares one encoding
// between subscribers); when it is appended to a connection's write buffer,
// with c.mu held, it is rewritten in place: the topic name with a new alias,
// or an empty topic name with a known one. The buffer is written to the
// socket in the order it is filled, so the mapping follows what the client
// receives; a packet that is not kept (over the client's Maximum Packet
// Size) leaves the mapping as it was, since the mapping changes only once
// the packet stays in the buffer. Mappings live on the conn: a new network
// connection, a resumed session's included, starts with none
// [v5 MQTT-3.3.2-7], so what is resent on it carries its topic name.
//
// When every alias is in use, the least recently used one is given to the
// new topic (the PUBLISH carries the topic name and the alias again).
// Keeping the first topics instead would pin the aliases to whatever came
// first, often a burst of retained messages on SUBSCRIBE that is never
// repeated; LRU follows the topics that are busy now, at the cost of a
// doubly linked list of aliases updated in O(1). A client whose topics
// cycle through more than its aliases pays 3 bytes per PUBLISH (the alias
// property) for nothing; it can announce a larger Topic Alias Maximum.

// outAliases is the mapping of one connection, guarded by conn.mu.
type outAliases struct {
	byTopic map[string]uint16
	topic   []string // by alias - 1
	// prev and next link the aliases in use from the most recently used
	// (head) to the least (tail); 0 ends the list (aliases start at 1).
	prev, next []uint16
	head, tail uint16
	max        uint16
}

// aliasPick is the alias a PUBLISH would carry: a known one (the topic
// name left out), or one this PUBLISH sets (full: the topic name goes with
// it), taken from the topic it stood for when evicted is set.
type aliasPick struct {
	alias   uint16
	full    bool
	evicted bool
}

// pick chooses the alias for topic without changing the mapping.
func (a *outAliases) pick(topic string) aliasPick {
	if n, ok := a.byTopic[topic]; ok {
		return aliasPick{alias: n}
	}
	if n := len(a.topic); n < int(a.max) {
		return aliasPick{alias: uint16(n + 1), full: true}
	}
	return aliasPick{alias: a.tail, full: true, evicted: true}
}

// use records that a PUBLISH of topic with p went into the write buffer.
func (a *outAliases) use(topic string, p aliasPick) {
	n := p.alias
	switch {
	case !p.full && n == a.head:
		return // the same topic again: nothing moves
	case !p.full:
		a.unlink(n)
	case p.evicted:
		a.unlink(n)
		delete(a.byTopic, a.topic[n-1])
		a.topic[n-1] = topic
		a.byTopic[topic] = n
	default: // n == len(a.topic)+1
		a.topic = append(a.topic, topic)
		a.prev = append(a.prev, 0)
		a.next = append(a.next, 0)
		a.byTopic[topic] = n
	}
	// Link n in at the head.
	a.prev[n-1], a.next[n-1] = 0, a.head
	if a.head != 0 {
		a.prev[a.head-1] = n
	}
	a.head = n
	if a.tail == 0 {
		a.tail = n
	}
}

// unlink takes alias n out of the recency list.
func (a *outAliases) unlink(n uint16) {
	p, x := a.prev[n-1], a.next[n-1]
	if p != 0 {
		a.next[p-1] = x
	} else {
		a.head = x
	}
	if x != 0 {
		a.prev[x-1] = p
	} else {
		a.tail = p
	}
}

// keepPublish decides whether the PUBLISH of topic just appended to c.out
// at start is sent: it is dropped (c.out cut back to start) when larger
// than the client accepts [v5 MQTT-3.1.2-25]. With outbound topic aliases
// it is first rewritten with one; c.mu is held. Without them it costs what
// the size check cost before: one comparison, inlined.
func (c *conn) keepPublish(start int, topic string) bool {
	if len(c.out)-start <= c.proto.plainMax {
		return true
	}
	return c.keepOther(start, topic)
}

// keepOther is keepPublish for a connection with outbound aliases or a
// packet over the limit. It is kept out of line: inlined, it would make
// keepPublish too large to be inlined in turn.
//
//go:noinline
func (c *conn) keepOther(start int, topic string) bool {
	if c.proto.aliasOut != 0 {
		return c.keepAliased(start, topic)
	}
	if c.proto.fits(len(c.out) - start) {
		return true
	}
	c.out = c.out[:start]
	return false
}

// keepAliased is keepPublish for a connection with outbound aliases. The
// size checked is the size sent: with its alias, or, when only the form
// that sets a new alias is over the limit, the plain form, which then
// changes no mapping. An alias never exceeds the client's Topic Alias
// Maximum [v5 MQTT-3.1.2-26, MQTT-3.3.2-11] and is never 0
// [v5 MQTT-3.3.2-8].
func (c *conn) keepAliased(start int, topic string) bool {
	r := c.rareLocked()
	a := r.outAliases
	if a == nil {
		// Made on the first PUBLISH: a connection that receives none
		// holds no mapping.
		a = &outAliases{byTopic: make(map[string]uint16), max: c.proto.aliasOut}
		r.outAliases = a
	}
	p := a.pick(topic)
	plain := len(c.out) - start
	if n := aliasedLen(c.out[start:], p.full); n <= maxWirePacket && c.proto.fits(n) {
		c.out = rewriteAliased(c.out, start, topic, p)
		a.use(topic, p)
		return true
	}
	if p.full && c.proto.fits(plain) {
		return true // sent without an alias; the mapping is unchanged
	}
	c.out = c.out[:start]
	return false
}

// publishLayout locates the parts of an encoded MQTT 5 PUBLISH: the size
// of the Remaining Length, of the topic name (without its length), of
// what follows the topic name up to the properties (the packet
// identifier), of the Property Length, and the property length itself.
func publishLayout(pkt []byte) (hdr, topic, id, plen, props int) {
	_, hdr = readVarInt(pkt[1:])
	at := 1 + hdr
	topic = int(pkt[at])<<8 | int(pkt[at+1])
	at += 2 + topic
	if pkt[0]&0x06 != 0 {
		id = 2
	}
	at += id
	props, plen = readVarInt(pkt[at:])
	return hdr, topic, id, plen, props
}

// aliasedLen is the size of the encoded PUBLISH pkt once it carries a
// Topic Alias, with its topic name (full) or without.
func aliasedLen(pkt []byte, full bool) int {
	hdr, topic, id, plen, props := publishLayout(pkt)
	rest := len(pkt) - (1 + hdr + 2 + topic + id + plen) // properties and payload
	n := 2 + id + varIntLen(props+3) + rest + 3
	if full {
		n += topic
	}
	return 1 + varIntLen(n) + n
}

// rewriteAliased rewrites the PUBLISH at out[start:] (its last packet) to
// carry p's alias, before its other properties, with its topic name when
// p.full and an empty one otherwise.
func rewriteAliased(out []byte, start int, topic string, p aliasPick) []byte {
	pkt := out[start:]
	hdr, tlen, id, plen, props := publishLayout(pkt)
	tail := 1 + hdr + 2 + tlen + id + plen // where the properties start
	rest := len(pkt) - tail
	first := pkt[0]
	var pid [2]byte
	copy(pid[:], pkt[tail-plen-id:tail-plen])
	if !p.full {
		tlen = 0
	}
	n := 2 + tlen + id + varIntLen(props+3) + 3 + rest
	size := 1 + varIntLen(n) + n
	newTail := size - rest
	if grow := start + size - len(out); grow > 0 {
		out = append(out, make([]byte, grow)...)
	}
	// Move the properties and payload first (copy handles the overlap),
	// then write the head from what was saved.
	copy(out[start+newTail:], out[start+tail:start+tail+rest])
	out = out[:start+size]
	h := out[start:start]
	h = append(h, first)
	h = appendVarInt(h, n)
	h = append(h, byte(tlen>>8), byte(tlen))
	h = append(h, topic[:tlen]...)
	h = append(h, pid[:id]...)
	h = appendVarInt(h, props+3)
	_ = append(h, 0x23, byte(p.alias>>8), byte(p.alias)) // Topic Alias
	return out
}

// maxWirePacket is the largest packet MQTT can carry: a Remaining Length
// of 268435455 and its fixed header.
const maxWirePacket = 268435455 + 5

// readVarInt decodes a Variable Byte Integer that the broker encoded.
func readVarInt(b []byte) (v, n int) {
	for shift := 0; ; shift += 7 {
		x := b[n]
		n++
		v |= int(x&0x7f) << shift
		if x&0x80 == 0 {
			return v, n
		}
	}
}

// varIntLen is the size of v as a Variable Byte Integer.
func varIntLen(v int) int {
	switch {
	case v < 128:
		return 1
	case v < 16384:
		return 2
	case v < 2097152:
		return 3
	}
	return 4
}

// appendVarInt appends v as a Variable Byte Integer.
func appendVarInt(dst []byte, v int) []byte {
	for {
		x := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(dst, x)
		}
		dst = append(dst, x|0x80)
	}
}
