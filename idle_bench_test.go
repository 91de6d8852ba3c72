package tern_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/listeners/testcert"
)

// BenchmarkIdleConnections measures what an idle connection costs the
// broker: b.N clients connect (MQTT 3.1.1, keepalive 300 s, as the
// comparison harness's conns scenario does) and fall silent, and the
// broker's live heap and goroutine stacks after a GC are divided by b.N.
// The clients keep only their socket's file descriptor, so the figures
// are the broker's alone. Metrics: B/conn (heap and stacks), heapB/conn,
// stackB/conn, goroutines/conn; ns/op is the time to connect one client.
//
//	go test -run '^$' -bench IdleConnections -benchtime 5000x .
//
// With TERN_IDLE_HEAPPROFILE=file, every allocation is sampled and the heap
// profile of the idle broker is written to file (per sub-benchmark, with
// its name appended) for `go tool pprof -sample_index=inuse_space`.
func BenchmarkIdleConnections(b *testing.B) {
	for _, tr := range []struct {
		name string
		tls  bool
		ws   bool
	}{
		{"tcp", false, false},
		{"tls", true, false},
		{"ws", false, true},
		{"wss", true, true},
	} {
		b.Run(tr.name, func(b *testing.B) { benchIdle(b, tr.tls, tr.ws) })
	}
}

func benchIdle(b *testing.B, useTLS, useWS bool) {
	n := min(b.N, idleConnLimit(b))
	if os.Getenv("TERN_IDLE_HEAPPROFILE") != "" {
		// Every allocation sampled: the profile then counts bytes exactly.
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	var serverTLS, clientTLS *tls.Config
	if useTLS {
		certs := testcert.New(b)
		serverTLS = certs.ServerConfig(tls.NoClientCert)
		clientTLS = certs.ClientConfig()
		// As the harness does (-tlsgroup x25519): the key exchange
		// OpenSSL-based brokers pick.
		clientTLS.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	var l net.Listener
	var dial func() (net.Conn, error)
	switch {
	case useWS:
		ws, err := listeners.ListenWebSocket("127.0.0.1:0", serverTLS, listeners.WebSocketOptions{})
		if err != nil {
			b.Fatal(err)
		}
		l = ws
		u := ws.Addr().String()
		addr := ws.Addr().(listeners.WebSocketAddr).Host
		dial = func() (net.Conn, error) {
			cfg, err := websocket.NewConfig(u, "http://localhost/")
			if err != nil {
				return nil, err
			}
			cfg.Protocol = []string{listeners.SubprotocolMQTT}
			nc, err := net.DialTimeout("tcp", addr, waitTimeout)
			if err != nil {
				return nil, err
			}
			var stream net.Conn = nc
			if clientTLS != nil {
				cfg := clientTLS.Clone()
				cfg.ServerName = "localhost"
				tc := tls.Client(nc, cfg)
				if err := tc.Handshake(); err != nil {
					nc.Close()
					return nil, err
				}
				stream = tc
			}
			ws, err := websocket.NewClient(cfg, stream)
			if err != nil {
				nc.Close()
				return nil, err
			}
			ws.PayloadType = websocket.BinaryFrame
			return idleWSConn{ws, nc}, nil
		}
	case useTLS:
		tl, err := listeners.TLS("127.0.0.1:0", serverTLS, listeners.TLSOptions{})
		if err != nil {
			b.Fatal(err)
		}
		l = tl
		addr := tl.Addr().String()
		dial = func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, clientTLS)
		}
	default:
		tl, err := listeners.TCP("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		l = tl
		addr := tl.Addr().String()
		dial = func() (net.Conn, error) { return net.DialTimeout("tcp", addr, waitTimeout) }
	}
	br := startBrokerOn(b, tern.Options{}, l)

	base := runtime.NumGoroutine()
	heap0, stack0 := idleMemory()
	fds := make([]int, n)
	b.Cleanup(func() {
		for _, fd := range fds {
			if fd > 0 {
				syscall.Close(fd)
			}
		}
	})
	b.ResetTimer()
	// A few clients connect at once, as a fleet reconnecting would.
	const parallel = 16
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	for w := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += parallel {
				fd, err := idleClient(dial, fmt.Sprintf("idle-%d", i))
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				fds[i] = fd
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	// Idle connections park; give the last ones time to, without failing
	// a transport that keeps a goroutine per connection.
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > base+16 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if got := br.Stats().ClientsConnected; got < n {
		b.Fatalf("%d clients connected, want %d", got, n)
	}
	heap1, stack1 := idleMemory()
	if path := os.Getenv("TERN_IDLE_HEAPPROFILE"); path != "" {
		writeHeapProfile(b, path+"."+b.Name()[len("BenchmarkIdleConnections/"):])
	}
	heap := (float64(heap1) - float64(heap0)) / float64(n)
	stack := (float64(stack1) - float64(stack0)) / float64(n)
	b.ReportMetric(heap+stack, "B/conn")
	b.ReportMetric(heap, "heapB/conn")
	b.ReportMetric(stack, "stackB/conn")
	b.ReportMetric(float64(runtime.NumGoroutine()-base)/float64(n), "goroutines/conn")
}

// idleConnLimit is how many clients the process can hold: each takes two
// descriptors, the client's and the broker's.
func idleConnLimit(b *testing.B) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatal(err)
	}
	return max(int(rl.Cur)/2-100, 1)
}

// idleMemory returns the live heap and the goroutine stacks in use, after
// a full collection.
func idleMemory() (heap, stack uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// idleConnect is a CONNECT of MQTT 3.1.1 with a clean session, keepalive
// 300 s and the client identifier appended.
func idleConnect(id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 300 >> 8, 300 & 0xff, 0, byte(len(id))}
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// idleClient connects one client and returns a duplicate of its socket's
// descriptor. The client's Go connection is let go without a word to the
// broker (no DISCONNECT, no TLS close_notify, no WebSocket close frame),
// so that the client holds only the descriptor.
func idleClient(dial func() (net.Conn, error), id string) (int, error) {
	nc, err := dial()
	if err != nil {
		return 0, err
	}
	nc.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := nc.Write(idleConnect(id)); err != nil {
		nc.Close()
		return 0, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(nc, ack[:]); err != nil {
		nc.Close()
		return 0, err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		nc.Close()
		return 0, fmt.Errorf("CONNACK % x", ack)
	}
	raw := nc
	for {
		switch c := raw.(type) {
		case *tls.Conn:
			raw = c.NetConn()
			continue
		case idleWSConn:
			raw = c.tcp
			continue
		}
		break
	}
	tc, ok := raw.(*net.TCPConn)
	if !ok {
		nc.Close()
		return 0, fmt.Errorf("client connection %T is not over TCP", raw)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd, dupErr := -1, error(nil)
	rc.Control(func(s uintptr) { fd, dupErr = syscall.Dup(int(s)) })
	tc.Close() // the duplicate keeps the socket open
	return fd, dupErr
}

// idleWSConn is a WebSocket client connection and its TCP connection.
type idleWSConn struct {
	*websocket.Conn
	tcp net.Conn
}
