package tern_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/listeners"
)

// MQTT.js is the JavaScript client that browsers and Node.js programs use;
// TestMQTTJS runs testdata/mqttjs/interop.mjs with it against Tern over TCP
// and over WebSocket.

// mqttjsDir holds the MQTT.js check, its package.json and package-lock.json.
const mqttjsDir = "testdata/mqttjs"

// mqttjsTimeout bounds one run of the script (it has its own, shorter,
// overall timeout) and the installation of its dependencies.
const (
	mqttjsTimeout        = 60 * time.Second
	mqttjsScriptTimeout  = 30 * time.Second
	mqttjsInstallTimeout = 5 * time.Minute
)

func TestMQTTJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: MQTT.js interop test needs Node.js (.ci/run installs it)")
	}
	mqttjsInstall(t)

	before := runtime.NumGoroutine()
	b, err := tern.New(tern.Options{SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := listeners.TCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := listeners.ListenWebSocket("127.0.0.1:0", nil, listeners.WebSocketOptions{})
	if err != nil {
		tcp.Close()
		t.Fatal(err)
	}
	served := make(chan error, 2)
	go func() { served <- b.Serve(tcp) }()
	go func() { served <- b.Serve(ws) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		for range 2 {
			if err := <-served; !errors.Is(err, tern.ErrClosed) {
				t.Errorf("Serve returned %v, want ErrClosed", err)
			}
		}
		waitGoroutines(t, before)
	})

	for _, tc := range []struct{ name, url string }{
		{"tcp", "mqtt://" + tcp.Addr().String()},
		{"websocket", ws.Addr().String()}, // ws://127.0.0.1:PORT/mqtt
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.Stats().Connects
			ctx, cancel := context.WithTimeout(context.Background(), mqttjsTimeout)
			defer cancel()
			script := filepath.Join(mqttjsDir, "interop.mjs")
			timeoutMS := strconv.FormatInt(mqttjsScriptTimeout.Milliseconds(), 10)
			cmd := exec.CommandContext(ctx, node, script, tc.url, timeoutMS)
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("node %s %s: %v\n%s", script, tc.url, err, out)
			}
			t.Logf("%s", out)
			// The script's three clients went through this broker.
			if got := b.Stats().Connects - before; got != 3 {
				t.Errorf("broker counted %d connects during the run, want 3", got)
			}
		})
	}
}

// mqttjsInstall installs the pinned MQTT.js with npm ci when
// testdata/mqttjs/node_modules is missing, so that go test works on a fresh
// checkout of a machine with Node.js and npm.
func mqttjsInstall(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(mqttjsDir, "node_modules", "mqtt", "package.json")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not installed: the MQTT.js interop test needs it once to install MQTT.js " +
			"(or run npm ci --no-audit --no-fund in testdata/mqttjs)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqttjsInstallTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = mqttjsDir
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", mqttjsDir, err, out)
	}
}
