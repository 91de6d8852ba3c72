package tern_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/storage"
)

// Tests of what MQTT 5 says survives a restart of the broker, on each
// backend (see persist_test.go): session expiry, delayed wills, wills of
// clients connected when the broker died, subscription options and
// identifiers, shared subscriptions, and the properties and expiry of
// queued messages.

// ps5Client is an MQTT 5 raw client that remembers the QoS 2 messages it
// acknowledged with PUBREC and whose PUBREL it awaits.
type ps5Client struct {
	*rawClient
	awaitingRel map[uint16]bool
}

// ps5Connect connects an MQTT 5 client with cp (protocol name, level and
// keepalive filled in) and requires success.
func ps5Connect(t testing.TB, addr string, cp *packets.Connect) (*ps5Client, *packets.Connack) {
	t.Helper()
	c := &ps5Client{rawClient: dialRaw(t, addr), awaitingRel: make(map[uint16]bool)}
	c.r.SetVersion(packets.Level5)
	cp.ProtocolName, cp.ProtocolLevel, cp.KeepAlive = "MQTT", packets.Level5, 60
	ack := c.connectWith(cp)
	require.Equal(t, byte(packets.Success), ack.ReturnCode, "CONNACK of %s", cp.ClientID)
	return c, ack
}

// ps5Session connects client id with Clean Start 0 and Session Expiry
// Interval expiry, and returns the client and whether a session was
// present.
func ps5Session(t testing.TB, addr, id string, expiry uint32) (*ps5Client, bool) {
	t.Helper()
	c, ack := ps5Connect(t, addr, &packets.Connect{ClientID: id, Properties: packets.Properties{SessionExpiry: new(expiry)}})
	return c, ack.SessionPresent
}

// ps5Resume connects id with Clean Start 0 and requires its session to be
// present [v5 MQTT-3.2.2-3].
func ps5Resume(t testing.TB, addr, id string, expiry uint32) *ps5Client {
	t.Helper()
	c, present := ps5Session(t, addr, id, expiry)
	require.True(t, present, "CONNACK of %s: session present 0 after the restart", id)
	return c
}

// ps5Subscribe subscribes with Subscription Identifier id (0: none) and
// requires every filter granted its QoS.
func ps5Subscribe(c *ps5Client, pid uint16, id uint32, subs ...packets.Subscription) {
	c.t.Helper()
	p := &packets.Subscribe{Version: packets.Level5, PacketID: pid, Subscriptions: subs}
	if id != 0 {
		p.Properties.SubscriptionIDs = []uint32{id}
	}
	c.send(p)
	ack, ok := c.recv().(*packets.Suback)
	require.True(c.t, ok, "expected SUBACK")
	want := make([]byte, len(subs))
	for i, s := range subs {
		want[i] = s.QoS
	}
	require.Equal(c.t, want, ack.ReturnCodes, "SUBACK reason codes")
}

// ps5Publish publishes p as an MQTT 5 client and completes its QoS flow.
func ps5Publish(c *ps5Client, p *packets.Publish) {
	c.t.Helper()
	p.Version = packets.Level5
	c.send(p)
	switch p.QoS {
	case 1:
		ack, ok := c.recv().(*packets.Puback)
		require.True(c.t, ok && ack.PacketID == p.PacketID, "expected PUBACK %d, got %+v", p.PacketID, ack)
	case 2:
		rec, ok := c.recv().(*packets.Pubrec)
		require.True(c.t, ok && rec.PacketID == p.PacketID, "expected PUBREC %d, got %+v", p.PacketID, rec)
		c.send(&packets.Pubrel{Version: packets.Level5, PacketID: p.PacketID})
		comp, ok := c.recv().(*packets.Pubcomp)
		require.True(c.t, ok && comp.PacketID == p.PacketID, "expected PUBCOMP %d, got %+v", p.PacketID, comp)
	}
}

// ps5Next returns the next PUBLISH on c, acknowledging it (PUBACK, or
// PUBREC), and answering the PUBRELs that come before it.
func ps5Next(c *ps5Client) *packets.Publish {
	c.t.Helper()
	for {
		switch p := c.recv().(type) {
		case *packets.Publish:
			switch p.QoS {
			case 1:
				c.send(&packets.Puback{Version: packets.Level5, PacketID: p.PacketID})
			case 2:
				c.send(&packets.Pubrec{Version: packets.Level5, PacketID: p.PacketID})
				c.awaitingRel[p.PacketID] = true
			}
			return p
		case *packets.Pubrel:
			c.release(p)
		default:
			require.Failf(c.t, "unexpected packet", "expected PUBLISH, got %v %+v", p.Type(), p)
		}
	}
}

