package bolt_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/storage/bolt"
)

// A broker whose sessions and retained messages survive restarts.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "tern") // /var/lib/tern in production
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tern.db")

	for run := 1; run <= 2; run++ {
		st, err := bolt.Open(path, bolt.Options{}) // Durability: bolt.Sync
		if err != nil {
			log.Fatal(err)
		}
		b, err := tern.New(tern.Options{Store: st, SysInterval: -1})
		if err != nil {
			log.Fatal(err)
		}
		if run == 1 {
			err = b.Publish(context.Background(), "config/mode", []byte("eco"), 1, true)
			if err != nil {
				log.Fatal(err)
			}
		}
		fmt.Println("run", run, "retained messages:", b.Stats().Retained)
		b.Close(context.Background())
		st.Close()
	}
	// Output:
	// run 1 retained messages: 1
	// run 2 retained messages: 1
}
