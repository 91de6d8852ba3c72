package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ternmq/tern"
)

// Client identifiers and sessions.
//
// The bucket PREFIX-sessions holds one record per client identifier (see
// record). A node claims an identifier by writing itself into the record
// with a compare-and-set on the record's revision; two nodes racing for
// one identifier cannot both succeed, and the loser reads the record
// again. A node that finds another node in the record asks it first, on
// PREFIX.node.NODE.kick, to close its connection: that node's broker ends
// the connection, which saves the session into the record (Release), and
// answers; the claim then reads the session it saved. A node that does
// not answer is either dead (its lease is gone: the claim goes on) or cut
// off (its lease is still there: the claim fails as unavailable until the
// lease expires, so that two nodes never both hold one identifier).

// holding is a client identifier a connection on this node holds.
type holding struct {
	// claimed: the cluster's record names this node; false for a clean
	// session that went on while the cluster was unavailable.
	claimed bool
	// persistent: the session is saved in the cluster.
	persistent bool
	// username is the identity of the connection.
	username string
	// catchUp is the stream read still owed to a session resumed here
	// (done at its first save, once its subscriptions are in place).
	catchUp *catchUp
}

// Claim implements tern.Cluster.
func (c *Cluster) Claim(ctx context.Context, cl *tern.ClusterClaim) (*tern.ClusterSession, error) {
	cs, err := c.claim(ctx, cl)
	if err != nil && cl.Clean && errors.Is(err, tern.ErrClusterUnavailable) {
		// The broker lets the clean session go on here alone; once the
		// cluster is back, this node claims the identifier for it.
		c.mu.Lock()
		if _, ok := c.held[cl.ClientID]; !ok {
			c.held[cl.ClientID] = &holding{username: cl.Username}
		}
		c.mu.Unlock()
	}
	return cs, err
}

func (c *Cluster) claim(ctx context.Context, cl *tern.ClusterClaim) (*tern.ClusterSession, error) {
	if c.isFenced() {
		return nil, unavailable(errFenced)
	}
	key := levelToken(cl.ClientID)
	// The claim asked to close; a record that still names it (the
	// connection released, or an offline session forgotten there) is
	// taken over, but not one that names a later claim on that node.
	var kicked struct {
		node  string
		claim uint64
	}
	for range 16 {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		rec, rev, err := kvGet(rctx, c.sessions, key)
		cancel()
		if err != nil {
			return nil, unavailable(err)
		}
		if rec != nil && rec.Username != cl.Username && (rec.Online || rec.Session != nil) {
			// The session (or connection) belongs to another identity.
			if err := cl.Allow(ctx, rec.Username); err != nil {
				return nil, err
			}
		}
		if rec != nil && rec.Node != c.self && (rec.Node != kicked.node || rec.Claim != kicked.claim) {
			if err := c.kickRemote(ctx, rec.Node, cl.ClientID, cl.Clean); err != nil {
				return nil, unavailable(err)
			}
			kicked.node, kicked.claim = rec.Node, rec.Claim
			continue // read what it saved
		}
		n := &record{Node: c.self, Online: true, Claim: c.claims.Add(1), Username: cl.Username, Will: cl.Will}
		keep := rec != nil && rec.Session != nil && !cl.Clean
		// The broker here keeps its own copy of the session only if it
		// is the record's, saved here, and this node got every message
		// since: not if it was cut off meanwhile (see Cluster.epoch).
		c.mu.Lock()
		localGen, local := c.gens[cl.ClientID]
		epoch := c.epoch
		c.mu.Unlock()
		trusted := keep && local && localGen.epoch == epoch && rec.Node == c.self && localGen.gen == rec.Gen
		var discarded *record
		if rec != nil {
			n.Gen = rec.Gen
			if keep {
				n.Session, n.Username = rec.Session, rec.Username
				if !trusted {
					// A new generation: a copy the broker here has is
					// not current (tern.ClusterSession.Revision); the
					// session is replayed.
					n.Gen++
				}
			} else if rec.Session != nil {
				// Clean Start: the session ends here.
				n.Gen++
				if !rec.Online && rec.Will != nil {
					discarded = rec
				}
			}
		}
		var cs *tern.ClusterSession
		var cu *catchUp
		if keep {
			cs = rec.clusterSession(cl.ClientID)
			cs.Revision = n.Gen
			if !trusted {
				// What the session missed, read before the claim: a
				// claim that cannot have it is refused (the client
				// tries again) rather than resumed without it.
				if cs.Pending, cu, err = c.replay(ctx, cs); err != nil {
					return nil, unavailable(fmt.Errorf("client %q: %w", cl.ClientID, err))
				}
			}
		}
		wctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		_, err = kvPut(wctx, c.sessions, key, n, rev)
		cancel()
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return nil, unavailable(err)
		}
		c.mu.Lock()
		if trusted && c.epoch != epoch {
			// Cut off while claiming: claim again, with a replay.
			c.mu.Unlock()
			continue
		}
		h := &holding{claimed: true, persistent: keep, username: cl.Username, catchUp: cu}
		c.held[cl.ClientID] = h
		if keep {
			c.gens[cl.ClientID] = generation{n.Gen, epoch}
		} else {
			delete(c.gens, cl.ClientID)
		}
		c.stopAdopted(cl.ClientID)
		c.mu.Unlock()
		if discarded != nil {
			// [v5 MQTT-3.1.2-8] the session ended before its will's
			// delay: the will goes now.
			c.publishWill(ctx, cl.ClientID, discarded)
		}
		// cs is nil without a session to resume; a trusted one comes
		// without Pending: the broker here keeps its own state (queue,
		// messages in flight).
		return cs, nil
	}
	return nil, unavailable(fmt.Errorf("client %q: claimed by other nodes too often", cl.ClientID))
}

