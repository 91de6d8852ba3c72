package topics

import (
	"hash/maphash"
	"math/rand/v2"
)

// levelIndex finds a child of a large childSet by level: an open-addressing
// hash table (linear probing, backward-shift deletion, no tombstones) of
// positions in the set's kids. It holds 4 bytes per slot and at least one
// slot in four free, where a map[string]int32 would hold a string header
// per child: the index of a node with a million children (one device level
// under a common prefix) costs about 8 MB instead of about 40 MB.
//
// A table of 2^b slots indexes fewer than 2^b children, so a slot needs b
// bits for the position; the bits above hold bits of the level's hash, so
// that a probe passes over other levels without reading their child (a
// cache miss in a large set).
//
// A short level (at most tagBytes bytes, most of them) is hashed by mixing
// its tag with a key, a few instructions; a long one with maphash. Both
// are seeded at random per index, so that no client can choose levels
// that collide and turn lookups into scans.
type levelIndex struct {
	seed  maphash.Seed // for long levels
	key   uint64       // for short levels
	slots []uint32     // position+1 of a child | hash bits above; 0 is a free slot
}

// minSlots is the smallest table.
const minSlots = 32

// slotsFor returns the table size for n children: a power of two at least
// twice n, so that a new table is at most half full.
func slotsFor(n int) int {
	s := minSlots
	for s < 2*n {
		s *= 2
	}
	return s
}

// newIndex builds an index of kids.
func newIndex[T any](kids []kid[T]) *levelIndex {
	ix := &levelIndex{seed: maphash.MakeSeed(), key: rand.Uint64(), slots: make([]uint32, slotsFor(len(kids)))}
	for i := range kids {
		ix.place(kidHash(ix, &kids[i]), i)
	}
	return ix
}

// mask returns the slot index mask, which is also the position mask of a
// slot's value.
func (ix *levelIndex) mask() uint64 { return uint64(len(ix.slots) - 1) }

// check returns the hash bits a slot keeps beside the position.
func check(h, mask uint64) uint32 { return uint32(h>>32) &^ uint32(mask) }

// hash hashes a level whose tag is tag.
func (ix *levelIndex) hash(level string, tag uint64) uint64 {
	if len(level) > tagBytes {
		return ix.hashLong(level)
	}
	return mix(tag ^ ix.key)
}

// hashLong hashes a level longer than tagBytes.
func (ix *levelIndex) hashLong(level string) uint64 { return maphash.String(ix.seed, level) }

// kidHash hashes a kid's level as hash hashes the level itself.
func kidHash[T any](ix *levelIndex, k *kid[T]) uint64 {
	if k.long != "" {
		return ix.hashLong(k.long)
	}
	return mix(k.tag ^ ix.key)
}

// mix is the 64-bit finalizer of SplitMix64: a bijection whose every
// output bit depends on every input bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// place puts position i, whose level hashes to h, in the first free slot
// from h's.
func (ix *levelIndex) place(h uint64, i int) {
	mask := ix.mask()
	s := h & mask
	for ix.slots[s] != 0 {
		s = (s + 1) & mask
	}
	ix.slots[s] = uint32(i+1) | check(h, mask)
}

// slotOf returns the slot that holds position i.
func slotOf[T any](ix *levelIndex, kids []kid[T], i int) uint64 {
	mask := ix.mask()
	s := kidHash(ix, &kids[i]) & mask
	for uint64(ix.slots[s])&mask != uint64(i+1) {
		s = (s + 1) & mask
	}
	return s
}

// indexFind returns the position of the child named level, or -1.
func indexFind[T any](ix *levelIndex, kids []kid[T], level string) int {
	mask := ix.mask()
	tag := levelTag(level)
	var h uint64 // ix.hash(level, tag), inlined by hand: this is the lookup path
	if len(level) > tagBytes {
		h = ix.hashLong(level)
	} else {
		h = mix(tag ^ ix.key)
	}
	c := check(h, mask)
	for s := h & mask; ; s = (s + 1) & mask {
		v := ix.slots[s]
		if v == 0 {
			return -1
		}
		// The check bits make a false candidate rare.
		if v&^uint32(mask) == c {
			if p := int(uint64(v)&mask) - 1; kids[p].is(level, tag) {
				return p
			}
		}
	}
}

// indexInsert adds kids[i], just appended, to the index; past three
// quarters full, the table doubles.
func indexInsert[T any](ix *levelIndex, kids []kid[T], i int) {
	if 4*len(kids) > 3*len(ix.slots) {
		*ix = *newIndex(kids)
		return
	}
	ix.place(kidHash(ix, &kids[i]), i)
}

// indexDelete removes position i, still in kids, from the index, shifting
// back the entries after it in its probe run so that lookups never stop
// early at the freed slot.
func indexDelete[T any](ix *levelIndex, kids []kid[T], i int) {
	mask := ix.mask()
	free := slotOf(ix, kids, i)
	for s := (free + 1) & mask; ix.slots[s] != 0; s = (s + 1) & mask {
		home := kidHash(ix, &kids[uint64(ix.slots[s])&mask-1]) & mask
		// The entry at s may move to free if free lies on its probe path,
		// from home to s.
		if (s-home)&mask >= (s-free)&mask {
			ix.slots[free] = ix.slots[s]
			free = s
		}
	}
	ix.slots[free] = 0
}

// indexMove records that kids[from] moves to position to.
func indexMove[T any](ix *levelIndex, kids []kid[T], from, to int) {
	s := slotOf(ix, kids, from)
	ix.slots[s] = ix.slots[s]&^uint32(ix.mask()) | uint32(to+1)
}

// indexTooSparse reports whether the table is so much larger than the n
// children it indexes that it should be rebuilt smaller.
func indexTooSparse(ix *levelIndex, n int) bool {
	return len(ix.slots) > minSlots && 8*n < len(ix.slots)
}