// release answers a PUBREL with PUBCOMP.
func (c *ps5Client) release(p *packets.Pubrel) {
	c.t.Helper()
	require.True(c.t, c.awaitingRel[p.PacketID], "PUBREL %d for no PUBREC", p.PacketID)
	delete(c.awaitingRel, p.PacketID)
	c.send(&packets.Pubcomp{Version: packets.Level5, PacketID: p.PacketID})
}

// ps5Sync returns once the broker has handled what c sent before, and the
// QoS 2 flows c has open are complete: it answers the PUBRELs awaited,
// and fails on a PUBLISH.
func ps5Sync(c *ps5Client) {
	c.t.Helper()
	c.send(&packets.Pingreq{Version: packets.Level5})
	for ponged := false; !ponged || len(c.awaitingRel) > 0; {
		switch p := c.recv().(type) {
		case *packets.Pingresp:
			ponged = true
		case *packets.Pubrel:
			c.release(p)
		default:
			require.Failf(c.t, "unexpected packet", "expected PINGRESP or PUBREL, got %v %+v", p.Type(), p)
		}
	}
}

// ps5Leave disconnects c normally (its will is deleted) and waits for the
// close.
func ps5Leave(c *ps5Client) {
	c.t.Helper()
	c.send(&packets.Disconnect{Version: packets.Level5})
	c.expectClosed()
}

// ps5Props decodes a PUBLISH's properties.
func ps5Props(t testing.TB, p *packets.Publish) packets.Properties {
	t.Helper()
	props, err := p.Props.Properties()
	require.NoError(t, err, "properties of the PUBLISH on %s", p.Topic)
	return props
}

// ps5Crash starts a second broker on a copy of what e's store holds now,
// as the broker restarted after its process died would: it sees what was
// written and none of what Close would have added (sessions marked
// offline, wills deferred). The copy goes through a new backend and is
// reopened there, so that it is read from the backend's file. e's broker
// runs on; cleanup closes both.
func ps5Crash(t *testing.T, be psBackend, e *psEnv) *psEnv {
	t.Helper()
	ctx := context.Background()
	snap, err := e.store.Load(ctx)
	require.NoError(t, err, "Load of the store at the crash")
	var ops []storage.Op
	for _, x := range snap.Sessions {
		ops = append(ops, storage.Op{Kind: storage.PutSession, Session: x})
	}
	for _, x := range snap.Subscriptions {
		ops = append(ops, storage.Op{Kind: storage.PutSubscription, Subscription: x})
	}
	for _, x := range snap.Deliveries {
		ops = append(ops, storage.Op{Kind: storage.PutDelivery, Delivery: x})
	}
	for _, x := range snap.Inbound {
		ops = append(ops, storage.Op{Kind: storage.PutInbound, Inbound: x})
	}
	for _, x := range snap.Retained {
		ops = append(ops, storage.Op{Kind: storage.PutRetained, Retained: x})
	}
	c := &psEnv{t: t, opts: e.opts}
	c.store, c.reopen = be.open(t)
	t.Cleanup(func() {
		c.down()
		c.store.Close()
	})
	require.NoError(t, c.store.Write(ctx, ops), "Write of the copy")
	c.store = c.reopen()
	c.up()
	return c
}

// ps5Stored returns the stored session of id, failing if there is none.
func ps5Stored(t testing.TB, snap *storage.Snapshot, id string) storage.Session {
	t.Helper()
	i := slices.IndexFunc(snap.Sessions, func(s storage.Session) bool { return s.ClientID == id })
	require.GreaterOrEqual(t, i, 0, "no stored session for %s in %+v", id, snap.Sessions)
	return snap.Sessions[i]
}

