// Command tern is the clustered build of Tern's standalone broker: the
// same program as the root module's cmd/tern (every flag, Mosquitto's
// configuration files), plus the flags that join it to a cluster on NATS
// JetStream (package github.com/ternmq/tern/cluster/nats).
//
//	tern -cluster nats://n1:4222,nats://n2:4222 -cluster-name a   # an existing NATS cluster
//	tern -cluster-embedded -cluster-name a -cluster-store /var/lib/tern/nats \
//	     -cluster-listen :6222 -cluster-routes b:6222,c:6222      # NATS inside each node
//
// Three nodes on one machine (docs/cluster.md):
//
//	go run ./cmd/tern -tcp :1883 -cluster-embedded -cluster-name a -cluster-store /tmp/a \
//	   -cluster-listen 127.0.0.1:6222 -cluster-routes 127.0.0.1:6223,127.0.0.1:6224
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/cluster/nats"
	"github.com/ternmq/tern/internal/cli"
)

func main() { cli.Main(extension()) }

// clusterFlags are the flags of the clustered build.
type clusterFlags struct {
	urls, routes                string
	embedded                    bool
	name, store, listen, client string
	prefix                      string
	replicas                    int
	lease, retention, skew      time.Duration
	timeout                     time.Duration
	creds, user, password       string
	token                       string
	tlsCA, tlsCert, tlsKey      string
}

// extension is what the clustered build adds to the program.
func extension() *cli.Extension {
	f := &clusterFlags{}
	return &cli.Extension{
		Title: "Cluster (module cluster/nats; docs/cluster.md)",
		Flags: f.register,
		Configure: func(o *tern.Options, log *slog.Logger) error {
			cfg, ok, err := f.config(log)
			if err != nil || !ok {
				return err
			}
			c, err := nats.New(cfg)
			if err != nil {
				return err
			}
			o.Cluster = c
			return nil
		},
	}
}

func (f *clusterFlags) register(fs *flag.FlagSet) []string {
	fs.StringVar(&f.urls, "cluster", "", "join a cluster through these NATS `servers` (nats://host:4222, comma-separated), which run JetStream")
	fs.BoolVar(&f.embedded, "cluster-embedded", false, "join a cluster through a NATS server with JetStream started inside this node; the nodes' servers route to each other (-cluster-listen, -cluster-routes)")
	fs.StringVar(&f.name, "cluster-name", "", "this node's `name`, unique in the cluster: letters, digits, - and _ (default: the host name)")
	fs.StringVar(&f.store, "cluster-store", "", "with -cluster-embedded: the JetStream store `directory` (required)")
	fs.StringVar(&f.listen, "cluster-listen", "", "with -cluster-embedded: the `address` the other nodes' NATS servers connect to (host:port)")
	fs.StringVar(&f.routes, "cluster-routes", "", "with -cluster-embedded: the other nodes' -cluster-listen `addresses`, comma-separated")
	fs.StringVar(&f.client, "cluster-client-listen", "", "with -cluster-embedded: an `address` for NATS clients (the nats tool); default none")
	fs.StringVar(&f.prefix, "cluster-prefix", "", "start the cluster's NATS subjects, stream and buckets with this `prefix` (default tern)")
	fs.IntVar(&f.replicas, "cluster-replicas", 0, "copies JetStream keeps of the cluster's state (default: with -cluster-embedded, the number of nodes up to 3; 1 with -cluster)")
	fs.DurationVar(&f.lease, "cluster-lease", 0, "how long a node that stopped answering keeps its clients' identifiers before another takes them over (default 10s)")
	fs.DurationVar(&f.retention, "cluster-retention", 0, "how long QoS 1 and 2 messages are kept for sessions that resume on another node (default 24h)")
	fs.DurationVar(&f.skew, "cluster-clock-skew", 0, "how far apart the nodes' clocks may be (default 250ms)")
	fs.DurationVar(&f.timeout, "cluster-timeout", 0, "how long a call to NATS may take before the cluster counts as unavailable for it (default 5s)")
	fs.StringVar(&f.creds, "cluster-creds", "", "with -cluster: NATS credentials `file`")
	fs.StringVar(&f.user, "cluster-user", "", "with -cluster: NATS user `name`")
	fs.StringVar(&f.password, "cluster-password", "", "with -cluster: NATS `password`")
	fs.StringVar(&f.token, "cluster-token", "", "with -cluster: NATS `token`")
	fs.StringVar(&f.tlsCA, "cluster-tls-ca", "", "with -cluster: CA certificates `file` (PEM) that signed the NATS servers' certificates")
	fs.StringVar(&f.tlsCert, "cluster-tls-cert", "", "with -cluster: client certificate `file` (PEM) for NATS")
	fs.StringVar(&f.tlsKey, "cluster-tls-key", "", "with -cluster: client key `file` (PEM) for NATS")
	return []string{"cluster", "cluster-embedded", "cluster-name", "cluster-store", "cluster-listen", "cluster-routes",
		"cluster-client-listen", "cluster-prefix", "cluster-replicas", "cluster-lease", "cluster-retention", "cluster-clock-skew", "cluster-timeout",
		"cluster-creds", "cluster-user", "cluster-password", "cluster-token", "cluster-tls-ca", "cluster-tls-cert", "cluster-tls-key"}
}

// config is the cluster's configuration; ok is false when no flag asks
// for a cluster.
func (f *clusterFlags) config(log *slog.Logger) (nats.Config, bool, error) {
	cfg := nats.Config{
		Name: f.name, Prefix: f.prefix, Replicas: f.replicas, LeaseTTL: f.lease,
		MessageRetention: f.retention, ClockSkew: f.skew, RequestTimeout: f.timeout, Logger: log,
	}
	switch {
	case f.urls == "" && !f.embedded:
		if f.store != "" || f.listen != "" || f.routes != "" {
			return cfg, false, errors.New("-cluster-store, -cluster-listen and -cluster-routes need -cluster-embedded")
		}
		return cfg, false, nil
	case f.urls != "" && f.embedded:
		return cfg, false, errors.New("-cluster and -cluster-embedded cannot be used together")
	}
	if cfg.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return cfg, false, fmt.Errorf("-cluster-name: %w", err)
		}
		cfg.Name = tokenOf(host)
	}
	if f.embedded {
		if f.store == "" {
			return cfg, false, errors.New("-cluster-embedded needs -cluster-store")
		}
		cfg.Embedded = &nats.Embedded{StoreDir: f.store, Listen: f.client, ClusterListen: f.listen, Routes: split(f.routes)}
		return cfg, true, nil
	}
	cfg.URLs = split(f.urls)
	cfg.CredentialsFile, cfg.Username, cfg.Password, cfg.Token = f.creds, f.user, f.password, f.token
	if f.tlsCA != "" || f.tlsCert != "" {
		t, err := f.tlsConfig()
		if err != nil {
			return cfg, false, err
		}
		cfg.TLS = t
	}
	return cfg, true, nil
}

// tlsConfig is the TLS configuration the -cluster-tls-* flags describe.
func (f *clusterFlags) tlsConfig() (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("-cluster-tls-ca: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-cluster-tls-ca: no certificate in %s", f.tlsCA)
		}
	}
	if f.tlsCert != "" || f.tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("-cluster-tls-cert, -cluster-tls-key: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// split splits a comma-separated list, dropping empty items.
func split(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// tokenOf is s with every byte that is not a letter, digit, - or _ as _.
func tokenOf(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
