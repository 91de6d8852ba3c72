package topics

// subMapMin is the number of subscribers of one filter from which a subList
// keeps a map from key to position, so that subscribing and unsubscribing
// stay O(1) for a filter shared by many clients.
const subMapMin = 16

// subList holds the subscribers of one filter, at most one entry per key.
// Entries are Subs (Multi unset), so that Match copies the first list it
// merges with one copy; the index map appears only for long lists. Not
// safe for concurrent writes; its owner locks.
type subList[K comparable] struct {
	entries []Sub[K]
	index   map[K]int32 // key -> position; nil while the list is short
}

// find returns the position of key, or -1.
func (l *subList[K]) find(key K) int {
	if l.index != nil {
		if i, ok := l.index[key]; ok {
			return int(i)
		}
		return -1
	}
	for i := range l.entries {
		if l.entries[i].Key == key {
			return i
		}
	}
	return -1
}

// set adds key with opts, or replaces the opts of its entry, and reports
// whether the entry is new.
func (l *subList[K]) set(key K, opts uint32) bool {
	if i := l.find(key); i >= 0 {
		l.entries[i].Opts = opts
		return false
	}
	l.entries = append(l.entries, Sub[K]{Key: key, Opts: opts})
	switch {
	case l.index != nil:
		l.index[key] = int32(len(l.entries) - 1)
	case len(l.entries) >= subMapMin:
		l.index = make(map[K]int32, 2*len(l.entries))
		for i := range l.entries {
			l.index[l.entries[i].Key] = int32(i)
		}
	}
	return true
}

// remove deletes key's entry, moving the last entry into its place, and
// reports whether there was one.
func (l *subList[K]) remove(key K) bool {
	i := l.find(key)
	if i < 0 {
		return false
	}
	last := len(l.entries) - 1
	if l.index != nil {
		delete(l.index, key)
		if i != last {
			l.index[l.entries[last].Key] = int32(i)
		}
	}
	l.entries[i] = l.entries[last]
	l.entries[last] = Sub[K]{} // drop the reference a pointer key holds
	l.entries = l.entries[:last]
	if l.index != nil && len(l.entries) < subMapMin/2 {
		l.index = nil
	}
	switch {
	case len(l.entries) == 0:
		l.entries = nil
	case cap(l.entries) > 16 && len(l.entries) < cap(l.entries)/4:
		l.entries = resize(l.entries, 2*len(l.entries)) // give the memory back
	}
	return true
}

// len reports the number of entries.
func (l *subList[K]) len() int { return len(l.entries) }
