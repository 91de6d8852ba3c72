package cli

import (
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/storage/bolt"
)

// The flags of the option structs are derived from the structs themselves,
// so that a field added to tern.Options (or to the listener and store
// options) is settable from the command line and from a config file without
// a change here: -max-packet-size and max_packet_size for MaxPacketSize.
// A field that cannot be set that way is listed in its struct's skip map
// with the reason, and TestEveryOptionHasAFlag fails for any other.

// optStruct is an options struct whose exported fields become flags.
type optStruct struct {
	name   string            // Go name, as in the generated docs: "tern.Options"
	prefix string            // flag prefix: "ws-" gives -ws-path
	ptr    any               // pointer to the struct the flags set
	skip   map[string]string // field name -> why it has no flag (the documented exclusions)
	rename map[string]string // field name -> flag name, where the derived name would break an existing flag
}

// optionStructs returns the option structs of s that flags set.
func optionStructs(s *settings) []optStruct {
	return []optStruct{
		{
			name: "tern.Options", ptr: &s.opts,
			skip: map[string]string{
				"Logger":  "set by -log-format, -log-level, -v and mosquitto.conf's log_dest and log_type",
				"Store":   "set by -data (mosquitto.conf's persistence and persistence_location)",
				"Cluster": "the clustered build of tern (module cluster/nats) sets it",
			},
		},
		{
			name: "listeners.TLSOptions", prefix: "tls-", ptr: &s.tlsOpts,
			skip: map[string]string{"Logger": "the broker's logger"},
		},
		{
			name: "listeners.WebSocketOptions", prefix: "ws-", ptr: &s.wsOpts,
			skip: map[string]string{
				"CheckOrigin": "a function: set it from code",
				"TLS":         "WebSocket over TLS uses the -tls-* settings",
				"Logger":      "the broker's logger",
			},
		},
		{
			name: "bolt.Options", prefix: "data-", ptr: &s.storeOpts,
			skip:   map[string]string{"Logger": "the broker's logger"},
			rename: map[string]string{"Durability": "durability"},
		},
	}
}

// optFlag is one field of an option struct, settable as a flag.
type optFlag struct {
	name  string // flag name: "max-packet-size"
	field string // Go name: "tern.Options.MaxPacketSize"
	value *fieldValue
}

// optionFlags returns a flag for every exported field of the structs, but
// those listed in skip. A field of a type it cannot parse is an error that
// names it.
func optionFlags(structs []optStruct) ([]optFlag, error) {
	var out []optFlag
	for _, st := range structs {
		v := reflect.ValueOf(st.ptr).Elem()
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if _, ok := st.skip[f.Name]; ok {
				continue
			}
			field := st.name + "." + f.Name
			parse, kind, err := parserFor(f.Type)
			if err != nil {
				return nil, fmt.Errorf("%s: %w (give it a parser in optflags.go or list it in the skip map with a reason)", field, err)
			}
			name := st.rename[f.Name]
			if name == "" {
				name = st.prefix + kebab(f.Name)
			}
			out = append(out, optFlag{name: name, field: field, value: &fieldValue{field: field, v: v.Field(i), parse: parse, kind: kind}})
		}
	}
	return out, nil
}

// kebab turns a Go field name into a flag name: MaxPacketSize gives
// max-packet-size, UseCertCNAsUsername use-cert-cn-as-username, QueueQoS0
// queue-qos0.
func kebab(name string) string {
	name = strings.ReplaceAll(name, "QoS", "Qos")
	r := []rune(name)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || (unicode.IsUpper(r[i-1]) && nextLower) {
				b.WriteByte('-')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// configKey is the config file key of a flag: max_packet_size for
// -max-packet-size.
func configKey(flagName string) string { return strings.ReplaceAll(flagName, "-", "_") }

// fieldValue is a flag.Value that sets a struct field through reflection.
type fieldValue struct {
	field string // Go name: "tern.Options.MaxPacketSize"
	v     reflect.Value
	parse func(string) (reflect.Value, error)
	kind  string // shown in help: int, duration, bool, ...
}

func (f *fieldValue) String() string {
	if f == nil || !f.v.IsValid() {
		return ""
	}
	if s, ok := f.v.Interface().([]string); ok {
		return strings.Join(s, ",")
	}
	return fmt.Sprint(f.v.Interface())
}

func (f *fieldValue) Set(s string) error {
	x, err := f.parse(s)
	if err != nil {
		return err
	}
	f.v.Set(x)
	return nil
}

// IsBoolFlag lets a bool option be given as -queue-qos0 alone.
func (f *fieldValue) IsBoolFlag() bool { return f.kind == "bool" }

var _ flag.Value = (*fieldValue)(nil)

// parserFor returns how to parse a value of type t from text, and the
// name of the kind shown in help.
func parserFor(t reflect.Type) (func(string) (reflect.Value, error), string, error) {
	conv := func(f func(string) (any, error)) func(string) (reflect.Value, error) {
		return func(s string) (reflect.Value, error) {
			x, err := f(strings.TrimSpace(s))
			if err != nil {
				return reflect.Value{}, err
			}
			return reflect.ValueOf(x).Convert(t), nil
		}
	}
	switch t {
	case reflect.TypeFor[time.Duration]():
		return conv(func(s string) (any, error) {
			d, err := time.ParseDuration(s)
			if err != nil {
				return nil, fmt.Errorf("want a Go duration such as 30s, 5m or 1h30m, got %q", s)
			}
			return d, nil
		}), "duration", nil
	case reflect.TypeFor[tern.ShareStrategy]():
		return conv(func(s string) (any, error) { return tern.ParseShareStrategy(s) }),
			"round-robin|random|hash-client|hash-topic", nil
	case reflect.TypeFor[bolt.Durability]():
		return conv(func(s string) (any, error) {
			switch s {
			case "sync":
				return bolt.Sync, nil
			case "async":
				return bolt.Async, nil
			}
			return nil, fmt.Errorf("want sync or async, got %q", s)
		}), "sync|async", nil
	case reflect.TypeFor[[]string]():
		return conv(func(s string) (any, error) {
			var out []string
			for p := range strings.SplitSeq(s, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
			return out, nil
		}), "list", nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return conv(func(s string) (any, error) {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return nil, fmt.Errorf("want true or false, got %q", s)
			}
			return b, nil
		}), "bool", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		return conv(func(s string) (any, error) {
			n, err := strconv.ParseInt(s, 10, bits)
			if err != nil {
				return nil, fmt.Errorf("want an integer of %d bits, got %q", bits, s)
			}
			return n, nil
		}), "int", nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bits := t.Bits()
		return conv(func(s string) (any, error) {
			n, err := strconv.ParseUint(s, 10, bits)
			if err != nil {
				return nil, fmt.Errorf("want a non-negative integer of %d bits, got %q", bits, s)
			}
			return n, nil
		}), "uint", nil
	case reflect.Float32, reflect.Float64:
		return conv(func(s string) (any, error) {
			x, err := strconv.ParseFloat(s, t.Bits())
			if err != nil {
				return nil, fmt.Errorf("want a number, got %q", s)
			}
			return x, nil
		}), "number", nil
	case reflect.String:
		return conv(func(s string) (any, error) { return s, nil }), "string", nil
	}
	return nil, "", fmt.Errorf("no parser for type %s", t)
}
