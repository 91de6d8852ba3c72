package tern

import (
	"errors"
	"net"
	"sort"
)

// ClientInfo describes a client session for Broker.Clients.
type ClientInfo struct {
	ID            string
	Username      string
	RemoteAddr    net.Addr // nil while offline
	Connected     bool
	CleanSession  bool
	Subscriptions int
	Inflight      int
	Queued        int
}

// Clients lists the client sessions, connected and offline persistent ones,
// sorted by client id.
func (b *Broker) Clients() []ClientInfo {
	b.mu.Lock()
	all := make([]*sess, 0, len(b.sessions))
	for _, s := range b.sessions {
		all = append(all, s)
	}
	b.mu.Unlock()
	out := make([]ClientInfo, 0, len(all))
	for _, s := range all {
		s.mu.Lock()
		ci := ClientInfo{
			ID:            s.s.ID,
			Username:      s.username(),
			Connected:     s.conn.Load() != nil,
			CleanSession:  s.s.Clean,
			Subscriptions: len(s.s.Subs),
			Inflight:      s.s.InflightLen(),
			Queued:        s.s.QueueLen(),
		}
		if ci.Connected {
			ci.RemoteAddr = s.who.RemoteAddr
		}
		s.mu.Unlock()
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ErrNoClient is returned by Disconnect for a client id that is not connected.
var ErrNoClient = errors.New("tern: no such connected client")

// Disconnect closes the connection of the client with id. As after any end
// without DISCONNECT, its will is published; a persistent session stays.
func (b *Broker) Disconnect(id string) error {
	b.mu.Lock()
	s := b.sessions[id]
	b.mu.Unlock()
	if s == nil {
		return ErrNoClient
	}
	c := s.conn.Load()
	if c == nil {
		return ErrNoClient
	}
	c.closeWith(ErrKicked) // MQTT 5: DISCONNECT 0x98, administrative action
	return nil
}
