package cli

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Mosquitto's mosquitto.conf, read by tern -c. Each option Tern has an
// equivalent for becomes the flag that sets it (so that the command line
// can override it, and a bad value is reported as the flag would be, with
// the file, line and key); listeners become listenerSpecs. A Mosquitto
// option Tern does not support is an error, unless it changes nothing that
// a client or an operator relies on (then a warning is logged at start).
// docs/mosquitto.md holds the same mapping as a table.

// maxWirePacket is the largest MQTT packet: the largest remaining length
// and a five-byte fixed header. tern.Options.MaxPacketSize accepts it.
const maxWirePacket = 268435455 + 5

// publishOverhead bounds what a PUBLISH carries besides its payload: a
// fixed header, a topic of up to 65535 bytes with its length, a packet
// identifier. message_size_limit N lets payloads of N bytes through.
const publishOverhead = 5 + 2 + 65535 + 2

// assignment is a flag value a mosquitto.conf line gives.
type assignment struct {
	flag, value string
	pos         position
}

// mosqListener is a listener block of mosquitto.conf (or the default
// listener, set by options before any listener line).
type mosqListener struct {
	pos          position // the listener line
	port         int
	host         string
	unixPath     string
	protocol     string
	socketDomain string
	certfile     string
	keyfile      string
	cafile       string
	requireCert  bool
	identity     bool
	tlsVersion   uint16
	maxConns     *int
	maxConnsPos  position
	topicAlias   *int
	topicAliasAt position
}

// mosqConf is what a mosquitto.conf (and the files it includes) sets.
type mosqConf struct {
	assign    []assignment
	listeners []listenerSpec
	logDests  []logDest
	warnings  []string
}

type mosqParser struct {
	main      string
	conf      mosqConf
	listeners []*mosqListener
	cur       *mosqListener // nil before the first listener line
	def       mosqListener  // the default listener (port, bind_address)
	defWanted bool

	persistence           bool
	persistencePos        position
	location              string
	anonSet               bool
	msgLimit, packetLimit *assignment
	logTypes              []string
	logTypePos            position
	logFiles              int
}

// unsupported are the mosquitto.conf options Tern refuses, with the reason.
var unsupported = map[string]string{
	"auth_plugin":                    "plugins are not supported; write a Tern hook (hooks.go)",
	"plugin":                         "plugins are not supported; write a Tern hook (hooks.go)",
	"global_plugin":                  "plugins are not supported; write a Tern hook (hooks.go)",
	"auth_plugin_deny_special_chars": "plugins are not supported",
	"psk_file":                       "TLS pre-shared keys are not supported",
	"psk_hint":                       "TLS pre-shared keys are not supported",
	"capath":                         "use cafile: a PEM file may hold several CA certificates",
	"crlfile":                        "certificate revocation lists are not supported",
	"ciphers":                        "cipher lists are not supported: Go's TLS picks from its own secure suites",
	"ciphers_tls1.3":                 "cipher lists are not supported: Go's TLS picks from its own secure suites",
	"tls_engine":                     "OpenSSL engines are not supported",
	"tls_engine_kpass_sha1":          "OpenSSL engines are not supported",
	"bind_interface":                 "bind to the interface's address with listener PORT ADDRESS",
	"http_dir":                       "WebSocket listeners serve no files",
	"mount_point":                    "mount points are not supported",
	"clientid_prefixes":              "client identifier prefixes are not supported",
}

// bridgeOptions are the options of bridge sections, which Tern refuses.
var bridgeOptions = []string{
	"connection", "address", "addresses", "topic", "cleansession", "local_cleansession",
	"clientid", "local_clientid", "remote_clientid", "username", "password",
	"local_username", "local_password", "remote_username", "remote_password",
	"notifications", "notifications_local_only", "notification_topic", "keepalive_interval",
	"idle_timeout", "restart_timeout", "round_robin", "start_type", "threshold", "try_private",
}

