package cli

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/auth"
	"github.com/ternmq/tern/metrics"
	"github.com/ternmq/tern/packets"
)

// Every hook authHook returns counts its password checks for /metrics.
var (
	_ metrics.AuthStats = (*auth.File)(nil)
	_ metrics.AuthStats = (*auth.Mosquitto)(nil)
	_ metrics.AuthStats = identityAuth{}
)

// TestMetricsEndpoint: -http serves /metrics beside /healthz and /stats, in
// the Prometheus text format, which the Prometheus parser reads: the
// broker's metrics with the auth file's password checks, and the Go
// runtime and process metrics. promlint finds no problem with them.
func TestMetricsEndpoint(t *testing.T) {
	hash, err := auth.HashPassword([]byte("secret"))
	require.NoError(t, err)
	authFile := writeFile(t, t.TempDir(), "auth.conf", "user alice "+hash+"\n")
	srv := startRun(t, "-tcp", "127.0.0.1:0", "-http", "127.0.0.1:0", "-auth", authFile)
	_, ack := dial(t, srv.tcpAddr(t), &packets.Connect{ClientID: "in", CleanSession: true,
		UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("secret")})
	require.Equal(t, packets.Accepted, ack.ReturnCode)
	_, ack = dial(t, srv.tcpAddr(t), &packets.Connect{ClientID: "out", CleanSession: true,
		UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("wrong")})
	require.Equal(t, packets.RefusedBadUsernamePassword, ack.ReturnCode)

	base := "http://" + addrOf(t, srv.logs.waitLine(t, 1, "msg=listening", "transport=http"))
	resp, err := (&http.Client{Timeout: testTimeout}).Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err, "%s", body)
	value := func(name string, labels ...string) float64 {
		t.Helper()
		mf, ok := families[name]
		require.True(t, ok, "no %s in\n%s", name, body)
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue series
				}
			}
			if mf.GetType() == dto.MetricType_GAUGE {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
		require.Fail(t, "no series", "%s%v in\n%s", name, labels, body)
		return 0
	}
	assert.Equal(t, 1.0, value("tern_connects_accepted_total"))
	assert.Equal(t, 1.0, value("tern_connections_refused_total", "reason", "bad_credentials"))
	assert.Equal(t, 0.0, value("tern_connections_refused_total", "reason", "not_authorized"))
	assert.Equal(t, 1.0, value("tern_sessions", "state", "online"))
	assert.Equal(t, 2.0, value("tern_auth_password_checks_total"))
	assert.Equal(t, 1.0, value("tern_auth_password_failures_total"))
	assert.Equal(t, dto.MetricType_HISTOGRAM, families["tern_hook_duration_seconds"].GetType())
	assert.Positive(t, value("go_goroutines"))

	var list []*dto.MetricFamily
	for _, mf := range families {
		list = append(list, mf)
	}
	problems, err := promlint.NewWithMetricFamilies(list).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")
}

// labelValue returns the value of m's label name, "" without it.
func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
