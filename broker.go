// Package tern is an MQTT broker as a Go library, for MQTT 5.0 and 3.1.1
// (and 3.1) clients at once: each connection speaks the level its CONNECT
// asks for, and messages flow between levels (an MQTT 5 message's
// properties reach MQTT 5 subscribers only).
//
// Create a Broker with New, give it listeners with Serve (any net.Listener:
// see package listeners for TCP, TLS, WebSocket, unix sockets and an
// in-memory listener), talk to it from code with Publish and Subscribe, and
// stop it with Close. Authentication, authorization and observation are
// small interfaces added with AddHook (see hooks.go).
package tern

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/topics"
)

// Version is the broker's version, published on $SYS/broker/version.
const Version = "tern 0.1.0"

// ErrClosed is returned by Serve, Publish and Subscribe after Close.
var ErrClosed = errors.New("tern: broker closed")

// Broker is an MQTT server. Create it with New; it is safe for
// concurrent use.
type Broker struct {
	opts Options
	log  *slog.Logger

	subs     *topics.Index[subscriber]
	shares   map[string]*shareGroup // shared subscriptions by "$share/NAME/FILTER"
	sharesMu sync.Mutex
	retained *topics.Retained[*session.Message]
	hooks    hookSet
	stats    counters
	persist  *persister // nil without Options.Store
	cluster  Cluster    // nil without Options.Cluster
	ids      clusterIDs // with a Cluster: claims and releases per client identifier
	interest map[interestKey]int
	intMu    sync.Mutex // guards interest
	started  time.Time

	mu        sync.Mutex
	sessions  map[string]*sess // by client id
	conns     []*conn          // the network connections; conn.connIndex is each one's place
	listeners map[net.Listener]struct{}
	closed    bool
	idSeq     uint64

	nconns       atomic.Int64 // live network connections (for MaxConnections)
	internalSubs atomic.Int64 // Broker.Subscribe subscriptions
	clientSubs   atomic.Int64 // clients' subscriptions
	sysRetained  atomic.Int64 // retained $SYS topics

	acceptLoggedAt atomic.Int64 // unix nanoseconds of the last accept-error log

	poll     *poller // parks idle connections; started at the first park
	pollOnce sync.Once
	mem      *memReleaser // nil without Options.ReleaseMemoryAfter

	wg        sync.WaitGroup // every goroutine the broker started
	closing   chan struct{}
	ctx       context.Context // given to hooks; cancelled by Close
	cancel    context.CancelFunc
	readers   readers // goroutines that run connection readers
	closeOnce sync.Once
}

// New returns a broker configured by opts. It fails, naming the field, if
// an option is invalid.
func New(opts Options) (*Broker, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Broker{
		opts:      o,
		log:       o.Logger,
		subs:      topics.NewIndex[subscriber](),
		shares:    make(map[string]*shareGroup),
		retained:  topics.NewRetained[*session.Message](),
		started:   time.Now(),
		sessions:  make(map[string]*sess),
		listeners: make(map[net.Listener]struct{}),
		closing:   make(chan struct{}),
		readers:   readers{work: make(chan readerTask)},
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mem = newMemReleaser(b, o.ReleaseMemoryAfter)
	if o.Store != nil {
		if err := b.restore(b.ctx); err != nil {
			b.cancel()
			return nil, err
		}
		b.persist = newPersister(o.Store, b)
		b.startTimers()
	}
	if o.Cluster != nil {
		b.cluster = o.Cluster
		b.interest = make(map[interestKey]int)
		if err := b.cluster.Start(b.ctx, &ClusterNode{b: b}); err != nil {
			b.cancel()
			return nil, fmt.Errorf("tern: joining the cluster: %w", err)
		}
		b.wg.Add(1)
		go b.clusterSaveLoop(clusterSaveEvery)
	}
	if o.SysInterval > 0 {
		b.wg.Add(1)
		go b.sysLoop(o.SysInterval)
	}
	return b, nil
}

// Serve accepts connections on l and serves each until it ends, like
// http.Server.Serve. It blocks until l fails or the broker is closed, and
// then returns ErrClosed after Close or the listener's error otherwise.
// Serve may be called for several listeners at once. Close closes l.
//
// Load never stops Serve. An Accept that fails for lack of resources (out
// of file descriptors, buffers or memory), for a connection that failed
// before it was accepted, or with a timeout is retried after a pause, as
// http.Server does (5 ms, doubling up to 1 s), counted in
// Stats.AcceptErrors and logged at most once a second. On Unix, Serve keeps
// one file descriptor in reserve: when the process runs out of descriptors,
// it gives the reserve up to accept the connections waiting on l (a
// *net.TCPListener or *net.UnixListener) and close them at once, counted in
// Stats.Refused, so their clients see a clean close instead of hanging.
// Options.MaxConnections, derived from the descriptor limit by default,
// refuses the excess with CONNACK 0x03 before that point.
func (b *Broker) Serve(l net.Listener) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	b.listeners[l] = struct{}{}
	b.mu.Unlock()
	b.log.Info("serving MQTT", "network", l.Addr().Network(), "addr", l.Addr().String())
	reserve := newFDReserve()
	defer func() {
		reserve.close()
		b.mu.Lock()
		delete(b.listeners, l)
		b.mu.Unlock()
	}()
	accept, acceptDone := b.accepter(l)
	defer acceptDone()
	var delay time.Duration
	for {
		nc, err := accept()
		if err != nil {
			if b.isClosed() {
				return ErrClosed
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("tern: accept: %w", err)
			}
			b.stats.acceptErrors.Add(1)
			refused := reserve.shed(l, err)
			b.stats.refuse(RefusedFDLimit, refused)
			delay = nextAcceptDelay(delay)
			b.logAcceptError(err, delay, refused)
			select {
			case <-time.After(delay):
			case <-b.closing:
				return ErrClosed
			}
			continue
		}
		delay = 0
		if !b.startConn(nc) {
			nc.Close()
			return ErrClosed
		}
	}
}