// cosmetic are options without effect in Tern, and what to tell the user.
var cosmetic = map[string]string{
	"autosave_interval":        "Tern's store is written as state changes (see -durability), not saved periodically",
	"autosave_on_changes":      "Tern's store is written as state changes (see -durability), not saved periodically",
	"persistence_file":         "Tern keeps its state in tern.db under persistence_location",
	"connection_messages":      "Tern logs connections at debug level",
	"log_timestamp":            "Tern's log lines always carry a time",
	"log_timestamp_format":     "Tern's log lines carry RFC 3339 times",
	"log_facility":             "syslog is not a Tern log destination",
	"set_tcp_nodelay":          "Go sets TCP_NODELAY on every connection",
	"allow_duplicate_messages": "Tern sends one copy of a message to a client whose subscriptions overlap",
	"auto_id_prefix":           "Tern assigns its own client identifiers",
	"dhparamfile":              "Go's TLS uses ECDHE key exchange, which needs no DH parameters",
	"websockets_log_level":     "see -log-level",
	"websockets_headers_size":  "Go's HTTP server reads headers of up to 1 MiB",
}

// onlyValue are options Tern supports with one value only (Mosquitto's
// default, or the behaviour Tern always has), and why another is refused.
var onlyValue = map[string]struct{ value, why string }{
	"per_listener_settings":      {"false", "Tern applies password_file, acl_file and allow_anonymous to every listener"},
	"retain_available":           {"true", "retained messages are always available"},
	"upgrade_outgoing_qos":       {"false", "Tern delivers at the lower of the publish and subscription QoS, as MQTT requires"},
	"allow_zero_length_clientid": {"true", "Tern always assigns an identifier to a clean-session client that sends none"},
	"check_retain_source":        {"false", "Tern checks each retained message against the reader's ACL, not its publisher's"},
	"max_qos":                    {"2", "Tern accepts every QoS"},
	"max_inflight_bytes":         {"0", "use max_inflight_messages"},
	"max_queued_bytes":           {"0", "use max_queued_messages"},
	"memory_limit":               {"0", "Tern bounds memory per client: max_queued_messages, max_packet_size and -max-pending"},
	"use_subject_as_username":    {"false", "use use_identity_as_username (the Common Name)"},
	"use_username_as_clientid":   {"false", "not supported"},
	"tls_keyform":                {"pem", "OpenSSL engines are not supported"},
}

// loadMosquittoConf reads a mosquitto.conf and the files it includes.
func loadMosquittoConf(path string) (*mosqConf, error) {
	p := &mosqParser{main: path}
	if err := p.file(path, true); err != nil {
		return nil, err
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return &p.conf, nil
}

func (p *mosqParser) file(path string, main bool) error {
	lines, err := readConfigLines(path)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if l.key == "include_dir" {
			if !main {
				return l.errorf("only allowed in the main configuration file, as in Mosquitto")
			}
			if err := p.includeDir(l); err != nil {
				return err
			}
			continue
		}
		if err := p.line(l); err != nil {
			return err
		}
	}
	return nil
}

// includeDir reads the *.conf files of a directory in Mosquitto's order.
func (p *mosqParser) includeDir(l configLine) error {
	dir := l.value
	entries, err := os.ReadDir(dir)
	if err != nil {
		return l.errorf("%v", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") {
			names = append(names, e.Name())
		}
	}
	slices.SortFunc(names, mosquittoOrder)
	for _, n := range names {
		if err := p.file(filepath.Join(dir, n), false); err != nil {
			return err
		}
	}
	return nil
}

// mosquittoOrder sorts file names as Mosquitto's include_dir does:
// alphabetically, each upper-case letter just before its lower case
// (00.conf, A.conf, a.conf, B.conf, b.conf).
func mosquittoOrder(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	for i := 0; i < len(ra) && i < len(rb); i++ {
		la, lb := unicode.ToLower(ra[i]), unicode.ToLower(rb[i])
		if la != lb {
			return int(la) - int(lb)
		}
		if ra[i] != rb[i] {
			if unicode.IsUpper(ra[i]) {
				return -1
			}
			return 1
		}
	}
	return len(ra) - len(rb)
}

func (p *mosqParser) set(flag, value string, l configLine) {
	p.conf.assign = append(p.conf.assign, assignment{flag, value, l.position})
}

func (p *mosqParser) warn(l configLine, why string) {
	p.conf.warnings = append(p.conf.warnings, fmt.Sprintf("%s: has no effect in Tern: %s", l.position, why))
}