// TestPersist5SessionExpirySurvivesRestart: a session's Session Expiry
// Interval is stored with it. A session of 2 seconds still ends after a
// restart, its queue with it; one of an hour, resumed after the restart,
// is present with its queued message.
// [v5 MQTT-3.1.2-23] [v5 MQTT-4.1.0-2] [v5 MQTT-3.2.2-3] [v5 MQTT-3.1.2-4]
func TestPersist5SessionExpirySurvivesRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		var briefLeft time.Time
		for _, s := range []struct {
			id     string
			expiry uint32
		}{{"lasting", 3600}, {"brief", 2}} {
			c, present := ps5Session(t, e.addr, s.id, s.expiry)
			require.False(t, present, "session present for the new %s", s.id)
			ps5Subscribe(c, 1, 0, packets.Subscription{Filter: "exp/#", QoS: 1})
			ps5Leave(c)
			briefLeft = time.Now()
		}
		pub, _ := ps5Connect(t, e.addr, &packets.Connect{ClientID: "pub", CleanSession: true})
		ps5Publish(pub, &packets.Publish{Topic: "exp/1", Payload: []byte("queued"), QoS: 1, PacketID: 1})
		snap := e.stored()
		assert.Equal(t, uint32(3600), ps5Stored(t, snap, "lasting").Expiry, "stored expiry of lasting")
		if i := slices.IndexFunc(snap.Sessions, func(s storage.Session) bool { return s.ClientID == "brief" }); i >= 0 {
			assert.Equal(t, uint32(2), snap.Sessions[i].Expiry, "stored expiry of brief")
		} else {
			// Only a machine slow enough to take 2 seconds to get here
			// may find it gone.
			require.GreaterOrEqual(t, time.Since(briefLeft), 2*time.Second, "brief's session left the store before its expiry")
		}

		e.store = e.reopen()
		e.up()
		require.Eventually(t, func() bool { _, found := e.client("brief"); return !found }, waitTimeout+2*time.Second,
			10*time.Millisecond, "the session of 2 seconds never expired after the restart")
		ci, found := e.client("lasting")
		require.True(t, found, "the session of an hour is gone after the restart")
		assert.Equal(t, 1, ci.Queued, "messages queued for lasting after the restart")

		c, present := ps5Session(t, e.addr, "brief", 2)
		assert.False(t, present, "brief's session is present after its expiry")
		ps5Sync(c) // and its queued message went with it
		ps5Leave(c)

		c = ps5Resume(t, e.addr, "lasting", 3600)
		p := ps5Next(c)
		assert.Equal(t, "exp/1", p.Topic)
		assert.Equal(t, "queued", string(p.Payload))
		ps5Sync(c)
		snap = e.stored()
		assert.Empty(t, snap.Deliveries, "deliveries stored after every acknowledgement")
	})
}

// TestPersist5DelayedWillPublishedAfterRestart: a will waiting for its Will
// Delay Interval when the broker stops is stored with the time it is due,
// and the restarted broker publishes it then, with its properties, and
// deletes it from the store.
// [v5 MQTT-3.1.3-9] [v5 MQTT-3.1.2-8] [v5 MQTT-3.1.3-10]
func TestPersist5DelayedWillPublishedAfterRestart(t *testing.T) {
	const delay = 2 * time.Second
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		watch, _ := ps5Session(t, e.addr, "watcher", 3600)
		ps5Subscribe(watch, 1, 0, packets.Subscription{Filter: "will/#", QoS: 1})
		ps5Leave(watch)

		w, _ := ps5Connect(t, e.addr, &packets.Connect{
			ClientID: "mortal", WillFlag: true, WillTopic: "will/mortal", WillMessage: []byte("gone"), WillQoS: 1,
			Properties: packets.Properties{SessionExpiry: new(uint32(3600))},
			WillProperties: packets.Properties{WillDelay: new(uint32(delay / time.Second)), ContentType: "text/plain",
				MessageExpiry: new(uint32(600)), // counted from the will's publication
				User:          []packets.UserProperty{{Key: "why", Value: "lost"}, {Key: "a", Value: "1"}}},
		})
		dropped := time.Now()
		w.conn.Close() // no DISCONNECT: the will is due after its delay
		require.Eventually(t, func() bool { ci, _ := e.client("mortal"); return !ci.Connected },
			waitTimeout, time.Millisecond, "the broker never saw the connection end")
		snap := e.stored()
		will := ps5Stored(t, snap, "mortal").Will
		require.NotNil(t, will, "the pending will is not stored")
		assert.False(t, will.PublishAt.Before(dropped.Add(delay)), "stored due time %v, before the delay after %v", will.PublishAt, dropped)

		e.store = e.reopen()
		e.up()
		watch = ps5Resume(t, e.addr, "watcher", 3600)
		p := ps5Next(watch)
		assert.GreaterOrEqual(t, time.Since(dropped), delay, "the will was published before its delay")
		assert.Equal(t, "will/mortal", p.Topic)
		assert.Equal(t, "gone", string(p.Payload))
		assert.True(t, p.Props.HasMessageExpiry, "Message Expiry Interval of the will lost")
		assert.Greater(t, p.Props.MessageExpiry, uint32(600-60), "Message Expiry Interval of the will: counted from its publication")
		assert.LessOrEqual(t, p.Props.MessageExpiry, uint32(600), "Message Expiry Interval of the will")
		props := ps5Props(t, p)
		assert.Equal(t, "text/plain", props.ContentType, "Content Type of the will")
		assert.Equal(t, []packets.UserProperty{{Key: "why", Value: "lost"}, {Key: "a", Value: "1"}}, props.User,
			"User Properties of the will, in order")
		ps5Sync(watch)
		snap = e.stored()
		assert.Nil(t, ps5Stored(t, snap, "mortal").Will, "the published will is still stored")
	})
}

