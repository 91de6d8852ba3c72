package storage_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/storage/storagetest"
)

func TestMemoryConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Opener {
		m := storage.NewMemory()
		return func() (storage.Store, error) { return m.Reopen(), nil }
	})
}

func TestMemoryHandlesShareData(t *testing.T) {
	ctx := context.Background()
	a := storage.NewMemory()
	b := a.Reopen()
	op := storage.Op{Kind: storage.PutSession, Session: storage.Session{ClientID: "c"}}
	require.NoError(t, a.Write(ctx, []storage.Op{op}), "Write")
	require.NoError(t, a.Close(), "Close")
	snap, err := b.Load(ctx) // b stays open when a is closed
	require.NoError(t, err, "Load through the second handle")
	require.Len(t, snap.Sessions, 1, "Load through the second handle: %+v, want session c", snap.Sessions)
	require.Equal(t, "c", snap.Sessions[0].ClientID, "Load through the second handle: %+v, want session c", snap.Sessions)
	snap, err = storage.NewMemory().Load(ctx)
	require.NoError(t, err, "Load of a new Memory")
	require.Empty(t, snap.Sessions, "a new Memory shares data")
}

// The compiler checks that Memory is a Store.
var _ storage.Store = (*storage.Memory)(nil)