// listener returns the block listener options apply to.
func (p *mosqParser) listener() *mosqListener {
	if p.cur != nil {
		return p.cur
	}
	return &p.def
}

func (p *mosqParser) line(l configLine) error {
	k, v := l.key, l.value
	if why, ok := unsupported[k]; ok {
		return l.errorf("not supported by Tern: %s", why)
	}
	if slices.Contains(bridgeOptions, k) || strings.HasPrefix(k, "bridge_") {
		return l.errorf("not supported by Tern: bridges are not supported")
	}
	if strings.HasPrefix(k, "auth_opt_") || strings.HasPrefix(k, "plugin_opt_") {
		return l.errorf("not supported by Tern: plugins are not supported")
	}
	if why, ok := cosmetic[k]; ok {
		p.warn(l, why)
		return nil
	}
	if o, ok := onlyValue[k]; ok {
		if v != o.value {
			return l.errorf("not supported by Tern with a value other than %s: %s", o.value, o.why)
		}
		return nil
	}
	switch k {
	case "listener":
		return p.listenerLine(l)
	case "port":
		n, err := intIn(v, 1, 65535)
		if err != nil {
			return l.errorf("%v", err)
		}
		p.def.port, p.defWanted, p.def.pos = n, true, l.position
	case "bind_address":
		if v == "" {
			return l.errorf("missing address")
		}
		p.def.host, p.defWanted, p.def.pos = v, true, l.position
	case "protocol":
		if v != "mqtt" && v != "websockets" {
			return l.errorf("want mqtt or websockets, got %q", v)
		}
		p.listener().protocol = v
	case "socket_domain":
		if v != "ipv4" && v != "ipv6" {
			return l.errorf("want ipv4 or ipv6, got %q", v)
		}
		p.listener().socketDomain = v
	case "certfile":
		p.listener().certfile = v
	case "keyfile":
		p.listener().keyfile = v
	case "cafile":
		p.listener().cafile = v
	case "require_certificate":
		return p.boolInto(l, &p.listener().requireCert)
	case "use_identity_as_username":
		return p.boolInto(l, &p.listener().identity)
	case "tls_version":
		versions := map[string]uint16{"tlsv1.1": tls.VersionTLS11, "tlsv1.2": tls.VersionTLS12, "tlsv1.3": tls.VersionTLS13}
		tv, ok := versions[v]
		if !ok {
			return l.errorf("want tlsv1.1, tlsv1.2 or tlsv1.3, got %q", v)
		}
		p.listener().tlsVersion = tv
	case "max_connections":
		n, err := intIn(v, -1, math.MaxInt32)
		if err != nil {
			return l.errorf("%v", err)
		}
		ln := p.listener()
		ln.maxConns, ln.maxConnsPos = &n, l.position
	case "max_topic_alias":
		n, err := intIn(v, 0, 65535)
		if err != nil {
			return l.errorf("%v", err)
		}
		ln := p.listener()
		ln.topicAlias, ln.topicAliasAt = &n, l.position
	case "allow_anonymous":
		if _, err := mosqBool(v); err != nil {
			return l.errorf("%v", err)
		}
		p.anonSet = true
		p.set("allow-anonymous", v, l)
	case "password_file":
		p.set("password-file", v, l)
	case "acl_file":
		p.set("acl-file", v, l)
	case "persistence":
		b, err := mosqBool(v)
		if err != nil {
			return l.errorf("%v", err)
		}
		p.persistence, p.persistencePos = b, l.position
	case "persistence_location":
		p.location = v
	case "message_size_limit", "max_packet_size":
		n, err := intIn(v, 0, 268435455)
		if err != nil {
			return l.errorf("%v", err)
		}
		if k == "max_packet_size" && n > 0 && n < 20 {
			return l.errorf("below 20 bytes is forbidden, as in Mosquitto")
		}
		a := &assignment{"max-packet-size", strconv.Itoa(maxWirePacket), l.position}
		switch {
		case n > 0 && k == "message_size_limit":
			a.value = strconv.Itoa(min(n+publishOverhead, maxWirePacket))
		case n > 0:
			a.value = strconv.Itoa(n)
		}
		if k == "message_size_limit" {
			p.msgLimit = a
		} else {
			p.packetLimit = a
		}
	case "max_inflight_messages":
		n, err := intIn(v, 0, 65535)
		if err != nil {
			return l.errorf("%v", err)
		}
		if n == 0 {
			n = 65535 // no maximum: the most packet identifiers allow
		}
		p.set("max-inflight", strconv.Itoa(n), l)
	case "max_queued_messages":
		n, err := intIn(v, 0, math.MaxInt32)
		if err != nil {
			return l.errorf("%v", err)
		}
		if n == 0 {
			n = math.MaxInt32 // no maximum
		}
		p.set("max-queued", strconv.Itoa(n), l)
	case "queue_qos0_messages":
		if _, err := mosqBool(v); err != nil {
			return l.errorf("%v", err)
		}
		p.set("queue-qos0", v, l)
	case "persistent_client_expiration":
		d, err := mosqExpiration(v)
		if err != nil {
			return l.errorf("%v", err)
		}
		p.set("session-expiry", d.String(), l)
	case "max_keepalive":
		n, err := intIn(v, 0, 65535)
		if err != nil {
			return l.errorf("%v", err)
		}
		p.set("max-keep-alive", strconv.Itoa(n)+"s", l)
	case "sys_interval":
		n, err := intIn(v, 0, math.MaxInt32)
		if err != nil {
			return l.errorf("%v", err)
		}
		d := time.Duration(n) * time.Second
		if n == 0 {
			d = -1 // Mosquitto's 0 disables $SYS; Tern's negative does
		}
		p.set("sys-interval", d.String(), l)
	case "log_dest":
		return p.logDest(l)
	case "log_type":
		switch v {
		case "debug", "error", "warning", "notice", "information", "all", "none":
		case "subscribe", "unsubscribe", "websockets":
			p.warn(l, "Tern has no separate log type for "+v+"; see -log-level")
			return nil
		default:
			return l.errorf("unknown log type %q", v)
		}
		p.logTypes, p.logTypePos = append(p.logTypes, v), l.position
	case "pid_file":
		p.set("pid-file", v, l)
	case "user":
		if os.Geteuid() == 0 {
			return l.errorf("not supported by Tern: it does not change user; start it as that user (systemd's User=)")
		}
		// As in Mosquitto: no effect when not started as root.
	default:
		return l.errorf("unknown option")
	}
	return nil
}

