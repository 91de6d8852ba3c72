package tern_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/topics"
)

// deepTopic returns a topic name of n levels.
func deepTopic(n int) string { return "d" + strings.Repeat("/d", n-1) }

// deepFilter returns a topic filter of n levels, wildcards included.
func deepFilter(n int) string { return "+" + strings.Repeat("/d", n-2) + "/#" }

// debugLogged returns Options that log at debug level into a buffer.
func debugLogged() (tern.Options, *hkLogBuffer) {
	logs := &hkLogBuffer{}
	return tern.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, logs
}

// TestTopicLevelsOverTheLimitCloseTheConnection: a topic name (PUBLISH,
// will) or filter (SUBSCRIBE, UNSUBSCRIBE) with more than
// Options.MaxTopicLevels levels (default 200, as Mosquitto) is a protocol
// violation: the connection is closed with nothing stored or routed, and
// the reason is logged at debug level and given to OnDisconnect. At the
// limit, each is served as usual.
func TestTopicLevelsOverTheLimitCloseTheConnection(t *testing.T) {
	const limit = tern.DefaultMaxTopicLevels
	cases := []struct {
		name string
		send func(c *rawClient, levels int)
		ok   func(t *testing.T, c *rawClient) // the answer at the limit
	}{
		{"PUBLISH QoS 0", func(c *rawClient, n int) {
			c.send(&packets.Publish{Topic: deepTopic(n), Payload: []byte("x"), Retain: true})
		}, nil},
		{"PUBLISH QoS 1", func(c *rawClient, n int) {
			c.send(&packets.Publish{Topic: deepTopic(n), Payload: []byte("x"), QoS: 1, PacketID: 7, Retain: true})
		}, func(t *testing.T, c *rawClient) {
			assert.Equal(t, &packets.Puback{PacketID: 7}, c.recv())
		}},
		{"SUBSCRIBE", func(c *rawClient, n int) {
			c.send(&packets.Subscribe{PacketID: 3, Subscriptions: []packets.Subscription{{Filter: "ok", QoS: 1}, {Filter: deepFilter(n), QoS: 1}}})
		}, func(t *testing.T, c *rawClient) {
			assert.Equal(t, &packets.Suback{PacketID: 3, ReturnCodes: []byte{1, 1}}, c.recv())
		}},
		{"UNSUBSCRIBE", func(c *rawClient, n int) {
			c.send(&packets.Unsubscribe{PacketID: 4, Filters: []string{"ok", deepFilter(n)}})
		}, func(t *testing.T, c *rawClient) {
			assert.Equal(t, &packets.Unsuback{PacketID: 4}, c.recv())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts, logs := debugLogged()
			b, addr := startBroker(t, opts)
			obs := newHkObserver()
			hkAdd(t, b, obs)
			watcher := mustConnect(t, addr, "watcher", true)
			watcher.subscribe(1, packets.Subscription{Filter: "#", QoS: 0})

			at := mustConnect(t, addr, "at-limit", true)
			obs.next(t, "connect")
			tc.send(at, limit)
			if tc.ok != nil {
				tc.ok(t, at)
			}
			if strings.HasPrefix(tc.name, "PUBLISH") {
				assert.Equal(t, deepTopic(limit), watcher.recvPublish().Topic, "a topic at the limit is routed")
			}
			at.send(&packets.Pingreq{})
			assert.Equal(t, packets.TypePingresp, at.recv().Type(), "the client at the limit is still served")

			over := mustConnect(t, addr, "over-limit", true)
			obs.next(t, "connect")
			retained := b.Stats().Retained
			tc.send(over, limit+1)
			over.expectClosed()
			ev := obs.next(t, "disconnect")
			assert.Equal(t, "over-limit", ev.client.ID)
			assert.ErrorIs(t, ev.reason, tern.ErrProtocol)
			assert.ErrorIs(t, ev.reason, tern.ErrTooManyLevels)
			assert.Contains(t, ev.reason.Error(), fmt.Sprintf("has %d levels, over Options.MaxTopicLevels (%d)", limit+1, limit))
			assert.Contains(t, logs.String(), "level=DEBUG msg=\"connection closed\" client=over-limit")
			assert.Contains(t, logs.String(), "over Options.MaxTopicLevels (200)")
			assert.Equal(t, retained, b.Stats().Retained, "nothing retained from the refused PUBLISH")

			// Nothing was routed: the watcher's next message is this one.
			b.Publish(context.Background(), "marker", nil, 0, false)
			assert.Equal(t, "marker", watcher.recvPublish().Topic)
		})
	}
}

