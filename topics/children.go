package topics

// indexMin is the fan-out from which a childSet keeps a hash index of its
// levels. Below it, a scan of the children's tags beats hashing the level.
const indexMin = 16

// tagBytes is the number of leading level bytes a tag holds.
const tagBytes = 7

// kid is one child of a trie node: its level and the node itself, stored
// inline so that a walk over every child ('+', '#') reads contiguous
// memory and a child costs no allocation of its own.
type kid[T any] struct {
	// tag packs the level's length and first tagBytes bytes: a level of at
	// most tagBytes bytes is its tag alone, and costs no string.
	tag uint64
	// long is the level when it is longer than tagBytes, else "".
	long string
	node T
}

// name returns the kid's level. A short level is rebuilt from its tag,
// which allocates: name is for walks that report filters, not for
// lookups.
func (k *kid[T]) name() string {
	if k.long != "" {
		return k.long
	}
	var b [tagBytes]byte
	return string(tagLevel(k.tag, &b))
}

// dollar reports whether the kid's level starts with '$' (for the rule
// [MQTT-4.7.2-1] at the first level).
func (k *kid[T]) dollar() bool { return k.tag&0xff != 0 && byte(k.tag>>8) == '$' }

// is reports whether the kid's level is level, whose tag is tag.
func (k *kid[T]) is(level string, tag uint64) bool {
	return k.tag == tag && (len(level) <= tagBytes || k.long == level)
}

// levelTag packs the length (capped at 255) and the first tagBytes bytes
// of a level. Equal tags of levels no longer than tagBytes mean equal
// levels. It runs on every lookup, so it reads the bytes with as few loads
// as it can: one 8-byte load for a long level, two overlapping 4-byte
// loads for 4 to 7 bytes (a byte read twice is ORed with itself), and
// constant shifts below that.
func levelTag(level string) uint64 {
	switch n := len(level); {
	case n > tagBytes:
		s := level[:8]
		x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		return x<<8 | uint64(min(n, 255)) // the eighth byte is shifted out
	case n >= 4:
		lo, hi := level[:4], level[n-4:]
		x := uint64(uint32(lo[0])|uint32(lo[1])<<8|uint32(lo[2])<<16|uint32(lo[3])<<24) |
			uint64(uint32(hi[0])|uint32(hi[1])<<8|uint32(hi[2])<<16|uint32(hi[3])<<24)<<(8*(n-4))
		return x<<8 | uint64(n)
	case n == 3:
		return uint64(level[0])<<8 | uint64(level[1])<<16 | uint64(level[2])<<24 | 3
	case n == 2:
		return uint64(level[0])<<8 | uint64(level[1])<<16 | 2
	case n == 1:
		return uint64(level[0])<<8 | 1
	}
	return 0
}

// tagLevel returns the bytes of a level of at most tagBytes bytes from its
// tag, in b.
func tagLevel(tag uint64, b *[tagBytes]byte) []byte {
	n := min(int(tag&0xff), tagBytes)
	for i := range n {
		b[i] = byte(tag >> (8 * (i + 1)))
	}
	return b[:n]
}

// childSet holds the children of a trie node, keyed by level. A lookup
// scans the tags of a small set, comparing strings only for long levels,
// and goes through a hash index for a large one. The index is kept by the
// set's owner and passed in (nil while the set is small), so that a node
// with few children, almost every node, does not pay a pointer for it. A
// childSet is not safe for concurrent writes; its owner locks.
//
// Memory is what a subscription or a retained message mostly costs, so
// the set is kept tight: a short level costs no string, the slice grows by
// a quarter (not double) and shrinks when it empties, and the index is a
// table of 32-bit slots rather than a map of strings.
type childSet[T any] struct {
	kids []kid[T]
}

// find returns the position of the child named level, or -1. ix is the
// set's index, nil while the set is small.
func (c *childSet[T]) find(level string, ix *levelIndex) int {
	if ix != nil {
		return indexFind(ix, c.kids, level)
	}
	tag := levelTag(level)
	for i := range c.kids {
		if c.kids[i].is(level, tag) {
			return i
		}
	}
	return -1
}

// get returns the child named level, or nil.
func (c *childSet[T]) get(level string, ix *levelIndex) *T {
	if i := c.find(level, ix); i >= 0 {
		return &c.kids[i].node
	}
	return nil
}

// add inserts an empty child named level, which must not be present, and
// returns it with the set's index, which the caller keeps in place of ix
// (add makes one when the set becomes large). The pointer is valid until
// the next add or remove on c. A long level is copied so that the trie
// never pins the caller's (possibly much larger) string.
func (c *childSet[T]) add(level string, ix *levelIndex) (*T, *levelIndex) {
	k := kid[T]{tag: levelTag(level)}
	if len(level) > tagBytes {
		k.long = string([]byte(level)) // a copy of exactly the level
	}
	if len(c.kids) == cap(c.kids) {
		c.kids = resize(c.kids, grownCap(len(c.kids)))
	}
	c.kids = append(c.kids, k)
	i := len(c.kids) - 1
	switch {
	case ix != nil:
		indexInsert(ix, c.kids, i)
	case len(c.kids) >= indexMin:
		ix = newIndex(c.kids)
	}
	return &c.kids[i].node, ix
}

// remove deletes the child named level, if present, by moving the last
// child into its place, and returns the set's index, which the caller
// keeps in place of ix (nil once the set is small again).
func (c *childSet[T]) remove(level string, ix *levelIndex) *levelIndex {
	i := c.find(level, ix)
	if i < 0 {
		return ix
	}
	last := len(c.kids) - 1
	if ix != nil {
		indexDelete(ix, c.kids, i)
		if i != last {
			indexMove(ix, c.kids, last, i)
		}
	}
	c.kids[i] = c.kids[last]
	c.kids[last] = kid[T]{} // drop what the moved copy still references
	c.kids = c.kids[:last]
	switch {
	case last == 0:
		c.kids = nil
		return nil
	case cap(c.kids) > 8 && last < cap(c.kids)/2:
		c.kids = resize(c.kids, grownCap(last))
	}
	switch {
	case ix == nil:
	case last < indexMin/2:
		ix = nil
	case indexTooSparse(ix, last):
		ix = newIndex(c.kids)
	}
	return ix
}

// len reports the number of children.
func (c *childSet[T]) len() int { return len(c.kids) }

// grownCap is the capacity for a set of n children that needs room for one
// more: exact while small, where most sets stay (a node has one or two
// children), then a quarter more, so that the slack of a large set stays
// small and its copies amortised.
func grownCap(n int) int {
	if n < 8 {
		return n + 1
	}
	return n + n/4
}

// resize returns s's elements in a new slice of capacity n >= len(s).
func resize[T any](s []T, n int) []T {
	t := make([]T, len(s), n)
	copy(t, s)
	return t
}
