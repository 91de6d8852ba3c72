package brokertest

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ternmq/tern"
)

// goroutines is a snapshot of the running goroutines, as runtime.Stack
// prints them, taken by the goroutine self.
type goroutines struct {
	self int64
	all  map[int64]stack
}

// stack is one goroutine's entry in a snapshot.
type stack struct {
	text    string
	creator int64 // the goroutine that started it; 0 when not printed
	test    bool  // it runs a test function (testing.tRunner)
}

// checkClients waits, until the timeout, for the network clients to be
// disconnected, and fails the test naming those still connected. Closing
// the broker would end their connections and, with them, the goroutines of
// a client that does not reconnect (paho.golang's Client, Paho with
// auto-reconnect off), so the goroutine check alone would not see a client
// the test forgot. A test that closed the server itself is not checked:
// the broker cut its clients off.
func (s *Server) checkClients() {
	s.t.Helper()
	if !s.Broker.Serving() {
		return
	}
	assert.EventuallyWithT(s.t, func(c *assert.CollectT) {
		if ids := connected(s.Broker.Clients()); len(ids) > 0 {
			c.Errorf("brokertest: %d client(s) still connected at the end of the test: %s (disconnect clients and stop services in a t.Cleanup registered after brokertest.New, or use WithoutLeakCheck)",
				len(ids), strings.Join(ids, ", "))
		}
	}, s.cfg.timeout, 10*time.Millisecond, "brokertest: clients still connected %v after the test", s.cfg.timeout)
}

// connected names the connected clients among cs, with their addresses.
func connected(cs []tern.ClientInfo) []string {
	var out []string
	for _, c := range cs {
		if c.Connected {
			out = append(out, fmt.Sprintf("%q from %v", c.ID, c.RemoteAddr))
		}
	}
	return out
}

// checkLeaks waits, until the timeout, for the goroutines started since
// before to end, and fails the test with the stacks of those that do not.
//
// Other tests may run at the same time (t.Parallel), so a goroutine counts
// only when it descends from the goroutine that called New: its chain of
// creators reaches that goroutine, or a creator that has ended since (whose
// ancestry is lost, so the goroutine is counted). A chain that reaches
// another running test, or a goroutine older than New, belongs to someone
// else.
//
// On failure the test shows the stacks of the last check, then testify's
// "Condition never satisfied".
func (s *Server) checkLeaks(before goroutines) {
	s.t.Helper()
	assert.EventuallyWithT(s.t, func(c *assert.CollectT) {
		// The check runs on a goroutine of its own, which the snapshot
		// leaves out as the one taking it.
		if leaked := before.leaked(snapshot()); len(leaked) > 0 {
			c.Errorf("%s", describeLeaks(leaked, s.cfg.timeout))
		}
	}, s.cfg.timeout, 10*time.Millisecond, "brokertest: goroutines started during the test still running %v after it", s.cfg.timeout)
}

// describeLeaks lists the first stacks of leaked, saying how to avoid the
// leak.
func describeLeaks(leaked []string, timeout time.Duration) string {
	const show = 10
	var b strings.Builder
	fmt.Fprintf(&b, "brokertest: %d goroutine(s) started during the test still running %v after it (stop clients and services in a t.Cleanup registered after brokertest.New, or use WithoutLeakCheck):", len(leaked), timeout)
	for _, g := range leaked[:min(show, len(leaked))] {
		b.WriteString("\n\n")
		b.WriteString(g)
	}
	if len(leaked) > show {
		fmt.Fprintf(&b, "\n\n... and %d more", len(leaked)-show)
	}
	return b.String()
}

// leaked returns the stacks of the goroutines in now that descend from
// g.self and are not in g, oldest first.
func (g goroutines) leaked(now goroutines) []string {
	var ids []int64
	for id, st := range now.all {
		if _, old := g.all[id]; old || id == now.self || st.test || isIgnored(st.text) {
			continue
		}
		if g.descends(now, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = now.all[id].text
	}
	return out
}

// descends reports whether the new goroutine id descends from g.self.
func (g goroutines) descends(now goroutines, id int64) bool {
	for range len(now.all) { // a chain visits each goroutine at most once
		c := now.all[id].creator
		if c == g.self {
			return true
		}
		if _, old := g.all[c]; old {
			return false
		}
		st, running := now.all[c]
		if !running {
			return true // the creator ended: count it, to be safe
		}
		if st.test {
			return false
		}
		id = c
	}
	return true
}

// isIgnored reports goroutines that live for the rest of the process once
// some code has started them, without being a leak of that code.
func isIgnored(text string) bool {
	for _, fn := range [...]string{"os/signal.loop", "os/signal.signal_recv", "runtime.ensureSigM"} {
		if strings.Contains(text, fn+"(") {
			return true
		}
	}
	return false
}

// snapshot returns the running goroutines.
func snapshot() goroutines {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	g := goroutines{all: make(map[int64]stack)}
	for i, text := range strings.Split(string(bytes.TrimSpace(buf)), "\n\n") {
		id := parseID(text)
		if id == 0 {
			continue
		}
		if i == 0 { // runtime.Stack prints the calling goroutine first
			g.self = id
		}
		g.all[id] = stack{text: text, creator: parseCreator(text), test: strings.Contains(text, "\ntesting.tRunner(")}
	}
	return g
}

// parseID reads N from a stack's first line, "goroutine N [state]:".
func parseID(text string) int64 {
	f := strings.Fields(text)
	if len(f) < 2 || f[0] != "goroutine" {
		return 0
	}
	id, _ := strconv.ParseInt(f[1], 10, 64)
	return id
}

// parseCreator reads N from a stack's "created by F in goroutine N" line.
func parseCreator(text string) int64 {
	const in = " in goroutine "
	i := strings.LastIndex(text, "\ncreated by ")
	if i < 0 {
		return 0
	}
	line, _, _ := strings.Cut(text[i+1:], "\n")
	j := strings.LastIndex(line, in)
	if j < 0 {
		return 0
	}
	id, _ := strconv.ParseInt(line[j+len(in):], 10, 64)
	return id
}
