package brokertest_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTB stands in for a test so that these tests can check that a helper
// fails the test it is given. It records failures and cleanups; everything
// else (Output, Context, Name) goes to the real test.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func newFake(t *testing.T) *fakeTB {
	f := &fakeTB{TB: t}
	t.Cleanup(f.cleanup)
	return f
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Error(args ...any) { f.Errorf("%s", fmt.Sprint(args...)) }

// FailNow ends the calling goroutine, as testing.T's does (testify's
// require calls Errorf, then FailNow); call the helper under test inside
// f.run.
func (f *fakeTB) FailNow() { runtime.Goexit() }

// Fatalf records the failure and ends the calling goroutine.
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	f.FailNow()
}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// cleanup runs the registered cleanups, last first, each at most once.
func (f *fakeTB) cleanup() {
	for {
		f.mu.Lock()
		if len(f.cleanups) == 0 {
			f.mu.Unlock()
			return
		}
		fn := f.cleanups[len(f.cleanups)-1]
		f.cleanups = f.cleanups[:len(f.cleanups)-1]
		f.mu.Unlock()
		f.run(fn)
	}
}

// run calls fn on its own goroutine, as the testing package runs a test,
// so that Fatal ends fn and not the caller.
func (f *fakeTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// failed returns the failures recorded so far, joined.
func (f *fakeTB) failed() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.failures, "\n")
}

// mustFail checks that f recorded a failure containing each of want.
func mustFail(t *testing.T, f *fakeTB, want ...string) {
	t.Helper()
	got := f.failed()
	require.NotEmpty(t, got, "the helper did not fail the test; want a failure with %q", want)
	for _, w := range want {
		assert.Contains(t, got, w, "the helper's failure")
	}
}

const (
	waitTimeout = 5 * time.Second
	waitTick    = 10 * time.Millisecond
)

// pahoConnect connects a Paho client with opts and disconnects it in a
// cleanup, which runs before the brokertest cleanup registered earlier.
func pahoConnect(t *testing.T, opts *mqtt.ClientOptions) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(opts.SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTimeout))
	wait(t, "connect", c.Connect())
	t.Cleanup(func() { c.Disconnect(250) })
	return c
}

// wait waits for a Paho token and fails the test on timeout or error.
func wait(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	require.True(t, tok.WaitTimeout(waitTimeout), "paho %s: timed out", what)
	require.NoError(t, tok.Error(), "paho %s", what)
}

// pahoV5 connects a paho.golang (MQTT 5) client over conn with client id
// id, handing what it receives to onPublish (if not nil). The caller
// disconnects it.
func pahoV5(t testing.TB, conn net.Conn, id string, onPublish func(*paho.Publish)) (*paho.Client, error) {
	t.Helper()
	cfg := paho.ClientConfig{Conn: conn}
	if onPublish != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(r paho.PublishReceived) (bool, error) { onPublish(r.Packet); return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	return c, err
}

// pahoV5Connect connects a paho.golang client as pahoV5 does and
// disconnects it in a cleanup, which runs before the brokertest cleanup
// registered earlier.
func pahoV5Connect(t *testing.T, conn net.Conn, id string, onPublish func(*paho.Publish)) *paho.Client {
	t.Helper()
	c, err := pahoV5(t, conn, id, onPublish)
	require.NoError(t, err, "paho.golang connect")
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// receive waits for a message on ch.
func receive[M any](t *testing.T, ch <-chan M, what string) M {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitTimeout):
		require.FailNow(t, "no "+what)
		var zero M
		return zero
	}
}
