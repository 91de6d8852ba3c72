package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/storage/bolt"
)

// settings is everything the command line and the config files set.
type settings struct {
	opts      tern.Options
	tlsOpts   listeners.TLSOptions
	wsOpts    listeners.WebSocketOptions
	storeOpts bolt.Options

	tcp, tls, ws, wss, unix string
	cert, key, cafile       string
	http                    string
	authFile                string
	passwordFile, aclFile   string
	allowAnonymous          bool
	data                    string
	logFormat, logLevel     string
	logFile                 string
	verbose                 bool
	pidFile                 string
	cpuProfile              string
	hashPassword            bool
	mosquittoConf           string
	configFile              string

	// From mosquitto.conf only.
	listeners []listenerSpec // the file's listeners, besides those of the flags
	logDests  []logDest      // log_dest lines
	warnings  []string       // options that have no effect in Tern, logged at start
	mosquitto bool           // authenticate with auth.Mosquitto even without files, as Mosquitto does

	ext *Extension // the build's extension, nil for none

	// origin says which config file line set a flag, so that an error
	// tern.New finds in a value names that line.
	origin map[string]position
	fields map[string]string // option flag -> Go field, "tern.Options.MaxInflight"
}

// flagGroup is a heading of tern -h and the flags under it.
type flagGroup struct {
	title string
	flags []string
}

// notInConfig are flags that only make sense on the command line.
var notInConfig = map[string]bool{"c": true, "config": true, "hash-password": true}

// aliases are flags kept for compatibility, and the flag they stand for.
var aliases = map[string]string{"cert-username": "use-cert-cn-as-username"}

// newFlagSet returns the flags that set s, and the groups tern -h shows.
func newFlagSet(s *settings, stderr io.Writer) (*flag.FlagSet, []flagGroup, error) {
	return newFlagSetWith(s, stderr, nil)
}

