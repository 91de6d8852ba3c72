//go:build !linux

package tern

import (
	"errors"
	"net"
)

// Parking idle connections needs epoll; elsewhere every connection keeps
// a reader goroutine.

type poller struct{}

const (
	stateRunning int32 = iota
	stateParked
)

var errParked = errors.New("tern: connection parked")

func (p *poller) stop()        {}
func (p *poller) stopParking() {}

func parkable(net.Conn) (ok, layered bool) { return false, false }

func (b *Broker) park(*conn) bool { return false }

func (c *conn) unpark() bool { return false }

func (b *Broker) releasePoll(*conn) {}

func socketBytes(net.Conn) int { return -1 }

// accepter: Go's sockets only.
func (b *Broker) accepter(l net.Listener) (func() (net.Conn, error), func()) {
	return l.Accept, func() {}
}

// fdConn is Linux's (fdconn_linux.go); elsewhere there is none.
type fdConn struct {
	net.Conn
	fd       int32
	nonblock bool
}

var errWouldBlock = errors.New("tern: nothing to read yet")

func (*fdConn) idle() bool    { return false }
func (*fdConn) received() int { return -1 }

func (p *poller) register(*conn, int) error { return errors.ErrUnsupported }
