package brokertest_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/brokertest"
)

// payloads returns the payloads of ms, in order.
func payloads(ms []tern.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}

// TestExpectSeesEarlierMessages: the recording starts at New, so a message
// published before Expect satisfies it.
func TestExpectSeesEarlierMessages(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	srv.Publish("alerts/1", "too hot")
	srv.Expect(t, "alerts/1", "too hot")
}

// TestExpectWaits: a message published after Expect started satisfies it.
func TestExpectWaits(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Expect(t, "later", "x")
	}()
	srv.Publish("later", "x")
	<-done
}

// TestExpectTakesEachMessageOnce: two Expects need two messages.
func TestExpectTakesEachMessageOnce(t *testing.T) {
	f := newFake(t)
	var srv *brokertest.Server
	f.run(func() { srv = brokertest.New(f, brokertest.WithoutTCP(), brokertest.WithTimeout(50*time.Millisecond)) })
	f.run(func() {
		srv.Publish("alerts/1", "too hot")
		srv.Expect(f, "alerts/1", "too hot")
	})
	if got := f.failed(); got != "" {
		t.Fatalf("first Expect failed: %s", got)
	}
	f.run(func() { srv.Expect(f, "alerts/1", "too hot") })
	mustFail(t, f, `no message "too hot" on "alerts/1" within 50ms`, `alerts/1 "too hot" (taken)`)
}

// TestExpectFailureSaysWhatWasSeen: a wrong payload and a wrong topic are
// told apart in the failure.
func TestExpectFailureSaysWhatWasSeen(t *testing.T) {
	cases := []struct {
		name, topic, payload string
		want                 []string
	}{
		{"wrong payload", "alerts/1", "too hot", []string{`published there: alerts/1 "too cold"`}},
		{"wrong topic", "alerts/2", "too cold", []string{"nothing was published there", "latest on: alerts/1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			var srv *brokertest.Server
			f.run(func() {
				srv = brokertest.New(f, brokertest.WithoutTCP(), brokertest.WithTimeout(50*time.Millisecond))
				srv.Publish("alerts/1", "too cold")
				srv.Next(f, "alerts/1") // the message is recorded
				srv.Expect(f, tc.topic, tc.payload)
			})
			mustFail(t, f, tc.want...)
		})
	}
}

// TestExpectSkipsOtherPayloads: Expect takes the first message with its
// payload and leaves the others for later Expects and Nexts.
func TestExpectSkipsOtherPayloads(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	for _, p := range []string{"1", "2", "3"} {
		srv.Publish("n", p)
	}
	srv.Expect(t, "n", "2")
	if m := srv.Next(t, "n"); string(m.Payload) != "1" {
		t.Errorf("Next = %q, want 1", m.Payload)
	}
	if m := srv.Next(t, "n"); string(m.Payload) != "3" {
		t.Errorf("Next = %q, want 3", m.Payload)
	}
}

// TestNext returns messages in order, per filter, with their QoS.
func TestNext(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	srv.PublishMessage(tern.Message{Topic: "sensors/1/temp", Payload: []byte("20"), QoS: 1})
	srv.Publish("sensors/2/hum", "40")
	srv.PublishMessage(tern.Message{Topic: "sensors/3/temp", Payload: []byte("22"), QoS: 2})

	cases := []struct {
		filter, topic, payload string
		qos                    byte
	}{
		{"sensors/+/temp", "sensors/1/temp", "20", 1},
		{"sensors/+/temp", "sensors/3/temp", "22", 2},
		{"#", "sensors/2/hum", "40", 0},
	}
	for _, c := range cases {
		m := srv.Next(t, c.filter)
		if m.Topic != c.topic || string(m.Payload) != c.payload || m.QoS != c.qos {
			t.Errorf("Next(%q) = %s %q QoS %d, want %s %q QoS %d", c.filter, m.Topic, m.Payload, m.QoS, c.topic, c.payload, c.qos)
		}
	}
}

func TestNextInvalidFilter(t *testing.T) {
	f := newFake(t)
	var srv *brokertest.Server
	f.run(func() { srv = brokertest.New(f, brokertest.WithoutTCP()) })
	f.run(func() { srv.Next(f, "a/#/b") })
	mustFail(t, f, "brokertest")
}

// TestMessages lists what was recorded, taken or not; '$' topics are not
// recorded.
func TestMessages(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	srv.Publish("$app/hidden", "x")
	srv.Publish("a/1", "one")
	srv.Publish("b/1", "other")
	srv.Publish("a/2", "two")
	srv.Expect(t, "a/2", "two")
	srv.Expect(t, "b/1", "other") // b/1 came before a/2, so it is recorded too
	if got := payloads(srv.Messages("a/+")); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("Messages(a/+) = %q, want [one two]", got)
	}
	if got := payloads(srv.Messages("#")); !slices.Equal(got, []string{"one", "other", "two"}) {
		t.Errorf("Messages(#) = %q, want [one other two]", got)
	}
	if got := srv.Messages("$app/#"); len(got) != 0 {
		t.Errorf("Messages($app/#) = %v, want none", got)
	}
}

// TestWithHistory keeps only the latest messages and says so on failure.
func TestWithHistory(t *testing.T) {
	f := newFake(t)
	var srv *brokertest.Server
	f.run(func() {
		srv = brokertest.New(f, brokertest.WithoutTCP(), brokertest.WithHistory(3), brokertest.WithTimeout(50*time.Millisecond))
		for i := 1; i <= 5; i++ {
			srv.Publish("k", fmt.Sprint(i))
		}
		srv.Expect(f, "k", "5")
	})
	if got := payloads(srv.Messages("k")); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Errorf("Messages = %q, want [3 4 5]", got)
	}
	f.run(func() { srv.Expect(f, "k", "1") })
	mustFail(t, f, "2 older ones forgotten")
}

// TestRecordedPayloadIsACopy: a message's payload does not change when
// the publisher reuses its buffer.
func TestRecordedPayloadIsACopy(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	buf := []byte("first")
	srv.PublishMessage(tern.Message{Topic: "t", Payload: buf})
	srv.Expect(t, "t", "first")
	copy(buf, "XXXXX")
	if got := string(srv.Messages("t")[0].Payload); !strings.HasPrefix(got, "first") {
		t.Errorf("recorded payload = %q, want first", got)
	}
}
