package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/auth"
	"github.com/ternmq/tern/metrics"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
)

// TestCollector registers the collector on a fresh (pedantic) registry
// over a broker with a store and the auth file hook, makes a little
// traffic, and checks every value it can know exactly: connections,
// refusals by reason, messages by QoS, drops by reason, sessions, the
// messages in flight and queued, the hook and store histograms, the auth
// counters. promlint finds no problem with the names.
func TestCollector(t *testing.T) {
	hash, err := auth.HashPassword([]byte("secret"))
	require.NoError(t, err)
	users, err := auth.Parse(strings.NewReader("user alice "+hash+"\n"), "users")
	require.NoError(t, err)
	b, mem := startBroker(t, tern.Options{Store: storage.NewMemory()}, users)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(metrics.NewCollector(b, metrics.WithAuth(users))))

	// Refused: a wrong password, then a protocol level Tern does not speak.
	bad := dial(t, mem)
	assert.Equal(t, packets.RefusedBadUsernamePassword, bad.connect("bad", "alice", "wrong", true))
	bad.expectClosed()
	future := dial(t, mem)
	future.sendRaw([]byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 9, 0x02, 0, 60, 0, 1, 'x'})
	assert.Equal(t, packets.RefusedProtocolVersion, recvAs[*packets.Connack](future).ReturnCode)
	future.expectClosed()

	// A persistent session subscribed at QoS 1 goes offline.
	off := dial(t, mem)
	require.Zero(t, off.connect("offline", "alice", "secret", false))
	off.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "t/#", QoS: 1}}})
	recvAs[*packets.Suback](off)
	off.send(&packets.Disconnect{})
	off.expectClosed()
	require.Eventually(t, func() bool { return b.Stats().ClientsDisconnected == 1 }, waitTimeout, time.Millisecond)

	sub := dial(t, mem)
	require.Zero(t, sub.connect("sub", "alice", "secret", true))
	sub.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "t/#", QoS: 2}}})
	recvAs[*packets.Suback](sub)
	pub := dial(t, mem)
	require.Zero(t, pub.connect("pub", "alice", "secret", true))

	// One message at each QoS (the first retained), and a forged $SYS one.
	pub.send(&packets.Publish{Topic: "t/0", Payload: []byte("0"), Retain: true})
	pub.send(&packets.Publish{Topic: "t/1", Payload: []byte("1"), QoS: 1, PacketID: 1})
	recvAs[*packets.Puback](pub)
	pub.send(&packets.Publish{Topic: "t/2", Payload: []byte("2"), QoS: 2, PacketID: 2})
	recvAs[*packets.Pubrec](pub)
	pub.send(&packets.Pubrel{PacketID: 2})
	recvAs[*packets.Pubcomp](pub)
	pub.send(&packets.Publish{Topic: "$SYS/broker/forged", Payload: []byte("x")})
	// The subscriber completes the QoS 2 delivery and leaves the QoS 1 one
	// unacknowledged: in flight.
	for want := range byte(3) {
		p := recvAs[*packets.Publish](sub)
		require.Equal(t, want, p.QoS, "topic %s", p.Topic)
		if p.QoS == 2 {
			sub.send(&packets.Pubrec{PacketID: p.PacketID})
			recvAs[*packets.Pubrel](sub)
			sub.send(&packets.Pubcomp{PacketID: p.PacketID})
		}
	}
	// A PINGREQ round trip orders the test after the broker handled what
	// each client sent before it.
	for _, c := range []*client{pub, sub} {
		c.send(&packets.Pingreq{})
		recvAs[*packets.Pingresp](c)
	}
	// The refused connections end on their own time.
	require.Eventually(t, func() bool { return gather(t, reg)["tern_connections"] == 2 }, waitTimeout, time.Millisecond)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := flatten(mfs)
	want := map[string]float64{
		"tern_connections":              2,
		"tern_connections_opened_total": 5,
		"tern_connects_accepted_total":  3,
		"tern_disconnects_total":        1,
		"tern_accept_errors_total":      0,

		`tern_messages_received_total{qos="0"}`: 2, // t/0 and the forged one
		`tern_messages_received_total{qos="1"}`: 1,
		`tern_messages_received_total{qos="2"}`: 1,
		`tern_messages_sent_total{qos="0"}`:     1,
		`tern_messages_sent_total{qos="1"}`:     1,
		`tern_messages_sent_total{qos="2"}`:     1,

		"tern_retained_messages":            1,
		"tern_subscriptions":                2,
		`tern_sessions{state="online"}`:     2,
		`tern_sessions{state="offline"}`:    1,
		"tern_inflight_messages":            1, // sub's QoS 1
		"tern_queued_messages":              2, // t/1 and t/2 for the offline session
		"tern_store_commit_errors_total":    0,
		"tern_memory_releases_total":        0,
		"tern_sessions_expired_total":       0,
		"tern_auth_password_checks_total":   2, // the wrong password, then the first right one
		"tern_auth_password_failures_total": 1,
		"tern_auth_cache_hits_total":        2, // the next two logins
		"tern_auth_rate_limited_total":      0,
		"tern_auth_busy_total":              0,

		`tern_hook_duration_seconds_count{hook="Authenticate"}`:       4,
		`tern_hook_duration_seconds_count{hook="AuthorizeSubscribe"}`: 2,
		`tern_hook_duration_seconds_count{hook="AuthorizePublish"}`:   3, // not the $SYS one
		`tern_hook_duration_seconds_count{hook="AuthorizeRead"}`:      6, // each message, for each subscriber
	}
	for r := range tern.NumRefuseReasons {
		want[fmt.Sprintf(`tern_connections_refused_total{reason="%s"}`, r)] = 0
	}
	want[`tern_connections_refused_total{reason="bad_credentials"}`] = 1
	want[`tern_connections_refused_total{reason="protocol_version"}`] = 1
	for r := range tern.NumDropReasons {
		want[fmt.Sprintf(`tern_messages_dropped_total{reason="%s"}`, r)] = 0
	}
	want[`tern_messages_dropped_total{reason="offline_qos0"}`] = 1 // t/0 for the offline session
	want[`tern_messages_dropped_total{reason="sys_topic"}`] = 1
	for k, v := range want {
		if assert.Contains(t, got, k) {
			assert.Equal(t, v, got[k], k)
		}
	}

	assert.Positive(t, got["tern_packets_received_total"])
	assert.Positive(t, got["tern_received_bytes_total"])
	assert.Positive(t, got["tern_sent_bytes_total"])
	assert.Positive(t, got["tern_store_commit_duration_seconds_count"], "the persistent session was stored")
	assert.Equal(t, got["tern_store_commit_duration_seconds_count"], got["tern_store_commit_operations_count"])
	assert.GreaterOrEqual(t, got["tern_store_commit_operations_sum"], got["tern_store_commit_operations_count"], "each write has an operation")
	assert.Positive(t, got[`tern_hook_duration_seconds_sum{hook="Authenticate"}`], "two bcrypt checks take time")
	assert.NotContains(t, got, `tern_hook_duration_seconds_count{hook="OnConnect"}`, "a hook method never called has no series")
	assert.WithinDuration(t, time.Now(), time.Unix(int64(got["tern_start_time_seconds"]), 0), time.Minute)

	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")
}

