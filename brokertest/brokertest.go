// Package brokertest runs a Tern MQTT broker inside a test, as
// net/http/httptest runs an HTTP server: New starts it, the test's cleanup
// stops it, and helpers publish to it and wait for what the code under test
// publishes.
//
//	func TestAlerts(t *testing.T) {
//		srv := brokertest.New(t)              // closed at cleanup
//		svc, err := alerts.Start(srv.Addr())  // real client code, over TCP
//		require.NoError(t, err)
//		t.Cleanup(svc.Close)
//		srv.Publish("sensors/1/temp", "99")
//		srv.Expect(t, "alerts/1", "too hot") // waits, with a deadline
//	}
//
// The broker serves MQTT 3.1.1 and MQTT 5 clients. It listens on a TCP
// loopback port (Addr, URL, ServerURL), because real client code dials a
// network address, and on an in-memory listener (Dial, DialContext) for
// tests that want no network at all; WithoutTCP leaves only the in-memory
// listener. Each client library takes these its own way:
//
//	// Eclipse Paho (MQTT 3.1.1): URL, or Dial through a custom connection.
//	opts.AddBroker(srv.URL())
//	opts.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
//		return srv.Dial()
//	})
//
//	// paho.golang (MQTT 5): any net.Conn.
//	conn, err := net.Dial("tcp", srv.Addr()) // or srv.Dial()
//	c := paho.NewClient(paho.ClientConfig{Conn: conn})
//
//	// autopaho: ServerURL, or DialContext through AttemptConnection.
//	cfg := autopaho.ClientConfig{ServerUrls: []*url.URL{srv.ServerURL()}}
//	cfg.AttemptConnection = func(ctx context.Context, _ autopaho.ClientConfig, _ *url.URL) (net.Conn, error) {
//		return srv.DialContext(ctx)
//	}
//
// From New on, the server records every message published to a topic that
// "#" matches (topics starting with '$' are not recorded), with its MQTT 5
// properties, so Expect, Next and NextFunc see messages published before
// they were called as well as after. Each recorded message satisfies at
// most one Expect, Next, NextFunc or Request. Request sends a request as an
// MQTT 5 requester does (a Response Topic and Correlation Data) and waits
// for the response, for tests of services that answer requests.
//
// At cleanup the server checks that the test cleaned up after itself:
// first that no client is still connected (it waits for disconnections in
// progress), then, after closing the broker, that the goroutines started
// since New have ended. Either failure fails the test, naming the clients
// or showing the goroutines' stacks: a client the test did not disconnect,
// a service it did not stop. Register the code under test's own cleanup
// after New (t.Cleanup runs cleanups last-in first-out) so that it runs
// first.
//
// The helpers fail the test through testify, so their failures read as the
// test's own assertions do: an "Error:" line saying what was missing, and
// "Messages:" with what the server saw instead.
package brokertest

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

// DefaultTimeout is how long Expect, Next, NextFunc and Request wait for a
// message, and how long the cleanup waits for clients to disconnect and for
// goroutines to end, unless WithTimeout says otherwise.
const DefaultTimeout = 5 * time.Second

// DefaultHistory is how many messages the server keeps for Expect, Next and
// Messages unless WithHistory says otherwise; older ones are forgotten.
const DefaultHistory = 10000

// Server is a broker running for one test. Create it with New.
type Server struct {
	// Broker is the running broker, for Subscribe, Stats, Clients,
	// Disconnect and the rest of its API.
	Broker *tern.Broker

	t       testing.TB
	cfg     config
	mem     *listeners.Memory
	tcp     net.Listener
	serving sync.WaitGroup
	served  chan error // one result per Serve call
	rec     *recorder
	close   sync.Once
	reqs    atomic.Uint64 // requests sent, for their Correlation Data
}

// Option configures New.
type Option func(*config)

type config struct {
	opts      tern.Options
	hooks     []any
	tcp       bool
	timeout   time.Duration
	history   int
	leakCheck bool
}

// WithOptions configures the broker. When o.Logger is nil, the broker logs
// warnings and errors (a panicking hook, for example) to the test's output.
func WithOptions(o tern.Options) Option { return func(c *config) { c.opts = o } }

// WithHook adds h to the broker with Broker.AddHook before it serves; hooks
// run in the order given.
func WithHook(h any) Option { return func(c *config) { c.hooks = append(c.hooks, h) } }

// WithoutTCP serves only the in-memory listener: Addr and URL fail the test,
// Dial and DialContext connect.
func WithoutTCP() Option { return func(c *config) { c.tcp = false } }

// WithTimeout sets how long Expect, Next, NextFunc and Request wait for a
// message, and how long the cleanup waits for clients to disconnect and for
// goroutines to end (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithHistory sets how many recorded messages the server keeps (default
// DefaultHistory); when more arrive, the oldest are forgotten.
func WithHistory(n int) Option { return func(c *config) { c.history = n } }