// TestPersist5WillOfClientConnectedAtCrash: when the broker dies with a
// client connected, that connection ended without DISCONNECT: the broker
// started on the same store publishes its will, at once without a Will
// Delay Interval, after it with one.
// [v5 MQTT-3.1.2-8] [v5 MQTT-3.1.3-9]
func TestPersist5WillOfClientConnectedAtCrash(t *testing.T) {
	const delay = 2 * time.Second
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		watch, _ := ps5Session(t, e.addr, "watcher", 3600)
		ps5Subscribe(watch, 1, 0, packets.Subscription{Filter: "will/#", QoS: 1})
		ps5Leave(watch)
		for _, w := range []struct {
			id    string
			delay uint32
		}{{"now", 0}, {"later", uint32(delay / time.Second)}} {
			// CONNACK comes once the session, and its will, are stored.
			ps5Connect(t, e.addr, &packets.Connect{
				ClientID: w.id, WillFlag: true, WillTopic: "will/" + w.id, WillMessage: []byte(w.id), WillQoS: 1,
				Properties:     packets.Properties{SessionExpiry: new(uint32(3600))},
				WillProperties: packets.Properties{WillDelay: new(w.delay)},
			})
		}

		started := time.Now()
		after := ps5Crash(t, be, e)
		watch = ps5Resume(t, after.addr, "watcher", 3600)
		p := ps5Next(watch)
		assert.Equal(t, "will/now", p.Topic, "first will")
		p = ps5Next(watch)
		assert.Equal(t, "will/later", p.Topic, "second will")
		assert.GreaterOrEqual(t, time.Since(started), delay, "the delayed will was published before its delay")
		ps5Sync(watch)
	})
}

// TestPersist5SubscriptionOptionsSurviveRestart: No Local, Retain As
// Published and the Subscription Identifier of a subscription are stored
// with it and apply after a restart.
// [v5 MQTT-3.8.3-3] [v5 MQTT-3.3.1-12] [v5 MQTT-3.3.1-13] [v5 MQTT-3.3.4-3]
func TestPersist5SubscriptionOptionsSurviveRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		c, _ := ps5Session(t, e.addr, "opts", 3600)
		ps5Subscribe(c, 1, 7, packets.Subscription{Filter: "nl/#", QoS: 1, NoLocal: true})
		ps5Subscribe(c, 2, 8, packets.Subscription{Filter: "rap/#", QoS: 1, RetainAsPublished: true, RetainHandling: 2})
		ps5Subscribe(c, 3, 0, packets.Subscription{Filter: "plain/#", QoS: 1})
		ps5Leave(c)
		snap := e.stored()
		want := []storage.Subscription{
			{ClientID: "opts", Filter: "nl/#", QoS: 1, NoLocal: true, ID: 7},
			{ClientID: "opts", Filter: "plain/#", QoS: 1},
			{ClientID: "opts", Filter: "rap/#", QoS: 1, RetainAsPublished: true, RetainHandling: 2, ID: 8},
		}
		assert.ElementsMatch(t, want, snap.Subscriptions, "stored subscriptions")

		e.store = e.reopen()
		e.up()
		c = ps5Resume(t, e.addr, "opts", 3600)
		other, _ := ps5Connect(t, e.addr, &packets.Connect{ClientID: "other", CleanSession: true})
		// [v5 MQTT-3.8.3-3] not sent back to its own publisher: the next
		// PUBLISH c gets is other's.
		ps5Publish(c, &packets.Publish{Topic: "nl/self", Payload: []byte("mine"), QoS: 1, PacketID: 1})
		ps5Publish(other, &packets.Publish{Topic: "nl/other", Payload: []byte("theirs"), QoS: 1, PacketID: 1})
		p := ps5Next(c)
		assert.Equal(t, "nl/other", p.Topic, "No Local lost: the client got its own message")
		assert.Equal(t, []uint32{7}, p.Props.SubscriptionIDs, "Subscription Identifier of nl/#")

		ps5Publish(other, &packets.Publish{Topic: "rap/x", Payload: []byte("r"), QoS: 1, PacketID: 2, Retain: true})
		p = ps5Next(c)
		assert.Equal(t, "rap/x", p.Topic)
		assert.True(t, p.Retain, "Retain As Published lost: RETAIN 0 on a message published with RETAIN 1")
		assert.Equal(t, []uint32{8}, p.Props.SubscriptionIDs, "Subscription Identifier of rap/#")

		ps5Publish(other, &packets.Publish{Topic: "plain/x", Payload: []byte("p"), QoS: 1, PacketID: 3, Retain: true})
		p = ps5Next(c)
		assert.Equal(t, "plain/x", p.Topic)
		assert.False(t, p.Retain, "RETAIN 1 on a live message to a subscription without Retain As Published")
		assert.Empty(t, p.Props.SubscriptionIDs, "Subscription Identifier on a subscription without one")
		ps5Sync(c)
	})
}

