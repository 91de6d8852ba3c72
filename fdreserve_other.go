//go:build !unix

package tern

import "net"

// fdReserve is a no-op where there is no RLIMIT_NOFILE: Serve only backs
// off when accept fails.
type fdReserve struct{}

func newFDReserve() *fdReserve                    { return &fdReserve{} }
func (r *fdReserve) close()                       {}
func (r *fdReserve) shed(net.Listener, error) int { return 0 }

// loadErrno: no errors beyond those that say they are temporary.
func loadErrno(error) bool { return false }

// fileLimit: no descriptor limit to derive MaxConnections from.
func fileLimit() (uint64, bool) { return 0, false }
