package listeners

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTCPAcceptExchangeClose(t *testing.T) {
	checkGoroutines(t)
	l, err := TCP("127.0.0.1:0")
	require.NoError(t, err)
	accepted := acceptOne(t, l)
	client, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	server := receive(t, accepted)
	exchange(t, client, server)

	require.NoError(t, l.Close(), "Close")
	_, err = l.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Accept after Close")
	exchange(t, server, client) // accepted connections outlive the listener
}

func TestTCPBadAddress(t *testing.T) {
	l, err := TCP("127.0.0.1:notaport")
	if err == nil {
		_ = l.Close()
	}
	require.Error(t, err, "TCP accepted a malformed address")
}