// Save implements tern.Cluster.
func (c *Cluster) Save(ctx context.Context, s *tern.ClusterSession) error {
	return c.store(ctx, s, false)
}

// Release implements tern.Cluster.
func (c *Cluster) Release(ctx context.Context, clientID string, s *tern.ClusterSession) error {
	c.mu.Lock()
	h := c.held[clientID]
	delete(c.held, clientID)
	if s == nil {
		delete(c.gens, clientID) // the session ended
	}
	c.mu.Unlock()
	if h != nil && !h.claimed {
		return nil // never claimed: the cluster was unavailable
	}
	if s != nil {
		return c.store(ctx, s, true)
	}
	key := levelToken(clientID)
	for range 8 {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		rec, rev, err := kvGet(rctx, c.sessions, key)
		if err == nil && (rec == nil || rec.Node != c.self) {
			cancel()
			return nil // claimed by another node meanwhile
		}
		if err == nil {
			err = kvDelete(rctx, c.sessions, key, rev)
		}
		cancel()
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return unavailable(err)
		}
		return nil
	}
	return unavailable(fmt.Errorf("client %q: record changing too often", clientID))
}

// store saves the persistent session s, which this node holds; offline
// marks its connection gone (Release).
func (c *Cluster) store(ctx context.Context, s *tern.ClusterSession, offline bool) error {
	key := levelToken(s.ClientID)
	// The broker's copy is current as of the epoch before the calls to
	// NATS: one buffered through a reconnection still succeeds, though
	// the node may have missed messages meanwhile.
	c.mu.Lock()
	epoch := c.epoch
	c.mu.Unlock()
	for range 8 {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		rec, rev, err := kvGet(rctx, c.sessions, key)
		if err != nil {
			cancel()
			return unavailable(err)
		}
		if rec == nil || rec.Node != c.self {
			cancel()
			if offline {
				return nil // claimed by another node meanwhile, or ended
			}
			return fmt.Errorf("client %q: %w", s.ClientID, errNotHeld)
		}
		n := *rec
		n.Session = stateOf(s)
		n.Username = s.Username
		n.Will = s.Will
		n.Adopted = false
		n.Gen++
		if offline {
			n.Online = false
		}
		_, err = kvPut(rctx, c.sessions, key, &n, rev)
		cancel()
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return unavailable(err)
		}
		s.Revision = n.Gen
		var cu *catchUp
		c.mu.Lock()
		if h := c.held[s.ClientID]; h != nil {
			h.persistent = true
			cu, h.catchUp = h.catchUp, nil
		}
		c.gens[s.ClientID] = generation{n.Gen, epoch}
		c.mu.Unlock()
		if cu != nil && !offline && !c.catchUp(ctx, s.ClientID, cu) {
			// Read again at the next save (some messages may then
			// come twice).
			c.mu.Lock()
			if h := c.held[s.ClientID]; h != nil && h.catchUp == nil {
				h.catchUp = cu
			}
			c.mu.Unlock()
		}
		return nil
	}
	return unavailable(fmt.Errorf("client %q: record changing too often", s.ClientID))
}

