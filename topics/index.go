package topics

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Sub is one subscriber returned by Index.Match.
type Sub[K comparable] struct {
	Key K
	// Opts is the value given to Subscribe for the matching filter. When
	// several of the subscriber's filters match, it is the value of one
	// with the highest QoS.
	Opts uint32
	// Multi reports that several of the subscriber's filters matched the
	// topic (overlapping subscriptions); Opts is then that of one of them.
	Multi bool
}

// QoS returns the QoS of the subscription: the low two bits of Opts.
func (s Sub[K]) QoS() byte { return byte(s.Opts & 3) }

// Index is the subscription index: a topic trie of (subscriber, filter,
// opts) entries, keyed by subscriber K (a client id, a session pointer).
// opts is the caller's 32-bit value for the subscription; its low two bits
// are the QoS, which Match uses to merge overlapping subscriptions.
//
// Index is safe for concurrent use. Matches take a read lock only, so
// concurrent publishes do not serialise behind each other; Subscribe and
// Unsubscribe take the write lock for the few map and slice updates they
// make. The zero Index is empty and ready to use; an Index must not be
// copied after first use.
type Index[K comparable] struct {
	mu   sync.RWMutex
	root node[K]
	n    int           // number of (key, filter) entries
	gen  atomic.Uint64 // bumped by every Subscribe and Unsubscribe

	// seen pools the maps Match uses to merge the results of overlapping
	// filters when there are too many for a linear scan (map[K]int32).
	seen sync.Pool
}

// node is one level of the subscription trie.
//
// A subscription costs a node or two, so the node is small: the usual
// case (a few literal children, one subscriber or none whose filter ends
// here) is held inline, and the rest (a '+' child, '#' subscribers, a
// second subscriber of the same filter, the index of many children) sits
// behind a pointer that most nodes leave nil.
type node[K comparable] struct {
	children childSet[node[K]] // literal next levels
	// key and opts are the filter's subscriber when nsub == 1; with more
	// subscribers, they are all in x.exact.
	key  K
	opts uint32
	nsub uint32 // subscribers of the filter that ends at this node
	x    *nodeExt[K]
}

// nodeExt holds the rarely used parts of a node.
type nodeExt[K comparable] struct {
	plus  *node[K]    // the '+' next level, or nil
	index *levelIndex // of the children, once they are many
	multi subList[K]  // filters that end with a '#' level below this node
	exact subList[K]  // the filter's subscribers when there are two or more
}

// index returns the index of n's children, nil while they are few.
func (n *node[K]) index() *levelIndex {
	if n.x == nil {
		return nil
	}
	return n.x.index
}

// setIndex keeps ix as the index of n's children.
func (n *node[K]) setIndex(ix *levelIndex) {
	switch {
	case ix != nil:
		n.ext().index = ix
	case n.x != nil:
		n.x.index = nil
		n.trimExt()
	}
}

// ext returns n's extension, creating it if needed.
func (n *node[K]) ext() *nodeExt[K] {
	if n.x == nil {
		n.x = new(nodeExt[K])
	}
	return n.x
}

// trimExt drops n's extension when it holds nothing.
func (n *node[K]) trimExt() {
	if x := n.x; x != nil && x.plus == nil && x.index == nil && x.multi.len() == 0 && x.exact.len() == 0 {
		n.x = nil
	}
}

// empty reports whether n holds nothing, so that it can be pruned.
func (n *node[K]) empty() bool {
	return n.children.len() == 0 && n.nsub == 0 && n.x == nil
}

// multi returns the subscribers of the filters that end with '#' below n.
func (n *node[K]) multi() []Sub[K] {
	if n.x == nil {
		return nil
	}
	return n.x.multi.entries
}

// setExact adds or replaces key's entry for the filter that ends at n and
// reports whether it is new.
func (n *node[K]) setExact(key K, opts uint32) bool {
	switch {
	case n.nsub == 0:
		n.key, n.opts, n.nsub = key, opts, 1
		return true
	case n.nsub == 1 && n.key == key:
		n.opts = opts
		return false
	case n.nsub == 1:
		x := n.ext()
		x.exact.set(n.key, n.opts)
		x.exact.set(key, opts)
		var zero K
		n.key, n.opts, n.nsub = zero, 0, 2
		return true
	}
	if !n.x.exact.set(key, opts) {
		return false
	}
	n.nsub++
	return true
}

// removeExact removes key's entry for the filter that ends at n and
// reports whether there was one.
func (n *node[K]) removeExact(key K) bool {
	switch {
	case n.nsub == 0:
		return false
	case n.nsub == 1:
		if n.key != key {
			return false
		}
		var zero K
		n.key, n.opts, n.nsub = zero, 0, 0 // drop the reference a pointer key holds
		return true
	}
	if !n.x.exact.remove(key) {
		return false
	}
	n.nsub--
	if n.nsub == 1 {
		e := n.x.exact.entries[0]
		n.key, n.opts = e.Key, e.Opts
		n.x.exact = subList[K]{}
		n.trimExt()
	}
	return true
}

