package brokertest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

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
