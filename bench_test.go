package tern_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Benchmarks of the broker's hot paths over TCP loopback, so regressions
// show without the comparison harness:
//
//	go test -run '^$' -bench . -benchtime 2s .
//
// The codec and the tries have their own benchmarks in packets/ and topics/.

// benchShapes are the protocol shapes the broker benchmarks run in: MQTT
// 3.1.1, MQTT 5 without properties, and MQTT 5 with four user properties
// and a content type.
var benchShapes = []struct {
	name    string
	version byte
	props   bool
}{
	{"v311", packets.Level311, false},
	{"v5", packets.Level5, false},
	{"v5props", packets.Level5, true},
}

// benchClient connects a benchmark client at version.
func benchClient(b *testing.B, addr, id string, version byte) *rawClient {
	b.Helper()
	c := dialRaw(b, addr)
	c.r.SetVersion(version)
	ack := c.connectWith(&packets.Connect{ProtocolName: "MQTT", ProtocolLevel: version, ClientID: id, CleanSession: true, KeepAlive: 60})
	if ack.ReturnCode != 0 {
		b.Fatalf("CONNACK %d", ack.ReturnCode)
	}
	return c
}

// benchPublish encodes the benchmark's PUBLISH in a shape.
func benchPublish(version byte, props bool, topic string, qos byte) []byte {
	p := &packets.Publish{Version: version, Topic: topic, Payload: make([]byte, 64), QoS: qos}
	if qos > 0 {
		p.PacketID = 1
	}
	if props {
		p.Props.Raw, _ = packets.AppendPublishRaw(nil, &packets.Properties{ContentType: "application/octet-stream", User: []packets.UserProperty{
			{Key: "device", Value: "d-0042"}, {Key: "site", Value: "north"}, {Key: "seq", Value: "12345"}, {Key: "fw", Value: "1.4.2"},
		}})
	}
	enc, _ := p.Append(nil)
	return enc
}

// BenchmarkRoundTrip publishes one message and waits for its delivery:
// the broker's latency path (decode, match, encode, write).
func BenchmarkRoundTrip(b *testing.B) {
	for _, shape := range benchShapes {
		for _, qos := range []byte{0, 1} {
			b.Run(fmt.Sprintf("%s/qos%d", shape.name, qos), func(b *testing.B) {
				_, addr := startBroker(b, tern.Options{})
				sub := benchClient(b, addr, "sub", shape.version)
				sub.send(&packets.Subscribe{Version: shape.version, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "bench/rt", QoS: qos}}})
				sub.recv()
				pub := benchClient(b, addr, "pub", shape.version)
				enc := benchPublish(shape.version, shape.props, "bench/rt", qos)
				b.SetBytes(64)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					pub.sendRaw(enc)
					got := sub.recvPublish()
					if qos == 1 {
						sub.send(&packets.Puback{Version: shape.version, PacketID: got.PacketID})
						pub.recv() // PUBACK
					}
				}
			})
		}
	}
}

// BenchmarkFanout publishes QoS 0 messages to N subscribers of one topic;
// ns/op is per published message, deliveries/s is reported.
func BenchmarkFanout(b *testing.B) {
	for _, shape := range benchShapes {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/subs=%d", shape.name, n), func(b *testing.B) {
				benchFanout(b, shape.version, shape.props, n)
			})
		}
	}
}

func benchFanout(b *testing.B, version byte, props bool, n int) {
	_, addr := startBroker(b, tern.Options{})
	subs := make([]*rawClient, n)
	for i := range subs {
		subs[i] = benchClient(b, addr, fmt.Sprintf("sub%d", i), version)
		subs[i].send(&packets.Subscribe{Version: version, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "bench/fan", QoS: 0}}})
		subs[i].recv()
	}
	pub := benchClient(b, addr, "pub", version)
	enc := benchPublish(version, props, "bench/fan", 0)
	driveFanout(b, version, pub, subs, enc)
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
}

// fanoutWindow is how many messages the fan-out benchmarks' publisher
// runs ahead of its slowest subscriber.
const fanoutWindow = 256

// driveFanout publishes b.N messages from pub, cycling through encs, in
// batches of fanoutWindow, while each of subs reads b.N. Flow control
// without reading the subscribers' progress: after each batch a PINGREQ
// round trip orders the publisher behind its own messages, which the
// broker has routed by then.
func driveFanout(b *testing.B, version byte, pub *rawClient, subs []*rawClient, encs ...[]byte) {
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func(s *rawClient) {
			defer wg.Done()
			for i := 0; i < b.N; i++ {
				if _, err := s.tryRecv(waitTimeout); err != nil {
					b.Errorf("subscriber: %v after %d of %d", err, i, b.N)
					return
				}
			}
		}(s)
	}
	batch := make([]byte, 0, fanoutWindow*len(encs[0]))
	for sent := 0; sent < b.N; {
		k := min(fanoutWindow, b.N-sent)
		batch = batch[:0]
		for j := 0; j < k; j++ {
			batch = append(batch, encs[(sent+j)%len(encs)]...)
		}
		pub.sendRaw(batch)
		sent += k
		pub.send(&packets.Pingreq{Version: version})
		pub.recv()
	}
	wg.Wait()
}

// BenchmarkRetainedDelivery subscribes to a filter that matches retainedN
// retained messages and reads them all: the path of a new subscription
// (matching the retained store, queueing, pumping into the write buffer).
// ns/op is per subscription; msgs/s is reported.
func BenchmarkRetainedDelivery(b *testing.B) {
	const retainedN = 10000
	for _, shape := range benchShapes[:2] {
		b.Run(shape.name, func(b *testing.B) {
			_, addr := startBroker(b, tern.Options{})
			pub := benchClient(b, addr, "pub", shape.version)
			topic := func(i int) string { return fmt.Sprintf("bench/ret/%d", i) }
			publishRetained(b, pub, shape.version, retainedN, topic, make([]byte, 64))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sub := benchClient(b, addr, fmt.Sprintf("sub%d", i), shape.version)
				sub.send(&packets.Subscribe{Version: shape.version, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "bench/ret/#"}}})
				for n := 0; n < retainedN; {
					p, err := sub.tryRecv(waitTimeout)
					if err != nil {
						b.Fatalf("after %d of %d: %v", n, retainedN, err)
					}
					if p.Type() == packets.TypePublish {
						n++
					}
				}
				sub.send(&packets.Disconnect{Version: shape.version})
				sub.conn.Close()
			}
			b.ReportMetric(float64(b.N*retainedN)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
