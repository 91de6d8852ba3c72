package nats

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config configures a node of the cluster. Either URLs names the servers
// of an existing NATS cluster with JetStream, or Embedded starts a NATS
// server inside the node: the nodes' embedded servers then form the NATS
// cluster between themselves.
type Config struct {
	// Name names this node: unique in the cluster, letters, digits, '-'
	// and '_'. It names the embedded NATS server too. Required.
	Name string

	// URLs are the NATS servers to connect to ("nats://host:4222",
	// "tls://host:4222"), for a NATS cluster run on its own.
	URLs []string
	// CredentialsFile is a NATS credentials file (JWT and NKey seed).
	CredentialsFile string
	// Username and Password, or Token, authenticate to NATS.
	Username, Password string
	Token              string
	// TLS configures TLS to the NATS servers (nil: as the URLs say).
	TLS *tls.Config

	// Embedded starts a NATS server with JetStream in this node (with
	// URLs empty).
	Embedded *Embedded

	// Prefix starts every NATS subject, stream and bucket name of the
	// cluster, so that several Tern clusters may share one NATS: letters,
	// digits, '-' and '_'. Default "tern".
	Prefix string
	// Replicas is how many copies JetStream keeps of the message stream
	// and of the buckets (1 to 5). Default: with Embedded, the number of
	// nodes (Routes and this one) up to 3; 1 with URLs. Set when the
	// streams are created; later changes are for the NATS tools.
	Replicas int
	// MessageRetention is how long QoS 1 and 2 messages stay in the
	// stream: a session offline longer than this misses what it missed
	// before. Default 24h.
	MessageRetention time.Duration
	// MaxStreamBytes bounds the message stream (the oldest go first).
	// Default 0: no bound but MessageRetention.
	MaxStreamBytes int64
	// LeaseTTL is how long a node that stopped answering keeps its
	// clients' identifiers and sessions before the others take them over
	// (expiry, wills). Default 10s; at least 1s.
	LeaseTTL time.Duration
	// RequestTimeout bounds each call to NATS (a store, a claim): past
	// it, the cluster counts as unavailable for that call. Default 5s.
	RequestTimeout time.Duration
	// StartTimeout bounds Start: the time JetStream needs to be ready
	// (its servers to elect leaders). Default 60s.
	StartTimeout time.Duration
	// ClockSkew is how far apart the nodes' clocks (and the NATS
	// servers') may be: a session resumed on another node gets the
	// messages from this much before it was last saved. Default 250ms.
	ClockSkew time.Duration
	// MaxReplay bounds how many messages a session resumed on another
	// node gets from the stream. Default 100000.
	MaxReplay int

	// Logger receives the cluster's log. Default slog.Default().
	Logger *slog.Logger
}

// Embedded configures the NATS server a node runs in itself.
type Embedded struct {
	// StoreDir is the JetStream store directory. Required.
	StoreDir string
	// Listen is the address for NATS clients (the NATS tools, other
	// applications): "host:port". Empty: none (a loopback port chosen at
	// random with ClusterListen: NATS routes only once it listens for
	// clients); the node itself talks to its server in-process.
	Listen string
	// ClusterListen is the address the other nodes' servers connect to
	// ("host:port"). Required with Routes.
	ClusterListen string
	// Routes are the other nodes' ClusterListen addresses ("host:port"
	// or "nats-route://host:port"). Empty: a cluster of one.
	Routes []string
	// ClusterName names the NATS cluster. Default "tern".
	ClusterName string
	// MaxPayload bounds a message, in bytes (NATS's max_payload):
	// larger MQTT messages are not forwarded. Default 8 MiB.
	MaxPayload int32
	// Debug logs the NATS server's own messages at debug level.
	Debug bool
}

// The defaults.
const (
	DefaultPrefix           = "tern"
	DefaultMessageRetention = 24 * time.Hour
	DefaultLeaseTTL         = 10 * time.Second
	DefaultRequestTimeout   = 5 * time.Second
	DefaultStartTimeout     = 60 * time.Second
	DefaultClockSkew        = 250 * time.Millisecond
	DefaultMaxReplay        = 100000
	DefaultMaxPayload       = 8 << 20
	DefaultClusterName      = "tern"
)

