package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ternmq/tern"
	"github.com/ternmq/tern/storage"
)

// record is what the sessions bucket keeps per client identifier (the key
// is the identifier as one token, see levelToken): who holds it, and the
// persistent session. Every change is a compare-and-set on the key's
// revision, so two nodes never both think they changed the same version.
type record struct {
	// Node is the node (name and incarnation) that holds the identifier,
	// or last held it.
	Node string `json:"node"`
	// Online: a connection on Node holds the identifier.
	Online bool `json:"online,omitempty"`
	// Claim numbers Node's claims: with Node, it tells one connection
	// from the next that claims the identifier there.
	Claim uint64 `json:"claim,omitempty"`
	// Adopted: Node took the record over from a node that died; it runs
	// the session's expiry and will (no broker holds the session).
	Adopted bool `json:"adopted,omitempty"`
	// Username is the identity the session (or connection) belongs to.
	Username string `json:"user,omitempty"`
	// Will is the will of the connection while Online (the claim's, then
	// the saved one), and the pending will of an offline session.
	Will *storage.Will `json:"will,omitempty"`
	// Session is the persistent session (nil: none).
	Session *sessionState `json:"session,omitempty"`
	// Gen counts the changes of Session: tern.ClusterSession.Revision.
	Gen uint64 `json:"gen,omitempty"`
}

// sessionState is a tern.ClusterSession as stored.
type sessionState struct {
	Expiry        uint32                 `json:"expiry"`
	LastSeen      time.Time              `json:"last_seen,omitzero"`
	Subscriptions []storage.Subscription `json:"subs,omitempty"`
	Inbound       []uint16               `json:"inbound,omitempty"`
	Since         int64                  `json:"since"`
}

// stateOf is s as stored; its will goes to the record.
func stateOf(s *tern.ClusterSession) *sessionState {
	subs := make([]storage.Subscription, len(s.Subscriptions))
	for i, sub := range s.Subscriptions {
		sub.ClientID = "" // the key says it
		subs[i] = sub
	}
	return &sessionState{Expiry: s.Expiry, LastSeen: s.LastSeen, Subscriptions: subs, Inbound: s.Inbound, Since: s.Since}
}

// clusterSession is the record's session as the broker takes it.
func (r *record) clusterSession(id string) *tern.ClusterSession {
	st := r.Session
	subs := make([]storage.Subscription, len(st.Subscriptions))
	for i, sub := range st.Subscriptions {
		sub.ClientID = id
		subs[i] = sub
	}
	cs := &tern.ClusterSession{
		ClientID: id, Username: r.Username, Expiry: st.Expiry, LastSeen: st.LastSeen,
		Subscriptions: subs, Inbound: st.Inbound, Since: st.Since, Revision: r.Gen,
	}
	if !r.Online {
		cs.Will = r.Will
	}
	return cs
}

// expiresAt is when the offline session of r ends (zero: never).
func (r *record) expiresAt() time.Time {
	if r.Session == nil || r.Session.Expiry == neverExpires {
		return time.Time{}
	}
	return r.Session.LastSeen.Add(time.Duration(r.Session.Expiry) * time.Second)
}

// neverExpires is the Session Expiry Interval of a session that never
// expires.
const neverExpires = storage.NeverExpires

// errConflict is a compare-and-set that lost: the record changed.
var errConflict = errors.New("record changed")

// kvGet reads key: the record (nil: none) and the revision to
// compare-and-set against (0: create).
func kvGet(ctx context.Context, kv jetstream.KeyValue, key string) (*record, uint64, error) {
	e, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("record of %q: %w", key, err)
	}
	return &r, e.Revision(), nil
}

// kvPut writes r at key if the key is still at rev (0: absent), and
// returns the new revision; errConflict if it is not.
func kvPut(ctx context.Context, kv jetstream.KeyValue, key string, r *record, rev uint64) (uint64, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	var n uint64
	if rev == 0 {
		n, err = kv.Create(ctx, key, data)
	} else {
		n, err = kv.Update(ctx, key, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, errConflict
	}
	return n, err
}

// kvDelete deletes key if it is still at rev.
func kvDelete(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64) error {
	err := kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return errConflict
	}
	return err
}