func (p *mosqParser) boolInto(l configLine, dst *bool) error {
	b, err := mosqBool(l.value)
	if err != nil {
		return l.errorf("%v", err)
	}
	*dst = b
	return nil
}

// listenerLine starts a listener block: listener PORT [ADDRESS], or
// listener 0 PATH for a unix socket.
func (p *mosqParser) listenerLine(l configLine) error {
	f := strings.Fields(l.value)
	if len(f) < 1 || len(f) > 2 {
		return l.errorf("want listener PORT [ADDRESS]")
	}
	port, err := intIn(f[0], 0, 65535)
	if err != nil {
		return l.errorf("%v", err)
	}
	ln := &mosqListener{pos: l.position, port: port}
	if len(f) == 2 {
		ln.host = f[1]
	}
	if port == 0 {
		if ln.host == "" {
			return l.errorf("port 0 needs a unix socket path, as in Mosquitto")
		}
		ln.unixPath, ln.host = ln.host, ""
	}
	p.listeners = append(p.listeners, ln)
	p.cur = ln
	return nil
}

func (p *mosqParser) logDest(l configLine) error {
	kind, path, _ := strings.Cut(l.value, " ")
	switch kind {
	case "stdout", "stderr", "none":
		p.conf.logDests = append(p.conf.logDests, logDest{kind: kind})
	case "file":
		path = strings.TrimSpace(path)
		if path == "" {
			return l.errorf("file needs a path")
		}
		if p.logFiles++; p.logFiles > 1 {
			return l.errorf("only one file destination may be given, as in Mosquitto")
		}
		p.conf.logDests = append(p.conf.logDests, logDest{kind: kind, path: path})
	case "syslog", "topic", "dlt":
		return l.errorf("not supported by Tern: log destination %s (use stdout, stderr, file or none)", kind)
	default:
		return l.errorf("unknown log destination %q", kind)
	}
	return nil
}

