package topics

import "strings"

// linearMergeMax is the number of results up to which Match merges the
// subscribers of overlapping filters by scanning what it has appended so
// far; beyond it, a pooled map does the merge.
const linearMergeMax = 32

// pooledMapMax is the size beyond which a merge map is dropped rather than
// pooled, so that one huge fan-out does not pin its memory.
const pooledMapMax = 1 << 16

// Match appends to dst one Sub per subscriber with at least one filter that
// matches topic and returns the extended slice. A subscriber with several
// matching filters gets one Sub, with Multi set and the Opts of a filter
// with the highest QoS [MQTT-3.3.5-1]. Filters that start with a wildcard
// do not match topics that start with '$' [MQTT-4.7.2-1]. The order of the
// results is unspecified.
//
// topic should be a valid topic name (see ValidName); Match does not check
// it, and an empty topic matches nothing. Match takes only the read lock.
// With a dst of sufficient capacity it does not allocate: when a subscriber
// may match through several filters, the results are merged by a scan of
// dst while they are few and with a pooled map when they are many (only a
// cold pool allocates).
func (ix *Index[K]) Match(topic string, dst []Sub[K]) []Sub[K] {
	if topic == "" {
		return dst
	}
	m := matcher[K]{dst: dst, start: len(dst)}
	ix.mu.RLock()
	root := &ix.root
	// [MQTT-4.7.2-1] at the first level, the wildcards "#" and "+" do
	// not match a level that starts with '$'.
	dollar := topic[0] == '$'
	if !dollar {
		m.add(ix, root.multi()) // the filter "#"
	}
	level, rest, more := strings.Cut(topic, "/")
	if i := root.children.find(level, root.index()); i >= 0 {
		m.walk(ix, &root.children.kids[i].node, rest, !more)
	}
	if !dollar && root.x != nil && root.x.plus != nil {
		m.walk(ix, root.x.plus, rest, !more)
	}
	ix.mu.RUnlock()
	if m.seen != nil {
		if len(m.seen) <= pooledMapMax {
			clear(m.seen)
			ix.seen.Put(m.seen)
		}
	}
	return m.dst
}

// matcher collects the results of one Match.
type matcher[K comparable] struct {
	dst   []Sub[K]
	start int         // len(dst) on entry: results are dst[start:]
	lists int         // non-empty subscriber lists merged so far
	seen  map[K]int32 // key -> position in dst, once the results are many
}

// walk visits n, reached after matching a prefix of the topic; rest holds
// the levels still to match, none when done.
func (m *matcher[K]) walk(ix *Index[K], n *node[K], rest string, done bool) {
	x := n.x
	if x != nil {
		// A trailing '#' matches the parent level and any number of child
		// levels [MQTT-4.7.1-2]: "sport/#" matches "sport" and "sport/x/y".
		m.add(ix, x.multi.entries)
	}
	if done {
		switch {
		case n.nsub == 1:
			m.addOne(ix, Sub[K]{Key: n.key, Opts: n.opts})
		case n.nsub > 1:
			m.add(ix, x.exact.entries)
		}
		return
	}
	level, next, more := strings.Cut(rest, "/")
	if i := n.children.find(level, n.index()); i >= 0 {
		m.walk(ix, &n.children.kids[i].node, next, !more)
	}
	// '+' matches exactly one level, an empty one included [MQTT-4.7.1-3].
	if x != nil && x.plus != nil {
		m.walk(ix, x.plus, next, !more)
	}
}

// addOne merges the only subscriber of one matching filter.
func (m *matcher[K]) addOne(ix *Index[K], e Sub[K]) {
	m.lists++
	if m.lists == 1 {
		m.dst = append(m.dst, e)
		return
	}
	if m.seen == nil && len(m.dst)-m.start+1 <= linearMergeMax {
		m.mergeLinear(e)
		return
	}
	m.mergeMapped(ix, e)
}

// add merges the subscribers of one matching filter into the results,
// keeping one Sub per key [MQTT-3.3.5-1].
func (m *matcher[K]) add(ix *Index[K], entries []Sub[K]) {
	if len(entries) == 0 {
		return
	}
	m.lists++
	if m.lists == 1 {
		// One filter holds each key at most once: nothing to merge yet.
		m.dst = append(m.dst, entries...)
		return
	}
	if m.seen == nil && len(m.dst)-m.start+len(entries) <= linearMergeMax {
		for _, e := range entries {
			m.mergeLinear(e)
		}
		return
	}
	for _, e := range entries {
		m.mergeMapped(ix, e)
	}
}

// merge folds e into the result r for the same key: the subscriber
// matched through several filters, and keeps the opts of one with the
// highest QoS [MQTT-3.3.5-1].
func merge[K comparable](r *Sub[K], e Sub[K]) {
	r.Multi = true
	if e.Opts&3 > r.Opts&3 {
		r.Opts = e.Opts
	}
}

// mergeLinear merges e by scanning the results, for few results.
func (m *matcher[K]) mergeLinear(e Sub[K]) {
	for i := m.start; i < len(m.dst); i++ {
		if m.dst[i].Key == e.Key {
			merge(&m.dst[i], e)
			return
		}
	}
	m.dst = append(m.dst, e)
}

// mergeMapped merges e through the merge map, making it if needed.
func (m *matcher[K]) mergeMapped(ix *Index[K], e Sub[K]) {
	if m.seen == nil {
		m.seen = m.newSeen(ix)
	}
	if i, ok := m.seen[e.Key]; ok {
		merge(&m.dst[i], e)
		return
	}
	m.seen[e.Key] = int32(len(m.dst))
	m.dst = append(m.dst, e)
}

// newSeen returns a merge map, pooled if possible, holding the results so
// far.
func (m *matcher[K]) newSeen(ix *Index[K]) map[K]int32 {
	seen, _ := ix.seen.Get().(map[K]int32)
	if seen == nil {
		seen = make(map[K]int32, 2*(len(m.dst)-m.start))
	}
	for i := m.start; i < len(m.dst); i++ {
		seen[m.dst[i].Key] = int32(i)
	}
	return seen
}