// TestWillTopicOverTheLevelLimitClosesTheConnection: a will topic is a
// topic name, so one over Options.MaxTopicLevels closes the connection
// without CONNACK, as an invalid will topic does, and no will is kept.
func TestWillTopicOverTheLevelLimitClosesTheConnection(t *testing.T) {
	opts, logs := debugLogged()
	opts.MaxTopicLevels = 10
	b, addr := startBroker(t, opts)
	watcher := mustConnect(t, addr, "watcher", true)
	watcher.subscribe(1, packets.Subscription{Filter: "#", QoS: 0})
	will := func(id, topic string) *packets.Connect {
		return &packets.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: true, KeepAlive: 60,
			WillFlag: true, WillTopic: topic, WillMessage: []byte("gone")}
	}

	over := dialRaw(t, addr)
	over.send(will("over", deepTopic(11)))
	over.expectClosed()
	assert.Contains(t, logs.String(), "will topic has 11 levels, over Options.MaxTopicLevels (10)")
	assert.Equal(t, int64(1), b.Stats().Connects, "only the watcher connected")

	at := dialRaw(t, addr)
	require.Zero(t, at.connectWith(will("at", deepTopic(10))).ReturnCode)
	require.NoError(t, at.conn.Close()) // no DISCONNECT: the will goes out
	assert.Equal(t, deepTopic(10), watcher.recvPublish().Topic)
}

// TestBrokerPublishAndSubscribeRefuseTooManyLevels: the in-process API
// returns an error that names the limit.
func TestBrokerPublishAndSubscribeRefuseTooManyLevels(t *testing.T) {
	b, _ := startBroker(t, tern.Options{})
	ctx := context.Background()
	err := b.Publish(ctx, deepTopic(201), []byte("x"), 1, true)
	require.ErrorIs(t, err, tern.ErrTooManyLevels)
	assert.EqualError(t, err, "tern: publish: topic has 201 levels, over Options.MaxTopicLevels (200)")
	assert.Zero(t, b.Stats().Retained)

	cancel, err := b.Subscribe(deepFilter(201), tern.SubscribeOptions{QoS: 1}, func(tern.Message, tern.Client) {})
	require.ErrorIs(t, err, tern.ErrTooManyLevels)
	assert.EqualError(t, err, "tern: subscribe: filter has 201 levels, over Options.MaxTopicLevels (200)")
	assert.Nil(t, cancel)
	assert.Zero(t, b.Stats().InternalSubscriptions)

	got := make(chan tern.Message, 1)
	cancel, err = b.Subscribe(deepFilter(200), tern.SubscribeOptions{QoS: 1}, func(m tern.Message, _ tern.Client) { got <- m })
	require.NoError(t, err)
	defer cancel()
	require.NoError(t, b.Publish(ctx, deepTopic(200), []byte("x"), 1, false))
	select {
	case m := <-got:
		assert.Equal(t, deepTopic(200), m.Topic)
	case <-time.After(waitTimeout):
		t.Fatal("the message at the limit was not delivered")
	}
}