// finish turns the listener blocks into listenerSpecs and the settings
// that depend on several lines into flags.
func (p *mosqParser) finish() error {
	if p.defWanted {
		def := p.def
		if def.port == 0 {
			def.port = 1883
		}
		p.listeners = append([]*mosqListener{&def}, p.listeners...)
	} else if p.def.certfile != "" || p.def.protocol != "" || p.def.cafile != "" {
		return fmt.Errorf("%s: listener options before the first listener line set the default listener, which needs port or bind_address", p.main)
	}
	localOnly := len(p.listeners) == 0
	if localOnly {
		// As Mosquitto 2 without a listener: port 1883 on the loopback
		// interface only, and anonymous clients allowed unless the file
		// says otherwise.
		p.listeners = []*mosqListener{{pos: position{p.main, 0, "listener"}, port: 1883, host: "localhost"}}
	}
	if !p.anonSet {
		p.conf.assign = append(p.conf.assign, assignment{"allow-anonymous", strconv.FormatBool(localOnly), position{p.main, 0, "allow_anonymous"}})
	}
	identities, conns, unlimited := 0, 0, false
	var connsPos position
	var alias *int
	var aliasPos position
	for _, ln := range p.listeners {
		spec, err := ln.spec()
		if err != nil {
			return err
		}
		p.conf.listeners = append(p.conf.listeners, spec)
		if ln.socketDomain != "" && ln.protocol == "websockets" {
			p.conf.warnings = append(p.conf.warnings, ln.pos.String()+": socket_domain has no effect on a websockets listener, as in Mosquitto")
		}
		if ln.identity {
			identities++
		}
		if ln.maxConns != nil {
			if *ln.maxConns < 0 {
				unlimited = true
			}
			conns += max(*ln.maxConns, 0)
			connsPos = ln.maxConnsPos
		}
		if ln.topicAlias != nil {
			if alias != nil && *alias != *ln.topicAlias {
				return &configError{ln.topicAliasAt, fmt.Errorf("one max_topic_alias applies to every listener in Tern, and %d was given on %s", *alias, aliasPos)}
			}
			alias, aliasPos = ln.topicAlias, ln.topicAliasAt
		}
	}
	if identities > 0 && identities < len(p.listeners) {
		return fmt.Errorf("%s: use_identity_as_username is set on %d of %d listeners: Tern applies it to every listener (tern.Options.UseCertCNAsUsername), so set it on all or none", p.main, identities, len(p.listeners))
	}
	if identities > 0 {
		p.conf.assign = append(p.conf.assign, assignment{"use-cert-cn-as-username", "true", p.listeners[0].pos})
	}
	switch {
	case unlimited:
		p.conf.assign = append(p.conf.assign, assignment{"max-connections", strconv.Itoa(math.MaxInt32), connsPos})
	case conns > 0:
		p.conf.assign = append(p.conf.assign, assignment{"max-connections", strconv.Itoa(conns), connsPos})
	}
	if alias != nil {
		v := *alias
		if v == 0 {
			v = -1 // Mosquitto's 0 refuses topic aliases; Tern's -1 does
		}
		p.conf.assign = append(p.conf.assign, assignment{"topic-alias-maximum", strconv.Itoa(v), aliasPos})
	}
	// The tighter of message_size_limit and max_packet_size.
	limit := p.packetLimit
	if p.msgLimit != nil {
		if limit == nil || atoi(p.msgLimit.value) < atoi(limit.value) {
			limit = p.msgLimit
		}
	}
	if limit != nil {
		p.conf.assign = append(p.conf.assign, *limit)
	}
	if len(p.logTypes) > 0 {
		p.conf.assign = append(p.conf.assign, assignment{"log-level", logTypesLevel(p.logTypes), p.logTypePos})
	}
	if p.persistence {
		loc := p.location
		if loc == "" {
			loc = "." // Mosquitto's default: the working directory
		}
		p.conf.assign = append(p.conf.assign, assignment{"data", loc, p.persistencePos})
	}
	return nil
}

