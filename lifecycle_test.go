package tern_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
)

// failingStoreEnv starts a broker on a store whose writes fail while
// f.failing is set, with an offline persistent subscriber of "d", so that
// a QoS 1 publish to "d" must be stored.
func failingStoreEnv(t *testing.T) (*psEnv, *psFailing) {
	t.Helper()
	f := &psFailing{Store: storage.NewMemory()}
	e := psStart(t, psBackend{"failing memory", func(*testing.T) (storage.Store, func() storage.Store) { return f, nil }}, tern.Options{})
	sub := mustConnect(t, e.addr, "sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "d", QoS: 1})
	psLeave(sub)
	return e, f
}

// Broker.Publish honours its context while it waits for the store, and
// never reports success for a message that was not stored.
func TestPublishReturnsContextErrorWhileTheStoreFails(t *testing.T) {
	e, f := failingStoreEnv(t)
	f.failing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := e.b.Publish(ctx, "d", []byte("x"), 1, false)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second, "Publish returned long after its deadline")
}

func TestPublishDuringCloseOnAFailingStoreReportsNotStored(t *testing.T) {
	e, f := failingStoreEnv(t)
	f.failing.Store(true)
	done := make(chan error, 1)
	go func() { done <- e.b.Publish(context.Background(), "d", []byte("x"), 1, false) }()
	require.Eventually(t, func() bool { return f.failed.Load() > 0 }, waitTimeout, time.Millisecond)
	e.down()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, tern.ErrClosed, "Publish of a message never stored")
	case <-time.After(waitTimeout):
		t.Fatal("Publish did not return after Close")
	}
}

// While the store refuses writes, a CONNECT for a persistent session gets
// CONNACK 0x03 at once; clean sessions, which need no store, still connect.
func TestPersistentConnectWhileTheStoreFailsIsRefusedPromptly(t *testing.T) {
	e, f := failingStoreEnv(t)
	f.failing.Store(true)
	require.NoError(t, e.b.Publish(context.Background(), "elsewhere", nil, 0, true)) // a retained clear: one failing write
	require.Eventually(t, func() bool { return f.failed.Load() > 0 }, waitTimeout, time.Millisecond)
	c := dialRaw(t, e.addr)
	start := time.Now()
	ack := c.connect("persistent", false)
	assert.Equal(t, packets.RefusedServerUnavailable, ack.ReturnCode)
	assert.Less(t, time.Since(start), time.Second)
	c.expectClosed()
	mustConnect(t, e.addr, "clean", true)
	f.failing.Store(false)
	require.Eventually(t, func() bool {
		c := dialRaw(t, e.addr)
		return c.connect("persistent", false).ReturnCode == 0
	}, waitTimeout, 10*time.Millisecond, "a persistent session connects once the store recovers")
}

// blockingAuth is an Authenticator that waits for its context, as a call
// to a remote service would.
type blockingAuth struct{ entered chan struct{} }

func (a blockingAuth) Authenticate(ctx context.Context, _ tern.ConnectInfo) error {
	a.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// Close cancels the context of the hooks running: it does not wait for a
// blocked Authenticator's own timeout.
func TestCloseCancelsHookContexts(t *testing.T) {
	b, addr := startBroker(t, tern.Options{ConnectTimeout: time.Minute})
	auth := blockingAuth{entered: make(chan struct{}, 1)}
	hkAdd(t, b, auth)
	c := dialRaw(t, addr)
	c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "waiting", KeepAlive: 60})
	<-auth.entered
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, b.Close(ctx))
	assert.Less(t, time.Since(start), 2*time.Second)
}

// The reason a connection ended because of Close and the error API calls
// return after Close are different errors.
func TestServerShutdownAndClosedAreDistinct(t *testing.T) {
	assert.False(t, errors.Is(tern.ErrServerShutdown, tern.ErrClosed))
	assert.NotEqual(t, tern.ErrServerShutdown.Error(), tern.ErrClosed.Error())
}
