package topics

import "strings"

// childMapMin is the fan-out from which a childSet keeps a map from level
// to position. Below it, a scan of the packed level tags (one contiguous
// slice, no pointer chasing) beats hashing, and costs no map.
const childMapMin = 32

// tagBytes is the number of leading level bytes a tag holds.
const tagBytes = 7

// childSet holds the children of a trie node, keyed by level. Children live
// in parallel slices so that wildcard walks ('+', '#') iterate plain slices.
// Lookups by level scan tags (the level's length and first bytes, packed in
// a uint64) for a small fan-out, comparing strings only for long levels,
// and use an index map for a large fan-out. A childSet is not safe for
// concurrent writes; its owner locks.
type childSet[T any] struct {
	tags  []uint64
	names []string
	nodes []T              // inline, so that walks touch contiguous memory
	index map[string]int32 // level -> position; nil while the set is small
}

// levelTag packs the length and the first tagBytes bytes of a level. Equal
// tags of levels no longer than tagBytes mean equal levels.
func levelTag(level string) uint64 {
	t := uint64(min(len(level), 255))
	for i := range min(len(level), tagBytes) {
		t |= uint64(level[i]) << (8 * (i + 1))
	}
	return t
}

// find returns the position of the child named level, or -1.
func (c *childSet[T]) find(level string) int {
	if c.index != nil {
		if i, ok := c.index[level]; ok {
			return int(i)
		}
		return -1
	}
	tag := levelTag(level)
	for i, t := range c.tags {
		if t == tag && (len(level) <= tagBytes || c.names[i] == level) {
			return i
		}
	}
	return -1
}

// get returns the child named level, or nil.
func (c *childSet[T]) get(level string) *T {
	if i := c.find(level); i >= 0 {
		return &c.nodes[i]
	}
	return nil
}

// add inserts an empty child named level, which must not be present, and
// returns it. The pointer is valid until the next add or remove on c. The
// level is copied so that the trie never pins the caller's (possibly much
// larger) string.
func (c *childSet[T]) add(level string) *T {
	level = strings.Clone(level)
	c.tags = append(c.tags, levelTag(level))
	c.names = append(c.names, level)
	var zero T
	c.nodes = append(c.nodes, zero)
	switch {
	case c.index != nil:
		c.index[level] = int32(len(c.nodes) - 1)
	case len(c.nodes) >= childMapMin:
		c.index = make(map[string]int32, 2*len(c.nodes))
		for i, name := range c.names {
			c.index[name] = int32(i)
		}
	}
	return &c.nodes[len(c.nodes)-1]
}

// remove deletes the child named level, if present, by moving the last
// child into its place.
func (c *childSet[T]) remove(level string) {
	i := c.find(level)
	if i < 0 {
		return
	}
	last := len(c.nodes) - 1
	if c.index != nil {
		delete(c.index, level)
		if i != last {
			c.index[c.names[last]] = int32(i)
		}
	}
	c.tags[i], c.names[i], c.nodes[i] = c.tags[last], c.names[last], c.nodes[last]
	var zero T
	c.names[last], c.nodes[last] = "", zero
	c.tags, c.names, c.nodes = c.tags[:last], c.names[:last], c.nodes[:last]
	if c.index != nil && len(c.nodes) < childMapMin/2 {
		c.index = nil
	}
	if len(c.nodes) == 0 {
		c.tags, c.names, c.nodes = nil, nil, nil
	}
}

// len reports the number of children.
func (c *childSet[T]) len() int { return len(c.nodes) }
