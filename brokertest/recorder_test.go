package brokertest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	require.Empty(t, f.failed(), "first Expect failed")
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
	assert.Equal(t, "1", string(srv.Next(t, "n").Payload), "first Next after Expect took 2")
	assert.Equal(t, "3", string(srv.Next(t, "n").Payload), "second Next after Expect took 2")
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
		assert.Equal(t, c.topic, m.Topic, "Next(%q): topic", c.filter)
		assert.Equal(t, c.payload, string(m.Payload), "Next(%q): payload", c.filter)
		assert.Equal(t, c.qos, m.QoS, "Next(%q): QoS", c.filter)
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
	assert.Equal(t, []string{"one", "two"}, payloads(srv.Messages("a/+")), "Messages(a/+)")
	assert.Equal(t, []string{"one", "other", "two"}, payloads(srv.Messages("#")), "Messages(#)")
	assert.Empty(t, srv.Messages("$app/#"), "Messages($app/#)")
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
	assert.Equal(t, []string{"3", "4", "5"}, payloads(srv.Messages("k")), "Messages with a history of 3")
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
	ms := srv.Messages("t")
	require.NotEmpty(t, ms, "Messages(t)")
	assert.Equal(t, "first", string(ms[0].Payload), "recorded payload after the publisher reused its buffer")
}

// TestRecordedProperties: recorded messages keep their MQTT 5 properties,
// and NextFunc picks messages by them.
func TestRecordedProperties(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	for _, reason := range []string{"reboot", "shutdown"} {
		srv.PublishMessage(tern.Message{
			Topic: "devices/1/status", Payload: []byte("offline"), ContentType: "text/plain",
			ResponseTopic: "devices/1/ack", CorrelationData: []byte(reason[:1]),
			UserProperties: []tern.UserProperty{{Key: "reason", Value: reason}, {Key: "reason", Value: "second"}},
		})
	}
	m := srv.NextFunc(t, "devices/+/status", func(m tern.Message) bool {
		v, _ := brokertest.UserProperty(m, "reason")
		return v == "shutdown"
	})
	assert.Equal(t, []byte("s"), m.CorrelationData, "NextFunc took the message with reason=shutdown")
	assert.Equal(t, "devices/1/ack", m.ResponseTopic, "Response Topic")
	assert.Equal(t, "text/plain", m.ContentType, "Content Type")
	v, ok := brokertest.UserProperty(m, "reason")
	assert.True(t, ok, "UserProperty(reason) found nothing in %+v", m.UserProperties)
	assert.Equal(t, "shutdown", v, "UserProperty returns the first value")
	assert.Len(t, m.UserProperties, 2, "user properties, repeated names kept")
	assert.Equal(t, []byte("r"), srv.Next(t, "devices/+/status").CorrelationData, "Next after NextFunc took the other")
}

// TestNextFuncFailureShowsProperties: the failure lists what was recorded
// with the properties a test may have waited on.
func TestNextFuncFailureShowsProperties(t *testing.T) {
	f := newFake(t)
	var srv *brokertest.Server
	f.run(func() { srv = brokertest.New(f, brokertest.WithoutTCP(), brokertest.WithTimeout(50*time.Millisecond)) })
	srv.PublishMessage(tern.Message{Topic: "a", Payload: []byte("p"), ResponseTopic: "r", CorrelationData: []byte("c"),
		ContentType: "ct", UserProperties: []tern.UserProperty{{Key: "k", Value: "v"}}})
	f.run(func() { srv.NextFunc(f, "a", func(tern.Message) bool { return false }) })
	mustFail(t, f, `no matching message on "a" within 50ms`,
		`a "p" [response topic "r", correlation data "c", content type "ct", "k"="v"]`)
}

// TestRecordedPropertiesAreCopies: a test that changes a recorded message
// changes neither the record nor what other subscribers got.
func TestRecordedPropertiesAreCopies(t *testing.T) {
	srv := brokertest.New(t, brokertest.WithoutTCP())
	srv.PublishMessage(tern.Message{Topic: "t", CorrelationData: []byte("cd"),
		UserProperties: []tern.UserProperty{{Key: "k", Value: "v"}}})
	m := srv.Next(t, "t")
	m.CorrelationData[0] = 'X'
	m.UserProperties[0].Value = "changed"
	again := srv.Messages("t")
	require.Len(t, again, 1, "Messages(t)")
	assert.Equal(t, []byte("cd"), again[0].CorrelationData, "recorded Correlation Data after the test changed its copy")
	assert.Equal(t, "v", again[0].UserProperties[0].Value, "recorded user property after the test changed its copy")
}