// refuser refuses every CONNECT with err.
type refuser struct{ err error }

func (r refuser) Authenticate(context.Context, tern.ConnectInfo) error { return r.err }

// TestRefusalReasons: each way a connection is refused counts under its
// own reason, and under no other.
func TestRefusalReasons(t *testing.T) {
	cases := []struct {
		name   string
		opts   tern.Options
		hook   any
		v5     bool
		id     string
		clean  bool
		reason string
	}{
		{name: "hook: not authorized", hook: refuser{tern.ErrNotAuthorized}, id: "c", clean: true, reason: "not_authorized"},
		{name: "hook: server unavailable", hook: refuser{tern.ErrServerUnavailable}, id: "c", clean: true, reason: "server_unavailable"},
		{name: "hook: banned (MQTT 5)", hook: refuser{&tern.ReasonError{Code: packets.Banned}}, v5: true, id: "c", clean: true, reason: "banned"},
		{name: "hook: quota exceeded (MQTT 5)", hook: refuser{&tern.ReasonError{Code: packets.QuotaExceeded}}, v5: true, id: "c", clean: true, reason: "quota_exceeded"},
		{name: "hook: connection rate exceeded (MQTT 5)", hook: refuser{&tern.ReasonError{Code: packets.ConnectionRateExceeded}}, v5: true, id: "c", clean: true, reason: "quota_exceeded"},
		{name: "empty identifier without clean session", id: "", clean: false, reason: "identifier_rejected"},
		{name: "bad authentication method (MQTT 5)", v5: true, id: "c", clean: true, reason: "bad_auth_method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hooks []any
			if tc.hook != nil {
				hooks = append(hooks, tc.hook)
			}
			b, mem := startBroker(t, tc.opts, hooks...)
			reg := prometheus.NewPedanticRegistry()
			require.NoError(t, reg.Register(metrics.NewCollector(b)))
			c := dial(t, mem)
			p := &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: tc.id, CleanSession: tc.clean, KeepAlive: 60}
			if tc.v5 {
				p.ProtocolLevel = packets.Level5
				if tc.reason == "bad_auth_method" {
					p.Properties.AuthMethod = "SCRAM-SHA-1" // no hook implements it
				}
				c.r.SetVersion(packets.Level5)
			}
			c.send(p)
			ack := recvAs[*packets.Connack](c)
			require.GreaterOrEqual(t, ack.ReturnCode, byte(1), "refused")
			c.expectClosed()

			got := gather(t, reg)
			for r := range tern.NumRefuseReasons {
				want := 0.0
				if r.String() == tc.reason {
					want = 1
				}
				key := fmt.Sprintf(`tern_connections_refused_total{reason="%s"}`, r)
				assert.Equal(t, want, got[key], key)
			}
			assert.Zero(t, got["tern_connects_accepted_total"])
		})
	}
}

