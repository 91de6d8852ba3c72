package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ternmq/tern"
)

// Cluster is a tern.Cluster on NATS JetStream. Create it with New and
// give it to tern.New in Options.Cluster; the broker starts and stops it.
type Cluster struct {
	cfg     Config
	log     *slog.Logger
	self    string // this node in the cluster: name and incarnation
	origin  uint64 // the incarnation, in message identities
	seq     atomic.Uint64
	claims  atomic.Uint64 // record.Claim
	started time.Time

	pre0, pre1 string // subject prefixes: "tern.m0.", "tern.m1."
	streamName string

	node     *tern.ClusterNode
	srv      *server.Server // the embedded server, nil without
	nc       *nats.Conn     // NoEcho: publishes, ordinary subscriptions, JetStream
	ncShared *nats.Conn     // shared subscriptions and the kick requests
	js       jetstream.JetStream
	sessions jetstream.KeyValue
	retained jetstream.KeyValue
	nodes    jetstream.KeyValue

	buffers sync.Pool // envelope buffers
	seen    dedupe

	subsMu  sync.Mutex
	subs    map[interestKey][]*nats.Subscription
	stopped bool // guarded by subsMu and mu

	mu   sync.Mutex
	held map[string]*holding   // identifiers connections here hold
	gens map[string]generation // sessions the broker here has, by generation
	// epoch counts the times this node may have missed messages (its
	// NATS connection dropped or came back, its lease could not be
	// renewed or was again): an offline session the broker kept through
	// one is replayed anyway.
	epoch       uint64
	renewFailed bool                   // the last renewal of the lease failed
	adopted     map[string]*time.Timer // timers of adopted records
	leaseSent   time.Time              // when the last renewed lease was sent

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ tern.Cluster = (*Cluster)(nil)

// New returns a cluster node configured by cfg; it fails, naming the
// field, if cfg is invalid. Nothing connects before the broker starts it.
func New(cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	origin := rand.Uint64()
	self := fmt.Sprintf("%s-%08x", cfg.Name, uint32(origin))
	c := &Cluster{
		cfg:        cfg,
		log:        cfg.Logger.With("node", self),
		self:       self,
		origin:     origin,
		pre0:       cfg.Prefix + ".m0.",
		pre1:       cfg.Prefix + ".m1.",
		streamName: cfg.Prefix + "-messages",
		subs:       make(map[interestKey][]*nats.Subscription),
		held:       make(map[string]*holding),
		gens:       make(map[string]generation),
		adopted:    make(map[string]*time.Timer),
	}
	c.buffers.New = func() any { b := make([]byte, 0, 512); return &b }
	return c, nil
}

// Node is this node's identity in the cluster: its name and incarnation.
func (c *Cluster) Node() string { return c.self }

// Start implements tern.Cluster: it starts the embedded NATS server, if
// any, connects, creates the stream and buckets the first time, loads the
// retained messages, and takes this node's lease.
func (c *Cluster) Start(ctx context.Context, node *tern.ClusterNode) (err error) {
	c.node = node
	c.started = time.Now()
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()
	defer func() {
		if err != nil {
			c.shutdown()
		}
	}()
	if c.cfg.Embedded != nil {
		if c.srv, err = startEmbedded(ctx, c.cfg.Name, c.cfg.Embedded, c.cfg.Logger); err != nil {
			return err
		}
	}
	if c.nc, err = c.connect("publish", true); err != nil {
		return err
	}
	if c.ncShared, err = c.connect("shared", false); err != nil {
		return err
	}
	c.js, err = jetstream.New(c.nc, jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
		c.log.Warn("cluster: storing a retained message", "subject", m.Subject, "error", err)
	}))
	if err != nil {
		return err
	}
	if _, err := c.ncShared.Subscribe(c.kickSubject(c.self), c.onKick); err != nil {
		return fmt.Errorf("nats: subscribing to kick requests: %w", err)
	}
	if err := c.ncShared.Flush(); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	if err := c.setup(ctx); err != nil {
		return err
	}
	c.wg.Go(c.leaseLoop)
	c.log.Info("cluster: joined", "replicas", c.cfg.Replicas)
	return nil
}