// newFlagSetWith is newFlagSet with the flags of ext (nil: none).
func newFlagSetWith(s *settings, stderr io.Writer, ext *Extension) (*flag.FlagSet, []flagGroup, error) {
	fs := flag.NewFlagSet("tern", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.mosquittoConf, "c", "", "read this Mosquitto configuration `file` (mosquitto.conf); see docs/mosquitto.md")
	fs.StringVar(&s.configFile, "config", "", "read this Tern configuration `file`: one \"key value\" per line, the keys being these flags' names with _ for - (max_packet_size 2097152)")

	fs.StringVar(&s.tcp, "tcp", ":1883", "MQTT over TCP listen `address` (empty disables; with -c, only the file's listeners unless given)")
	fs.StringVar(&s.tls, "tls", "", "MQTT over TLS listen `address` (needs -cert and -key)")
	fs.StringVar(&s.ws, "ws", "", "MQTT over WebSocket listen `address` (path /mqtt)")
	fs.StringVar(&s.wss, "wss", "", "MQTT over WebSocket with TLS listen `address` (path /mqtt; needs -cert and -key)")
	fs.StringVar(&s.unix, "unix", "", "MQTT over a unix domain socket at this `path`")
	fs.StringVar(&s.cert, "cert", "", "TLS certificate `file` (PEM), reloaded on SIGHUP")
	fs.StringVar(&s.key, "key", "", "TLS private key `file` (PEM), reloaded on SIGHUP")
	fs.StringVar(&s.cafile, "cafile", "", "CA certificates `file` (PEM): require client certificates signed by them")

	fs.StringVar(&s.authFile, "auth", "", "Tern users and ACL `file` (auth/FORMAT.md), reloaded on SIGHUP")
	fs.StringVar(&s.passwordFile, "password-file", "", "Mosquitto password `file` (mosquitto_passwd, tern passwd), reloaded on SIGHUP")
	fs.StringVar(&s.aclFile, "acl-file", "", "Mosquitto ACL `file`, reloaded on SIGHUP")
	fs.BoolVar(&s.allowAnonymous, "allow-anonymous", false, "with -password-file or -acl-file: let clients without a user name connect (Mosquitto's allow_anonymous)")
	fs.BoolVar(&s.hashPassword, "hash-password", false, "read a password on standard input, print its bcrypt hash for -auth files, and exit")

	fs.StringVar(&s.data, "data", "", "`directory` for persistent state (embedded bbolt file tern.db); empty keeps state in memory")

	fs.StringVar(&s.http, "http", "", "HTTP `address` for /healthz, /stats and /metrics")
	fs.StringVar(&s.logFormat, "log-format", "text", "log `format`: text or json")
	fs.StringVar(&s.logLevel, "log-level", "info", "log `level`: debug, info, warn, error or none")
	fs.BoolVar(&s.verbose, "v", false, "debug logging (as -log-level debug)")
	fs.StringVar(&s.logFile, "log-file", "", "append logs to this `file` instead of standard error; reopened on SIGHUP")
	fs.StringVar(&s.pidFile, "pid-file", "", "write the process id to this `file`, removed at exit")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "write a CPU profile to this `file` until exit")

	groups := []flagGroup{
		{"Configuration files", []string{"c", "config"}},
		{"Listeners", []string{"tcp", "tls", "ws", "wss", "unix", "cert", "key", "cafile"}},
		{"Authentication and access control", []string{"auth", "password-file", "acl-file", "allow-anonymous", "hash-password"}},
		{"Persistence", []string{"data"}},
		{"Logs and operations", []string{"log-format", "log-level", "v", "log-file", "http", "pid-file", "cpuprofile"}},
	}
	if ext != nil {
		groups = append(groups, flagGroup{ext.Title, ext.Flags(fs)})
	}
	opt, err := optionFlags(optionStructs(s))
	if err != nil {
		return nil, nil, err
	}
	titles := map[string]string{
		"tern.Options":               "Broker (tern.Options)",
		"listeners.TLSOptions":       "TLS listeners (listeners.TLSOptions)",
		"listeners.WebSocketOptions": "WebSocket listeners (listeners.WebSocketOptions)",
		"bolt.Options":               "Persistence with -data (bolt.Options)",
	}
	byTitle := map[string]int{}
	for _, o := range opt {
		fs.Var(o.value, o.name, optionUsage(o))
		s.fields[o.name] = o.field
		st := o.field[:strings.LastIndexByte(o.field, '.')]
		i, ok := byTitle[st]
		if !ok {
			i = len(groups)
			byTitle[st] = i
			groups = append(groups, flagGroup{title: titles[st]})
		}
		groups[i].flags = append(groups[i].flags, o.name)
	}
	for alias, name := range aliases {
		f := fs.Lookup(name)
		if f == nil {
			return nil, nil, fmt.Errorf("alias -%s: no flag -%s", alias, name)
		}
		fs.Var(f.Value, alias, "same as -"+name)
		groups[1].flags = append(groups[1].flags, alias)
	}
	return fs, groups, nil
}

// optionUsage is the help of an option flag: its field's doc comment.
func optionUsage(o optFlag) string {
	doc := optionDocs[o.field]
	if doc == "" {
		doc = "(no documentation: run go generate ./cmd/tern)"
	}
	return doc
}

// errHelp is returned when -h was asked for: the usage was printed.
var errHelp = flag.ErrHelp

// defaultReleaseMemoryAfter is the standalone broker's
// tern.Options.ReleaseMemoryAfter.
const defaultReleaseMemoryAfter = 250 * time.Millisecond

// parseSettings reads the command line, then the files it names: a value
// on the command line wins over -config, which wins over -c.
func parseSettings(args []string, stderr io.Writer) (*settings, error) {
	return parseSettingsWith(args, stderr, nil)
}

