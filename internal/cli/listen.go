package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync/atomic"

	"github.com/ternmq/tern/listeners"
)

// listenerSpec is one listener to open, from the flags or mosquitto.conf.
type listenerSpec struct {
	kind        string // tcp, tls, ws, wss or unix
	network     string // tcp, tcp4, tcp6 or unix
	addr        string // host:port, or the socket path
	cert, key   string
	cafile      string
	requireCert bool   // verify client certificates against cafile
	minTLS      uint16 // 0: TLS 1.2
	resolve     bool   // bind every address the host name resolves to, as Mosquitto
	where       string // the flag or config line, for messages
}

func (s listenerSpec) secure() bool { return s.kind == "tls" || s.kind == "wss" }

// flagListeners returns the listeners the -tcp, -tls, -ws, -wss and -unix
// flags ask for.
func (s *settings) flagListeners() []listenerSpec {
	var out []listenerSpec
	add := func(kind, addr string) {
		if addr == "" {
			return
		}
		l := listenerSpec{kind: kind, network: "tcp", addr: addr, where: "-" + kind}
		if l.secure() {
			l.cert, l.key, l.cafile, l.requireCert = s.cert, s.key, s.cafile, s.cafile != ""
		}
		if kind == "unix" {
			l.network = "unix"
		}
		out = append(out, l)
	}
	add("tcp", s.tcp)
	add("tls", s.tls)
	add("ws", s.ws)
	add("wss", s.wss)
	add("unix", s.unix)
	return out
}

// opened is a listener ready to be served.
type opened struct {
	net.Listener
	spec listenerSpec
}

// openListeners opens every listener, with one certificate reloader per
// certificate and key pair. On error it closes what it opened.
func openListeners(specs []listenerSpec, s *settings, log *slog.Logger) (_ []opened, _ []*certReloader, err error) {
	var (
		out       []opened
		reloaders = map[[2]string]*certReloader{}
		all       []*certReloader
	)
	defer func() {
		if err != nil {
			for _, o := range out {
				o.Close()
			}
		}
	}()
	for _, spec := range specs {
		var cfg *tls.Config
		if spec.secure() {
			r := reloaders[[2]string{spec.cert, spec.key}]
			if r == nil {
				if r, err = newCertReloader(spec.cert, spec.key); err != nil {
					return nil, nil, fmt.Errorf("%s: %w", spec.where, err)
				}
				reloaders[[2]string{spec.cert, spec.key}] = r
				all = append(all, r)
			}
			if cfg, err = serverTLS(spec, r); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", spec.where, err)
			}
		}
		addrs := []string{spec.addr}
		if spec.resolve {
			if addrs, err = resolveBind(spec.addr); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", spec.where, err)
			}
		}
		bound := 0
		var lastErr error
		for _, a := range addrs {
			l, err := listenOne(spec, a, cfg, s, log)
			if err != nil {
				lastErr = fmt.Errorf("%s: %s listener on %s: %w", spec.where, spec.kind, a, err)
				if len(addrs) > 1 {
					log.Warn("cannot listen on one of the host's addresses", "transport", spec.kind, "addr", a, "err", err)
				}
				continue
			}
			bound++
			out = append(out, opened{l, spec})
			attrs := []any{"transport", spec.kind, "addr", l.Addr().String(), "network", spec.network, "tls", spec.secure()}
			if spec.secure() {
				attrs = append(attrs, "client_certificates", spec.requireCert)
			}
			log.Info("listening", attrs...)
		}
		if bound == 0 {
			return nil, nil, lastErr
		}
	}
	if len(out) == 0 {
		return nil, nil, errors.New("no listener: give at least one of -tcp, -tls, -ws, -wss, -unix, or a listener in the -c file")
	}
	return out, all, nil
}

// listenOne opens one listener of spec on addr.
func listenOne(spec listenerSpec, addr string, cfg *tls.Config, s *settings, log *slog.Logger) (net.Listener, error) {
	switch spec.kind {
	case "unix":
		return listeners.Unix(addr)
	case "ws", "wss":
		o := s.wsOpts
		o.TLS, o.Logger = s.tlsOpts, log
		o.TLS.Logger = log
		return listeners.ListenWebSocket(addr, cfg, o)
	}
	lc := net.ListenConfig{KeepAliveConfig: listeners.TCPKeepAlive()}
	l, err := lc.Listen(context.Background(), spec.network, addr)
	if err != nil || spec.kind == "tcp" {
		return l, err
	}
	o := s.tlsOpts
	o.Logger = log
	tl, err := listeners.NewTLS(l, cfg, o)
	if err != nil {
		l.Close()
		return nil, err
	}
	return tl, nil
}

// resolveBind returns the addresses a listener binds: host:port as given
// when the host is empty or an IP address, and one per address of a host
// name (Mosquitto binds them all: localhost is 127.0.0.1 and ::1).
func resolveBind(addr string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == "" || net.ParseIP(host) != nil {
		return []string{addr}, nil
	}
	ips, err := net.DefaultResolver.LookupHost(context.Background(), host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip, port)
	}
	return out, nil
}

// serverTLS returns the TLS configuration of a listener: its certificate
// comes from the reloader, so SIGHUP changes it for new connections.
func serverTLS(spec listenerSpec, r *certReloader) (*tls.Config, error) {
	cfg := &tls.Config{GetCertificate: r.get, MinVersion: tls.VersionTLS12}
	if spec.minTLS != 0 {
		cfg.MinVersion = spec.minTLS
	}
	if spec.requireCert {
		pem, err := os.ReadFile(spec.cafile)
		if err != nil {
			return nil, fmt.Errorf("reading cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cafile %s holds no PEM certificate", spec.cafile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// certReloader holds a listener's certificate and key, replaced at once by
// Reload; connections already established keep theirs.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the certificate and key files again; on error the previous
// pair stays in use.
func (r *certReloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("loading certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&c)
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// loopback reports whether a listen address (host:port, or a ws:// URL)
// only accepts local clients.
func loopback(addr string) bool {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
