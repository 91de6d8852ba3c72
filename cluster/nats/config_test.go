package nats

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigErrorsNameTheField(t *testing.T) {
	emb := &Embedded{StoreDir: "/tmp/x"}
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Embedded: emb}, "Config.Name"},
		{Config{Name: "a.b", Embedded: emb}, "Config.Name"},
		{Config{Name: "a"}, "Config.URLs or Config.Embedded"},
		{Config{Name: "a", URLs: []string{"nats://x"}, Embedded: emb}, "Config.URLs and Config.Embedded"},
		{Config{Name: "a", Embedded: &Embedded{}}, "Config.Embedded.StoreDir"},
		{Config{Name: "a", Embedded: &Embedded{StoreDir: "d", Routes: []string{"h:1"}}}, "Config.Embedded.ClusterListen"},
		{Config{Name: "a", Embedded: &Embedded{StoreDir: "d", ClusterListen: "nope"}}, "Config.Embedded.ClusterListen"},
		{Config{Name: "a", Embedded: &Embedded{StoreDir: "d", ClusterListen: ":1", Routes: []string{"nohost"}}}, "Config.Embedded.Routes"},
		{Config{Name: "a", Embedded: &Embedded{StoreDir: "d", Listen: "x"}}, "Config.Embedded.Listen"},
		{Config{Name: "a", Embedded: &Embedded{StoreDir: "d", ClusterName: "a b"}}, "Config.Embedded.ClusterName"},
		{Config{Name: "a", Embedded: &Embedded{StoreDir: "d", MaxPayload: -1}}, "Config.Embedded.MaxPayload"},
		{Config{Name: "a", Embedded: emb, Prefix: "a.b"}, "Config.Prefix"},
		{Config{Name: "a", Embedded: emb, Replicas: 7}, "Config.Replicas"},
		{Config{Name: "a", Embedded: emb, LeaseTTL: time.Millisecond}, "Config.LeaseTTL"},
		{Config{Name: "a", Embedded: emb, RequestTimeout: time.Nanosecond}, "Config.RequestTimeout"},
		{Config{Name: "a", Embedded: emb, ClockSkew: -1}, "Config.ClockSkew"},
		{Config{Name: "a", Embedded: emb, MaxReplay: -1}, "Config.MaxReplay"},
		{Config{Name: "a", Embedded: emb, MaxStreamBytes: -1}, "Config.MaxStreamBytes"},
		{Config{Name: "a", URLs: []string{"nats://x"}, Token: "t", Username: "u"}, "Config.Token"},
	} {
		_, err := New(tc.cfg)
		if assert.Error(t, err, "%+v", tc.cfg) {
			assert.Contains(t, err.Error(), tc.field)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := New(Config{Name: "a", Embedded: &Embedded{StoreDir: "d", ClusterListen: ":6222", Routes: []string{"b:6222", "c:6222", "d:6222"}}})
	require.NoError(t, err)
	assert.Equal(t, 3, c.cfg.Replicas, "three copies with peers")
	assert.Equal(t, DefaultPrefix, c.cfg.Prefix)
	assert.Equal(t, DefaultLeaseTTL, c.cfg.LeaseTTL)
	assert.Equal(t, int32(DefaultMaxPayload), c.cfg.Embedded.MaxPayload)
	assert.Equal(t, DefaultClusterName, c.cfg.Embedded.ClusterName)

	c, err = New(Config{Name: "a", Embedded: &Embedded{StoreDir: "d", ClusterListen: ":6222", Routes: []string{"b:6222"}}})
	require.NoError(t, err)
	assert.Equal(t, 2, c.cfg.Replicas)

	c, err = New(Config{Name: "a", URLs: []string{"nats://x:4222"}})
	require.NoError(t, err)
	assert.Equal(t, 1, c.cfg.Replicas)
}
