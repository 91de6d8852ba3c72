package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ternmq/tern/storage/bolt"
)

// openStore opens the bbolt file in dir, creating dir if needed.
func openStore(dir, durability string) (*bolt.Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("-data: %w", err)
	}
	d := bolt.Sync
	if durability == "async" {
		d = bolt.Async
	}
	return bolt.Open(filepath.Join(dir, "tern.db"), bolt.Options{Durability: d})
}
