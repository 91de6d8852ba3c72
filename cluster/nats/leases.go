package nats

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ternmq/tern"
)

// Leases.
//
// Each node holds a lease: its key in the bucket PREFIX-nodes, whose
// values live LeaseTTL (the bucket's TTL), rewritten every quarter of it.
// A node whose key is gone is dead to the others. Every node watches the
// set of leases; when one disappears (and when a node starts), it reads
// the session records and adopts, one compare-and-set each, those of
// nodes that hold no lease: it publishes the wills of clients that were
// connected there (their connection is gone), and runs the expiry and the
// delayed wills of offline sessions. Only the node whose compare-and-set
// wins acts, so a will goes out once.
//
// A node that could not renew its lease for three quarters of LeaseTTL
// is fenced: the others may soon take its identifiers, so it closes the
// connections of persistent sessions (their state is the cluster's now)
// and refuses new claims. Clean sessions go on. When its lease is back,
// it checks every identifier its connections hold against the records
// (at each renewal until every check went through), and closes those
// another node claimed meanwhile. Identifiers held without a claim (the
// cluster was unavailable at their CONNECT) are claimed at the next
// renewal.

// nodesConfig is the leases bucket's configuration.
func (c *Cluster) nodesConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      c.cfg.Prefix + "-nodes",
		Description: "Tern: node leases",
		History:     1,
		TTL:         c.cfg.LeaseTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    c.cfg.Replicas,
	}
}

// lease is the value of a node's lease key.
type lease struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

// renew writes this node's lease; it reports whether it could.
func (c *Cluster) renew() bool {
	sent := time.Now()
	ctx, cancel := c.requestCtx()
	defer cancel()
	data, _ := json.Marshal(lease{Name: c.cfg.Name, Since: c.started})
	if _, err := c.nodes.Put(ctx, c.self, data); err != nil {
		c.log.Debug("cluster: renewing the lease", "error", err)
		c.mu.Lock()
		c.epoch++
		c.renewFailed = true
		c.mu.Unlock()
		return false
	}
	c.mu.Lock()
	c.leaseSent = sent
	if c.renewFailed {
		c.epoch++ // see Cluster.epoch
		c.renewFailed = false
	}
	c.mu.Unlock()
	return true
}

// isFenced reports whether this node's lease has lapsed, or is about to.
func (c *Cluster) isFenced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.leaseSent) > c.cfg.LeaseTTL*3/4
}

// nodeAlive reports whether node holds a lease.
func (c *Cluster) nodeAlive(ctx context.Context, node string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	_, err := c.nodes.Get(ctx, node)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return false, nil
	}
	return false, unavailable(err)
}

// confirmAlive reports whether node, missing from a listing of the
// leases, holds one after all (or cannot be known not to). Listing the
// keys may miss one rewritten meanwhile: its old value is gone, and its
// new one lies past the end of the listing. Reading the key itself is
// exact.
func (c *Cluster) confirmAlive(node string) bool {
	alive, err := c.nodeAlive(c.ctx, node)
	return alive || err != nil
}

// liveNodes is the set of nodes that hold a lease; it may miss one
// renewed while it reads (see confirmAlive).
func (c *Cluster) liveNodes() (map[string]bool, error) {
	ctx, cancel := c.requestCtx()
	defer cancel()
	keys, err := c.nodes.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, err
	}
	live := make(map[string]bool, len(keys))
	for _, k := range keys {
		live[k] = true
	}
	return live, nil
}

// leaseLoop renews the lease, fences and unfences this node, and adopts
// the sessions of nodes that died, until Stop.
func (c *Cluster) leaseLoop() {
	every := c.cfg.LeaseTTL / 4
	t := time.NewTicker(every)
	defer t.Stop()
	var known map[string]bool
	fenced := false
	unchecked := false // identifiers held here to check after a fence
	// A full sweep now and then (every ten leases), for records a race
	// left behind: written by a node as it died, after the sweeps its
	// death started.
	sweepEvery := 40
	for tick := 0; ; tick++ {
		renewed := c.renew()
		switch {
		case !renewed && !fenced && c.isFenced():
			fenced = true
			c.log.Warn("cluster: lease lapsed; closing the connections of persistent sessions")
			c.fence()
		case renewed && fenced:
			fenced = false
			unchecked = true
			c.log.Info("cluster: lease renewed; checking the client identifiers held here")
		}
		if renewed && !fenced {
			// Until every check went through (the buckets may still be
			// electing leaders); and identifiers held unclaimed (the
			// cluster was unavailable at their CONNECT) are claimed.
			unchecked = !c.reconcile(unchecked)
		}
		if renewed {
			live, err := c.liveNodes()
			if err == nil {
				gone := known == nil || tick%sweepEvery == 0
				for n := range known {
					switch {
					case live[n]:
					case c.confirmAlive(n):
						live[n] = true
					default:
						gone = true
						c.log.Info("cluster: a node's lease expired", "dead", n)
					}
				}
				known = live
				if gone {
					c.sweep(live)
				}
			}
		}
		select {
		case <-t.C:
		case <-c.ctx.Done():
			return
		}
	}
}

