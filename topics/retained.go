package topics

import (
	"strings"
	"sync"
)

// Retained is the retained-message index: at most one value per topic name,
// found by topic filters, wildcards included. It is a trie keyed by topic
// levels, so a filter such as "a/+/c" walks only the branches it can match
// and "#" walks the trie without allocating beyond the appends to dst.
//
// Retained is safe for concurrent use: Get and Match take a read lock, Set
// and Delete the write lock. The zero Retained is empty and ready to use; a
// Retained must not be copied after first use.
type Retained[V any] struct {
	mu   sync.RWMutex
	root rnode[V]
	n    int // number of retained topics
}

// rnode is one level of the retained trie: a retained message costs one
// or two, so it holds no more than its children and its value.
type rnode[V any] struct {
	children childSet[rnode[V]]
	index    *levelIndex // of children, once they are many
	value    V
	has      bool // a value is retained on the topic that ends here
}

// NewRetained returns an empty retained index.
func NewRetained[V any]() *Retained[V] {
	return &Retained[V]{}
}

// Set stores v as the retained value of topic, replacing any previous one.
// topic should be a valid topic name (see ValidName); Set does not check it
// beyond ignoring an empty one [MQTT-4.7.3-1], and a wildcard character in
// it is stored as an ordinary character.
func (r *Retained[V]) Set(topic string, v V) {
	if topic == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := &r.root
	for more := true; more; {
		var level string
		level, topic, more = strings.Cut(topic, "/")
		c := n.children.get(level, n.index)
		if c == nil {
			c, n.index = n.children.add(level, n.index)
		}
		n = c
	}
	if !n.has {
		r.n++
	}
	n.value, n.has = v, true
}

// Delete clears topic and reports whether it held a value. Trie nodes left
// empty are removed.
func (r *Retained[V]) Delete(topic string) bool {
	if topic == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.root.delete(topic) {
		return false
	}
	r.n--
	return true
}

// delete clears the rest of a topic below n and prunes the child it went
// through if that child is left empty.
func (n *rnode[V]) delete(topic string) bool {
	level, rest, more := strings.Cut(topic, "/")
	c := n.children.get(level, n.index)
	if c == nil {
		return false
	}
	if more {
		if !c.delete(rest) {
			return false
		}
	} else {
		if !c.has {
			return false
		}
		var zero V
		c.value, c.has = zero, false // drop the value for the collector
	}
	if !c.has && c.children.len() == 0 {
		n.index = n.children.remove(level, n.index)
	}
	return true
}

// Get returns the value retained on topic.
func (r *Retained[V]) Get(topic string) (V, bool) {
	var zero V
	if topic == "" {
		return zero, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := &r.root
	for more := true; more; {
		var level string
		level, topic, more = strings.Cut(topic, "/")
		i := n.children.find(level, n.index)
		if i < 0 {
			return zero, false
		}
		n = &n.children.kids[i].node
	}
	if !n.has {
		return zero, false
	}
	return n.value, true
}

// Match appends to dst the values of every retained topic that filter
// matches (the same matching rules as Matches and Index, including
// [MQTT-4.7.2-1]) and returns the extended slice. The order is unspecified.
// An invalid filter (see ValidFilter) matches nothing.
func (r *Retained[V]) Match(filter string, dst []V) []V {
	if ValidFilter(filter) != nil {
		return dst
	}
	level, rest, more := strings.Cut(filter, "/")
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.root.match(level, rest, more, true, dst)
}

// match appends the values below n that a filter matches from its level
// level on; rest holds the levels after it when more. At the root,
// wildcards skip the levels that start with '$' [MQTT-4.7.2-1]. The next
// level is cut from rest once here, not once per child that '+' visits.
func (n *rnode[V]) match(level, rest string, more, root bool, dst []V) []V {
	var next, after string
	var again bool
	if more {
		next, after, again = strings.Cut(rest, "/")
	}
	switch level {
	case "#":
		// [MQTT-4.7.1-2] the parent level and every level below it.
		if n.has {
			dst = append(dst, n.value)
		}
		for i := range n.children.kids {
			k := &n.children.kids[i]
			if root && k.dollar() {
				continue // [MQTT-4.7.2-1]
			}
			dst = k.node.appendAll(dst)
		}
	case "+":
		// [MQTT-4.7.1-3] exactly one level, whatever it is.
		for i := range n.children.kids {
			k := &n.children.kids[i]
			if root && k.dollar() {
				continue // [MQTT-4.7.2-1]
			}
			dst = k.node.matchRest(more, next, after, again, dst)
		}
	default:
		if i := n.children.find(level, n.index); i >= 0 {
			dst = n.children.kids[i].node.matchRest(more, next, after, again, dst)
		}
	}
	return dst
}

// matchRest appends the values that the rest of a filter matches once n
// matched one level: n's own value when the filter ends here (!more),
// else what the filter matches below n from its level next on.
func (n *rnode[V]) matchRest(more bool, next, after string, again bool, dst []V) []V {
	if !more {
		if n.has {
			dst = append(dst, n.value)
		}
		return dst
	}
	return n.match(next, after, again, false, dst)
}

// appendAll appends the values of n and every node below it.
func (n *rnode[V]) appendAll(dst []V) []V {
	if n.has {
		dst = append(dst, n.value)
	}
	for i := range n.children.kids {
		dst = n.children.kids[i].node.appendAll(dst)
	}
	return dst
}

// Len reports the number of retained topics.
func (r *Retained[V]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.n
}

// ForEach calls fn for every retained topic and its value, in no particular
// order, until fn returns false. It holds the read lock throughout: fn must
// not call Set or Delete on the same index.
func (r *Retained[V]) ForEach(fn func(topic string, v V) bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for i := range r.root.children.kids {
		k := &r.root.children.kids[i]
		if !k.node.forEach([]string{k.name()}, fn) {
			return
		}
	}
}

// forEach walks the values at and below n; path holds the levels that lead
// to n, its own included.
func (n *rnode[V]) forEach(path []string, fn func(string, V) bool) bool {
	if n.has && !fn(strings.Join(path, "/"), n.value) {
		return false
	}
	for i := range n.children.kids {
		k := &n.children.kids[i]
		if !k.node.forEach(append(path, k.name()), fn) {
			return false
		}
	}
	return true
}