// TestMaxTopicLevelsOption: the zero value is the default, negative values
// and values past what a topic can hold are refused naming the field, and
// topics.MaxLevels lifts the limit.
func TestMaxTopicLevelsOption(t *testing.T) {
	for _, v := range []int{-1, topics.MaxLevels + 1} {
		_, err := tern.New(tern.Options{MaxTopicLevels: v})
		require.Error(t, err, "MaxTopicLevels %d", v)
		assert.Contains(t, err.Error(), "Options.MaxTopicLevels")
	}
	b, addr := startBroker(t, tern.Options{MaxTopicLevels: topics.MaxLevels})
	c := mustConnect(t, addr, "deep", true)
	deepest := strings.Repeat("/", topics.MaxLen) // topics.MaxLevels levels
	ack := c.subscribe(1, packets.Subscription{Filter: deepest, QoS: 0})
	assert.Equal(t, []byte{0}, ack.ReturnCodes)
	assert.NoError(t, b.Publish(context.Background(), deepest, nil, 0, false))
}

// TestV5TopicLevelsOverTheLimit: MQTT 5 can say why. A PUBLISH whose
// topic is over Options.MaxTopicLevels ends the connection with
// DISCONNECT 0x90 (Topic Name invalid); a filter over it gets SUBACK or
// UNSUBACK 0x8F (Topic Filter invalid) alone, and the connection and the
// other filters go on.
func TestV5TopicLevelsOverTheLimit(t *testing.T) {
	const limit = tern.DefaultMaxTopicLevels
	_, addr := startBroker(t, tern.Options{})

	c := c5Must(t, addr, "deep-sub")
	c.send(&packets.Subscribe{Version: packets.Level5, PacketID: 1, Subscriptions: []packets.Subscription{
		{Filter: "ok", QoS: 1}, {Filter: deepFilter(limit + 1), QoS: 1}, {Filter: deepFilter(limit), QoS: 1},
	}})
	ack, ok := c.recv().(*packets.Suback)
	require.True(t, ok)
	assert.Equal(t, []byte{1, byte(packets.TopicFilterInvalid), 1}, ack.ReturnCodes)
	c.send(&packets.Unsubscribe{Version: packets.Level5, PacketID: 2, Filters: []string{deepFilter(limit + 1), "ok"}})
	un, ok := c.recv().(*packets.Unsuback)
	require.True(t, ok)
	assert.Equal(t, []byte{byte(packets.TopicFilterInvalid), byte(packets.Success)}, un.ReasonCodes)
	c5Ping(c)

	p := c5Must(t, addr, "deep-pub")
	p.send(&packets.Publish{Version: packets.Level5, Topic: deepTopic(limit + 1), QoS: 1, PacketID: 1, Payload: []byte("x")})
	c5Disconnected(p, packets.TopicNameInvalid)
}

// TestV5MaxSubscriptionsPerClientSaysQuotaExceeded: past
// Options.MaxSubscriptionsPerClient an MQTT 5 client gets 0x97 (Quota
// exceeded) for the extra filters.
func TestV5MaxSubscriptionsPerClientSaysQuotaExceeded(t *testing.T) {
	b, addr := startBroker(t, tern.Options{MaxSubscriptionsPerClient: 2})
	c := c5Must(t, addr, "quota")
	c.send(&packets.Subscribe{Version: packets.Level5, PacketID: 1, Subscriptions: []packets.Subscription{
		{Filter: "a", QoS: 0}, {Filter: "b", QoS: 1}, {Filter: "c", QoS: 2},
	}})
	ack, ok := c.recv().(*packets.Suback)
	require.True(t, ok)
	assert.Equal(t, []byte{0, 1, byte(packets.QuotaExceeded)}, ack.ReturnCodes)
	assert.Equal(t, int64(1), b.Stats().SubscriptionsRefused)
}

// TestV5WillTopicOverTheLevelLimitIsRefused: an MQTT 5 CONNECT whose will
// topic is over Options.MaxTopicLevels gets CONNACK 0x90 (Topic Name
// invalid), and the connection closes.
func TestV5WillTopicOverTheLevelLimitIsRefused(t *testing.T) {
	_, addr := startBroker(t, tern.Options{MaxTopicLevels: 10})
	cp := c5Conn("will-deep", true)
	cp.WillFlag, cp.WillTopic, cp.WillMessage = true, deepTopic(11), []byte("gone")
	c := c5Dial(t, addr)
	c.send(cp)
	c5Refused(c, packets.TopicNameInvalid)
}
