package mqtttest

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// FreePorts gives distinct ports that can be listened on, below the
// kernel's ephemeral range where it is known.
func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(6)
	require.NoError(t, err)
	require.Len(t, ports, 6)
	seen := map[int]bool{}
	lo := ephemeralLow()
	for _, p := range ports {
		require.False(t, seen[p], "port %d twice in %v", p, ports)
		seen[p] = true
		if lo-minPort >= 600 {
			require.GreaterOrEqual(t, p, minPort)
			require.Less(t, p, lo, "port %d in the ephemeral range from %d", p, lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		require.NoError(t, err, "listen on %d", p)
		l.Close()
	}
}