// WithoutLeakCheck turns off the checks at cleanup (no client still
// connected, no goroutine left running), for tests that leave clients or
// goroutines behind on purpose. The goroutine check tells a test's
// goroutines from those of tests running in parallel by who started them;
// one whose starter has ended counts as the test's, which can blame a test
// for a parallel test's leak.
func WithoutLeakCheck() Option { return func(c *config) { c.leakCheck = false } }

// New starts a broker for the test t and stops it when the test ends. It
// fails the test if the broker cannot start.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{tcp: true, timeout: DefaultTimeout, history: DefaultHistory, leakCheck: true}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.timeout <= 0 || cfg.history <= 0 {
		require.FailNow(t, "brokertest: WithTimeout and WithHistory need positive values",
			"got %v and %d", cfg.timeout, cfg.history)
	}
	var before goroutines
	if cfg.leakCheck {
		before = snapshot()
	}
	if cfg.opts.Logger == nil {
		cfg.opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	b, err := tern.New(cfg.opts)
	require.NoError(t, err, "brokertest: starting the broker")
	s := &Server{Broker: b, t: t, cfg: cfg, mem: listeners.NewMemory(), served: make(chan error, 2)}
	t.Cleanup(func() {
		if cfg.leakCheck {
			s.checkClients()
		}
		s.Close()
		if cfg.leakCheck {
			s.checkLeaks(before)
		}
	})
	for _, h := range cfg.hooks {
		require.NoError(t, b.AddHook(h), "brokertest: WithHook(%T)", h)
	}
	s.rec, err = record(b, cfg.history)
	require.NoError(t, err, "brokertest: recording messages")
	if cfg.tcp {
		s.tcp, err = listeners.TCP("127.0.0.1:0")
		require.NoError(t, err, "brokertest: listening on TCP loopback")
		s.serve(s.tcp)
	}
	s.serve(s.mem)
	return s
}

func (s *Server) serve(l net.Listener) {
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		s.served <- s.Broker.Serve(l)
	}()
}

// Addr returns the broker's TCP address, "127.0.0.1:port", for client code
// that dials host:port. It fails the test after WithoutTCP.
func (s *Server) Addr() string {
	s.t.Helper()
	if s.tcp == nil {
		require.FailNow(s.t, "brokertest: Addr: the server has no TCP listener (WithoutTCP)")
		return ""
	}
	return s.tcp.Addr().String()
}

// URL returns "tcp://" + Addr(), the form Eclipse Paho's AddBroker takes
// (autopaho and MQTT.js take it too). It fails the test after WithoutTCP.
func (s *Server) URL() string {
	s.t.Helper()
	return "tcp://" + s.Addr()
}

// ServerURL returns URL() as a *url.URL, the form autopaho's
// ClientConfig.ServerUrls takes. It fails the test after WithoutTCP.
func (s *Server) ServerURL() *url.URL {
	s.t.Helper()
	return &url.URL{Scheme: "tcp", Host: s.Addr()}
}

// Dial connects to the broker's in-memory listener.
func (s *Server) Dial() (net.Conn, error) { return s.mem.Dial() }

// DialContext connects to the broker's in-memory listener, giving up when ctx
// is done.
func (s *Server) DialContext(ctx context.Context) (net.Conn, error) { return s.mem.DialContext(ctx) }

// Publish publishes payload to topic at QoS 0, not retained, as the
// application would with Broker.Publish. It fails the test on error.
func (s *Server) Publish(topic, payload string) {
	s.t.Helper()
	s.PublishMessage(tern.Message{Topic: topic, Payload: []byte(payload)})
}

// PublishMessage publishes m with its QoS, Retain flag and MQTT 5
// properties, as the application would with Broker.PublishMessage. MQTT 5
// subscribers get the properties; MQTT 3.1.1 subscribers get the message
// without them. It fails the test on error.
func (s *Server) PublishMessage(m tern.Message) {
	s.t.Helper()
	_, err := s.Broker.PublishMessage(context.Background(), m)
	require.NoError(s.t, err, "brokertest: publish to %q", m.Topic)
}

// Close stops the broker before the test ends, for tests of what clients do
// when it goes away. The cleanup calls it too; later calls do nothing. Expect,
// Next and Messages still see what was recorded.
func (s *Server) Close() {
	s.t.Helper()
	s.close.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.timeout)
		defer cancel()
		assert.NoError(s.t, s.Broker.Close(ctx), "brokertest: closing the broker")
		if s.rec != nil {
			s.rec.stop()
		}
		s.serving.Wait()
		close(s.served)
		for err := range s.served {
			assert.ErrorIs(s.t, err, tern.ErrClosed, "brokertest: Serve ended for another reason than Close")
		}
	})
}
