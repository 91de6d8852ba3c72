package tern_test

import (
	"fmt"
	"testing"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// BenchmarkFanoutAliases publishes QoS 0 messages (40-byte topic names,
// eight of them in turn, 16-byte payloads) to N MQTT 5 subscribers that
// announce a Topic Alias Maximum of 16, with Options.OutboundTopicAliases
// off and on; ns/op is per published message. wire-B/delivery is what the
// broker wrote per delivered PUBLISH.
//
//	go test -run '^$' -bench FanoutAliases -benchmem -count 3 .
func BenchmarkFanoutAliases(b *testing.B) {
	for _, aliases := range []int{0, 16} {
		for _, n := range []int{1, 10} {
			b.Run(fmt.Sprintf("aliases=%d/subs=%d", aliases, n), func(b *testing.B) {
				benchFanoutAliases(b, aliases, n)
			})
		}
	}
}

func benchFanoutAliases(b *testing.B, aliases, n int) {
	br, addr := startBroker(b, tern.Options{OutboundTopicAliases: aliases})
	subs := make([]*rawClient, n)
	for i := range subs {
		c := dialRaw(b, addr)
		c.r.SetVersion(packets.Level5)
		ack := c.connectWith(&packets.Connect{
			ProtocolName: "MQTT", ProtocolLevel: packets.Level5, ClientID: fmt.Sprintf("sub%d", i), CleanSession: true, KeepAlive: 60,
			Properties: packets.Properties{TopicAliasMaximum: new(uint16(16))},
		})
		if ack.ReturnCode != 0 {
			b.Fatalf("CONNACK %d", ack.ReturnCode)
		}
		c.send(&packets.Subscribe{Version: packets.Level5, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "bench/alias/#"}}})
		c.recv()
		subs[i] = c
	}
	pub := benchClient(b, addr, "pub", packets.Level5)
	var encs [8][]byte
	for i := range encs {
		topic := fmt.Sprintf("bench/alias/north/device-00%d/temperature", i) // 40 bytes
		p := &packets.Publish{Version: packets.Level5, Topic: topic, Payload: make([]byte, 16)}
		encs[i], _ = p.Append(nil)
	}
	sentBefore := br.Stats().BytesSent
	driveFanout(b, packets.Level5, pub, subs, encs[:]...)
	b.StopTimer()
	// The publisher's PINGRESPs (2 bytes each) are in BytesSent too.
	pings := (b.N + fanoutWindow - 1) / fanoutWindow
	wire := br.Stats().BytesSent - sentBefore - int64(2*pings)
	b.ReportMetric(float64(wire)/float64(b.N*n), "wire-B/delivery")
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
}