// TestPersist5SharedSubscriptionMembershipSurvivesRestart: the members of
// a shared subscription are members again after a restart: each message
// goes to one of them, and both get some.
// [v5 MQTT-4.8.2-3]
func TestPersist5SharedSubscriptionMembershipSurvivesRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		members := []string{"m1", "m2"}
		for _, id := range members {
			c, _ := ps5Session(t, e.addr, id, 3600)
			ps5Subscribe(c, 1, 0, packets.Subscription{Filter: "$share/g/sh/#", QoS: 1})
			ps5Leave(c)
		}
		e.restart()
		cs := make(map[string]*ps5Client)
		for _, id := range members {
			cs[id] = ps5Resume(t, e.addr, id, 3600)
		}
		pub, _ := ps5Connect(t, e.addr, &packets.Connect{ClientID: "pub", CleanSession: true})
		const n = 10
		for i := range n {
			ps5Publish(pub, &packets.Publish{Topic: "sh/t", Payload: []byte{byte('0' + i)}, QoS: 1, PacketID: uint16(i + 1)})
		}
		ps5Sync(pub)
		got := make(map[string]int)
		var payloads []string
		for _, id := range members {
			ci, _ := e.client(id)
			for range ci.Inflight + ci.Queued { // not yet acknowledged: all of it sent, in the window
				payloads = append(payloads, string(ps5Next(cs[id]).Payload))
				got[id]++
			}
		}
		slices.Sort(payloads)
		assert.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, payloads, "messages the members got")
		assert.Positive(t, got["m1"], "m1 got none: not a member after the restart")
		assert.Positive(t, got["m2"], "m2 got none: not a member after the restart")
	})
}

// TestPersist5SharedQueuedMessageGoesToAnotherMemberAfterRestart: a
// message queued for a member of a shared subscription keeps, in the
// store, the subscription it came through: when that member's session ends
// after a restart, the message goes to another member.
// [v5 MQTT-4.8.2-3] [v5 MQTT-4.8.2-4]
func TestPersist5SharedQueuedMessageGoesToAnotherMemberAfterRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		members := []string{"m1", "m2"}
		for _, id := range members {
			c, _ := ps5Session(t, e.addr, id, 3600)
			ps5Subscribe(c, 1, 0, packets.Subscription{Filter: "$share/g/sh/#", QoS: 1})
			ps5Leave(c)
		}
		pub, _ := ps5Connect(t, e.addr, &packets.Connect{ClientID: "pub", CleanSession: true})
		ps5Publish(pub, &packets.Publish{Topic: "sh/q", Payload: []byte("orphan"), QoS: 1, PacketID: 1})
		snap := e.stored()
		require.Len(t, snap.Deliveries, 1, "stored deliveries")
		holder := snap.Deliveries[0].ClientID
		other := members[0]
		if holder == other {
			other = members[1]
		}
		assert.Equal(t, "$share/g/sh/#", snap.Deliveries[0].Share, "stored delivery's shared subscription")

		e.store = e.reopen()
		e.up()
		// The holder starts afresh: its session ends, and what it held for
		// the group goes to the other member.
		c, ack := ps5Connect(t, e.addr, &packets.Connect{ClientID: holder, CleanSession: true})
		assert.False(t, ack.SessionPresent, "session present with Clean Start 1")
		ps5Sync(c)
		o := ps5Resume(t, e.addr, other, 3600)
		p := ps5Next(o)
		assert.Equal(t, "orphan", string(p.Payload), "the other member's message")
		ps5Sync(o)
	})
}

