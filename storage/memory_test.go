package storage_test

import (
	"context"
	"testing"

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
	if err := a.Write(ctx, []storage.Op{op}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Load(ctx) // b stays open when a is closed
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sessions) != 1 || snap.Sessions[0].ClientID != "c" {
		t.Fatalf("Load through the second handle: %+v, want session c", snap.Sessions)
	}
	snap, err = storage.NewMemory().Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sessions) != 0 {
		t.Fatalf("a new Memory shares data: %+v", snap.Sessions)
	}
}

// The compiler checks that Memory is a Store.
var _ storage.Store = (*storage.Memory)(nil)
