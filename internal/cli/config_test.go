package cli

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
)

// TestTernConfigFile: a -config file sets flags by their snake_case
// names; the command line wins over it.
func TestTernConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "tern.conf", `# Tern configuration
tcp 127.0.0.1:1884
max_packet_size 4194304
	max_inflight   32
session_expiry 48h
shared_subscriptions hash-client
ws_path /broker/mqtt
data `+filepath.Join(dir, "state dir")+`
`)
	s, err := parseSettings([]string{"-config", conf, "-max-inflight", "64"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:1884", s.tcp)
	assert.Equal(t, 4194304, s.opts.MaxPacketSize)
	assert.Equal(t, 64, s.opts.MaxInflight, "the command line wins")
	assert.Equal(t, 48*time.Hour, s.opts.SessionExpiry)
	assert.Equal(t, tern.ShareHashClient, s.opts.SharedSubscriptions)
	assert.Equal(t, "/broker/mqtt", s.wsOpts.Path)
	assert.Equal(t, filepath.Join(dir, "state dir"), s.data, "a value is the rest of the line")
}

// TestConfigErrorsNameFileLineAndKey: each kind of mistake in either
// config file stops the program with an error naming the file, the line
// and the key.
func TestConfigErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct {
		name     string
		flag     string // -config or -c
		content  string
		line     int
		key      string
		contains string
	}{
		{"tern: unknown key", "-config", "tcp :0\nmax_pakcet_size 10\n", 2, "max_pakcet_size", "unknown key"},
		{"tern: flag spelling", "-config", "max-packet-size 10\n", 1, "max-packet-size", "unknown key"},
		{"tern: command-line only", "-config", "\nhash_password true\n", 2, "hash_password", "unknown key"},
		{"tern: bad integer", "-config", "# c\nmax_inflight many\n", 2, "max_inflight", `"many"`},
		{"tern: bad duration", "-config", "session_expiry 2d\n", 1, "session_expiry", "Go duration"},
		{"tern: bad bool", "-config", "queue_qos0 yes please\n", 1, "queue_qos0", "true or false"},
		{"tern: missing value", "-config", "max_inflight\n", 1, "max_inflight", "missing value"},
		{"tern: twice", "-config", "max_inflight 1\nmax_inflight 2\n", 2, "max_inflight", "first on line 1"},
		{"mosquitto: unknown option", "-c", "listener 1883\nmax_inflight 5\n", 2, "max_inflight", "unknown option"},
		{"mosquitto: bad integer", "-c", "max_inflight_messages lots\n", 1, "max_inflight_messages", `"lots"`},
		{"mosquitto: out of range", "-c", "listener 70000\n", 1, "listener", "70000"},
		{"mosquitto: bad boolean", "-c", "\n\nallow_anonymous yes\n", 3, "allow_anonymous", "true or false"},
		{"mosquitto: bad expiration", "-c", "persistent_client_expiration 5s\n", 1, "persistent_client_expiration", "h, d, w, m or y"},
		{"mosquitto: bad protocol", "-c", "listener 1883\nprotocol http\n", 2, "protocol", "mqtt or websockets"},
		{"mosquitto: unsupported", "-c", "listener 1883\nauth_plugin /usr/lib/x.so\n", 2, "auth_plugin", "not supported by Tern"},
		{"mosquitto: unsupported bridge", "-c", "connection other\naddress 10.0.0.1\n", 1, "connection", "bridges are not supported"},
		{"mosquitto: unsupported value", "-c", "per_listener_settings true\n", 1, "per_listener_settings", "every listener"},
		{"mosquitto: unsupported log destination", "-c", "log_dest syslog\n", 1, "log_dest", "not supported by Tern"},
		{"mosquitto: forbidden packet size", "-c", "max_packet_size 10\n", 1, "max_packet_size", "20 bytes"},
		{"mosquitto: TLS without certificate", "-c", "listener 8883\ncafile ca.pem\nrequire_certificate true\n", 1, "listener", "certfile"},
		{"mosquitto: topic alias per listener", "-c", "listener 1\nmax_topic_alias 5\nlistener 2\nmax_topic_alias 6\n", 4, "max_topic_alias", "one max_topic_alias applies to every listener"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "broker.conf", tc.content)
			_, err := parseSettings([]string{tc.flag, path}, &bytes.Buffer{})
			require.Error(t, err)
			want := path + ":" + strconv.Itoa(tc.line) + ": " + tc.key + ": "
			assert.True(t, strings.HasPrefix(err.Error(), want), "%q does not start with %q", err, want)
			assert.Contains(t, err.Error(), tc.contains)
		})
	}
}

