package topics

import "strings"

// childMapMin is the fan-out from which a childSet keeps a map from level
// to position. Below it a linear scan of a few short strings is faster than
// hashing and costs no map.
const childMapMin = 8

// childSet holds the children of a trie node, keyed by level. Children live
// in two parallel slices so that wildcard walks ('+', '#') iterate plain
// slices; lookups by level use a linear scan for a small fan-out and an
// index map for a large one. A childSet is not safe for concurrent writes;
// its owner locks.
type childSet[T any] struct {
	names []string
	nodes []*T
	index map[string]int32 // level -> position; nil while the set is small
}

// get returns the child named level, or nil.
func (c *childSet[T]) get(level string) *T {
	if c.index != nil {
		if i, ok := c.index[level]; ok {
			return c.nodes[i]
		}
		return nil
	}
	for i, name := range c.names {
		if name == level {
			return c.nodes[i]
		}
	}
	return nil
}

// add inserts n as the child named level, which must not be present. The
// level is copied so that the trie never pins the caller's (possibly much
// larger) string.
func (c *childSet[T]) add(level string, n *T) {
	level = strings.Clone(level)
	c.names = append(c.names, level)
	c.nodes = append(c.nodes, n)
	switch {
	case c.index != nil:
		c.index[level] = int32(len(c.nodes) - 1)
	case len(c.nodes) >= childMapMin:
		c.index = make(map[string]int32, 2*len(c.nodes))
		for i, name := range c.names {
			c.index[name] = int32(i)
		}
	}
}

// remove deletes the child named level, if present, by moving the last
// child into its place.
func (c *childSet[T]) remove(level string) {
	i := -1
	if c.index != nil {
		if j, ok := c.index[level]; ok {
			i = int(j)
		}
	} else {
		for j, name := range c.names {
			if name == level {
				i = j
				break
			}
		}
	}
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
	c.names[i], c.nodes[i] = c.names[last], c.nodes[last]
	c.names[last], c.nodes[last] = "", nil
	c.names, c.nodes = c.names[:last], c.nodes[:last]
	if c.index != nil && len(c.nodes) < childMapMin/2 {
		c.index = nil
	}
	if len(c.nodes) == 0 {
		c.names, c.nodes = nil, nil
	}
}

// len reports the number of children.
func (c *childSet[T]) len() int { return len(c.nodes) }
