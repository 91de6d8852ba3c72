package mqtttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// minPort is the lowest port FreePorts hands out.
const minPort = 10000

// FreePorts returns n distinct loopback TCP ports that nothing listened on a
// moment ago, for processes a test starts later.
//
// Where the kernel says which ports it hands out as the local end of
// outgoing connections (Linux: /proc/sys/net/ipv4/ip_local_port_range),
// they are picked below that range: a port the kernel chose itself
// (listening on port 0) can be given to an outgoing connection, such as a
// cluster node's route to another, between this call and the listen it is
// for, and that node then fails to start.
func FreePorts(n int) ([]int, error) {
	lo := ephemeralLow()
	if lo-minPort < 100*n {
		return kernelPorts(n)
	}
	seen := make(map[int]bool, n)
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n && tries < 100*n; tries++ {
		p := minPort + rand.IntN(lo-minPort)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // in use
		}
		l.Close()
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("mqtttest: found %d free ports below %d, wanted %d", len(ports), lo, n)
	}
	return ports, nil
}

// ephemeralLow returns the lowest port of the kernel's ephemeral range, 0
// when it is not known.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return lo
}

// kernelPorts returns n ports the kernel picked (listening on port 0).
func kernelPorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
