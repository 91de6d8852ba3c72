package brokertest_test

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/brokertest"
)

// blockedForever is a goroutine the test leaves behind on purpose, until
// release is closed.
func blockedForever(release <-chan struct{}) { <-release }

func TestLeakCheckReportsGoroutines(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newFake(t)
	f.run(func() {
		brokertest.New(f, brokertest.WithoutTCP(), brokertest.WithTimeout(100*time.Millisecond))
		go blockedForever(release)
	})
	f.cleanup()
	mustFail(t, f, "1 goroutine(s) started during the test still running", "brokertest_test.blockedForever")
}

func TestLeakCheckWaitsForEndingGoroutines(t *testing.T) {
	release := make(chan struct{})
	f := newFake(t)
	f.run(func() {
		brokertest.New(f, brokertest.WithoutTCP())
		go blockedForever(release)
	})
	f.Cleanup(func() { close(release) }) // runs before the check
	f.cleanup()
	assert.Empty(t, f.failed(), "unexpected failure")
}

// TestLeakCheckIgnoresOthers: a goroutine started by one that existed
// before New (another test's, say) is not the test's leak.
func TestLeakCheckIgnoresOthers(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	start, started := make(chan struct{}), make(chan struct{})
	go func() { // older than New
		<-start
		go blockedForever(release)
		close(started)
		<-release
	}()
	f := newFake(t)
	f.run(func() { brokertest.New(f, brokertest.WithoutTCP(), brokertest.WithTimeout(100*time.Millisecond)) })
	close(start)
	<-started
	f.cleanup()
	assert.Empty(t, f.failed(), "unexpected failure")
}

func TestWithoutLeakCheck(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newFake(t)
	f.run(func() {
		brokertest.New(f, brokertest.WithoutTCP(), brokertest.WithoutLeakCheck())
		go blockedForever(release)
	})
	f.cleanup()
	assert.Empty(t, f.failed(), "unexpected failure")
}

// TestLeakCheckReportsConnectedClient: an MQTT 5 client the test left
// connected fails the test, named, even though its goroutines end when the
// broker closes its connection.
func TestLeakCheckReportsConnectedClient(t *testing.T) {
	f := newFake(t)
	f.run(func() {
		srv := brokertest.New(f, brokertest.WithTimeout(200*time.Millisecond))
		conn, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err, "dial")
		_, err = pahoV5(t, conn, "forgotten", nil)
		require.NoError(t, err, "paho.golang connect")
	})
	f.cleanup()
	mustFail(t, f, "1 client(s) still connected at the end of the test", `"forgotten" from 127.0.0.1:`)
}

// TestLeakCheckPassesDisconnectedClient: a client disconnected in a
// cleanup registered after New passes, although the broker may see the
// DISCONNECT after the cleanup returned.
func TestLeakCheckPassesDisconnectedClient(t *testing.T) {
	f := newFake(t)
	f.run(func() {
		srv := brokertest.New(f)
		conn, err := srv.Dial()
		require.NoError(t, err, "dial")
		c, err := pahoV5(t, conn, "tidy", nil)
		require.NoError(t, err, "paho.golang connect")
		f.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	})
	f.cleanup()
	assert.Empty(t, f.failed(), "unexpected failure")
}

// TestLeakCheckReportsReconnectingClient: autopaho left running is
// connected at the end, and after the broker closed it keeps trying to
// reconnect: both checks fail.
func TestLeakCheckReportsReconnectingClient(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var cm *autopaho.ConnectionManager
	f := newFake(t)
	f.run(func() {
		srv := brokertest.New(f, brokertest.WithTimeout(200*time.Millisecond))
		var err error
		cm, err = autopaho.NewConnection(ctx, autopaho.ClientConfig{
			ServerUrls: []*url.URL{srv.ServerURL()}, KeepAlive: 30,
			ClientConfig: paho.ClientConfig{ClientID: "reconnecting"},
		})
		require.NoError(t, err, "autopaho.NewConnection")
		actx, acancel := context.WithTimeout(ctx, waitTimeout)
		defer acancel()
		require.NoError(t, cm.AwaitConnection(actx), "autopaho: no connection")
	})
	f.cleanup()
	cancel()
	<-cm.Done()
	mustFail(t, f, `"reconnecting" from 127.0.0.1:`, "goroutine(s) started during the test still running", "autopaho")
}