// TestPersist5QueuedMessagePropertiesSurviveRestart: a message queued for
// an offline session keeps its properties across a restart: Payload Format
// Indicator, Content Type, Response Topic, Correlation Data and User
// Properties in order, its remaining Message Expiry Interval and the
// Subscription Identifier; and one whose expiry passes while the broker is
// down is not delivered. So with retained messages.
// [v5 MQTT-3.3.2-4] [v5 MQTT-3.3.2-5] [v5 MQTT-3.3.2-6] [v5 MQTT-3.3.2-15] [v5 MQTT-3.3.2-16]
// [v5 MQTT-3.3.2-17] [v5 MQTT-3.3.2-18] [v5 MQTT-3.3.4-3]
func TestPersist5QueuedMessagePropertiesSurviveRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		c, _ := ps5Session(t, e.addr, "reader", 3600)
		ps5Subscribe(c, 1, 99, packets.Subscription{Filter: "p/#", QoS: 2})
		ps5Leave(c)

		full := packets.Properties{ // those a PUBLISH's Raw holds
			ContentType: "application/json", ResponseTopic: "reply/to", CorrelationData: []byte{0, 1, 0xff},
			User: []packets.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}, {Key: "b", Value: "1"}},
		}
		raw, err := packets.AppendPublishRaw(nil, &full)
		require.NoError(t, err)
		pub, _ := ps5Connect(t, e.addr, &packets.Connect{ClientID: "pub", CleanSession: true})
		ps5Publish(pub, &packets.Publish{Topic: "p/full", Payload: []byte(`{"v":1}`), QoS: 1, PacketID: 1,
			Props: packets.PublishProps{HasPayloadFormat: true, PayloadFormat: 1, HasMessageExpiry: true, MessageExpiry: 3600, Raw: raw}})
		ps5Publish(pub, &packets.Publish{Topic: "p/short-lived", Payload: []byte("stale"), QoS: 2, PacketID: 2,
			Props: packets.PublishProps{HasMessageExpiry: true, MessageExpiry: 1}})
		expired := time.Now().Add(time.Second)
		ps5Publish(pub, &packets.Publish{Topic: "p/bytes", Payload: []byte{0xff}, QoS: 2, PacketID: 3,
			Props: packets.PublishProps{HasPayloadFormat: true, PayloadFormat: 0}})
		ps5Publish(pub, &packets.Publish{Topic: "p/none", Payload: []byte("plain"), QoS: 1, PacketID: 4})
		// Retained messages keep theirs too; the one that expires is not
		// sent to a new subscription.
		ps5Publish(pub, &packets.Publish{Topic: "r/keep", Payload: []byte("kept"), QoS: 1, PacketID: 5, Retain: true,
			Props: packets.PublishProps{HasPayloadFormat: true, PayloadFormat: 1, HasMessageExpiry: true, MessageExpiry: 3600, Raw: raw}})
		ps5Publish(pub, &packets.Publish{Topic: "r/stale", Payload: []byte("stale"), QoS: 1, PacketID: 6, Retain: true,
			Props: packets.PublishProps{HasMessageExpiry: true, MessageExpiry: 1}})
		e.down()
		// The broker is down until the short-lived message has expired:
		// the clock has to pass, nothing else is awaited.
		time.Sleep(time.Until(expired.Add(100 * time.Millisecond)))
		e.store = e.reopen()
		e.up()

		c = ps5Resume(t, e.addr, "reader", 3600)
		p := ps5Next(c)
		require.Equal(t, "p/full", p.Topic, "first message")
		assert.Equal(t, `{"v":1}`, string(p.Payload))
		assert.True(t, p.Props.HasPayloadFormat, "Payload Format Indicator lost")
		assert.Equal(t, byte(1), p.Props.PayloadFormat, "Payload Format Indicator")
		assert.True(t, p.Props.HasMessageExpiry, "Message Expiry Interval lost")
		assert.LessOrEqual(t, p.Props.MessageExpiry, uint32(3600), "Message Expiry Interval")
		assert.Greater(t, p.Props.MessageExpiry, uint32(3600-60), "Message Expiry Interval")
		assert.Equal(t, []uint32{99}, p.Props.SubscriptionIDs, "Subscription Identifier")
		props := ps5Props(t, p)
		assert.Equal(t, "application/json", props.ContentType, "Content Type")
		assert.Equal(t, "reply/to", props.ResponseTopic, "Response Topic")
		assert.Equal(t, []byte{0, 1, 0xff}, props.CorrelationData, "Correlation Data")
		assert.Equal(t, full.User, props.User, "User Properties, in order")

		p = ps5Next(c)
		require.Equal(t, "p/bytes", p.Topic, "second message: the expired one must not be delivered")
		assert.True(t, p.Props.HasPayloadFormat, "Payload Format Indicator 0 lost")
		assert.Equal(t, byte(0), p.Props.PayloadFormat, "Payload Format Indicator")
		assert.False(t, p.Props.HasMessageExpiry, "Message Expiry Interval on a message without one")
		p = ps5Next(c)
		require.Equal(t, "p/none", p.Topic, "third message")
		assert.False(t, p.Props.HasPayloadFormat, "Payload Format Indicator on a message without one")
		assert.Empty(t, p.Props.Raw, "properties on a message without any")
		assert.Equal(t, []uint32{99}, p.Props.SubscriptionIDs, "Subscription Identifier")
		ps5Sync(c)

		late, _ := ps5Connect(t, e.addr, &packets.Connect{ClientID: "late", CleanSession: true})
		ps5Subscribe(late, 1, 0, packets.Subscription{Filter: "r/#", QoS: 1})
		p = ps5Next(late)
		require.Equal(t, "r/keep", p.Topic, "retained message: the expired one must not be sent")
		assert.True(t, p.Retain, "RETAIN 0 on a retained message sent for a new subscription")
		assert.True(t, p.Props.HasPayloadFormat && p.Props.PayloadFormat == 1, "Payload Format Indicator of the retained message")
		assert.True(t, p.Props.HasMessageExpiry, "Message Expiry Interval of the retained message lost")
		assert.Greater(t, p.Props.MessageExpiry, uint32(3600-60), "Message Expiry Interval of the retained message")
		props = ps5Props(t, p)
		assert.Equal(t, "application/json", props.ContentType, "Content Type of the retained message")
		assert.Equal(t, full.User, props.User, "User Properties of the retained message, in order")
		ps5Sync(late)
		assert.Empty(t, e.stored().Deliveries, "deliveries stored after every acknowledgement")
	})
}

