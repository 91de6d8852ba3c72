package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/auth"
	"github.com/ternmq/tern/listeners"
)

const testTimeout = 20 * time.Second

// TestServerAuthenticatesAndReloads: the assembled server checks users
// against the password file, and a reload lets a user added since in.
func TestServerAuthenticatesAndReloads(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	require.NoError(t, auth.SetPassword(passwd, "alice", "alice-pw"))
	l, err := listeners.TCP("127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	logs := &syncLog{lines: make(chan string, 256)}
	go func() {
		done <- run(ctx, config{passwordFile: passwd, data: filepath.Join(dir, "state")}, []net.Listener{l}, hup, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	assert.NoError(t, connect(addr, "alice", "alice-pw"))
	assert.ErrorContains(t, connect(addr, "alice", "wrong"), "bad user name or password")
	assert.ErrorContains(t, connect(addr, "bob", "bob-pw"), "bad user name or password")

	require.NoError(t, auth.SetPassword(passwd, "bob", "bob-pw"))
	hup <- os.Interrupt
	for reloaded := false; !reloaded; {
		select {
		case line := <-logs.lines:
			require.NotContains(t, line, "keeping the previous files")
			reloaded = strings.Contains(line, "reloaded")
		case <-time.After(testTimeout):
			t.Fatal("no reload logged")
		}
	}
	assert.NoError(t, connect(addr, "bob", "bob-pw"))
}

// connect connects and disconnects a Paho client.
func connect(addr, user, password string) error {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(user).
		SetUsername(user).SetPassword(password).SetAutoReconnect(false).SetConnectTimeout(testTimeout))
	tok := c.Connect()
	tok.WaitTimeout(testTimeout)
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(0)
	return nil
}

// syncLog hands each log record to the test.
type syncLog struct{ lines chan string }

func (s *syncLog) Write(p []byte) (int, error) {
	select {
	case s.lines <- string(p):
	default: // the test reads only until the reload
	}
	return len(p), nil
}

var _ io.Writer = (*syncLog)(nil)