// TestConnectionLimitRefusal: a connection over Options.MaxConnections is
// refused (CONNACK 3) under connection_limit.
func TestConnectionLimitRefusal(t *testing.T) {
	b, mem := startBroker(t, tern.Options{MaxConnections: 1})
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(metrics.NewCollector(b)))
	first := dial(t, mem)
	require.Zero(t, first.connect("first", "", "", true))
	second := dial(t, mem)
	assert.Equal(t, packets.RefusedServerUnavailable, second.connect("second", "", "", true))
	second.expectClosed()

	got := gather(t, reg)
	assert.Equal(t, 1.0, got[`tern_connections_refused_total{reason="connection_limit"}`])
	assert.Equal(t, 1.0, got["tern_connects_accepted_total"])
	assert.Equal(t, 2.0, got["tern_connections_opened_total"])
}

// denier refuses publishes to deny/#.
type denier struct{}

func (denier) AuthorizePublish(_ context.Context, _ tern.Client, m tern.Message) error {
	if strings.HasPrefix(m.Topic, "deny/") {
		return tern.ErrNotAuthorized
	}
	return nil
}

// TestDropReasons: a full session queue and a hook's refusal count under
// their reasons.
func TestDropReasons(t *testing.T) {
	b, mem := startBroker(t, tern.Options{MaxQueued: 1}, denier{})
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(metrics.NewCollector(b)))

	off := dial(t, mem)
	require.Zero(t, off.connect("offline", "", "", false))
	off.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "q", QoS: 1}}})
	recvAs[*packets.Suback](off)
	off.send(&packets.Disconnect{})
	off.expectClosed()
	require.Eventually(t, func() bool { return b.Stats().ClientsDisconnected == 1 }, waitTimeout, time.Millisecond)

	pub := dial(t, mem)
	require.Zero(t, pub.connect("pub", "", "", true))
	for id := range uint16(2) {
		pub.send(&packets.Publish{Topic: "q", Payload: []byte("x"), QoS: 1, PacketID: id + 1})
		recvAs[*packets.Puback](pub)
	}
	pub.send(&packets.Publish{Topic: "deny/x", Payload: []byte("x"), QoS: 1, PacketID: 3})
	recvAs[*packets.Puback](pub) // MQTT 3.1.1: acknowledged, not forwarded

	got := gather(t, reg)
	assert.Equal(t, 1.0, got[`tern_messages_dropped_total{reason="queue_full"}`], "the second message for the offline session")
	assert.Equal(t, 1.0, got[`tern_messages_dropped_total{reason="publish_refused"}`])
	assert.Equal(t, 1.0, got["tern_queued_messages"])
}

// TestHandler: Handler serves the broker's metrics with the Go runtime and
// process metrics, in the text exposition format the Prometheus parser
// reads.
func TestHandler(t *testing.T) {
	b, mem := startBroker(t, tern.Options{})
	c := dial(t, mem)
	require.Zero(t, c.connect("c", "", "", true))
	srv := httptest.NewServer(metrics.Handler(b))
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	require.Contains(t, families, "tern_connects_accepted_total")
	assert.Equal(t, 1.0, families["tern_connects_accepted_total"].GetMetric()[0].GetCounter().GetValue())
	assert.Contains(t, families, "go_goroutines")
	if runtime.GOOS == "linux" {
		assert.Contains(t, families, "process_start_time_seconds")
	}
}

// TestCollectorTwice: a registry takes one collector of a broker; a second
// one (of any broker) fails to register, its names being taken.
func TestCollectorTwice(t *testing.T) {
	b, _ := startBroker(t, tern.Options{})
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(metrics.NewCollector(b)))
	err := reg.Register(metrics.NewCollector(b))
	var are prometheus.AlreadyRegisteredError
	assert.True(t, errors.As(err, &are), "got %v", err)
}