// generation is the version of a session the broker here has: the
// record's Gen, and the node's epoch then (see Cluster.epoch).
type generation struct{ gen, epoch uint64 }

// errNotHeld refuses to save a session another node holds now.
var errNotHeld = errors.New("the client identifier is held by another node")

// errFenced refuses claims while this node's lease has lapsed.
var errFenced = errors.New("this node lost its lease in the cluster")

// unavailable wraps err as tern.ErrClusterUnavailable.
func unavailable(err error) error {
	if errors.Is(err, tern.ErrClusterUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", tern.ErrClusterUnavailable, err)
}

// kickRequest asks a node to close its connection for a client
// identifier.
type kickRequest struct {
	ClientID string `json:"id"`
	Clean    bool   `json:"clean"`
}

// kickRemote asks node to close its connection for id and waits until it
// has (and saved the session). A node that is gone is no obstacle; one
// that does not answer while its lease lasts is.
func (c *Cluster) kickRemote(ctx context.Context, node, id string, clean bool) error {
	data, _ := json.Marshal(kickRequest{id, clean})
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	reply, err := c.nc.RequestWithContext(rctx, c.kickSubject(node), data)
	if err == nil {
		if len(reply.Data) > 0 {
			return fmt.Errorf("node %s closing client %q: %s", node, id, reply.Data)
		}
		return nil
	}
	if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		return fmt.Errorf("asking node %s to close client %q: %w", node, id, err)
	}
	alive, lerr := c.nodeAlive(ctx, node)
	if lerr != nil {
		return lerr
	}
	if alive {
		return fmt.Errorf("node %s holds client %q and does not answer (%w); it keeps it until its lease of %s expires", node, id, err, c.cfg.LeaseTTL)
	}
	return nil
}

// kickSubject is where node takes requests to close connections.
func (c *Cluster) kickSubject(node string) string {
	return c.cfg.Prefix + ".node." + node + ".kick"
}

// onKick closes this node's connection for a client identifier another
// node claims; the reply is empty once it is closed, or says why not.
func (c *Cluster) onKick(msg *nats.Msg) {
	var req kickRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		c.respond(msg, []byte("bad request"))
		return
	}
	c.goSafe(func() {
		c.mu.Lock()
		// The broker's copy goes: the next claim here replays.
		delete(c.gens, req.ClientID)
		c.stopAdopted(req.ClientID)
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
		defer cancel()
		var reply []byte
		if err := c.node.Kick(ctx, req.ClientID, req.Clean); err != nil {
			reply = []byte(err.Error())
		}
		c.respond(msg, reply)
	})
}

func (c *Cluster) respond(msg *nats.Msg, data []byte) {
	if err := msg.Respond(data); err != nil {
		c.log.Debug("cluster: answering a request", "error", err)
	}
}

// sessionsConfig is the sessions bucket's configuration.
func (c *Cluster) sessionsConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      c.cfg.Prefix + "-sessions",
		Description: "Tern: client identifiers (which node holds each) and persistent sessions",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
	}
}

// requestCtx bounds one call to NATS.
func (c *Cluster) requestCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
}

// sinceFloor is the earliest stream time a session resumed from since
// needs, given the nodes' clock skew.
func (c *Cluster) sinceFloor(since int64) time.Time {
	return time.Unix(0, since).Add(-c.cfg.ClockSkew)
}
