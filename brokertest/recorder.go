package brokertest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/topics"
)

// Expect waits until a message with payload is published to a topic matching
// filter (a topic name, or a filter with wildcards), and fails t if none is
// within the timeout, listing what was published there instead. A message
// published before the call counts, once: each recorded message satisfies at
// most one Expect or Next.
func (s *Server) Expect(t testing.TB, filter, payload string) {
	t.Helper()
	s.wait(t, filter, fmt.Sprintf("message %q", payload), func(m tern.Message) bool {
		return string(m.Payload) == payload
	})
}

// Next returns the earliest recorded message on a topic matching filter that
// no Expect, Next, NextFunc or Request has taken yet, waiting for one until the timeout; it
// fails t if none comes.
func (s *Server) Next(t testing.TB, filter string) tern.Message {
	t.Helper()
	return s.wait(t, filter, "message", func(tern.Message) bool { return true })
}

// NextFunc returns the earliest recorded message on a topic matching filter
// that match accepts and no Expect, Next, NextFunc or Request has taken
// yet, waiting for one
// until the timeout; it fails t if none comes. It suits checks on more than
// the payload, such as MQTT 5 properties:
//
//	m := srv.NextFunc(t, "devices/+/status", func(m tern.Message) bool {
//		v, _ := brokertest.UserProperty(m, "reason")
//		return v == "shutdown"
//	})
func (s *Server) NextFunc(t testing.TB, filter string, match func(tern.Message) bool) tern.Message {
	t.Helper()
	return s.wait(t, filter, "matching message", match)
}

// UserProperty returns the value of the first MQTT 5 User Property of m
// named name, and whether m has one. A message from an MQTT 3.1.1 client
// has none.
func UserProperty(m tern.Message, name string) (string, bool) {
	for _, p := range m.UserProperties {
		if p.Key == name {
			return p.Value, true
		}
	}
	return "", false
}

// Messages returns the recorded messages on topics matching filter, taken
// by Expect and Next or not, oldest first. It does not wait. An invalid
// filter matches nothing.
func (s *Server) Messages(filter string) []tern.Message {
	var out []tern.Message
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	for _, e := range s.rec.log {
		if topics.Matches(filter, e.m.Topic) {
			out = append(out, clone(e.m))
		}
	}
	return out
}

// wait takes the earliest untaken message matching filter and ok, waiting for
// it until the timeout, and fails t if none comes.
func (s *Server) wait(t testing.TB, filter, what string, ok func(tern.Message) bool) tern.Message {
	t.Helper()
	require.NoError(t, topics.ValidFilter(filter), "brokertest: the filter to wait on")
	timer := time.NewTimer(s.cfg.timeout)
	defer timer.Stop()
	for {
		m, found, changed := s.rec.take(func(m tern.Message) bool { return topics.Matches(filter, m.Topic) && ok(m) })
		if found {
			return m
		}
		if changed == nil {
			require.FailNow(t, fmt.Sprintf("brokertest: no %s on %q, and the server is closed", what, filter),
				s.rec.describe(filter))
		}
		select {
		case <-changed:
		case <-timer.C:
			require.FailNow(t, fmt.Sprintf("brokertest: no %s on %q within %v", what, filter, s.cfg.timeout),
				s.rec.describe(filter))
		}
	}
}

// recorder keeps the latest messages the broker routed to "#".
type recorder struct {
	mu        sync.Mutex
	log       []entry
	max       int
	forgotten int
	changed   chan struct{} // closed and replaced at each message; nil once stopped
}

type entry struct {
	m     tern.Message
	taken bool
}

// record subscribes a new recorder to every topic of b.
func record(b *tern.Broker, size int) (*recorder, error) {
	r := &recorder{max: size, changed: make(chan struct{})}
	if _, err := b.Subscribe("#", tern.SubscribeOptions{QoS: 2}, r.add); err != nil {
		return nil, fmt.Errorf("recording messages: %w", err)
	}
	return r, nil
}

func (r *recorder) add(m tern.Message, _ tern.Client) {
	m = clone(m) // the broker's copy is shared with other subscribers
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		return
	}
	if len(r.log) == r.max {
		r.log = r.log[1:]
		r.forgotten++
	}
	r.log = append(r.log, entry{m: m})
	close(r.changed)
	r.changed = make(chan struct{})
}

// clone returns a copy of m that shares no memory with it, so that a test
// may change what it is given without changing the record.
func clone(m tern.Message) tern.Message {
	m.Payload = bytes.Clone(m.Payload)
	m.CorrelationData = bytes.Clone(m.CorrelationData)
	m.UserProperties = slices.Clone(m.UserProperties)
	m.SubscriptionIDs = slices.Clone(m.SubscriptionIDs)
	return m
}

// stop wakes the waiters for good: no message will come after it.
func (r *recorder) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// take marks and returns the earliest untaken message that ok accepts.
// Otherwise it returns a channel closed when the next message arrives, or
// nil when the recorder is stopped.
func (r *recorder) take(ok func(tern.Message) bool) (tern.Message, bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.log {
		if e := &r.log[i]; !e.taken && ok(e.m) {
			e.taken = true
			return clone(e.m), true, nil
		}
	}
	return tern.Message{}, false, r.changed
}

// describe says what was recorded on filter, and the latest topics, to help
// a failing test tell a wrong payload from a wrong topic from no message.
func (r *recorder) describe(filter string) string {
	const show = 5
	r.mu.Lock()
	defer r.mu.Unlock()
	var on, recent []string
	for _, e := range r.log {
		if topics.Matches(filter, e.m.Topic) {
			s := describeMessage(e.m)
			if e.taken {
				s += " (taken)"
			}
			on = append(on, s)
		}
	}
	for i := max(0, len(r.log)-show); i < len(r.log); i++ {
		recent = append(recent, r.log[i].m.Topic)
	}
	var b strings.Builder
	switch {
	case len(on) == 0:
		b.WriteString("nothing was published there")
	case len(on) > show:
		fmt.Fprintf(&b, "published there: %d messages, the last %d: %s", len(on), show, strings.Join(on[len(on)-show:], ", "))
	default:
		fmt.Fprintf(&b, "published there: %s", strings.Join(on, ", "))
	}
	fmt.Fprintf(&b, "; %d messages recorded", len(r.log))
	if len(recent) > 0 {
		fmt.Fprintf(&b, ", latest on: %s", strings.Join(recent, ", "))
	}
	if r.forgotten > 0 {
		fmt.Fprintf(&b, "; %d older ones forgotten (WithHistory)", r.forgotten)
	}
	return b.String()
}

// describeMessage shows a recorded message as a failure lists it: its
// topic, payload and the MQTT 5 properties a test may wait on.
func describeMessage(m tern.Message) string {
	var props []string
	if m.ResponseTopic != "" {
		props = append(props, fmt.Sprintf("response topic %q", m.ResponseTopic))
	}
	if m.CorrelationData != nil {
		props = append(props, fmt.Sprintf("correlation data %q", m.CorrelationData))
	}
	if m.ContentType != "" {
		props = append(props, fmt.Sprintf("content type %q", m.ContentType))
	}
	for _, p := range m.UserProperties {
		props = append(props, fmt.Sprintf("%q=%q", p.Key, p.Value))
	}
	s := fmt.Sprintf("%s %q", m.Topic, m.Payload)
	if len(props) > 0 {
		s += " [" + strings.Join(props, ", ") + "]"
	}
	return s
}
