package bolt_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/storage/bolt"
	"github.com/ternmq/tern/storage/storagetest"
)

func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		opts bolt.Options
	}{
		{"Sync", bolt.Options{}},
		{"Async", bolt.Options{Durability: bolt.Async, FlushInterval: 5 * time.Millisecond}},
		// Nothing is flushed by the timer: Load and Close must flush.
		{"AsyncFlushOnLoadAndClose", bolt.Options{Durability: bolt.Async, FlushInterval: time.Hour}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storagetest.Opener {
				path := filepath.Join(t.TempDir(), "tern.db")
				return func() (storage.Store, error) { return bolt.Open(path, tc.opts) }
			})
		})
	}
}

// The compiler checks that Store is a storage.Store.
var _ storage.Store = (*bolt.Store)(nil)
