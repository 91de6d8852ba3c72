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
type node[K comparable] struct {
	children childSet[node[K]] // literal next levels
	plus     *node[K]          // the '+' next level, or nil
	exact    subList[K]        // filters that end at this node
	multi    subList[K]        // filters that end with a '#' level below this node
}

// empty reports whether n holds nothing, so that it can be pruned.
func (n *node[K]) empty() bool {
	return n.children.len() == 0 && n.plus == nil && n.exact.len() == 0 && n.multi.len() == 0
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
			added = n.multi.set(key, opts)
			break
		}
		n = n.child(level)
		if !more {
			added = n.exact.set(key, opts)
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
		if n.plus == nil {
			n.plus = new(node[K])
		}
		return n.plus
	}
	c := n.children.get(level)
	if c == nil {
		c = n.children.add(level)
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
		return n.multi.remove(key)
	}
	var c *node[K]
	if level == "+" {
		c = n.plus
	} else {
		c = n.children.get(level)
	}
	if c == nil {
		return false
	}
	var removed bool
	if more {
		removed = c.unsubscribe(key, rest)
	} else {
		removed = c.exact.remove(key)
	}
	if removed && c.empty() {
		if level == "+" {
			n.plus = nil
		} else {
			n.children.remove(level)
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
	if n.exact.len() > 0 {
		filter := strings.Join(path, "/")
		for _, e := range n.exact.entries {
			if !fn(e.key, filter, e.opts) {
				return false
			}
		}
	}
	if n.multi.len() > 0 {
		filter := strings.Join(append(path[:len(path):len(path)], "#"), "/")
		for _, e := range n.multi.entries {
			if !fn(e.key, filter, e.opts) {
				return false
			}
		}
	}
	for i := range n.children.nodes {
		c := &n.children.nodes[i]
		if !c.forEach(append(path, n.children.names[i]), fn) {
			return false
		}
	}
	if n.plus != nil {
		return n.plus.forEach(append(path, "+"), fn)
	}
	return true
}
