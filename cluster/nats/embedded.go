package nats

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// routeURL is a peer's cluster address as a NATS route URL.
func routeURL(r string) (*url.URL, error) {
	if !strings.Contains(r, "://") {
		r = "nats-route://" + r
	}
	u, err := url.Parse(r)
	if err != nil {
		return nil, err
	}
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("%q: want host:port", r)
	}
	return u, nil
}

// splitAddr splits "host:port" for the server's options.
func splitAddr(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port: %w", addr, err)
	}
	return host, p, nil
}

// startEmbedded starts the node's NATS server and waits until it accepts
// clients.
func startEmbedded(ctx context.Context, name string, e *Embedded, log *slog.Logger) (*server.Server, error) {
	o := &server.Options{
		ServerName: name,
		JetStream:  true,
		StoreDir:   e.StoreDir,
		MaxPayload: e.MaxPayload,
		// Topics up to MQTT's 65535 bytes, escaped, fit in a subject.
		MaxControlLine: 256 << 10,
		NoSigs:         true,
		DontListen:     e.Listen == "" && e.ClusterListen == "",
	}
	if e.Listen == "" && e.ClusterListen != "" {
		// A NATS server routes only once its client listener is up: a
		// loopback one, on a port of its choice.
		o.Host, o.Port = "127.0.0.1", server.RANDOM_PORT
	}
	if e.Listen != "" {
		host, port, err := splitAddr(e.Listen)
		if err != nil {
			return nil, fmt.Errorf("Embedded.Listen: %w", err)
		}
		o.Host, o.Port = host, port
	}
	if e.ClusterListen != "" {
		host, port, err := splitAddr(e.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("Embedded.ClusterListen: %w", err)
		}
		o.Cluster = server.ClusterOpts{Name: e.ClusterName, Host: host, Port: port}
		for _, r := range e.Routes {
			u, err := routeURL(r)
			if err != nil {
				return nil, fmt.Errorf("Embedded.Routes: %w", err)
			}
			o.Routes = append(o.Routes, u)
		}
	}
	s, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	s.SetLoggerV2(serverLog{log.With("component", "nats-server"), e.Debug}, e.Debug, false, false)
	s.Start()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultStartTimeout)
	}
	if !s.ReadyForConnections(time.Until(deadline)) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("embedded NATS server %s: not ready in time", name)
	}
	return s, nil
}

// serverLog passes the NATS server's log to slog one level down: what a
// NATS operator is warned of (a route down while a peer restarts, an
// election) is routine in a Tern cluster, whose own log says what it
// means for clients.
type serverLog struct {
	log   *slog.Logger
	debug bool
}

func (l serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLog) Warnf(format string, v ...any)   { l.log.Info(fmt.Sprintf(format, v...)) }
func (l serverLog) Errorf(format string, v ...any)  { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLog) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLog) Debugf(format string, v ...any) {
	if l.debug {
		l.log.Debug(fmt.Sprintf(format, v...))
	}
}
func (l serverLog) Tracef(format string, v ...any) {}
