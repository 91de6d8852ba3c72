package cli

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/internal/optdoc"
)

// TestEveryOptionHasAFlag: every exported field of tern.Options and of
// the listener and store options has a flag and a config key, or is in its
// struct's skip map with a reason. A field added with a type no parser
// knows fails here, naming it.
func TestEveryOptionHasAFlag(t *testing.T) {
	s := &settings{origin: map[string]position{}, fields: map[string]string{}}
	fs, _, err := newFlagSet(s, &bytes.Buffer{})
	require.NoError(t, err, "every option field needs a parser or a documented exclusion")
	for _, st := range optionStructs(s) {
		typ := reflect.TypeOf(st.ptr).Elem()
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			if why, ok := st.skip[f.Name]; ok {
				assert.NotEmpty(t, why, "%s.%s is skipped without a reason", st.name, f.Name)
				continue
			}
			name := st.rename[f.Name]
			if name == "" {
				name = st.prefix + kebab(f.Name)
			}
			fl := fs.Lookup(name)
			if assert.NotNil(t, fl, "%s.%s has no flag -%s", st.name, f.Name, name) {
				assert.Equal(t, st.name+"."+f.Name, fl.Value.(*fieldValue).field)
			}
		}
	}
	// tern.Options is the struct others extend: check it field by field
	// against the struct itself, not only through optionStructs.
	typ := reflect.TypeFor[tern.Options]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "Logger" || f.Name == "Store" || f.Name == "Cluster" {
			continue
		}
		assert.NotNil(t, fs.Lookup(kebab(f.Name)), "tern.Options.%s has no flag", f.Name)
	}
}

// TestFlagNames: the derived names are kebab-case flags and snake_case
// config keys, and existing flags keep their names.
func TestFlagNames(t *testing.T) {
	for field, want := range map[string]string{
		"MaxPacketSize":        "max-packet-size",
		"UseCertCNAsUsername":  "use-cert-cn-as-username",
		"MaxClientIDLength":    "max-client-id-length",
		"QueueQoS0":            "queue-qos0",
		"SessionExpiry":        "session-expiry",
		"MaxConnections":       "max-connections",
		"TopicAliasMaximum":    "topic-alias-maximum",
		"OutboundTopicAliases": "outbound-topic-aliases",
		"HTTPAddr":             "http-addr",
	} {
		assert.Equal(t, want, kebab(field), field)
	}
	assert.Equal(t, "max_packet_size", configKey("max-packet-size"))
}

// TestOptionDocsAreCurrent: optdocs_gen.go holds the doc comments the
// option structs have now, and every option flag has help. After changing
// a doc comment or adding a field, run go generate ./cmd/tern.
func TestOptionDocsAreCurrent(t *testing.T) {
	want, err := optdoc.Generate("../..")
	require.NoError(t, err)
	got, err := os.ReadFile("optdocs_gen.go")
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "optdocs_gen.go is stale: run go generate ./cmd/tern")

	s := &settings{origin: map[string]position{}, fields: map[string]string{}}
	opt, err := optionFlags(optionStructs(s))
	require.NoError(t, err)
	for _, o := range opt {
		assert.NotEmpty(t, optionDocs[o.field], "-%s (%s) has no help", o.name, o.field)
	}
}

// TestHelpListsEveryFlag: tern -h names every flag, with its config key
// (but for the command-line-only ones) and its help.
func TestHelpListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := parseSettings([]string{"-h"}, &out)
	require.ErrorIs(t, err, errHelp)
	help := out.String()
	s := &settings{origin: map[string]position{}, fields: map[string]string{}}
	fs, _, err := newFlagSet(s, &bytes.Buffer{})
	require.NoError(t, err)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		listed := strings.Contains(help, "\n  -"+f.Name+" ") || strings.Contains(help, "\n  -"+f.Name+"\n")
		assert.True(t, listed, "-%s is not in tern -h", f.Name)
		if !notInConfig[f.Name] {
			assert.True(t, strings.Contains(help, "(config: "+configKey(f.Name)+")"), "-%s has no config key in tern -h", f.Name)
		}
	})
	assert.Greater(t, n, 40)
	assert.Contains(t, help, "MaxPacketSize bounds the size of any packet", "the field's doc comment is its help")
	assert.Contains(t, help, "(tern.Options.MaxPacketSize)")
}

