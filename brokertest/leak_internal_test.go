package brokertest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStack(t *testing.T) {
	cases := []struct {
		text        string
		id, creator int64
	}{
		{"goroutine 7 [chan receive]:\nmain.f()\n\t/x.go:3 +0x1\ncreated by main.main in goroutine 1\n\t/x.go:9 +0x2", 7, 1},
		{"goroutine 12 gp=0xc0000 m=nil [select]:\nmain.g()\n\t/x.go:3 +0x1\ncreated by main.f in goroutine 7\n\t/x.go:5", 12, 7},
		{"goroutine 1 [running]:\nmain.main()\n\t/x.go:3 +0x1", 1, 0},
		{"goroutine x [running]:", 0, 0},
		{"", 0, 0},
		{"goroutine 3 [running]:\ncreated by main.main\n\t/x.go:9", 3, 0},
	}
	for _, c := range cases {
		assert.Equal(t, c.id, parseID(c.text), "parseID(%q)", c.text)
		assert.Equal(t, c.creator, parseCreator(c.text), "parseCreator(%q)", c.text)
	}
}

// TestSnapshotSelf: the snapshot knows the goroutine that took it and
// finds the goroutines it created.
func TestSnapshotSelf(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	before := snapshot()
	started := make(chan struct{})
	go func() { close(started); <-release }()
	<-started
	now := snapshot()
	require.NotZero(t, now.self, "self")
	require.Equal(t, before.self, now.self, "self in two snapshots by one goroutine")
	got := before.leaked(now)
	assert.Len(t, got, 1, "leaked goroutines:\n%q", got)
}
