package tern_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage/bolt"
)

// TestPersistFileStaysBoundedUnderSteadyTraffic sends 100,000 QoS 1
// messages through a persistent session stored in bolt: delivered and
// acknowledged messages are deleted, and bbolt reuses the freed pages, so
// the file ends small (measured: 1 MiB, bbolt's minimum growth step;
// the bound is 8 MiB).
func TestPersistFileStaysBoundedUnderSteadyTraffic(t *testing.T) {
	const total, window = 100_000, 200
	path := filepath.Join(t.TempDir(), "tern.db")
	st, err := bolt.Open(path, bolt.Options{Durability: bolt.Async})
	if err != nil {
		t.Fatal(err)
	}
	b, addr := startBroker(t, tern.Options{Store: st})
	sub := mustConnect(t, addr, "steady-sub", false)
	sub.subscribe(1, packets.Subscription{Filter: "steady/#", QoS: 1})
	pub := mustConnect(t, addr, "steady-pub", true)

	payload := make([]byte, 200)
	sub.conn.SetWriteDeadline(time.Time{}) // acknowledgements for as long as it takes
	done := make(chan error, 1)
	var got atomic.Int64
	go func() { // the subscriber acknowledges everything it gets
		for n := 0; n < total; n++ {
			p, err := sub.tryRecv(waitTimeout)
			if err != nil {
				done <- fmt.Errorf("subscriber after %d: %w", n, err)
				return
			}
			if m, ok := p.(*packets.Publish); ok {
				ack, _ := (&packets.Puback{PacketID: m.PacketID}).Append(nil)
				if _, err := sub.conn.Write(ack); err != nil {
					done <- fmt.Errorf("subscriber PUBACK: %w", err)
					return
				}
			}
			got.Add(1)
		}
		done <- nil
	}()
	var batch []byte
	for sent := 0; sent < total; sent += window {
		// Stay within the subscriber's queue: this test is about the
		// file, not about dropping.
		if !waitUntil(func() bool { return got.Load() >= int64(sent-5000) }) {
			t.Fatalf("the subscriber fell behind: %d received of %d sent", got.Load(), sent)
		}
		batch = batch[:0]
		for i := 0; i < window; i++ {
			batch, _ = (&packets.Publish{Topic: "steady/t", Payload: payload, QoS: 1, PacketID: uint16(i + 1)}).Append(batch)
		}
		pub.sendRaw(batch)
		for i := 0; i < window; i++ {
			if _, ok := pub.recv().(*packets.Puback); !ok {
				t.Fatal("expected PUBACK")
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sub.send(&packets.Pingreq{}) // the last PUBACKs are handled
	for {
		if _, ok := sub.recv().(*packets.Pingresp); ok {
			break
		}
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file size after %d messages: %d bytes", total, fi.Size())
	if fi.Size() > 8<<20 {
		t.Fatalf("file is %d bytes after %d delivered messages, want at most 8 MiB", fi.Size(), total)
	}
	st, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	snap, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Deliveries) != 0 {
		t.Fatalf("%d deliveries left in the store after all were acknowledged", len(snap.Deliveries))
	}
}

// waitUntil polls cond until it holds or waitTimeout passes.
func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	return true
}
