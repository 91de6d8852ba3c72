package listeners

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/listeners/testcert"
)

// newTLS starts a TLS listener on a loopback port, closed at cleanup.
func newTLS(t *testing.T, cfg *tls.Config, opts TLSOptions) *TLSListener {
	t.Helper()
	l, err := TLS("127.0.0.1:0", cfg, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// dialTLS connects a TLS client; with TLS 1.3 the client can finish its
// handshake before the server has checked the client certificate.
func dialTLS(t *testing.T, l net.Listener, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: waitTimeout}
	c, err := tls.DialWithDialer(d, "tcp", l.Addr().String(), cfg)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// waitFailures waits until l has counted want handshake failures, and no
// more.
func waitFailures(t *testing.T, l interface{ HandshakeFailures() uint64 }, want uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return l.HandshakeFailures() >= want },
		waitTimeout, time.Millisecond, "HandshakeFailures = %d, want %d", l.HandshakeFailures(), want)
	require.Equal(t, want, l.HandshakeFailures(), "HandshakeFailures")
}

// acceptGood dials a client that will succeed and checks that it is the one
// Accept returns: nothing failed got through before it.
func acceptGood(t *testing.T, l net.Listener, cfg *tls.Config) (client, server net.Conn) {
	t.Helper()
	accepted := acceptOne(t, l)
	c, err := dialTLS(t, l, cfg)
	require.NoError(t, err, "good client")
	server = receive(t, accepted)
	require.Equal(t, c.LocalAddr().String(), server.RemoteAddr().String(), "Accept returned another client than the good one")
	return c, server
}

func TestTLSAcceptExchangeClose(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	l, err := TLS("127.0.0.1:0", certs.ServerConfig(tls.NoClientCert), TLSOptions{})
	require.NoError(t, err)
	client, server := acceptGood(t, l, certs.ClientConfig())
	require.IsType(t, &tls.Conn{}, server, "Accept returns a *tls.Conn")
	cs := TLSState(server)
	require.NotNil(t, cs, "TLSState of an accepted conn")
	require.True(t, cs.HandshakeComplete, "TLSState of an accepted conn = %+v, want a completed handshake", cs)
	exchange(t, client, server)

	require.NoError(t, l.Close(), "Close")
	_, err = l.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Accept after Close")
	exchange(t, server, client) // accepted connections outlive the listener
	assert.Zero(t, l.HandshakeFailures(), "HandshakeFailures")
}

func TestTLSClientCertificates(t *testing.T) {
	certs := testcert.New(t)
	stranger := testcert.New(t) // an authority the server does not trust
	tests := []struct {
		name     string
		auth     tls.ClientAuthType
		certs    []tls.Certificate
		accepted bool
		wantCN   string // "" when PeerCommonName must report false
	}{
		{"no certificate requested", tls.NoClientCert, nil, true, ""},
		{"required and verified", tls.RequireAndVerifyClientCert, []tls.Certificate{certs.Client}, true, testcert.ClientCommonName},
		{"required, none sent", tls.RequireAndVerifyClientCert, nil, false, ""},
		{"required, untrusted CA", tls.RequireAndVerifyClientCert, []tls.Certificate{stranger.Client}, false, ""},
		{"verified if given, given", tls.VerifyClientCertIfGiven, []tls.Certificate{certs.ClientCert("sensor-7")}, true, "sensor-7"},
		{"verified if given, none", tls.VerifyClientCertIfGiven, nil, true, ""},
		{"required but not verified", tls.RequireAnyClientCert, []tls.Certificate{stranger.Client}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTLS(t, certs.ServerConfig(tt.auth), TLSOptions{})
			if !tt.accepted {
				c, err := dialTLS(t, l, certs.ClientConfig(tt.certs...))
				if err == nil { // TLS 1.3: the refusal arrives on the first read
					_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
					_, err = c.Read(make([]byte, 1))
					require.Error(t, err, "refused client could read")
				}
				waitFailures(t, l, 1)
				// The failure closed that connection only: the listener
				// still serves, and Accept returns the next good client.
				acceptGood(t, l, certs.ClientConfig(certs.Client))
				return
			}
			client, server := acceptGood(t, l, certs.ClientConfig(tt.certs...))
			exchange(t, client, server)
			for _, c := range []net.Conn{server, wrappedConn{server}} { // also through a wrapper
				cn, ok := PeerCommonName(c)
				assert.Equal(t, tt.wantCN != "", ok, "PeerCommonName(%T) ok", c)
				assert.Equal(t, tt.wantCN, cn, "PeerCommonName(%T)", c)
			}
			cs := TLSState(server)
			switch {
			case cs == nil:
				assert.Fail(t, "TLSState = nil")
			case len(tt.certs) == 0:
				assert.Empty(t, cs.PeerCertificates, "TLSState peer certificates")
			default:
				assert.True(t, len(cs.PeerCertificates) > 0 && cs.PeerCertificates[0].Equal(tt.certs[0].Leaf),
					"TLSState does not hold the client's certificate")
			}
			assert.Zero(t, l.HandshakeFailures(), "HandshakeFailures")
		})
	}
}

