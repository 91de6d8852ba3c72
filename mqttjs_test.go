package tern_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	require.NoError(t, err)
	tcp, err := listeners.TCP("127.0.0.1:0")
	require.NoError(t, err)
	ws, err := listeners.ListenWebSocket("127.0.0.1:0", nil, listeners.WebSocketOptions{})
	if err != nil {
		tcp.Close()
	}
	require.NoError(t, err)
	served := make(chan error, 2)
	go func() { served <- b.Serve(tcp) }()
	go func() { served <- b.Serve(ws) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		assert.NoError(t, b.Close(ctx), "Close")
		for range 2 {
			assert.ErrorIs(t, <-served, tern.ErrClosed, "Serve's return")
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
			require.NoError(t, err, "node %s %s:\n%s", script, tc.url, out)
			t.Logf("%s", out)
			// The script's three clients went through this broker.
			assert.EqualValues(t, 3, b.Stats().Connects-before, "connects the broker counted during the run")
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
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "npm ci in %s:\n%s", mqttjsDir, out)
}
