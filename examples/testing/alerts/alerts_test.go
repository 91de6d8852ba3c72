package alerts_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/brokertest"
	"github.com/ternmq/tern/examples/testing/alerts"
)

// start runs the service against srv and stops it at cleanup, before srv.
func start(t *testing.T, srv *brokertest.Server) {
	t.Helper()
	svc, err := alerts.Start(srv.Addr())
	require.NoError(t, err, "starting the service")
	t.Cleanup(svc.Close)
}

func TestHotReadingRaisesAlert(t *testing.T) {
	srv := brokertest.New(t)
	start(t, srv)
	srv.Publish("sensors/1/temp", "99")
	srv.Expect(t, "alerts/1", "too hot")
}

func TestReadings(t *testing.T) {
	srv := brokertest.New(t)
	start(t, srv)
	cases := []struct {
		sensor, reading string
		alert           bool
	}{
		{"hot", "99", true},
		{"just-over", "40.5", true},
		{"spaces", " 41 \n", true},
		{"cold", "20", false},
		{"at-threshold", "40", false},
		{"negative", "-5", false},
		{"garbage", "warm", false},
		{"empty", "", false},
		{"nan", "NaN", false},
	}
	for _, c := range cases {
		srv.Publish("sensors/"+c.sensor+"/temp", c.reading)
	}
	// The service handles readings in order and publishes its alerts in
	// order: once the alert for a last hot reading is in, any alert for an
	// earlier reading would be too.
	srv.Publish("sensors/last/temp", "99")
	srv.Expect(t, "alerts/last", "too hot")
	for _, c := range cases {
		want := 0
		if c.alert {
			want = 1
		}
		assert.Len(t, srv.Messages("alerts/"+c.sensor), want, "sensor %s read %q: alerts", c.sensor, c.reading)
	}
}

func TestStartFailsWithoutBroker(t *testing.T) {
	srv := brokertest.New(t)
	addr := srv.Addr()
	srv.Close()
	svc, err := alerts.Start(addr)
	if !assert.Error(t, err, "Start succeeded with the broker closed") {
		svc.Close()
	}
}

// TestAlerts is the README's example of testing a backend with brokertest.
func TestAlerts(t *testing.T) {
	srv := brokertest.New(t)             // broker on loopback TCP and in memory, closed at cleanup
	svc, err := alerts.Start(srv.Addr()) // the code under test, a real MQTT client
	require.NoError(t, err)
	t.Cleanup(svc.Close)                 // stops before the broker does
	srv.Publish("sensors/1/temp", "99")  // as a device would
	srv.Expect(t, "alerts/1", "too hot") // waits up to 5 s for the service's alert
}