// spec checks a listener block and returns the listener to open.
func (ln *mosqListener) spec() (listenerSpec, error) {
	fail := func(format string, args ...any) (listenerSpec, error) {
		return listenerSpec{}, &configError{ln.pos, fmt.Errorf(format, args...)}
	}
	s := listenerSpec{
		network: "tcp", cert: ln.certfile, key: ln.keyfile, cafile: ln.cafile,
		requireCert: ln.requireCert, minTLS: ln.tlsVersion, resolve: true, where: ln.pos.file,
	}
	if ln.pos.line > 0 {
		s.where = fmt.Sprintf("%s:%d", ln.pos.file, ln.pos.line)
	}
	if (ln.certfile == "") != (ln.keyfile == "") {
		return fail("certfile and keyfile go together")
	}
	secure := ln.certfile != ""
	if !secure && (ln.requireCert || ln.cafile != "" || ln.tlsVersion != 0) {
		return fail("TLS options (cafile, require_certificate, tls_version) need certfile and keyfile")
	}
	if ln.requireCert && ln.cafile == "" {
		return fail("require_certificate needs cafile")
	}
	if ln.identity && !ln.requireCert {
		return fail("use_identity_as_username needs require_certificate true")
	}
	switch {
	case ln.unixPath != "":
		if secure || ln.protocol == "websockets" {
			return fail("a unix socket listener serves plain MQTT")
		}
		s.kind, s.network, s.addr, s.resolve = "unix", "unix", ln.unixPath, false
		return s, nil
	case ln.protocol == "websockets" && secure:
		s.kind = "wss"
	case ln.protocol == "websockets":
		s.kind = "ws"
	case secure:
		s.kind = "tls"
	default:
		s.kind = "tcp"
	}
	if ln.protocol != "websockets" {
		switch ln.socketDomain {
		case "ipv4":
			s.network = "tcp4"
		case "ipv6":
			s.network = "tcp6"
		}
	}
	s.addr = net.JoinHostPort(ln.host, strconv.Itoa(ln.port))
	return s, nil
}

// apply sets the flags the file gives, but those set on the command line
// or in the -config file, and adds its listeners.
func (m *mosqConf) apply(fs *flag.FlagSet, s *settings, set map[string]bool) error {
	for _, a := range m.assign {
		if set[a.flag] {
			continue
		}
		if err := fs.Set(a.flag, a.value); err != nil {
			return &configError{a.pos, err}
		}
		if a.pos.line > 0 {
			s.origin[a.flag] = a.pos
		}
	}
	if !set["tcp"] {
		s.tcp = "" // the file's listeners replace the default one
	}
	s.listeners = append(s.listeners, m.listeners...)
	if !set["log-file"] {
		s.logDests = m.logDests
	}
	s.warnings = append(s.warnings, m.warnings...)
	s.mosquitto = true
	return nil
}

// mosqBool parses a Mosquitto boolean, which is true or false.
func mosqBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, got %q", v)
}

// intIn parses an integer within [lo, hi].
func intIn(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %q", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("want an integer from %d to %d, got %d", lo, hi, n)
	}
	return n, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// mosqExpiration parses persistent_client_expiration: an integer and a
// unit, h (hours), d (days), w (weeks), m (months of 30 days) or y (years
// of 365 days), as Mosquitto does.
func mosqExpiration(v string) (time.Duration, error) {
	units := map[byte]time.Duration{'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour, 'm': 30 * 24 * time.Hour, 'y': 365 * 24 * time.Hour}
	bad := fmt.Errorf("want an integer and a unit (h, d, w, m or y), such as 14d, got %q", v)
	if len(v) < 2 {
		return 0, bad
	}
	unit, ok := units[v[len(v)-1]]
	n, err := strconv.Atoi(v[:len(v)-1])
	if !ok || err != nil || n <= 0 {
		return 0, bad
	}
	if n > int(math.MaxInt64/unit) {
		return 0, errors.New("too long")
	}
	return time.Duration(n) * unit, nil
}

// logTypesLevel returns the -log-level that shows the log_type lines' types.
func logTypesLevel(types []string) string {
	rank := map[string]int{"debug": 0, "all": 0, "information": 1, "notice": 1, "warning": 2, "error": 3, "none": 4}
	names := []string{"debug", "info", "warn", "error", "none"}
	best := 4
	for _, t := range types {
		best = min(best, rank[t])
	}
	return names[best]
}
