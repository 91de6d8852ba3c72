package topics

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
)

// benchSubs is the number of subscriptions in the index benchmarks.
const benchSubs = 100_000

// benchIndex returns an index of benchSubs subscriptions of mixed shapes
// over topics "site<s>/dev<d>/<kind>/m<m>", one subscriber per entry:
// exact filters, '+' filters, '#' filters and mixed ones.
func benchIndex() *Index[int] {
	ix := NewIndex[int]()
	for i := range benchSubs {
		s, d, m := i%100, i%1000, i%7
		var f string
		switch i % 4 {
		case 0: // exact
			f = fmt.Sprintf("site%d/dev%d/sensor/m%d", s, d, m)
		case 1: // '+'
			f = fmt.Sprintf("site%d/+/sensor/m%d", s, m)
		case 2: // '#'
			f = fmt.Sprintf("site%d/dev%d/#", s, d)
		case 3: // mixed
			f = fmt.Sprintf("+/dev%d/+/m%d", d, m)
		}
		ix.Subscribe(i, f, uint32(i%3))
	}
	return ix
}

// BenchmarkIndexMatch matches one topic against 100k subscriptions of mixed
// shapes, into a reused dst. subs/op is the number of subscribers found.
func BenchmarkIndexMatch(b *testing.B) {
	ix := benchIndex()
	for _, topic := range []string{
		"site1/dev1/sensor/m1", // every shape matches
		"site2/dev102/cmd/x",   // only '#' filters
		"other/topic",          // nothing
		"$SYS/broker/uptime",   // nothing: '$' rule at the root
	} {
		b.Run(topic, func(b *testing.B) {
			dst := make([]Sub[int], 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				dst = ix.Match(topic, dst[:0])
			}
			b.ReportMetric(float64(len(dst)), "subs/op")
		})
	}
}

// BenchmarkIndexMatchParallel matches on every P at once: matches share
// the read lock and do not queue behind each other.
func BenchmarkIndexMatchParallel(b *testing.B) {
	ix := benchIndex()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]Sub[int], 0, 1024)
		i := 0
		for pb.Next() {
			i++
			dst = ix.Match("site"+strconv.Itoa(i%100)+"/dev1/sensor/m1", dst[:0])
		}
	})
}

// BenchmarkIndexChurnParallel matches while subscriptions come and go, on
// every P: one operation in eight is a Subscribe followed by an
// Unsubscribe, the others are matches.
func BenchmarkIndexChurnParallel(b *testing.B) {
	ix := benchIndex()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := int(next.Add(1)) + benchSubs
		filter := fmt.Sprintf("site%d/+/churn/#", key%100)
		dst := make([]Sub[int], 0, 1024)
		i := 0
		for pb.Next() {
			i++
			if i%8 == 0 {
				ix.Subscribe(key, filter, 1)
				ix.Unsubscribe(key, filter)
				continue
			}
			dst = ix.Match("site1/dev1/sensor/m1", dst[:0])
		}
	})
}

// BenchmarkIndexSubscribe subscribes and unsubscribes one filter in an
// index of 100k subscriptions.
func BenchmarkIndexSubscribe(b *testing.B) {
	ix := benchIndex()
	b.ReportAllocs()
	for b.Loop() {
		ix.Subscribe(-1, "site5/dev5/new/level", 1)
		ix.Unsubscribe(-1, "site5/dev5/new/level")
	}
}

// BenchmarkRetainedMatch looks up filters over 100k retained topics
// "s<s>/d<d>/m<m>" (100 x 100 x 10). values/op is the number found.
func BenchmarkRetainedMatch(b *testing.B) {
	r := NewRetained[int]()
	for i := range benchSubs {
		r.Set(fmt.Sprintf("s%d/d%d/m%d", i%100, (i/100)%100, i/10000), i)
	}
	for _, filter := range []string{"#", "s1/+/m3", "+/+/m3", "s1/#", "s1/d1/m1"} {
		b.Run(filter, func(b *testing.B) {
			dst := make([]int, 0, benchSubs)
			b.ReportAllocs()
			for b.Loop() {
				dst = r.Match(filter, dst[:0])
			}
			b.ReportMetric(float64(len(dst)), "values/op")
		})
	}
}

// BenchmarkRetainedSet replaces one retained value among 100k.
func BenchmarkRetainedSet(b *testing.B) {
	r := NewRetained[int]()
	for i := range benchSubs {
		r.Set(fmt.Sprintf("s%d/d%d/m%d", i%100, (i/100)%100, i/10000), i)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Set("s5/d5/m5", 1)
	}
}

func BenchmarkMatches(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Matches("sport/+/player1/#", "sport/tennis/player1/score/wimbledon")
	}
}

func BenchmarkValidName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ValidName("sport/tennis/player1/score/wimbledon")
	}
}