// TestOptionRangeErrorsNameTheLine: a value the broker refuses (checked by
// tern.New) is reported with the config line that gave it, and nothing is
// served.
func TestOptionRangeErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ flag, content, want string }{
		{"-config", "tcp 127.0.0.1:0\n\nmax_inflight 70000\n", ":3: max_inflight: tern: Options.MaxInflight"},
		{"-c", "listener 0 " + filepath.Join(dir, "s") + "\nmax_keepalive 7\nmax_packet_size 30\n", ":3: max_packet_size: tern: Options.MaxPacketSize"},
	} {
		path := writeFile(t, dir, "broker.conf", tc.content)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		var stderr bytes.Buffer
		err := run(ctx, []string{tc.flag, path}, env{stdin: strings.NewReader(""), stdout: &stderr, stderr: &stderr})
		cancel()
		require.Error(t, err)
		assert.Equal(t, path+tc.want, err.Error()[:len(path+tc.want)])
		assert.NotContains(t, stderr.String(), "msg=listening")
	}
}

// TestMosquittoConfMapping: the options with a Tern equivalent set it,
// with Mosquitto's units and special values.
func TestMosquittoConfMapping(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "mosquitto.conf", `# A Mosquitto configuration
per_listener_settings false
allow_anonymous true
password_file `+dir+`/passwd
acl_file `+dir+`/acl
persistence true
persistence_location `+dir+`/state
max_inflight_messages 0
max_queued_messages 500
queue_qos0_messages true
persistent_client_expiration 2w
max_keepalive 120
sys_interval 0
message_size_limit 3000000
log_type warning
log_type error
log_dest stdout
log_dest file `+dir+`/tern.log
pid_file `+dir+`/tern.pid

listener 1883 127.0.0.1
socket_domain ipv4
max_connections 100

listener 8080
protocol websockets
max_connections 50

listener 8883 ::1
certfile `+dir+`/server.pem
keyfile `+dir+`/server.key
cafile `+dir+`/ca.pem
require_certificate true
tls_version tlsv1.3

listener 0 `+dir+`/mqtt.sock
`)
	s, err := parseSettings([]string{"-c", conf}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.True(t, s.allowAnonymous)
	assert.Equal(t, dir+"/passwd", s.passwordFile)
	assert.Equal(t, dir+"/acl", s.aclFile)
	assert.Equal(t, dir+"/state", s.data)
	assert.Equal(t, 65535, s.opts.MaxInflight, "0: no maximum")
	assert.Equal(t, 500, s.opts.MaxQueued)
	assert.True(t, s.opts.QueueQoS0)
	assert.Equal(t, 14*24*time.Hour, s.opts.SessionExpiry)
	assert.Equal(t, 120*time.Second, s.opts.MaxKeepAlive)
	assert.Negative(t, s.opts.SysInterval, "0 disables $SYS")
	assert.Equal(t, 3000000+publishOverhead, s.opts.MaxPacketSize, "a 3 MB payload fits")
	assert.Equal(t, 150, s.opts.MaxConnections, "the listeners' limits added up")
	assert.Equal(t, "warn", s.logLevel)
	assert.Equal(t, []logDest{{kind: "stdout"}, {kind: "file", path: dir + "/tern.log"}}, s.logDests)
	assert.Equal(t, dir+"/tern.pid", s.pidFile)
	assert.Empty(t, s.tcp, "the file's listeners replace -tcp's default")
	require.Len(t, s.listeners, 4)
	l := s.listeners
	assert.Equal(t, listenerSpec{kind: "tcp", network: "tcp4", addr: "127.0.0.1:1883", resolve: true, where: conf + ":21"}, l[0])
	assert.Equal(t, listenerSpec{kind: "ws", network: "tcp", addr: ":8080", resolve: true, where: conf + ":25"}, l[1])
	assert.Equal(t, listenerSpec{kind: "tls", network: "tcp", addr: "[::1]:8883", cert: dir + "/server.pem", key: dir + "/server.key",
		cafile: dir + "/ca.pem", requireCert: true, minTLS: 0x0304, resolve: true, where: conf + ":29"}, l[2])
	assert.Equal(t, listenerSpec{kind: "unix", network: "unix", addr: dir + "/mqtt.sock", where: conf + ":36"}, l[3])
}