// withDefaults validates c and fills in the defaults; errors name the
// field.
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		return c, errors.New("nats: Config.Name is required")
	}
	if !isToken(c.Name) {
		return c, fmt.Errorf("nats: Config.Name %q: only letters, digits, '-' and '_'", c.Name)
	}
	switch {
	case len(c.URLs) == 0 && c.Embedded == nil:
		return c, errors.New("nats: Config.URLs or Config.Embedded is required")
	case len(c.URLs) > 0 && c.Embedded != nil:
		return c, errors.New("nats: Config.URLs and Config.Embedded cannot both be set")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !isToken(c.Prefix) {
		return c, fmt.Errorf("nats: Config.Prefix %q: only letters, digits, '-' and '_'", c.Prefix)
	}
	if c.Embedded != nil {
		e := *c.Embedded
		if e.StoreDir == "" {
			return c, errors.New("nats: Config.Embedded.StoreDir is required")
		}
		if e.Listen != "" {
			if _, _, err := net.SplitHostPort(e.Listen); err != nil {
				return c, fmt.Errorf("nats: Config.Embedded.Listen: %w", err)
			}
		}
		if len(e.Routes) > 0 && e.ClusterListen == "" {
			return c, errors.New("nats: Config.Embedded.ClusterListen is required with Routes")
		}
		if e.ClusterListen != "" {
			if _, _, err := net.SplitHostPort(e.ClusterListen); err != nil {
				return c, fmt.Errorf("nats: Config.Embedded.ClusterListen: %w", err)
			}
		}
		for _, r := range e.Routes {
			if _, err := routeURL(r); err != nil {
				return c, fmt.Errorf("nats: Config.Embedded.Routes: %w", err)
			}
		}
		if e.ClusterName == "" {
			e.ClusterName = DefaultClusterName
		}
		if !isToken(e.ClusterName) {
			return c, fmt.Errorf("nats: Config.Embedded.ClusterName %q: only letters, digits, '-' and '_'", e.ClusterName)
		}
		if e.MaxPayload < 0 {
			return c, fmt.Errorf("nats: Config.Embedded.MaxPayload must not be negative, got %d", e.MaxPayload)
		}
		if e.MaxPayload == 0 {
			e.MaxPayload = DefaultMaxPayload
		}
		c.Embedded = &e
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return c, fmt.Errorf("nats: Config.Replicas must be 1 to 5, got %d", c.Replicas)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
		if c.Embedded != nil && len(c.Embedded.Routes) > 0 {
			c.Replicas = min(3, len(c.Embedded.Routes)+1)
		}
	}
	if c.Token != "" && (c.Username != "" || c.CredentialsFile != "") {
		return c, errors.New("nats: Config.Token cannot be used with Config.Username or Config.CredentialsFile")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
		min  time.Duration
	}{
		{"MessageRetention", &c.MessageRetention, DefaultMessageRetention, time.Second},
		{"LeaseTTL", &c.LeaseTTL, DefaultLeaseTTL, time.Second},
		{"RequestTimeout", &c.RequestTimeout, DefaultRequestTimeout, 10 * time.Millisecond},
		{"StartTimeout", &c.StartTimeout, DefaultStartTimeout, time.Second},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < d.min {
			return c, fmt.Errorf("nats: Config.%s must be at least %s, got %s", d.name, d.min, *d.v)
		}
	}
	if c.ClockSkew < 0 {
		return c, fmt.Errorf("nats: Config.ClockSkew must not be negative, got %s", c.ClockSkew)
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.MaxStreamBytes < 0 {
		return c, fmt.Errorf("nats: Config.MaxStreamBytes must not be negative, got %d", c.MaxStreamBytes)
	}
	if c.MaxReplay < 0 {
		return c, fmt.Errorf("nats: Config.MaxReplay must not be negative, got %d", c.MaxReplay)
	}
	if c.MaxReplay == 0 {
		c.MaxReplay = DefaultMaxReplay
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// isToken reports whether s is a non-empty run of letters, digits, '-'
// and '_'.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			return false
		}
	}
	return true
}