// TestPersist5ExpiredRetainedLeavesTheStoreAtRestart: a retained message
// whose Message Expiry Interval passed while the broker was down is not
// restored, and is removed from the store, which otherwise keeps it, and
// loads it again, at every restart until the topic is published again.
// [v5 MQTT-3.3.2-5]
func TestPersist5ExpiredRetainedLeavesTheStoreAtRestart(t *testing.T) {
	psEach(t, func(t *testing.T, be psBackend) {
		e := psStart(t, be, tern.Options{})
		pub, _ := ps5Connect(t, e.addr, &packets.Connect{ClientID: "pub", CleanSession: true})
		ps5Publish(pub, &packets.Publish{Topic: "r/stale", Payload: []byte("stale"), QoS: 1, PacketID: 1, Retain: true,
			Props: packets.PublishProps{HasMessageExpiry: true, MessageExpiry: 1}})
		expired := time.Now().Add(time.Second)
		ps5Publish(pub, &packets.Publish{Topic: "r/keep", Payload: []byte("kept"), QoS: 1, PacketID: 2, Retain: true})
		e.down()
		// The clock has to pass; nothing else is awaited.
		time.Sleep(time.Until(expired.Add(100 * time.Millisecond)))
		e.store = e.reopen()
		e.up()
		assert.Equal(t, []string{"r/keep"}, psTopics(e.stored().Retained), "retained messages stored after the restart")
	})
}
