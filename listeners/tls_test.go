package listeners

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ternmq/tern/listeners/testcert"
)

// newTLS starts a TLS listener on a loopback port, closed at cleanup.
func newTLS(t *testing.T, cfg *tls.Config, opts TLSOptions) *TLSListener {
	t.Helper()
	l, err := TLS("127.0.0.1:0", cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
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

// waitFailures polls until l has counted want handshake failures.
func waitFailures(t *testing.T, l interface{ HandshakeFailures() uint64 }, want uint64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for l.HandshakeFailures() < want {
		if time.Now().After(deadline) {
			t.Fatalf("HandshakeFailures = %d, want %d", l.HandshakeFailures(), want)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	if got := l.HandshakeFailures(); got != want {
		t.Fatalf("HandshakeFailures = %d, want %d", got, want)
	}
}

// acceptGood dials a client that will succeed and checks that it is the one
// Accept returns: nothing failed got through before it.
func acceptGood(t *testing.T, l net.Listener, cfg *tls.Config) (client, server net.Conn) {
	t.Helper()
	accepted := acceptOne(t, l)
	c, err := dialTLS(t, l, cfg)
	if err != nil {
		t.Fatalf("good client: %v", err)
	}
	server = receive(t, accepted)
	if server.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("Accept returned %v, want the good client %v", server.RemoteAddr(), c.LocalAddr())
	}
	return c, server
}

func TestTLSAcceptExchangeClose(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	l, err := TLS("127.0.0.1:0", certs.ServerConfig(tls.NoClientCert), TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	client, server := acceptGood(t, l, certs.ClientConfig())
	if _, ok := server.(*tls.Conn); !ok {
		t.Fatalf("Accept returned %T, want *tls.Conn", server)
	}
	if cs := TLSState(server); cs == nil || !cs.HandshakeComplete {
		t.Fatalf("TLSState of an accepted conn = %+v, want a completed handshake", cs)
	}
	exchange(t, client, server)

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	exchange(t, server, client) // accepted connections outlive the listener
	if got := l.HandshakeFailures(); got != 0 {
		t.Errorf("HandshakeFailures = %d, want 0", got)
	}
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
					if _, err = c.Read(make([]byte, 1)); err == nil {
						t.Fatal("refused client could read")
					}
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
				if ok != (tt.wantCN != "") || cn != tt.wantCN {
					t.Errorf("PeerCommonName(%T) = %q, %v; want %q, %v", c, cn, ok, tt.wantCN, tt.wantCN != "")
				}
			}
			cs := TLSState(server)
			switch {
			case cs == nil:
				t.Error("TLSState = nil")
			case len(tt.certs) == 0 && len(cs.PeerCertificates) != 0:
				t.Errorf("TLSState has %d peer certificates, want none", len(cs.PeerCertificates))
			case len(tt.certs) > 0 && (len(cs.PeerCertificates) == 0 || !cs.PeerCertificates[0].Equal(tt.certs[0].Leaf)):
				t.Error("TLSState does not hold the client's certificate")
			}
			if got := l.HandshakeFailures(); got != 0 {
				t.Errorf("HandshakeFailures = %d, want 0", got)
			}
		})
	}
}

// A client that never handshakes does not hold up the others, and is
// disconnected and counted when its handshake times out.
func TestTLSHandshakeOffTheAcceptLoop(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	l, err := TLS("127.0.0.1:0", certs.ServerConfig(tls.NoClientCert), TLSOptions{HandshakeTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })

	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	start := time.Now()
	acceptGood(t, l, certs.ClientConfig())
	if time.Since(start) >= 500*time.Millisecond {
		t.Fatalf("good client waited %v, behind the silent one", time.Since(start))
	}

	_ = silent.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent client read %v, want io.EOF when the server gives up", err)
	}
	waitFailures(t, l, 1)
}

func TestTLSGarbageCounted(t *testing.T) {
	certs := testcert.New(t)
	l := newTLS(t, certs.ServerConfig(tls.NoClientCert), TLSOptions{})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// An MQTT client that forgot TLS: a plain CONNECT.
	if _, err := c.Write([]byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")); err != nil {
		t.Fatal(err)
	}
	waitFailures(t, l, 1)
	acceptGood(t, l, certs.ClientConfig())
}

// Close aborts handshakes in progress without counting them as failures.
func TestTLSCloseAbortsHandshakes(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	l, err := TLS("127.0.0.1:0", certs.ServerConfig(tls.NoClientCert), TLSOptions{HandshakeTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Make sure the listener has taken the connection: a good client
	// connected after it gets through.
	acceptGood(t, l, certs.ClientConfig())

	acceptErr := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		acceptErr <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept during Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Accept still blocked after Close")
	}
	_ = silent.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("pending handshake after Close: read %v, want io.EOF", err)
	}
	if got := l.HandshakeFailures(); got != 0 {
		t.Errorf("HandshakeFailures = %d, want 0: aborts are not failures", got)
	}
}

func TestTLSRejectsUnusableConfig(t *testing.T) {
	for name, cfg := range map[string]*tls.Config{"nil": nil, "no certificate": {}} {
		if l, err := TLS("127.0.0.1:0", cfg, TLSOptions{}); err == nil {
			_ = l.Close()
			t.Errorf("TLS with %s config: no error", name)
		}
	}
}

func TestTLSStateAndPeerCommonNameOfOtherConns(t *testing.T) {
	mem := NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	client, server := memPair(t, mem)
	for _, c := range []net.Conn{nil, client, server} {
		if cs := TLSState(c); cs != nil {
			t.Errorf("TLSState(%T) = %+v, want nil", c, cs)
		}
		if cn, ok := PeerCommonName(c); ok || cn != "" {
			t.Errorf("PeerCommonName(%T) = %q, %v; want false", c, cn, ok)
		}
	}
	// A handshake not yet done gives no state.
	if cs := TLSState(tls.Server(server, &tls.Config{})); cs != nil {
		t.Errorf("TLSState before the handshake = %+v, want nil", cs)
	}
}

// NewTLS serves TLS over any listener, here an in-memory one.
func TestNewTLSOverMemory(t *testing.T) {
	checkGoroutines(t)
	certs := testcert.New(t)
	mem := NewMemory()
	l, err := NewTLS(mem, certs.ServerConfig(tls.RequireAndVerifyClientCert), TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	accepted := acceptOne(t, l)
	raw, err := mem.Dial()
	if err != nil {
		t.Fatal(err)
	}
	cfg := certs.ClientConfig(certs.ClientCert("in-process"))
	cfg.ServerName = "localhost"
	client := tls.Client(raw, cfg)
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	server := receive(t, accepted)
	exchange(t, client, server)
	if cn, ok := PeerCommonName(server); !ok || cn != "in-process" {
		t.Errorf("PeerCommonName = %q, %v; want in-process, true", cn, ok)
	}

	// When the inner listener fails for good, Accept reports its error.
	_ = mem.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after the inner listener closed: %v, want its net.ErrClosed", err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewTLS(&flakyListener{Listener: inner}, certs.ServerConfig(tls.NoClientCert), TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if _, err := l.Accept(); !errors.As(err, new(tempError)) {
		t.Fatalf("Accept: %v, want the temporary error", err)
	}
	acceptGood(t, l, certs.ClientConfig())
}

// wrappedConn is a connection wrapper that exposes what it wraps, as a
// broker's byte-counting wrapper might.
type wrappedConn struct{ net.Conn }

func (w wrappedConn) NetConn() net.Conn { return w.Conn }
