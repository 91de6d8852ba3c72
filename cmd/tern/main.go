// Command tern runs Tern as a standalone MQTT broker, in place of
// Mosquitto: it reads Mosquitto's mosquitto.conf, password file and ACL
// file as they are.
//
//	tern                                   # MQTT on :1883, no authentication
//	tern -c /etc/mosquitto/mosquitto.conf  # Mosquitto's configuration
//	tern -config /etc/tern.conf            # Tern's: the flags, one per line
//	tern -tcp 127.0.0.1:1883 -ws :8080 -http 127.0.0.1:8081
//	tern -tls :8883 -cert server.pem -key server.key -max-packet-size 4194304
//	tern -password-file passwd -acl-file acl -data /var/lib/tern
//	tern passwd [-c | -D] [-b] FILE USER [PASSWORD]   # as mosquitto_passwd
//	tern -h                                # every flag and config key
//
// Every field of tern.Options, listeners.TLSOptions,
// listeners.WebSocketOptions and bolt.Options is a flag (-max-packet-size)
// and a -config key (max_packet_size). SIGHUP reloads the users and ACL,
// the TLS certificates and the log file without dropping connections;
// SIGINT and SIGTERM stop the broker cleanly.
//
// The program is package internal/cli. Clustering (-cluster, module
// cluster/nats) is in the clustered build: cd cluster/nats && go run
// ./cmd/tern.
package main

//go:generate go run ../../internal/optdoc/gen -root ../.. -out ../../internal/cli/optdocs_gen.go

import "github.com/ternmq/tern/internal/cli"

func main() { cli.Main(nil) }
