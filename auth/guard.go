package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern"
)

// Stats counts what a hook did with the CONNECTs that carried a user name,
// since it was made.
type Stats struct {
	Checks      uint64 // passwords compared with their hash
	Failed      uint64 // of those, wrong passwords and unknown users
	CacheHits   uint64 // accepted from the success cache, without a hash
	RateLimited uint64 // refused without a check: too many failures from the address
	Busy        uint64 // refused without a check: no check slot free (in time, or for an address that failed recently)
}

// credentials is one version of the users' password hashes, with the
// success cache that belongs to it: a reload makes a new version, so it
// forgets every cached success at once.
type credentials struct {
	hashes map[string]*pwHash
	dummy  *pwHash // checked for unknown users; nil when there are no users
	cache  *successCache
}

// guard runs the password checks of one hook (see Options): the success
// cache, the per-address failure limit and the bounded pool of checks.
type guard struct {
	opts    Options
	key     []byte        // HMAC key of the cache, random for each hook
	slots   chan struct{} // one token per running check
	suspect chan struct{} // one token per running check for a suspect address
	waiting atomic.Int64  // checks waiting for a slot
	limit   *limiter

	checks, failed, hits, limited, busy atomic.Uint64

	// Refusals are logged at most once a second: logNext is when the next
	// line may be written (Unix nanoseconds), and the counters count the
	// refusals since the last line.
	logNext             atomic.Int64
	logLimited, logBusy atomic.Int64
	logLastAddr         atomic.Value // string
}

func newGuard(o Options) (*guard, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &guard{
		opts:    o,
		key:     make([]byte, 32),
		slots:   make(chan struct{}, o.MaxConcurrentChecks),
		suspect: make(chan struct{}, max(1, o.MaxConcurrentChecks/2)),
		limit:   newLimiter(float64(o.FailureBurst), o.FailureRate, o.MaxAddresses),
	}
	if _, err := rand.Read(g.key); err != nil {
		return nil, fmt.Errorf("auth: cache key: %w", err)
	}
	return g, nil
}

// newCredentials wraps a version of the hashes with a new, empty cache.
func (g *guard) newCredentials(hashes map[string]*pwHash, dummy *pwHash) *credentials {
	return &credentials{hashes: hashes, dummy: dummy, cache: newSuccessCache(g.opts.CacheTTL, g.opts.CacheSize)}
}

func (g *guard) stats() Stats {
	return Stats{
		Checks:      g.checks.Load(),
		Failed:      g.failed.Load(),
		CacheHits:   g.hits.Load(),
		RateLimited: g.limited.Load(),
		Busy:        g.busy.Load(),
	}
}

// check accepts user with password when cr holds that user with a hash of
// that password. It returns tern.ErrBadCredentials for a wrong password
// or an unknown user, and an error wrapping tern.ErrServerUnavailable when
// the password could not be checked now. An unknown user takes the same
// path, and the same time, as a known user with a wrong password.
func (g *guard) check(ctx context.Context, cr *credentials, user string, password []byte, remote net.Addr) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("auth: %w: %w", tern.ErrServerUnavailable, err)
	}
	if cr.dummy == nil {
		return tern.ErrBadCredentials // no users at all: nothing to find out
	}
	// The cache key is a keyed hash of the user name and the password: the
	// cache never holds a password, and a lookup costs the same whether
	// the user exists or not.
	key := g.cacheKey(user, password)
	if cr.cache.hit(key, time.Now()) {
		g.hits.Add(1)
		return nil
	}
	addr := addrKey(remote)
	ok, suspect := g.limit.take(addr, time.Now())
	if !ok {
		g.limited.Add(1)
		g.logRefusal(&g.logLimited, addrString(addr))
		return fmt.Errorf("auth: too many failed logins from %s, password not checked: %w", addr, tern.ErrServerUnavailable)
	}
	release, err := g.acquire(ctx, addrString(addr), suspect)
	if err != nil {
		g.limit.refund(addr, time.Now()) // not checked: not a failure
		return err
	}
	ok = func() bool {
		defer release()
		return g.compare(cr, user, password)
	}()
	g.checks.Add(1)
	if !ok {
		g.failed.Add(1)
		g.limit.fail(addr, time.Now()) // the token stays taken
		return tern.ErrBadCredentials
	}
	g.limit.refund(addr, time.Now())
	cr.cache.add(key, time.Now())
	return nil
}

// compare compares password with user's hash, or with the dummy hash for
// an unknown user.
func (*guard) compare(cr *credentials, user string, password []byte) bool {
	h, known := cr.hashes[user]
	if !known {
		h = cr.dummy
	}
	return h.match(password) && known
}

// cacheKey returns HMAC-SHA256(key, len(user) || user || password).
func (g *guard) cacheKey(user string, password []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, g.key)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(user)))
	m.Write(n[:])
	m.Write([]byte(user))
	m.Write(password)
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// acquire takes a check slot: at once when one is free, otherwise after
// waiting behind at most MaxWaiting others for at most MaxWait. A suspect
// address (one that failed recently) must also hold one of the suspect
// slots, half of all (at least one), or is refused at once: clients
// without failures always find the other half for themselves, however
// steadily attackers spend their allowance. The returned function gives
// the slots back.
func (g *guard) acquire(ctx context.Context, addr string, suspect bool) (release func(), err error) {
	if suspect {
		select {
		case g.suspect <- struct{}{}:
		default:
			return nil, g.refuseBusy(addr, fmt.Errorf("auth: %d password checks for addresses with recent failures running, password not checked: %w",
				cap(g.suspect), tern.ErrServerUnavailable))
		}
		defer func() {
			if err != nil {
				<-g.suspect
			}
		}()
	}
	release = func() {
		<-g.slots
		if suspect {
			<-g.suspect
		}
	}
	select {
	case g.slots <- struct{}{}:
		return release, nil
	default:
	}
	if g.waiting.Add(1) > int64(g.opts.MaxWaiting) {
		g.waiting.Add(-1)
		return nil, g.refuseBusy(addr, fmt.Errorf("auth: %d password checks running and %d waiting, password not checked: %w",
			g.opts.MaxConcurrentChecks, g.opts.MaxWaiting, tern.ErrServerUnavailable))
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(g.opts.MaxWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}: // blocked senders are served in order
		return release, nil
	case <-t.C:
		return nil, g.refuseBusy(addr, fmt.Errorf("auth: no password check slot free within %v, password not checked: %w",
			g.opts.MaxWait, tern.ErrServerUnavailable))
	case <-ctx.Done():
		return nil, fmt.Errorf("auth: %w: %w", tern.ErrServerUnavailable, ctx.Err())
	}
}

func (g *guard) refuseBusy(addr string, err error) error {
	g.busy.Add(1)
	g.logRefusal(&g.logBusy, addr)
	return err
}

// logRefusal counts a refusal without a check and writes a warning when
// the last one is a second old or more.
func (g *guard) logRefusal(counter *atomic.Int64, addr string) {
	counter.Add(1)
	if g.opts.Logger == nil {
		return
	}
	g.logLastAddr.Store(addr)
	now := time.Now().UnixNano()
	next := g.logNext.Load()
	if now < next || !g.logNext.CompareAndSwap(next, now+int64(time.Second)) {
		return
	}
	last, _ := g.logLastAddr.Load().(string)
	g.opts.Logger.Warn("auth: CONNECTs refused without a password check",
		"too_many_failures", g.logLimited.Swap(0),
		"checks_busy", g.logBusy.Swap(0),
		"last_address", last)
}
