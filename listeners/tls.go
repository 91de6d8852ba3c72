package listeners

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHandshakeTimeout bounds a TLS handshake when TLSOptions leaves
// HandshakeTimeout at zero.
const DefaultHandshakeTimeout = 10 * time.Second

// TLSOptions configures a TLSListener. The zero value is usable.
type TLSOptions struct {
	// HandshakeTimeout bounds each TLS handshake; a client that has not
	// completed it in time is disconnected and counted as a failure.
	// Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// Logger receives a Debug record for each failed handshake. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// TLSListener is a net.Listener that serves TLS on top of another listener.
//
// Each accepted connection is handshaken in its own goroutine, bounded by
// the handshake timeout, so a slow or hostile client never holds up the
// accept loop. Accept returns only connections whose handshake succeeded, as
// *tls.Conn: TLSState and PeerCommonName work on them at once, and the
// client certificate (when the tls.Config's ClientAuth asks for one) has
// already been checked. A failed handshake closes that connection only and
// is counted by HandshakeFailures.
type TLSListener struct {
	inner   net.Listener
	config  *tls.Config
	timeout time.Duration
	logger  *slog.Logger

	ctx    context.Context // canceled by Close; aborts pending handshakes
	cancel context.CancelFunc
	conns  chan *tls.Conn // handshaken connections, handed to Accept
	errs   chan error     // temporary accept errors, handed to Accept
	failed chan struct{}  // closed when the inner listener fails for good
	err    error          // the inner listener's last error, set before failed closes

	failures  atomic.Uint64
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// TLS listens on the TCP address addr (see TCP) and serves TLS with cfg. Ask
// for client certificates with cfg.ClientAuth, and name the trusted client
// CAs in cfg.ClientCAs; tls.RequireAndVerifyClientCert is the setting that
// makes certificate identities (PeerCommonName) trustworthy.
func TLS(addr string, cfg *tls.Config, opts TLSOptions) (*TLSListener, error) {
	if err := checkServerConfig(cfg); err != nil {
		return nil, err
	}
	inner, err := TCP(addr)
	if err != nil {
		return nil, err
	}
	return NewTLS(inner, cfg, opts)
}

// NewTLS serves TLS with cfg on connections accepted from inner, which the
// returned listener owns and closes. cfg is cloned; later changes to it have
// no effect.
func NewTLS(inner net.Listener, cfg *tls.Config, opts TLSOptions) (*TLSListener, error) {
	if err := checkServerConfig(cfg); err != nil {
		_ = inner.Close()
		return nil, err
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &TLSListener{
		inner:   inner,
		config:  cfg.Clone(),
		timeout: opts.HandshakeTimeout,
		logger:  opts.Logger,
		ctx:     ctx,
		cancel:  cancel,
		conns:   make(chan *tls.Conn),
		errs:    make(chan error),
		failed:  make(chan struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// checkServerConfig refuses a configuration that cannot serve a handshake.
func checkServerConfig(cfg *tls.Config) error {
	if cfg == nil {
		return errors.New("listeners: tls: nil *tls.Config")
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return errors.New("listeners: tls: the *tls.Config has no certificate " +
			"(set Certificates, GetCertificate or GetConfigForClient)")
	}
	return nil
}

// acceptLoop accepts raw connections and starts a handshake for each.
func (l *TLSListener) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				select {
				case l.errs <- err:
					continue
				case <-l.ctx.Done():
					return
				}
			}
			l.err = err
			close(l.failed)
			return
		}
		l.wg.Add(1)
		go l.handshake(raw)
	}
}

// isTemporary reports whether err says it is temporary, as accept errors
// such as EMFILE do; callers are expected to retry after a pause.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// handshake runs the server handshake on raw and hands the result to Accept.
func (l *TLSListener) handshake(raw net.Conn) {
	defer l.wg.Done()
	conn := tls.Server(raw, l.config)
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		_ = raw.Close()
		if l.ctx.Err() == nil { // not a failure when the listener is closing
			l.failures.Add(1)
			l.logger.Debug("tls handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		}
		return
	}
	select {
	case l.conns <- conn:
	case <-l.ctx.Done():
		_ = conn.Close()
	}
}

// Accept returns the next connection whose TLS handshake succeeded, as a
// *tls.Conn. After Close it returns an error wrapping net.ErrClosed.
func (l *TLSListener) Accept() (net.Conn, error) {
	select {
	case <-l.ctx.Done():
		return nil, l.closedError()
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.failed:
		return nil, l.err
	case <-l.ctx.Done():
		return nil, l.closedError()
	}
}

func (l *TLSListener) closedError() error {
	return &net.OpError{Op: "accept", Net: l.inner.Addr().Network(), Addr: l.inner.Addr(), Err: net.ErrClosed}
}

// Close stops accepting, aborts handshakes in progress, closes handshaken
// connections that Accept has not returned yet, and waits for its
// goroutines to finish. Connections already returned by Accept stay open.
func (l *TLSListener) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		l.closeErr = l.inner.Close()
		l.wg.Wait()
	})
	return l.closeErr
}

// Addr returns the address of the underlying listener.
func (l *TLSListener) Addr() net.Addr { return l.inner.Addr() }

// HandshakeFailures returns how many TLS handshakes have failed or timed
// out since the listener started. Handshakes aborted by Close are not
// counted.
func (l *TLSListener) HandshakeFailures() uint64 { return l.failures.Load() }

// String describes the listener for logs.
func (l *TLSListener) String() string {
	return fmt.Sprintf("tls://%s", l.inner.Addr())
}