// fence closes the connections of the persistent sessions this node
// holds: another node may take them over once the lease is gone.
func (c *Cluster) fence() {
	c.mu.Lock()
	var ids []string
	for id, h := range c.held {
		if h.persistent {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	for _, id := range ids {
		ctx, cancel := c.requestCtx()
		if err := c.node.Kick(ctx, id, false); err != nil {
			c.log.Warn("cluster: closing a connection", "client", id, "error", err)
		}
		cancel()
	}
}

// reconcile checks the identifiers connections here hold against the
// records (all of them, or only those never claimed): one another node
// claimed meanwhile is closed here; one no record names, or never
// claimed, is claimed now. It reports whether every check went through.
func (c *Cluster) reconcile(all bool) bool {
	c.mu.Lock()
	var ids []string
	for id, h := range c.held {
		if all || !h.claimed {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	done := true
	for _, id := range ids {
		if !c.reconcileOne(id) {
			done = false
		}
	}
	return done
}

// reconcileOne checks the identifier id, held here; see reconcile.
func (c *Cluster) reconcileOne(id string) bool {
	c.mu.Lock()
	h := c.held[id]
	var username string
	claimed := false
	if h != nil {
		username, claimed = h.username, h.claimed
	}
	c.mu.Unlock()
	if h == nil {
		return true // released meanwhile
	}
	ctx, cancel := c.requestCtx()
	defer cancel()
	key := levelToken(id)
	rec, rev, err := kvGet(ctx, c.sessions, key)
	switch {
	case err != nil:
		return false
	case rec != nil && rec.Node != c.self:
		// Another node's connection holds it: the one here goes.
		c.log.Info("cluster: another node claimed a client identifier held here; closing its connection", "client", id, "node", rec.Node)
		if err := c.node.Kick(ctx, id, false); err != nil {
			c.log.Warn("cluster: closing a connection", "client", id, "error", err)
			return false
		}
		return true
	case rec != nil && claimed:
		return true // ours
	}
	// Lost (a node that took this one for dead ended it) or never
	// claimed: claim it for the connection here. A session the record
	// kept ended when that connection, a clean one, took the identifier.
	n := &record{Node: c.self, Online: true, Claim: c.claims.Add(1), Username: username}
	if rec != nil {
		n.Gen = rec.Gen + 1
	}
	nrev, err := kvPut(ctx, c.sessions, key, n, rev)
	if err != nil {
		return false // a conflict: checked again at the next lease
	}
	c.mu.Lock()
	h2 := c.held[id]
	if h2 == h {
		h.claimed = true
	}
	c.mu.Unlock()
	if h2 != h {
		// The connection ended (or another took its place) meanwhile,
		// without a claim to release: the record goes.
		if err := kvDelete(ctx, c.sessions, key, nrev); err != nil && !errors.Is(err, errConflict) {
			return false
		}
	}
	return true
}

// sweep adopts the session records of nodes that hold no lease.
func (c *Cluster) sweep(live map[string]bool) {
	ctx, cancel := context.WithTimeout(c.ctx, 4*c.cfg.RequestTimeout+c.cfg.LeaseTTL)
	defer cancel()
	w, err := c.sessions.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		c.log.Debug("cluster: reading the session records", "error", err)
		return
	}
	defer w.Stop()
	type orphan struct {
		key string
		rev uint64
	}
	var orphans []orphan
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return
		}
		if e == nil {
			break
		}
		var r record
		if json.Unmarshal(e.Value(), &r) != nil {
			continue
		}
		if r.Node == c.self {
			if r.Adopted {
				c.scheduleAdopted(e.Key(), &r)
			}
			continue
		}
		if !live[r.Node] {
			orphans = append(orphans, orphan{e.Key(), e.Revision()})
		}
	}
	for _, o := range orphans {
		c.adopt(o.key, live)
	}
}

// adopt takes over the record at key from a dead node: the will of a
// client that was connected goes out (now, or after its delay), and this
// node runs the session's expiry.
func (c *Cluster) adopt(key string, live map[string]bool) {
	ctx, cancel := c.requestCtx()
	defer cancel()
	rec, rev, err := kvGet(ctx, c.sessions, key)
	if err != nil || rec == nil || rec.Node == c.self || live[rec.Node] || c.confirmAlive(rec.Node) {
		return
	}
	id, err := tokenTopic(key) // a single token: the identifier itself
	if err != nil {
		return
	}
	n := *rec
	n.Node, n.Adopted = c.self, true
	now := time.Now()
	var will *record
	if rec.Online {
		// The connection ended when its node did.
		n.Online = false
		if n.Session != nil {
			n.Session.LastSeen = now
			n.Gen++
		}
		if rec.Will != nil {
			delay := time.Duration(rec.Will.Delay) * time.Second
			if n.Session == nil || delay == 0 {
				will, n.Will = rec, nil
			} else {
				w := *rec.Will
				w.PublishAt = now.Add(delay)
				n.Will = &w
			}
		}
	}
	if n.Session == nil && n.Will == nil {
		// Nothing outlives the connection: the record goes.
		if err := kvDelete(ctx, c.sessions, key, rev); err != nil {
			return
		}
	} else if _, err := kvPut(ctx, c.sessions, key, &n, rev); err != nil {
		return
	}
	c.log.Info("cluster: took over a client identifier from a node that died", "client", id, "dead", rec.Node)
	if will != nil {
		c.publishWill(ctx, id, will)
	}
	if n.Session != nil || n.Will != nil {
		c.scheduleAdopted(key, &n)
	}
}

// scheduleAdopted arms the timer of an adopted record: its will's delay
// or its session's expiry, whichever comes first.
func (c *Cluster) scheduleAdopted(key string, r *record) {
	at := r.expiresAt()
	if r.Will != nil && (at.IsZero() || r.Will.PublishAt.Before(at)) {
		at = r.Will.PublishAt
	}
	if at.IsZero() && r.Session != nil {
		return // never expires, no will
	}
	id, err := tokenTopic(key)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopAdopted(id)
	c.adopted[id] = time.AfterFunc(time.Until(at), func() { c.adoptedDue(key) })
}

// stopAdopted forgets the timer of an adopted record; c.mu is held.
func (c *Cluster) stopAdopted(id string) {
	if t, ok := c.adopted[id]; ok {
		t.Stop()
		delete(c.adopted, id)
	}
}

// adoptedDue publishes the will of an adopted record that is due, and
// ends the session once it expired.
func (c *Cluster) adoptedDue(key string) {
	c.goSafe(func() { c.adoptedNow(key) })
}

func (c *Cluster) adoptedNow(key string) {
	ctx, cancel := c.requestCtx()
	defer cancel()
	rec, rev, err := kvGet(ctx, c.sessions, key)
	if err != nil {
		// Try again later.
		time.AfterFunc(c.cfg.LeaseTTL, func() { c.adoptedDue(key) })
		return
	}
	if rec == nil || rec.Node != c.self || !rec.Adopted || rec.Online {
		return
	}
	id, _ := tokenTopic(key)
	now := time.Now()
	n := *rec
	var will *record
	if rec.Will != nil && !rec.Will.PublishAt.After(now) {
		will, n.Will = rec, nil
	}
	expired := rec.Session == nil || !rec.expiresAt().IsZero() && !rec.expiresAt().After(now)
	if expired && rec.Will != nil && will == nil {
		// [v5 MQTT-3.1.2-8] the session ends first: the will goes now.
		will, n.Will = rec, nil
	}
	if expired {
		err = kvDelete(ctx, c.sessions, key, rev)
	} else {
		_, err = kvPut(ctx, c.sessions, key, &n, rev)
	}
	if err != nil {
		if !errors.Is(err, errConflict) {
			time.AfterFunc(c.cfg.LeaseTTL, func() { c.adoptedDue(key) })
		}
		return
	}
	if will != nil {
		c.publishWill(ctx, id, will)
	}
	if !expired {
		c.scheduleAdopted(key, &n)
	}
}

// publishWill publishes the will of r's client from this node.
func (c *Cluster) publishWill(ctx context.Context, id string, r *record) {
	w := r.Will.Msg
	m := &tern.ClusterMessage{
		Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain,
		HasFormat: w.HasFormat, Format: w.Format, Props: w.Props, Expires: w.Expires,
	}
	if err := c.node.Publish(ctx, tern.Client{ID: id, Username: r.Username}, m); err != nil {
		c.log.Warn("cluster: publishing the will of a client whose node died", "client", id, "error", err)
	}
}
