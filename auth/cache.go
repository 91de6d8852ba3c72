package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// successCache remembers successful checks for ttl, at most size of them.
// Entries expire in the order they were added (the ttl is the same for
// all), so a FIFO tells which to drop first; a hit does not extend an
// entry, so a client pays one hash per ttl.
type successCache struct {
	ttl  time.Duration
	size int

	mu      sync.Mutex
	entries map[[sha256.Size]byte]time.Time // expiry
	fifo    []cacheEntry                    // insertion order, from head on
	head    int
}

type cacheEntry struct {
	key    [sha256.Size]byte
	expiry time.Time
}

func newSuccessCache(ttl time.Duration, size int) *successCache {
	return &successCache{ttl: ttl, size: size, entries: make(map[[sha256.Size]byte]time.Time)}
}

func (c *successCache) hit(key [sha256.Size]byte, now time.Time) bool {
	c.mu.Lock()
	exp, ok := c.entries[key]
	c.mu.Unlock()
	return ok && now.Before(exp)
}

func (c *successCache) add(key [sha256.Size]byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Drop what has expired, and the oldest entries while full.
	for c.head < len(c.fifo) {
		e := c.fifo[c.head]
		if now.Before(e.expiry) && len(c.entries) < c.size {
			break
		}
		if exp, ok := c.entries[e.key]; ok && exp.Equal(e.expiry) {
			delete(c.entries, e.key) // not replaced by a newer entry
		}
		c.fifo[c.head] = cacheEntry{}
		c.head++
	}
	if c.head > len(c.fifo)/2 {
		c.fifo = append(c.fifo[:0], c.fifo[c.head:]...)
		c.head = 0
	}
	exp := now.Add(c.ttl)
	c.entries[key] = exp
	c.fifo = append(c.fifo, cacheEntry{key: key, expiry: exp})
}