// A client that never handshakes does not hold up the others, and is
// disconnected and counted when its handshake times out.
func TestTLSHandshakeOffTheAcceptLoop(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	l, err := TLS("127.0.0.1:0", certs.ServerConfig(tls.NoClientCert), TLSOptions{HandshakeTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	silent, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = silent.Close() })
	start := time.Now()
	acceptGood(t, l, certs.ClientConfig())
	require.Less(t, time.Since(start), 500*time.Millisecond, "good client waited behind the silent one")

	_ = silent.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err = silent.Read(make([]byte, 1))
	require.Equal(t, io.EOF, err, "silent client read: want io.EOF when the server gives up")
	waitFailures(t, l, 1)
}

func TestTLSGarbageCounted(t *testing.T) {
	certs := testcert.New(t)
	l := newTLS(t, certs.ServerConfig(tls.NoClientCert), TLSOptions{})
	c, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	// An MQTT client that forgot TLS: a plain CONNECT.
	_, err = c.Write([]byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"))
	require.NoError(t, err)
	waitFailures(t, l, 1)
	acceptGood(t, l, certs.ClientConfig())
}

// Close aborts handshakes in progress without counting them as failures.
func TestTLSCloseAbortsHandshakes(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	l, err := TLS("127.0.0.1:0", certs.ServerConfig(tls.NoClientCert), TLSOptions{HandshakeTimeout: time.Hour})
	require.NoError(t, err)
	silent, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer silent.Close()
	// Make sure the listener has taken the connection: a good client
	// connected after it gets through.
	acceptGood(t, l, certs.ClientConfig())

	acceptErr := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		acceptErr <- err
	}()
	require.NoError(t, l.Close(), "Close")
	assert.ErrorIs(t, waitErr(t, "Accept after Close", acceptErr), net.ErrClosed, "Accept during Close")
	_ = silent.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err = silent.Read(make([]byte, 1))
	assert.Equal(t, io.EOF, err, "pending handshake after Close: want io.EOF")
	assert.Zero(t, l.HandshakeFailures(), "HandshakeFailures: aborts are not failures")
}

func TestTLSRejectsUnusableConfig(t *testing.T) {
	for name, cfg := range map[string]*tls.Config{"nil": nil, "no certificate": {}} {
		l, err := TLS("127.0.0.1:0", cfg, TLSOptions{})
		if err == nil {
			_ = l.Close()
		}
		assert.Error(t, err, "TLS with %s config", name)
	}
}

func TestTLSStateAndPeerCommonNameOfOtherConns(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)
	for _, c := range []net.Conn{nil, client, server} {
		assert.Nil(t, TLSState(c), "TLSState(%T)", c)
		cn, ok := PeerCommonName(c)
		assert.False(t, ok, "PeerCommonName(%T)", c)
		assert.Empty(t, cn, "PeerCommonName(%T)", c)
	}
	// A handshake not yet done gives no state.
	assert.Nil(t, TLSState(tls.Server(server, &tls.Config{})), "TLSState before the handshake")
}

// NewTLS serves TLS over any listener, here an in-memory one.
func TestNewTLSOverMemory(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	mem := NewMemory()
	l, err := NewTLS(mem, certs.ServerConfig(tls.RequireAndVerifyClientCert), TLSOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	accepted := acceptOne(t, l)
	raw, err := mem.Dial()
	require.NoError(t, err)
	cfg := certs.ClientConfig(certs.ClientCert("in-process"))
	cfg.ServerName = "localhost"
	client := tls.Client(raw, cfg)
	t.Cleanup(func() { _ = client.Close() })
	require.NoError(t, client.Handshake())
	server := receive(t, accepted)
	exchange(t, client, server)
	cn, ok := PeerCommonName(server)
	assert.True(t, ok, "PeerCommonName ok")
	assert.Equal(t, "in-process", cn, "PeerCommonName")

	// When the inner listener fails for good, Accept reports its error.
	_ = mem.Close()
	_, err = l.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Accept after the inner listener closed: want its net.ErrClosed")
}

// tempError is an accept error that says it is temporary, like EMFILE.
type tempError struct{}

func (tempError) Error() string   { return "too many open files" }
func (tempError) Timeout() bool   { return false }
func (tempError) Temporary() bool { return true }

// flakyListener fails its first Accept with a temporary error.
type flakyListener struct {
	net.Listener
	failed bool
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if !f.failed {
		f.failed = true
		return nil, tempError{}
	}
	return f.Listener.Accept()
}

// Temporary accept errors reach Accept, so the broker can back off, and the
// listener keeps serving.
func TestTLSTemporaryAcceptError(t *testing.T) {
	certs := testcert.New(t)
	inner, err := TCP("127.0.0.1:0")
	require.NoError(t, err)
	l, err := NewTLS(&flakyListener{Listener: inner}, certs.ServerConfig(tls.NoClientCert), TLSOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	_, err = l.Accept()
	require.ErrorAs(t, err, new(tempError), "Accept: want the temporary error")
	acceptGood(t, l, certs.ClientConfig())
}

// wrappedConn is a connection wrapper that exposes what it wraps, as a
// broker's byte-counting wrapper might.
type wrappedConn struct{ net.Conn }

func (w wrappedConn) NetConn() net.Conn { return w.Conn }
