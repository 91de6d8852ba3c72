package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/packets"
)

// waitTimeout bounds every wait; generous, for a loaded machine.
const waitTimeout = 10 * time.Second

// startBroker starts a broker serving an in-memory listener, closed at
// cleanup.
func startBroker(t *testing.T, opts tern.Options, hooks ...any) (*tern.Broker, *listeners.Memory) {
	t.Helper()
	opts.SysInterval = -1
	opts.Logger = slog.New(slog.DiscardHandler)
	b, err := tern.New(opts)
	require.NoError(t, err)
	for _, h := range hooks {
		require.NoError(t, b.AddHook(h))
	}
	mem := listeners.NewMemory()
	served := make(chan error, 1)
	go func() { served <- b.Serve(mem) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		require.NoError(t, b.Close(ctx))
		require.ErrorIs(t, <-served, tern.ErrClosed)
	})
	return b, mem
}

// client speaks MQTT packet by packet over the in-memory listener.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *packets.Reader
}

func dial(t *testing.T, mem *listeners.Memory) *client {
	t.Helper()
	nc, err := mem.Dial()
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: packets.NewReader(nc, 0)}
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	require.NoError(c.t, c.nc.SetWriteDeadline(time.Now().Add(waitTimeout)))
	_, err := c.nc.Write(b)
	require.NoError(c.t, err)
}

func (c *client) send(p packets.Packet) {
	c.t.Helper()
	b, err := p.Append(nil)
	require.NoError(c.t, err)
	c.sendRaw(b)
}

func (c *client) recv() packets.Packet {
	c.t.Helper()
	require.NoError(c.t, c.nc.SetReadDeadline(time.Now().Add(waitTimeout)))
	p, err := c.r.ReadPacket()
	require.NoError(c.t, err)
	return p
}

// recvAs reads the next packet, which must be a T.
func recvAs[T packets.Packet](c *client) T {
	c.t.Helper()
	p := c.recv()
	v, ok := p.(T)
	require.True(c.t, ok, "got %v %+v", p.Type(), p)
	return v
}

// expectClosed waits for the broker to close the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	require.NoError(c.t, c.nc.SetReadDeadline(time.Now().Add(waitTimeout)))
	p, err := c.r.ReadPacket()
	require.Error(c.t, err, "expected the connection to close, got %v", p)
	var ne net.Error
	require.False(c.t, errors.As(err, &ne) && ne.Timeout(), "the connection stayed open")
	require.ErrorIs(c.t, err, io.EOF)
}

// connect sends an MQTT 3.1.1 CONNECT and returns the CONNACK's code.
func (c *client) connect(id, user, password string, clean bool) byte {
	c.t.Helper()
	p := &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: clean, KeepAlive: 60}
	if user != "" {
		p.UsernameFlag, p.Username = true, user
		p.PasswordFlag, p.Password = true, []byte(password)
	}
	c.send(p)
	return recvAs[*packets.Connack](c).ReturnCode
}

// family flattens gathered metric families into one value per series:
// `name{label="value",...}` for counters and gauges, with _count and _sum
// series for histograms.
func flatten(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(ls)
			key := func(suffix string) string {
				if len(ls) == 0 {
					return mf.GetName() + suffix
				}
				return mf.GetName() + suffix + "{" + strings.Join(ls, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key("_sum")] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// gather collects reg's metrics, flattened.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	return flatten(mfs)
}