// parseSettingsWith is parseSettings with the flags of ext (nil: none).
func parseSettingsWith(args []string, stderr io.Writer, ext *Extension) (*settings, error) {
	if ext == nil {
		if err := clusterFlag(args); err != nil {
			return nil, err
		}
	}
	s := &settings{origin: map[string]position{}, fields: map[string]string{}, ext: ext}
	// The standalone broker owns its process, so it returns the memory of
	// connection bursts to the system (a library leaves that to its
	// application).
	s.opts.ReleaseMemoryAfter = defaultReleaseMemoryAfter
	fs, groups, err := newFlagSetWith(s, stderr, ext)
	if err != nil {
		return nil, err
	}
	fs.Usage = func() {} // the error says what is wrong; -h prints the flags
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stderr, fs, groups)
		} else {
			fmt.Fprintln(stderr, "tern -h lists the flags.")
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (the passwd subcommand comes first: tern passwd ...)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[canonical(f.Name)] = true })

	if s.configFile != "" {
		lines, err := readConfigLines(s.configFile)
		if err != nil {
			return nil, err
		}
		if err := applyTernConfig(fs, s, lines, set); err != nil {
			return nil, err
		}
	}
	if s.mosquittoConf != "" {
		m, err := loadMosquittoConf(s.mosquittoConf)
		if err != nil {
			return nil, err
		}
		if err := m.apply(fs, s, set); err != nil {
			return nil, err
		}
	}
	return s, s.check()
}

// errClusterBuild answers a -cluster flag in the build without clustering.
var errClusterBuild = errors.New("clustering (-cluster, -cluster-embedded and the other -cluster-* flags) is in the clustered build of tern, module cluster/nats: cd cluster/nats && go run ./cmd/tern -cluster-embedded ... (see docs/cluster.md)")

// clusterFlag refuses a -cluster flag on the command line of the build
// without clustering, saying where clustering is.
func clusterFlag(args []string) error {
	for _, a := range args {
		if a == "--" {
			break // the flags end here
		}
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "-") && strings.HasPrefix(name, "cluster") {
			return fmt.Errorf("-%s: %w", strings.SplitN(name, "=", 2)[0], errClusterBuild)
		}
	}
	return nil
}

// canonical returns the flag an alias stands for.
func canonical(name string) string {
	if c, ok := aliases[name]; ok {
		return c
	}
	return name
}

// applyTernConfig sets the flags a Tern config file names, but those set
// on the command line. A key given twice is an error.
func applyTernConfig(fs *flag.FlagSet, s *settings, lines []configLine, set map[string]bool) error {
	seen := map[string]int{}
	var fromFile []string
	for _, l := range lines {
		name := strings.ReplaceAll(l.key, "_", "-")
		f := fs.Lookup(name)
		if f == nil && s.ext == nil && strings.HasPrefix(name, "cluster") {
			return l.errorf("%s", errClusterBuild)
		}
		if f == nil || notInConfig[name] || strings.Contains(l.key, "-") {
			return l.errorf("unknown key (tern -h lists the flags; a key is a flag's name with _ for -)")
		}
		name = canonical(name)
		if first, ok := seen[name]; ok {
			return l.errorf("given twice (first on line %d)", first)
		}
		seen[name] = l.line
		if l.value == "" {
			return l.errorf("missing value")
		}
		if set[name] {
			continue // the command line wins
		}
		if err := fs.Set(name, l.value); err != nil {
			return l.errorf("%v", err)
		}
		s.origin[name] = l.position
		fromFile = append(fromFile, name)
	}
	for _, n := range fromFile {
		set[n] = true
	}
	return nil
}

// check refuses settings that do not go together.
func (s *settings) check() error {
	for _, l := range []struct{ flag, addr string }{{"-tls", s.tls}, {"-wss", s.wss}} {
		if l.addr != "" && (s.cert == "" || s.key == "") {
			return fmt.Errorf("%s needs -cert and -key", l.flag)
		}
	}
	if s.authFile != "" && (s.passwordFile != "" || s.aclFile != "" || s.mosquitto) {
		return errors.New("-auth (a Tern auth file) and Mosquitto's password and ACL files (-password-file, -acl-file, -c) cannot be used together")
	}
	switch s.logFormat {
	case "text", "json":
	default:
		return fmt.Errorf("-log-format must be text or json, got %q", s.logFormat)
	}
	if _, err := parseLevel(s.logLevel); err != nil {
		return err
	}
	return nil
}
