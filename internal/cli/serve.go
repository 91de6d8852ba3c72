package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/metrics"
	"github.com/ternmq/tern/storage/bolt"
)

// serve runs the broker the settings describe until ctx ends or a listener
// fails. Each value on e.reload reloads the users and ACL, the TLS
// certificates and the log files.
func serve(ctx context.Context, s *settings, e env) (err error) {
	log, out, err := newLogger(s, e.stdout, e.stderr)
	if err != nil {
		return err
	}
	defer out.Close()
	for _, w := range s.warnings {
		log.Warn(w)
	}
	if s.pidFile != "" {
		if err := os.WriteFile(s.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("pid file: %w", err)
		}
		defer os.Remove(s.pidFile)
	}
	if s.cpuProfile != "" {
		f, err := os.Create(s.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	opts := s.opts
	opts.Logger = log
	if s.ext != nil && s.ext.Configure != nil {
		if err := s.ext.Configure(&opts, log); err != nil {
			return err
		}
	}
	if s.data != "" && opts.Cluster != nil {
		return errors.New("-data and clustering cannot be used together: the cluster keeps the state (-cluster-store is the embedded NATS server's)")
	}
	if s.data != "" {
		so := s.storeOpts
		so.Logger = log
		st, err := openStore(s.data, so)
		if err != nil {
			return err
		}
		defer st.Close()
		opts.Store = st
		log.Info("persistent state", "dir", s.data, "durability", so.Durability.String())
	}
	b, err := tern.New(opts)
	if err != nil {
		return s.explain(err)
	}
	hook, authFiles, err := authHook(s, log)
	if err == nil && hook != nil {
		err = b.AddHook(hook)
	}
	if err != nil {
		return errors.Join(err, b.Close(context.Background()))
	}
	ls, certs, err := openListeners(append(s.flagListeners(), s.listeners...), s, log)
	if err != nil {
		return errors.Join(err, b.Close(context.Background()))
	}
	if hook == nil {
		for _, l := range ls {
			if l.spec.kind != "unix" && !loopback(l.Addr().String()) {
				log.Warn("no authentication (-auth, -password-file, -acl-file or -c): every client may connect, publish and subscribe; this listener is reachable from other hosts", "addr", l.Addr().String())
			}
		}
	}
	var stopHTTP func()
	if s.http != "" {
		if stopHTTP, err = serveOps(s.http, b, hook, log); err != nil {
			for _, l := range ls {
				l.Close()
			}
			return errors.Join(err, b.Close(context.Background()))
		}
	}
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- b.Serve(l.Listener) }() // as opened: a *net.TCPListener gets Tern's own sockets
	}

	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			break loop
		case serveErr = <-errc:
			break loop
		case <-e.reload:
			reload(log, authFiles, certs, out)
		}
	}
	if stopHTTP != nil {
		stopHTTP()
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(cctx); err != nil {
		return err
	}
	if serveErr != nil && !errors.Is(serveErr, tern.ErrClosed) {
		return serveErr
	}
	return nil
}

// reloader is a file-based hook that can read its files again.
type reloader interface{ Reload() error }

// reload reads the users and ACL, the TLS certificates and the log files
// again. What fails keeps its previous content, and the log says why.
// Connections stay up; the new ACL applies to their next message.
func reload(log *slog.Logger, authFiles reloader, certs []*certReloader, out *logOutput) {
	failed := 0
	if err := out.Reopen(); err != nil {
		failed++
		log.Error("reload: keeping the previous log file", "err", err)
	}
	if authFiles != nil {
		if err := authFiles.Reload(); err != nil {
			failed++
			log.Error("reload: keeping the previous users and ACL", "err", err)
		} else {
			log.Info("reload: users and ACL reloaded")
		}
	}
	for _, c := range certs {
		if err := c.Reload(); err != nil {
			failed++
			log.Error("reload: keeping the previous TLS certificate", "err", err)
		} else {
			log.Info("reload: TLS certificate reloaded", "cert", c.certFile)
		}
	}
	log.Info("reload finished", "failed", failed)
}

// authHook returns the hook the settings ask for (nil for none) and what
// SIGHUP reloads.
func authHook(s *settings, log *slog.Logger) (any, reloader, error) {
	ao := auth.Options{Logger: log}
	switch {
	case s.authFile != "":
		f, err := auth.LoadWithOptions(s.authFile, ao)
		if err != nil {
			return nil, nil, err
		}
		log.Info("authentication and ACL", "file", s.authFile)
		return f, f, nil
	case s.passwordFile != "" || s.aclFile != "" || s.mosquitto:
		m, err := auth.LoadMosquitto(auth.MosquittoFiles{
			PasswordFile: s.passwordFile, ACLFile: s.aclFile, AllowAnonymous: s.allowAnonymous,
		}, ao)
		if err != nil {
			return nil, nil, err
		}
		log.Info("authentication and ACL (Mosquitto files)", "password_file", s.passwordFile, "acl_file", s.aclFile, "allow_anonymous", s.allowAnonymous)
		if s.opts.UseCertCNAsUsername {
			return identityAuth{m}, m, nil
		}
		return m, m, nil
	}
	return nil, nil, nil
}

// identityAuth is the Mosquitto hook for listeners with
// use_identity_as_username: as in Mosquitto, a client whose verified
// certificate gave its user name connects without a password check (the
// broker refuses a client without one), and the ACL applies to that name.
type identityAuth struct{ *auth.Mosquitto }

func (h identityAuth) Authenticate(ctx context.Context, c tern.ConnectInfo) error {
	if c.TLS != nil && len(c.TLS.VerifiedChains) > 0 {
		return nil
	}
	return h.Mosquitto.Authenticate(ctx, c)
}

// serveOps serves /healthz, /stats and /metrics on addr, and returns what
// stops it. hook is the authentication hook, nil for none.
func serveOps(addr string, b *tern.Broker, hook any, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-http listener on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: opsHandler(b, hook), ReadHeaderTimeout: 5 * time.Second}
	log.Info("listening", "transport", "http", "addr", ln.Addr().String(), "paths", "/healthz /stats /metrics")
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	return func() { srv.Close(); <-done }, nil
}

// opsHandler is the operations endpoint: health, statistics as JSON, and
// the Prometheus metrics (with the Go runtime and process metrics, and the
// password checks of hook when it is one of the auth package's).
func opsHandler(b *tern.Broker, hook any) http.Handler {
	mux := http.NewServeMux()
	ops := listeners.HTTPHandler(func() any { return b.Stats() }, b.Serving)
	mux.Handle("/healthz", ops)
	mux.Handle("/stats", ops)
	var opts []metrics.Option
	if a, ok := hook.(metrics.AuthStats); ok {
		opts = append(opts, metrics.WithAuth(a))
	}
	mux.Handle("GET /metrics", metrics.Handler(b, opts...))
	return mux
}

// openStore opens the bbolt file in dir, creating dir if needed.
func openStore(dir string, o bolt.Options) (*bolt.Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("-data: %w", err)
	}
	return bolt.Open(filepath.Join(dir, "tern.db"), o)
}

// explain names the config file line that set the option an error from
// tern.New is about ("tern: Options.MaxInflight must be ...").
func (s *settings) explain(err error) error {
	m := regexp.MustCompile(`Options\.([A-Za-z0-9]+)`).FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	for name, field := range s.fields {
		if field == "tern.Options."+m[1] {
			if pos, ok := s.origin[name]; ok {
				return &configError{pos, err}
			}
		}
	}
	return err
}