// Serving reports whether the broker is running: true from New until Close.
// It suits a health check (see listeners.HTTPHandler).
func (b *Broker) Serving() bool { return !b.isClosed() }

func (b *Broker) isClosed() bool {
	select {
	case <-b.closing:
		return true
	default:
		return false
	}
}

// startConn registers nc and starts its reader goroutine. It reports false
// if the broker is closed.
func (b *Broker) startConn(nc net.Conn) bool {
	c := newConn(b, nc)
	if c.fd() != nil {
		if err := b.poll.register(c, int(c.fd().fd)); err != nil {
			b.log.Debug("connection dropped: the poller cannot watch it", "remote", nc.RemoteAddr().String(), "error", err)
			b.releasePoll(c)
			nc.Close()
			return !b.isClosed()
		}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	c.connIndex = int32(len(b.conns))
	b.conns = append(b.conns, c)
	b.wg.Add(1)
	b.mu.Unlock()
	b.stats.opened.Add(1)
	b.mem.touch(1)
	b.runReader(c, false)
	return true
}

func (b *Broker) forgetConn(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := c.connIndex
	if i < 0 {
		return
	}
	last := len(b.conns) - 1
	b.conns[i] = b.conns[last]
	b.conns[i].connIndex = i
	b.conns[last] = nil
	b.conns = b.conns[:last]
	c.connIndex = -1
	if cap(b.conns) > 1024 && len(b.conns) < cap(b.conns)/4 {
		// The burst of connections has gone: do not keep its room.
		b.conns = append([]*conn(nil), b.conns...)
	}
}

// Close stops the broker: it closes every listener given to Serve and every
// connection, stops every goroutine the broker started and waits for them,
// or until ctx is done (then it returns ctx's error). The wills of clients
// still connected are published, as Mosquitto does when it shuts down (their
// connections end without DISCONNECT), so persistent subscribers and the
// retained store see them. Close is safe to call more than once.
func (b *Broker) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		b.cancel() // hooks waiting on a remote service give up
		b.mu.Lock()
		b.closed = true
		close(b.closing)
		for l := range b.listeners {
			l.Close()
		}
		conns := append([]*conn(nil), b.conns...)
		b.mu.Unlock()
		for _, c := range conns {
			if c.proto.connacked.Load() && c.proto.v5() {
				// Told why first (DISCONNECT 0x8B), within a short
				// deadline; in parallel, so that clients that do not read
				// do not hold Close up one after the other.
				b.wg.Add(1)
				go func() {
					defer b.wg.Done()
					c.shutdown()
				}()
				continue
			}
			c.shutdown()
		}
		if b.persist != nil {
			// Every connection is dead: a writer waiting for a failing
			// store has nothing left to write to.
			b.persist.abandon()
		}
		b.mem.stop()
		// No connection parks after this (and no poller starts); the
		// poller runs on until the connections have ended.
		b.pollOnce.Do(func() {})
		if b.poll != nil {
			b.poll.stopParking()
		}
	})
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		if b.poll != nil {
			b.poll.stop()
		}
		if b.persist != nil {
			b.persist.stop() // write what the ending connections changed
		}
		if b.cluster != nil {
			if err := b.cluster.Stop(ctx); err != nil {
				b.log.Warn("leaving the cluster", "error", err)
			}
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tern: close: %w", ctx.Err())
	}
}

// nextClientID returns a unique identifier for a client that connected with
// an empty one and clean session [MQTT-3.1.3-6].
func (b *Broker) nextClientID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		b.idSeq++
		id := fmt.Sprintf("tern-%x-%d", b.started.UnixNano()&0xffffff, b.idSeq)
		if b.cluster != nil {
			// Unique in the cluster too: the nodes share one namespace.
			id = clusterClientID()
		}
		if _, used := b.sessions[id]; !used {
			return id
		}
	}
}
