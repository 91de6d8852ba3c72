package listeners

import (
	"context"
	"fmt"
	"net"
	"time"
)

// TCPKeepAlive is the TCP keep-alive configuration of connections accepted
// by TCP (and by TLS and ListenWebSocket, which build on it): the first probe
// after 15 seconds of silence, then one every 15 seconds, and the connection
// is dropped after 9 unanswered probes. These are Go's defaults, spelled out.
//
// TCP keep-alive finds dead peers (a device that lost power, a NAT that
// forgot the flow) even for MQTT clients that connect with a Keep Alive of
// zero, and it keeps idle NAT mappings warm.
func TCPKeepAlive() net.KeepAliveConfig {
	return net.KeepAliveConfig{
		Enable:   true,
		Idle:     15 * time.Second,
		Interval: 15 * time.Second,
		Count:    9,
	}
}

// TCP listens on the TCP address addr (for example ":1883") and returns a
// plain *net.TCPListener. Accepted connections have:
//
//   - TCP keep-alive enabled as described by TCPKeepAlive;
//   - TCP_NODELAY set (Go's default), so small MQTT packets such as PUBACK
//     and PINGRESP leave at once; the broker coalesces its own writes;
//
// and the listening socket has SO_REUSEADDR set (Go's default on Unix), so a
// restarted broker can bind its port while old connections sit in TIME_WAIT.
//
// For any other socket options, build the listener with net.ListenConfig and
// pass it to Broker.Serve directly: the broker serves any net.Listener. On
// Linux, Broker.Serve accepts the connections of a *net.TCPListener itself
// and serves them as its own sockets, with the two options above whatever
// the listener's net.ListenConfig asked for (tern.Options.StandardSockets
// keeps Go's sockets and their configuration).
func TCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: TCPKeepAlive()}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listeners: tcp listen %s: %w", addr, err)
	}
	return l, nil
}