// connect opens a NATS connection; noEcho keeps this node's publishes
// from coming back to its own subscriptions.
func (c *Cluster) connect(role string, noEcho bool) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("tern " + c.self + " " + role),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.PingInterval(c.cfg.LeaseTTL / 4),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.disrupted()
			if err != nil {
				c.log.Warn("cluster: disconnected from NATS", "connection", role, "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			// A save begun while disconnected goes out now: the copy
			// it saved missed messages too.
			c.disrupted()
			c.log.Info("cluster: reconnected to NATS", "connection", role, "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			c.log.Warn("cluster: NATS", "connection", role, "error", err)
		}),
	}
	if noEcho {
		opts = append(opts, nats.NoEcho())
	}
	url := ""
	if c.srv != nil {
		opts = append(opts, nats.InProcessServer(c.srv))
	} else {
		for i, u := range c.cfg.URLs {
			if i > 0 {
				url += ","
			}
			url += u
		}
		if c.cfg.CredentialsFile != "" {
			opts = append(opts, nats.UserCredentials(c.cfg.CredentialsFile))
		}
		if c.cfg.Username != "" {
			opts = append(opts, nats.UserInfo(c.cfg.Username, c.cfg.Password))
		}
		if c.cfg.Token != "" {
			opts = append(opts, nats.Token(c.cfg.Token))
		}
		if c.cfg.TLS != nil {
			opts = append(opts, nats.Secure(c.cfg.TLS))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connecting: %w", err)
	}
	return nc, nil
}

// setup binds (and the first time, creates) the stream and the buckets,
// takes the lease and loads the retained messages. JetStream may need a
// while to elect its leaders (all the nodes starting at once, say), so it
// tries again until ctx ends.
func (c *Cluster) setup(ctx context.Context) error {
	var last error
	for {
		last = c.bind(ctx)
		if last == nil && !c.renew() {
			last = errors.New("taking the node's lease")
		}
		if last == nil {
			last = c.loadRetained(ctx)
		}
		if last == nil {
			return nil
		}
		c.log.Debug("cluster: JetStream not ready", "error", last)
		if err := wait(ctx, 500*time.Millisecond); err != nil {
			return fmt.Errorf("nats: JetStream not ready: %w", last)
		}
	}
}

func (c *Cluster) bind(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if _, err := c.js.Stream(rctx, c.streamName); errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := c.js.CreateStream(rctx, c.streamConfig()); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("creating stream %s: %w", c.streamName, err)
		}
	} else if err != nil {
		return fmt.Errorf("stream %s: %w", c.streamName, err)
	}
	for _, b := range []struct {
		kv  *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
		// fromLeader: reads go to the bucket's leader, not to any
		// replica (see leaderReads).
		fromLeader bool
	}{
		{&c.sessions, c.sessionsConfig(), true},
		{&c.retained, c.retainedConfig(), false},
		{&c.nodes, c.nodesConfig(), true},
	} {
		kv, err := c.js.KeyValue(rctx, b.cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = c.js.CreateKeyValue(rctx, b.cfg)
			if errors.Is(err, jetstream.ErrBucketExists) {
				kv, err = c.js.KeyValue(rctx, b.cfg.Bucket)
			}
		}
		if err == nil && b.fromLeader {
			kv, err = c.leaderReads(rctx, b.cfg.Bucket)
		}
		if err != nil {
			return fmt.Errorf("bucket %s: %w", b.cfg.Bucket, err)
		}
		*b.kv = kv
	}
	return nil
}

// leaderReads turns off direct gets on a bucket's stream and binds the
// bucket again. A direct get may be answered by any replica, one that has
// not applied the latest write yet: a node would then act on a record
// older than its own last compare-and-set (a session it holds read as
// held by none), or, cut off from the quorum, on its local replica. A
// read from the leader sees every write acknowledged before it, and
// fails without a quorum.
func (c *Cluster) leaderReads(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	st, err := c.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, err
	}
	if cfg := st.CachedInfo().Config; cfg.AllowDirect {
		cfg.AllowDirect = false
		if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("turning direct gets off: %w", err)
		}
	}
	return c.js.KeyValue(ctx, bucket)
}

// wait sleeps for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop implements tern.Cluster: it gives up the lease (the other nodes
// take over the offline sessions' expiry at once), closes the connections
// and stops the embedded server.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.nodes != nil {
		dctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		if err := c.nodes.Delete(dctx, c.self); err != nil {
			c.log.Debug("cluster: giving up the lease", "error", err)
		}
		cancel()
	}
	c.shutdown()
	c.log.Info("cluster: left")
	return nil
}

// shutdown stops everything Start started.
func (c *Cluster) shutdown() {
	c.subsMu.Lock()
	c.stopped = true
	c.subsMu.Unlock()
	c.mu.Lock()
	c.stopped = true
	for id, t := range c.adopted {
		t.Stop()
		delete(c.adopted, id)
	}
	c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
	for _, nc := range []*nats.Conn{c.nc, c.ncShared} {
		if nc != nil {
			nc.Close()
		}
	}
	c.wg.Wait()
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
	}
}

// disrupted records that this node may have missed messages.
func (c *Cluster) disrupted() {
	c.mu.Lock()
	c.epoch++
	c.mu.Unlock()
}

// goSafe runs f on a goroutine Stop waits for, unless Stop began.
func (c *Cluster) goSafe(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.wg.Go(f)
	return true
}