// forExact calls fn for each subscriber of the filter that ends at n.
func (n *node[K]) forExact(fn func(e Sub[K]) bool) bool {
	if n.nsub == 1 {
		return fn(Sub[K]{Key: n.key, Opts: n.opts})
	}
	if n.nsub > 1 {
		for _, e := range n.x.exact.entries {
			if !fn(e) {
				return false
			}
		}
	}
	return true
}

// Generation returns a number that changes whenever a subscription is added,
// replaced or removed. A caller may cache the result of Match for a topic
// and reuse it while Generation returns the value it read before matching.
func (ix *Index[K]) Generation() uint64 { return ix.gen.Load() }

// NewIndex returns an empty index.
func NewIndex[K comparable]() *Index[K] {
	return &Index[K]{}
}

// Subscribe adds or replaces key's subscription to filter with opts (the
// caller's value; its low two bits are the QoS) and reports whether it is
// new (false when it replaced one: re-subscribing to an identical filter
// replaces the subscription, whose QoS may differ [MQTT-3.8.4-3]).
//
// filter must be valid (see ValidFilter): Subscribe ignores an invalid
// filter and reports false, so a caller that needs to tell the two apart
// validates first, as a server must anyway to answer the SUBSCRIBE.
func (ix *Index[K]) Subscribe(key K, filter string, opts uint32) bool {
	if ValidFilter(filter) != nil {
		return false
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen.Add(1)
	n := &ix.root
	var added bool
	for {
		level, rest, more := strings.Cut(filter, "/")
		// set replaces the entry of an identical filter [MQTT-3.8.4-3].
		if level == "#" { // valid, so the last level [MQTT-4.7.1-2]
			added = n.ext().multi.set(key, opts)
			break
		}
		n = n.child(level)
		if !more {
			added = n.setExact(key, opts)
			break
		}
		filter = rest
	}
	if added {
		ix.n++
	}
	return added
}

// child returns n's child for a filter level, creating it if needed.
func (n *node[K]) child(level string) *node[K] {
	if level == "+" {
		x := n.ext()
		if x.plus == nil {
			x.plus = new(node[K])
		}
		return x.plus
	}
	ix := n.index()
	c := n.children.get(level, ix)
	if c == nil {
		var grown *levelIndex
		c, grown = n.children.add(level, ix)
		if grown != ix {
			n.setIndex(grown)
		}
	}
	return c
}

// Unsubscribe removes key's subscription to filter and reports whether
// there was one. Filters are compared character by character, wildcards
// included: unsubscribing from "a/+" leaves "a/b" alone [MQTT-3.10.4-1].
// Trie nodes left empty are removed.
func (ix *Index[K]) Unsubscribe(key K, filter string) bool {
	if filter == "" {
		return false
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !ix.root.unsubscribe(key, filter) {
		return false
	}
	ix.gen.Add(1)
	ix.n--
	return true
}

// unsubscribe removes key's entry for the rest of a filter below n and
// prunes the child it went through if that child is left empty.
func (n *node[K]) unsubscribe(key K, filter string) bool {
	level, rest, more := strings.Cut(filter, "/")
	if level == "#" && !more {
		if n.x == nil || !n.x.multi.remove(key) {
			return false
		}
		n.trimExt()
		return true
	}
	var c *node[K]
	if level == "+" {
		if n.x != nil {
			c = n.x.plus
		}
	} else {
		c = n.children.get(level, n.index())
	}
	if c == nil {
		return false
	}
	var removed bool
	if more {
		removed = c.unsubscribe(key, rest)
	} else {
		removed = c.removeExact(key)
	}
	if removed && c.empty() {
		if level == "+" {
			n.x.plus = nil
			n.trimExt()
		} else if ix := n.index(); ix != nil {
			n.setIndex(n.children.remove(level, ix))
		} else {
			n.children.remove(level, nil)
		}
	}
	return removed
}

// Len reports the number of (subscriber, filter) entries.
func (ix *Index[K]) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.n
}

// ForEach calls fn for every (subscriber, filter, opts) entry, in no
// particular order, until fn returns false. It holds the index's read lock
// throughout: fn must not call Subscribe or Unsubscribe on the same index.
func (ix *Index[K]) ForEach(fn func(key K, filter string, opts uint32) bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ix.root.forEach(nil, fn)
}

// forEach walks the entries below n; path holds the levels that lead to n.
func (n *node[K]) forEach(path []string, fn func(K, string, uint32) bool) bool {
	if n.nsub > 0 {
		filter := strings.Join(path, "/")
		if !n.forExact(func(e Sub[K]) bool { return fn(e.Key, filter, e.Opts) }) {
			return false
		}
	}
	if multi := n.multi(); len(multi) > 0 {
		filter := strings.Join(append(path[:len(path):len(path)], "#"), "/")
		for _, e := range multi {
			if !fn(e.Key, filter, e.Opts) {
				return false
			}
		}
	}
	for i := range n.children.kids {
		k := &n.children.kids[i]
		if !k.node.forEach(append(path, k.name()), fn) {
			return false
		}
	}
	if n.x != nil && n.x.plus != nil {
		return n.x.plus.forEach(append(path, "+"), fn)
	}
	return true
}
