package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

// listen starts every listener the flags ask for, each served by b in its own
// goroutine reporting to errc, and returns functions that stop the extras
// (the HTTP server). The broker closes the MQTT listeners itself.
func listen(cfg config, b *tern.Broker, log *slog.Logger, errc chan<- error) ([]func(), error) {
	var tlsCfg *tls.Config
	if cfg.tls != "" || cfg.wss != "" {
		var err error
		if tlsCfg, err = loadTLS(cfg); err != nil {
			return nil, err
		}
	}
	var (
		mqtt    []net.Listener
		closers []func()
		open    []string // addresses, for the warning below
	)
	fail := func(err error) ([]func(), error) {
		for _, l := range mqtt {
			l.Close()
		}
		for _, c := range closers {
			c()
		}
		return nil, err
	}
	add := func(kind, addr string, l net.Listener, err error) error {
		if err != nil {
			return fmt.Errorf("%s listener on %s: %w", kind, addr, err)
		}
		log.Info("listening", "transport", kind, "addr", l.Addr().String())
		mqtt = append(mqtt, l)
		if kind != "unix" {
			open = append(open, l.Addr().String())
		}
		return nil
	}
	if cfg.tcp != "" {
		l, err := listeners.TCP(cfg.tcp)
		if err := add("tcp", cfg.tcp, l, err); err != nil {
			return fail(err)
		}
	}
	if cfg.tls != "" {
		l, err := listeners.TLS(cfg.tls, tlsCfg, listeners.TLSOptions{Logger: log})
		if err := add("tls", cfg.tls, l, err); err != nil {
			return fail(err)
		}
	}
	if cfg.ws != "" {
		l, err := listeners.ListenWebSocket(cfg.ws, nil, listeners.WebSocketOptions{Logger: log})
		if err := add("ws", cfg.ws, l, err); err != nil {
			return fail(err)
		}
	}
	if cfg.wss != "" {
		l, err := listeners.ListenWebSocket(cfg.wss, tlsCfg, listeners.WebSocketOptions{Logger: log})
		if err := add("wss", cfg.wss, l, err); err != nil {
			return fail(err)
		}
	}
	if cfg.unix != "" {
		l, err := listeners.Unix(cfg.unix)
		if err := add("unix", cfg.unix, l, err); err != nil {
			return fail(err)
		}
	}
	if len(mqtt) == 0 {
		return fail(errors.New("no listener: give at least one of -tcp, -tls, -ws, -wss, -unix"))
	}
	if cfg.http != "" {
		ln, err := net.Listen("tcp", cfg.http)
		if err != nil {
			return fail(fmt.Errorf("http listener on %s: %w", cfg.http, err))
		}
		srv := &http.Server{
			Handler:           listeners.HTTPHandler(func() any { return b.Stats() }, b.Serving),
			ReadHeaderTimeout: 5 * time.Second,
		}
		log.Info("listening", "transport", "http", "addr", ln.Addr().String(), "paths", "/healthz /stats")
		done := make(chan struct{})
		go func() { srv.Serve(ln); close(done) }()
		closers = append(closers, func() { srv.Close(); <-done })
	}
	if cfg.authFile == "" {
		for _, a := range open {
			if !loopback(a) {
				log.Warn("no -auth file: every client may connect, publish and subscribe; this listener is reachable from other hosts", "addr", a)
			}
		}
	}
	for _, l := range mqtt {
		go func() { errc <- b.Serve(l) }()
	}
	return closers, nil
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

// loadTLS builds the server TLS configuration from -cert, -key and -cafile.
func loadTLS(cfg config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.cert, cfg.key)
	if err != nil {
		return nil, fmt.Errorf("loading -cert %s and -key %s: %w", cfg.cert, cfg.key, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.cafile != "" {
		pem, err := os.ReadFile(cfg.cafile)
		if err != nil {
			return nil, fmt.Errorf("reading -cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-cafile %s holds no PEM certificate", cfg.cafile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
