package tern_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// TestSoak keeps 10,000 in-memory connections busy with churn for the
// duration given by TERN_SOAK (for example TERN_SOAK=2m): every connection
// in turn publishes a QoS 1 message, disconnects, connects again and
// subscribes again, while the messages it subscribed to pile up and are
// read. It logs the broker's heap and goroutine count every few seconds
// and requires that both return to their baseline once every client has
// gone (the live heap within a margin for the runtime's own state). TERN_SOAK_CONNS changes the number of connections. See
// docs/reliability.md.
//
// The in-memory listener uses no file descriptor: 10,000 TCP connections
// in one process would need 20,000 (both ends), the limit of the machines
// this runs on.
func TestSoak(t *testing.T) {
	spec := os.Getenv("TERN_SOAK")
	if spec == "" {
		t.Skip("soak test: set TERN_SOAK to a duration (for example TERN_SOAK=2m) to run it; see docs/reliability.md")
	}
	duration, err := time.ParseDuration(spec)
	require.True(t, err == nil && duration > 0, "TERN_SOAK=%q: want a positive duration such as 2m", spec)
	conns := 10_000
	if s := os.Getenv("TERN_SOAK_CONNS"); s != "" {
		conns, err = strconv.Atoi(s)
		require.True(t, err == nil && conns >= 1, "TERN_SOAK_CONNS=%q: want a positive number", s)
	}
	const (
		workers = 16
		topics  = 1000
		every   = 5 * time.Second
	)

	b, l := ftStartMemory(t, tern.Options{})
	baseGoroutines, baseHeap, baseLive := soakSample()
	baseIdle := tern.IdleReaders(b)
	t.Logf("baseline: %d goroutines, HeapInuse %.1f MiB, HeapAlloc %.1f MiB after GC", baseGoroutines, mib(baseHeap), mib(baseLive))

	var connects, published, received atomic.Int64
	slots := make([]*ftClient, conns)
	// open connects slot i and subscribes it to its topic.
	open := func(i int) error {
		c, err := ftDial(l.Dial)
		if err != nil {
			return err
		}
		if _, err := c.connect(&packets.Connect{ClientID: fmt.Sprintf("soak-%05d", i), CleanSession: true}); err != nil {
			c.nc.Close()
			return err
		}
		if err := c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: fmt.Sprintf("soak/%d", i%topics), QoS: byte(i % 2)}}}); err != nil {
			c.nc.Close()
			return err
		}
		if _, err := soakUntil(c, packets.TypeSuback, &received); err != nil {
			c.nc.Close()
			return err
		}
		connects.Add(1)
		slots[i] = c
		return nil
	}
	// turn publishes from slot i, reads what it got meanwhile, and
	// replaces its connection with a new one.
	turn := func(i int, r *rand.Rand) error {
		c := slots[i]
		id := uint16(r.IntN(65535) + 1)
		if err := c.send(&packets.Publish{Topic: fmt.Sprintf("soak/%d", r.IntN(topics)), QoS: 1, PacketID: id, Payload: []byte("soak")}); err != nil {
			return err
		}
		if _, err := soakUntil(c, packets.TypePuback, &received); err != nil {
			return fmt.Errorf("slot %d: %w", i, err)
		}
		published.Add(1)
		if err := c.send(&packets.Disconnect{}); err != nil {
			return err
		}
		c.nc.Close()
		return open(i)
	}
	run := func(each func(w int, r *rand.Rand) error) error {
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := each(w, rand.New(rand.NewPCG(uint64(w), 1))); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}

	start := time.Now()
	err = run(func(w int, _ *rand.Rand) error {
		for i := w; i < conns; i += workers {
			if err := open(i); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err, "opening %d connections", conns)
	peakG, peakH := runtime.NumGoroutine(), uint64(0)
	t.Logf("%d connections open after %v: %d goroutines", conns, time.Since(start).Round(time.Millisecond), peakG)

	stop := make(chan struct{})
	report := make(chan struct{})
	go func() { // report every few seconds
		defer close(report)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			g := runtime.NumGoroutine()
			peakG, peakH = max(peakG, g), max(peakH, ms.HeapInuse)
			st := b.Stats()
			t.Logf("%6s: %5d goroutines, HeapInuse %6.1f MiB, %d connected; %d connects, %d published, %d received",
				time.Since(start).Round(time.Second), g, mib(ms.HeapInuse), st.ClientsConnected, connects.Load(), published.Load(), received.Load())
		}
	}()
	deadline := time.Now().Add(duration)
	err = run(func(w int, r *rand.Rand) error {
		for time.Now().Before(deadline) {
			for i := w; i < conns && time.Now().Before(deadline); i += workers {
				if err := turn(i, r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	close(stop)
	<-report
	require.NoError(t, err, "churn")
	elapsed := time.Since(start)
	for _, c := range slots {
		c.send(&packets.Disconnect{})
		c.nc.Close()
	}
	eventually(t, "every client gone", func() bool { return b.Stats().ClientsTotal == 0 })

	// Back to the baseline: the goroutines exactly; the live heap within a
	// margin for the runtime's own state, which keeps the descriptor of
	// every goroutine it ever ran at once (about 0.5 KiB each, never
	// freed). HeapInuse, which also counts partly used spans, is reported.
	liveBound := baseLive + 2<<20 + uint64(peakG)<<10
	st := b.Stats()
	t.Logf("soak of %v with %d connections: %d connects (%.0f/s), %d QoS 1 messages published, %d deliveries read, %d dropped",
		duration, conns, connects.Load(), float64(connects.Load())/elapsed.Seconds(), published.Load(), received.Load(), st.PublishDropped)
	t.Logf("peak: %d goroutines, HeapInuse %.1f MiB", peakG, mib(peakH))
	// The last sample, kept for the report: the condition runs on
	// goroutines of Eventually's, one of which may still run at a timeout.
	var after struct {
		sync.Mutex
		g       int
		h, live uint64
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		g, h, live := soakSample()
		g-- // the goroutine this condition runs on
		// The broker keeps a bounded pool of idle reader goroutines
		// for the next connections.
		g -= tern.IdleReaders(b) - baseIdle
		after.Lock()
		after.g, after.h, after.live = g, h, live
		after.Unlock()
		assert.LessOrEqual(c, g, baseGoroutines, "goroutines after the soak, want at most the baseline")
		assert.LessOrEqual(c, live, liveBound, "HeapAlloc after the soak in bytes, want at most %.1f MiB", mib(liveBound))
	}, 30*time.Second, 100*time.Millisecond)
	after.Lock()
	defer after.Unlock()
	t.Logf("after: %d goroutines (baseline %d); after GC HeapAlloc %.1f MiB (baseline %.1f MiB, bound %.1f MiB), HeapInuse %.1f MiB (baseline %.1f MiB)",
		after.g, baseGoroutines, mib(after.live), mib(baseLive), mib(liveBound), mib(after.h), mib(baseHeap))
}

// soakUntil reads until a packet of type want, acknowledging and counting
// the PUBLISH packets before it.
func soakUntil(c *ftClient, want packets.Type, received *atomic.Int64) (packets.Packet, error) {
	for {
		p, err := c.next(waitTimeout)
		if err != nil {
			return nil, fmt.Errorf("waiting for %v: %w", want, err)
		}
		if p.Type() == want {
			return p, nil
		}
		m, ok := p.(*packets.Publish)
		if !ok {
			return nil, fmt.Errorf("got %v, want %v", p.Type(), want)
		}
		received.Add(1)
		if m.QoS == 1 {
			if err := c.send(&packets.Puback{PacketID: m.PacketID}); err != nil {
				return nil, err
			}
		}
	}
}

// soakSample returns the goroutine count, HeapInuse and HeapAlloc after a
// collection.
func soakSample() (int, uint64, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse, ms.HeapAlloc
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
