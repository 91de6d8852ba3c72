package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned (wrapped) by Load and Write on a closed Store.
var ErrClosed = errors.New("storage: store is closed")

// Memory is the in-memory Store: state lives as long as the process. It is
// the backend for tests and for brokers that need no durability.
//
// Several handles may share one set of data (see Reopen), the way several
// opens of one file share its contents; each handle is closed on its own.
type Memory struct {
	data   *memData
	closed atomic.Bool
}

// memData is what the handles of one Memory share.
type memData struct {
	mu       sync.Mutex
	clients  map[string]*memClient
	retained map[string]Message // by Topic
}

// memClient is everything stored under one client identifier.
type memClient struct {
	session    *Session
	subs       map[string]Subscription // by Filter
	deliveries map[uint64]Delivery
	inbound    map[uint16]struct{}
}

func (c *memClient) empty() bool {
	return c.session == nil && len(c.subs) == 0 && len(c.deliveries) == 0 && len(c.inbound) == 0
}

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{data: &memData{
		clients:  make(map[string]*memClient),
		retained: make(map[string]Message),
	}}
}

// Reopen returns a new handle on m's data, as reopening a durable store
// after a restart would: what was written through m is loaded through the
// new handle. m may be closed or not; closing one handle leaves the others
// open.
func (m *Memory) Reopen() *Memory {
	return &Memory{data: m.data}
}

// Close closes this handle. Closing twice is harmless.
func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}

// Write applies ops in order, atomically: an op of unknown Kind fails the
// whole call before anything is applied. Payloads are copied; the caller
// may reuse its buffers when Write returns.
func (m *Memory) Write(ctx context.Context, ops []Op) error {
	if m.closed.Load() {
		return fmt.Errorf("storage: memory write: %w", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: memory write: %w", err)
	}
	for i := range ops {
		if ops[i].Kind < PutSession || ops[i].Kind > DeleteRetained {
			return fmt.Errorf("storage: memory write: op %d: unknown kind %d", i, ops[i].Kind)
		}
	}
	d := m.data
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range ops {
		d.apply(&ops[i])
	}
	return nil
}

// client returns the entry of id, creating it if needed.
func (d *memData) client(id string) *memClient {
	c := d.clients[id]
	if c == nil {
		c = &memClient{}
		d.clients[id] = c
	}
	return c
}

// prune forgets the entry of id once nothing is stored under it.
func (d *memData) prune(id string) {
	if c := d.clients[id]; c != nil && c.empty() {
		delete(d.clients, id)
	}
}

func (d *memData) apply(op *Op) {
	switch op.Kind {
	case PutSession:
		s := op.Session
		if s.Will != nil {
			w := *s.Will
			w.Msg = cloneMessage(w.Msg)
			s.Will = &w
		}
		d.client(s.ClientID).session = &s
	case DeleteSession:
		delete(d.clients, op.ClientID)
	case PutSubscription:
		s := op.Subscription
		c := d.client(s.ClientID)
		if c.subs == nil {
			c.subs = make(map[string]Subscription)
		}
		c.subs[s.Filter] = s
	case DeleteSubscription:
		if c := d.clients[op.Subscription.ClientID]; c != nil {
			delete(c.subs, op.Subscription.Filter)
			d.prune(op.Subscription.ClientID)
		}
	case PutDelivery:
		dl := op.Delivery
		dl.Msg = cloneMessage(dl.Msg)
		dl.SubIDs = cloneIDs(dl.SubIDs)
		c := d.client(dl.ClientID)
		if c.deliveries == nil {
			c.deliveries = make(map[uint64]Delivery)
		}
		c.deliveries[dl.Seq] = dl
	case DeleteDelivery:
		if c := d.clients[op.Delivery.ClientID]; c != nil {
			delete(c.deliveries, op.Delivery.Seq)
			d.prune(op.Delivery.ClientID)
		}
	case PutInbound:
		c := d.client(op.Inbound.ClientID)
		if c.inbound == nil {
			c.inbound = make(map[uint16]struct{})
		}
		c.inbound[op.Inbound.PacketID] = struct{}{}
	case DeleteInbound:
		if c := d.clients[op.Inbound.ClientID]; c != nil {
			delete(c.inbound, op.Inbound.PacketID)
			d.prune(op.Inbound.ClientID)
		}
	case PutRetained:
		d.retained[op.Retained.Topic] = cloneMessage(op.Retained)
	case DeleteRetained:
		delete(d.retained, op.Retained.Topic)
	}
}

// Load returns a copy of everything stored: the caller owns it. Sessions,
// subscriptions and inbound identifiers come in ClientID order, retained
// messages in Topic order, deliveries in (ClientID, Seq) order. An empty
// payload, property block or list of subscription identifiers is returned
// as nil.
func (m *Memory) Load(ctx context.Context) (*Snapshot, error) {
	if m.closed.Load() {
		return nil, fmt.Errorf("storage: memory load: %w", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: memory load: %w", err)
	}
	d := m.data
	d.mu.Lock()
	defer d.mu.Unlock()
	snap := &Snapshot{}
	for _, id := range slices.Sorted(maps.Keys(d.clients)) {
		c := d.clients[id]
		if c.session != nil {
			s := *c.session
			if s.Will != nil {
				w := *s.Will
				w.Msg = cloneMessage(w.Msg)
				s.Will = &w
			}
			snap.Sessions = append(snap.Sessions, s)
		}
		for _, f := range slices.Sorted(maps.Keys(c.subs)) {
			snap.Subscriptions = append(snap.Subscriptions, c.subs[f])
		}
		for _, seq := range slices.Sorted(maps.Keys(c.deliveries)) {
			dl := c.deliveries[seq]
			dl.Msg = cloneMessage(dl.Msg)
			dl.SubIDs = cloneIDs(dl.SubIDs)
			snap.Deliveries = append(snap.Deliveries, dl)
		}
		for _, pid := range slices.Sorted(maps.Keys(c.inbound)) {
			snap.Inbound = append(snap.Inbound, Inbound{ClientID: id, PacketID: pid})
		}
	}
	for _, r := range d.retained {
		snap.Retained = append(snap.Retained, cloneMessage(r))
	}
	slices.SortFunc(snap.Retained, func(a, b Message) int { return cmp.Compare(a.Topic, b.Topic) })
	return snap, nil
}

// cloneIDs copies a delivery's subscription identifiers; none is nil, as
// an empty payload is.
func cloneIDs(ids []uint32) []uint32 {
	if len(ids) == 0 {
		return nil
	}
	return slices.Clone(ids)
}

// cloneMessage copies m's byte slices; empty ones become nil.
func cloneMessage(m Message) Message {
	m.Payload = clonePayload(m.Payload)
	m.Props = clonePayload(m.Props)
	return m
}

// clonePayload copies p; an empty payload becomes nil.
func clonePayload(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}
