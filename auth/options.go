package auth

import (
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxWait      = time.Second
	DefaultCacheTTL     = 10 * time.Minute
	DefaultCacheSize    = 10000
	DefaultFailureBurst = 10
	DefaultFailureRate  = 2.0 // failed checks per second
	DefaultMaxAddresses = 10000
)

// Options bound the work password checks may take, so that a flood of
// wrong passwords cannot lock legitimate clients out. The zero value is
// usable: every zero field takes the default named beside it. A negative
// value is an error naming the field.
//
// A CONNECT with a user name goes through these steps:
//
//  1. Its user name and password are looked up in a cache of recent
//     successful checks; a hit is accepted at once.
//  2. An address whose failed checks have used up its allowance
//     (FailureBurst, refilled at FailureRate per second) is refused at
//     once with CONNACK 0x03 (server unavailable), without a check.
//  3. The check waits for one of MaxConcurrentChecks slots, behind at most
//     MaxWaiting others and for at most MaxWait; past either bound it is
//     refused with CONNACK 0x03. Checks for addresses that failed within
//     the time their allowance takes to come back hold at most half of the
//     slots (at least one), so that the other half stays free for clients
//     without failures.
//  4. The password is compared with its hash; a success enters the cache.
type Options struct {
	// MaxConcurrentChecks bounds the password hashes computed at once.
	// Default: runtime.GOMAXPROCS(0), the CPUs the process may use.
	MaxConcurrentChecks int

	// MaxWaiting bounds the checks waiting for a slot. Default 8 times
	// MaxConcurrentChecks.
	MaxWaiting int

	// MaxWait bounds how long a check waits for a slot. Default 1 s.
	MaxWait time.Duration

	// CacheTTL is how long a successful check is remembered: a client that
	// reconnects with the same user name and password within it is
	// accepted without a hash. Reloading the file forgets every entry.
	// Default 10 minutes.
	CacheTTL time.Duration

	// CacheSize bounds the entries of the success cache; past it, the
	// oldest entry goes. Default 10000.
	CacheSize int

	// FailureBurst is how many failed checks an address may make before it
	// is limited to FailureRate. Default 10.
	FailureBurst int

	// FailureRate is how many failed checks per second an address regains.
	// Default 2.
	FailureRate float64

	// MaxAddresses bounds the addresses whose failures are remembered;
	// past it, addresses that have regained their whole allowance are
	// forgotten first. Default 10000.
	MaxAddresses int

	// Logger receives a warning, at most once a second, counting the
	// CONNECTs refused without a check. nil: silent.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	var err error
	check := func(field string, bad bool, v any) {
		if bad && err == nil {
			err = fmt.Errorf("auth: Options.%s must not be negative, got %v", field, v)
		}
	}
	check("MaxConcurrentChecks", o.MaxConcurrentChecks < 0, o.MaxConcurrentChecks)
	check("MaxWaiting", o.MaxWaiting < 0, o.MaxWaiting)
	check("MaxWait", o.MaxWait < 0, o.MaxWait)
	check("CacheTTL", o.CacheTTL < 0, o.CacheTTL)
	check("CacheSize", o.CacheSize < 0, o.CacheSize)
	check("FailureBurst", o.FailureBurst < 0, o.FailureBurst)
	check("FailureRate", o.FailureRate < 0, o.FailureRate)
	check("MaxAddresses", o.MaxAddresses < 0, o.MaxAddresses)
	if err != nil {
		return o, err
	}
	if math.IsNaN(o.FailureRate) || math.IsInf(o.FailureRate, 0) {
		return o, fmt.Errorf("auth: Options.FailureRate must be a finite number, got %v", o.FailureRate)
	}
	if o.MaxConcurrentChecks == 0 {
		o.MaxConcurrentChecks = runtime.GOMAXPROCS(0)
	}
	if o.MaxWaiting == 0 {
		o.MaxWaiting = 8 * o.MaxConcurrentChecks
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.FailureBurst == 0 {
		o.FailureBurst = DefaultFailureBurst
	}
	if o.FailureRate == 0 {
		o.FailureRate = DefaultFailureRate
	}
	if o.MaxAddresses == 0 {
		o.MaxAddresses = DefaultMaxAddresses
	}
	return o, nil
}