// TestOptionFlagsSetTheOptions: values of every kind reach the structs.
func TestOptionFlagsSetTheOptions(t *testing.T) {
	s, err := parseSettings([]string{
		"-max-packet-size", "4194304", "-max-keep-alive", "90s", "-queue-qos0",
		"-shared-subscriptions", "hash-topic", "-ws-subprotocols", "mqtt, mqttv3.1",
		"-durability", "async", "-tls-handshake-timeout", "3s", "-cert-username",
		"-response-information", "resp/",
	}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 4194304, s.opts.MaxPacketSize)
	assert.Equal(t, int64(90), int64(s.opts.MaxKeepAlive.Seconds()))
	assert.True(t, s.opts.QueueQoS0)
	assert.Equal(t, tern.ShareHashTopic, s.opts.SharedSubscriptions)
	assert.Equal(t, []string{"mqtt", "mqttv3.1"}, s.wsOpts.Subprotocols)
	assert.Equal(t, "async", s.storeOpts.Durability.String())
	assert.Equal(t, int64(3), int64(s.tlsOpts.HandshakeTimeout.Seconds()))
	assert.True(t, s.opts.UseCertCNAsUsername, "-cert-username is kept as an alias")
	assert.Equal(t, "resp/", s.opts.ResponseInformation)

	for _, bad := range [][]string{
		{"-max-packet-size", "big"},
		{"-max-keep-alive", "90"},
		{"-shared-subscriptions", "fair"},
		{"-durability", "maybe"},
		{"-queue-qos0=perhaps"},
	} {
		_, err := parseSettings(bad, &bytes.Buffer{})
		if assert.Error(t, err, "%v", bad) {
			assert.Contains(t, err.Error(), strings.TrimPrefix(strings.SplitN(bad[0], "=", 2)[0], "-"), "%v", bad)
		}
	}
}

// TestClusterFlagsSayWhereClusteringIs: the build without clustering
// refuses -cluster flags and cluster_ keys with a pointer to the
// clustered build, instead of "flag provided but not defined".
func TestClusterFlagsSayWhereClusteringIs(t *testing.T) {
	for _, args := range [][]string{
		{"-cluster", "nats://127.0.0.1:4222"},
		{"-tcp", ":1883", "--cluster-embedded"},
		{"-cluster-routes=a:1,b:2"},
	} {
		_, err := parseSettings(args, &bytes.Buffer{})
		require.ErrorIs(t, err, errClusterBuild, "%v", args)
		assert.Contains(t, err.Error(), "cd cluster/nats && go run ./cmd/tern")
	}
	conf := writeFile(t, t.TempDir(), "tern.conf", "cluster_embedded true\n")
	_, err := parseSettings([]string{"-config", conf}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "clustered build")
	assert.Contains(t, err.Error(), "tern.conf:1")

	// The clustered build has its -cluster flags: a cluster_ key it does
	// not know is just unknown.
	ext := &Extension{Flags: func(fs *flag.FlagSet) []string {
		fs.Bool("cluster-embedded", false, "")
		return []string{"cluster-embedded"}
	}}
	conf = writeFile(t, t.TempDir(), "tern.conf", "cluster_embedded true\ncluster_bogus 1\n")
	_, err = parseSettingsWith([]string{"-config", conf}, &bytes.Buffer{}, ext)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tern.conf:2: cluster_bogus: unknown key")
	assert.NotContains(t, err.Error(), "clustered build")
}