// TestMosquittoConfDefaults: the special values and defaults Mosquitto
// gives.
func TestMosquittoConfDefaults(t *testing.T) {
	parse := func(t *testing.T, content string, args ...string) *settings {
		t.Helper()
		conf := writeFile(t, t.TempDir(), "mosquitto.conf", content)
		s, err := parseSettings(append([]string{"-c", conf}, args...), &bytes.Buffer{})
		require.NoError(t, err)
		return s
	}
	t.Run("no listener: loopback port 1883, anonymous allowed", func(t *testing.T) {
		s := parse(t, "max_queued_messages 0\n")
		require.Len(t, s.listeners, 1)
		assert.Equal(t, "localhost:1883", s.listeners[0].addr)
		assert.True(t, s.listeners[0].resolve, "every address of localhost, as Mosquitto")
		assert.True(t, s.allowAnonymous)
		assert.Equal(t, math.MaxInt32, s.opts.MaxQueued, "0: no maximum")
	})
	t.Run("a listener: anonymous refused unless allowed", func(t *testing.T) {
		s := parse(t, "listener 1883\n")
		assert.False(t, s.allowAnonymous)
		assert.True(t, s.mosquitto, "Mosquitto's rules apply without files: nobody connects")
	})
	t.Run("port and bind_address: the default listener", func(t *testing.T) {
		s := parse(t, "port 1999\nbind_address 127.0.0.2\nlistener 2000\n")
		require.Len(t, s.listeners, 2)
		assert.Equal(t, "127.0.0.2:1999", s.listeners[0].addr)
		assert.Equal(t, ":2000", s.listeners[1].addr)
	})
	t.Run("max_connections -1 is unlimited", func(t *testing.T) {
		s := parse(t, "listener 1\nmax_connections 10\nlistener 2\nmax_connections -1\n")
		assert.Equal(t, math.MaxInt32, s.opts.MaxConnections)
	})
	t.Run("message_size_limit 0 is the protocol's limit", func(t *testing.T) {
		s := parse(t, "message_size_limit 0\n")
		assert.Equal(t, maxWirePacket, s.opts.MaxPacketSize)
	})
	t.Run("the tighter of max_packet_size and message_size_limit", func(t *testing.T) {
		s := parse(t, "max_packet_size 1000\nmessage_size_limit 5000000\n")
		assert.Equal(t, 1000, s.opts.MaxPacketSize)
	})
	t.Run("persistence in the working directory", func(t *testing.T) {
		s := parse(t, "persistence true\n")
		assert.Equal(t, ".", s.data)
	})
	t.Run("expiration units", func(t *testing.T) {
		for v, want := range map[string]time.Duration{"1h": time.Hour, "2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour, "1m": 30 * 24 * time.Hour, "1y": 365 * 24 * time.Hour} {
			assert.Equal(t, want, parse(t, "persistent_client_expiration "+v+"\n").opts.SessionExpiry, v)
		}
	})
	t.Run("identity as user name on every listener", func(t *testing.T) {
		s := parse(t, "listener 8883\ncertfile c\nkeyfile k\ncafile ca\nrequire_certificate true\nuse_identity_as_username true\n")
		assert.True(t, s.opts.UseCertCNAsUsername)
	})
	t.Run("the command line wins", func(t *testing.T) {
		s := parse(t, "max_inflight_messages 10\nlistener 1883\n", "-max-inflight", "5", "-tcp", "127.0.0.1:0")
		assert.Equal(t, 5, s.opts.MaxInflight)
		assert.Equal(t, "127.0.0.1:0", s.tcp, "a -tcp given is served besides the file's listeners")
		assert.Len(t, s.listeners, 1)
	})
	t.Run("cosmetic options are warnings", func(t *testing.T) {
		s := parse(t, "autosave_interval 60\nlistener 1883\nset_tcp_nodelay true\n")
		require.Len(t, s.warnings, 2)
		assert.Contains(t, s.warnings[0], ":1: autosave_interval: has no effect in Tern")
		assert.Contains(t, s.warnings[1], ":3: set_tcp_nodelay: has no effect in Tern")
	})
	t.Run("use_identity_as_username on some listeners only", func(t *testing.T) {
		conf := writeFile(t, t.TempDir(), "mosquitto.conf", "listener 1883\nlistener 8883\ncertfile c\nkeyfile k\ncafile ca\nrequire_certificate true\nuse_identity_as_username true\n")
		_, err := parseSettings([]string{"-c", conf}, &bytes.Buffer{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "use_identity_as_username is set on 1 of 2 listeners")
	})
}

// TestIncludeDirOrder: include_dir reads the *.conf files of a directory
// in Mosquitto's order, upper case before the lower case of a letter, and
// a later file overrides an earlier one.
func TestIncludeDirOrder(t *testing.T) {
	names := []string{"b.conf", "A.conf", "01.conf", "a.conf", "B.conf", "00.conf"}
	got := append([]string(nil), names...)
	slices.SortFunc(got, mosquittoOrder)
	assert.Equal(t, []string{"00.conf", "01.conf", "A.conf", "a.conf", "B.conf", "b.conf"}, got, "mosquitto.conf(5)'s example")

	dir := t.TempDir()
	inc := filepath.Join(dir, "conf.d")
	require.NoError(t, os.Mkdir(inc, 0o700))
	for i, n := range names {
		writeFile(t, inc, n, "max_queued_messages "+strconv.Itoa(100+i)+"\n")
	}
	writeFile(t, inc, "ignored.txt", "not a config file\n")
	conf := writeFile(t, dir, "mosquitto.conf", "listener 1883\ninclude_dir "+inc+"\n")
	s, err := parseSettings([]string{"-c", conf}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 100, s.opts.MaxQueued, "b.conf comes last")

	writeFile(t, inc, "c.conf", "include_dir "+inc+"\n")
	_, err = parseSettings([]string{"-c", conf}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(inc, "c.conf")+":1: include_dir: only allowed in the main configuration file")
}

// TestDebianMosquittoConf: the mosquitto.conf Debian installs (with its
// paths moved into a temporary directory) is read as it is.
func TestDebianMosquittoConf(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "conf.d"), 0o700))
	writeFile(t, filepath.Join(dir, "conf.d"), "local.conf", "listener 1883\nallow_anonymous true\n")
	conf := writeFile(t, dir, "mosquitto.conf", `# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file `+dir+`/mosquitto.pid

persistence true
persistence_location `+dir+`/

log_dest file `+dir+`/mosquitto.log

include_dir `+dir+`/conf.d
`)
	s, err := parseSettings([]string{"-c", conf}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, dir+"/", s.data)
	assert.Equal(t, dir+"/mosquitto.pid", s.pidFile)
	assert.Equal(t, []logDest{{kind: "file", path: dir + "/mosquitto.log"}}, s.logDests)
	assert.True(t, s.allowAnonymous)
	require.Len(t, s.listeners, 1)
	assert.Equal(t, ":1883", s.listeners[0].addr)
}
