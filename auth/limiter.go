package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// limiter limits the failed password checks of each address with a token
// bucket: an address starts with burst tokens, and tokens come back at
// rate per second up to burst. A check takes a token when it starts and
// gives it back when it succeeds, so only failures use tokens up, and the
// checks running at once for one address are bounded by its tokens. An
// address without a token is refused without a check. An address that
// failed recently is suspect: its checks get fewer slots (see guard).
type limiter struct {
	burst, rate float64
	max         int

	mu      sync.Mutex
	buckets map[netip.Addr]bucket
}

type bucket struct {
	tokens   float64
	at       time.Time // when tokens was counted
	failedAt time.Time // the last failed check; zero for none
}

func newLimiter(burst, rate float64, max int) *limiter {
	return &limiter{burst: burst, rate: rate, max: max, buckets: make(map[netip.Addr]bucket)}
}

// level returns b's tokens at now.
func (l *limiter) level(b bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
}

// take takes a token for a check from a, and reports whether there was
// one, and whether a is suspect: it failed a check within the time its
// whole allowance takes to come back. An invalid address (no IP: a unix
// socket, an in-memory connection) is neither limited nor suspect.
func (l *limiter) take(a netip.Addr, now time.Time) (ok, suspect bool) {
	if !a.IsValid() {
		return true, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[a]
	if !found {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = bucket{tokens: l.burst, at: now}
	}
	lv := l.level(b, now)
	if lv < 1 {
		return false, true
	}
	suspect = !b.failedAt.IsZero() && now.Sub(b.failedAt).Seconds()*l.rate < l.burst
	l.buckets[a] = bucket{tokens: lv - 1, at: now, failedAt: b.failedAt}
	return true, suspect
}

// refund gives back the token of a check that succeeded or did not run.
func (l *limiter) refund(a netip.Addr, now time.Time) {
	if !a.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[a]; ok {
		l.buckets[a] = bucket{tokens: min(l.burst, l.level(b, now)+1), at: now, failedAt: b.failedAt}
	}
}

// fail records a failed check of a; its token stays taken.
func (l *limiter) fail(a netip.Addr, now time.Time) {
	if !a.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[a]; ok {
		b.failedAt = now
		l.buckets[a] = b
	}
}

// evictScan bounds the work of one eviction.
const evictScan = 64

// evict makes room for one address: it forgets the addresses, among up to
// evictScan of them, that have regained their whole allowance (forgetting
// them changes nothing), or else one of them. Map iteration starts at a
// random place, so the scanned addresses differ each time.
func (l *limiter) evict(now time.Time) {
	var first netip.Addr
	n, removed := 0, 0
	for a, b := range l.buckets {
		if n == 0 {
			first = a
		}
		if l.level(b, now) >= l.burst {
			delete(l.buckets, a)
			removed++
		}
		if n++; n == evictScan {
			break
		}
	}
	if removed == 0 {
		delete(l.buckets, first)
	}
}

// addrKey returns the address whose failures a client's count against:
// its IP address, or its /64 network for IPv6, where one host commonly
// holds a whole /64. It returns the zero Addr when remote has no IP.
func addrKey(remote net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := remote.(type) {
	case nil:
		return netip.Addr{}
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, err := ip.Prefix(64)
		if err != nil {
			return netip.Addr{}
		}
		ip = p.Addr()
	}
	return ip
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "an address without IP"
	}
	return a.String()
}
