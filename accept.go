package tern

import (
	"errors"
	"net"
	"time"
)

// Back-off between retries of a failed Accept, as http.Server.Serve: 5 ms,
// doubling up to 1 s, reset by the next accepted connection.
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
	// acceptLogEvery spaces the log records of failed accepts: under load
	// they can fail hundreds of times a second.
	acceptLogEvery = time.Second
)

// temporaryAcceptError reports whether a failed Accept says that the system
// is loaded rather than that the listener is broken: out of descriptors,
// buffers or memory, a connection that failed before it was accepted, a
// timeout. Serve retries those. Like net/http, it trusts an error that says
// it is temporary (accept's EMFILE, ENFILE, ECONNABORTED, ECONNRESET, EINTR,
// EAGAIN and ETIMEDOUT do); loadErrno adds the errors accept(2) documents
// that do not say so.
func temporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	return loadErrno(err)
}

// nextAcceptDelay returns the back-off after a failed Accept, given the
// previous one (0 after a success).
func nextAcceptDelay(prev time.Duration) time.Duration {
	return min(max(2*prev, acceptRetryMin), acceptRetryMax)
}

// logAcceptError logs a failed Accept unless one was logged less than
// acceptLogEvery ago, by any Serve loop of the broker.
func (b *Broker) logAcceptError(err error, retry time.Duration, refused int) {
	now := time.Now().UnixNano()
	last := b.acceptLoggedAt.Load()
	if last != 0 && now-last < int64(acceptLogEvery) {
		return
	}
	if !b.acceptLoggedAt.CompareAndSwap(last, now) {
		return // another Serve loop logs this second
	}
	b.log.Warn("accept failed; retrying",
		"error", err,
		"retry_in", retry,
		"refused_now", refused,
		"accept_errors", b.stats.acceptErrors.Load())
}
