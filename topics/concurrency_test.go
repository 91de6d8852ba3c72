package topics

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestIndexConcurrent churns subscriptions on several goroutines while
// others match, under -race. Stable subscriptions must be found by every
// match with their highest QoS [MQTT-3.3.5-1], no subscriber may appear
// twice in one result, and churned subscribers may appear only through
// filters that match.
func TestIndexConcurrent(t *testing.T) {
	ix := NewIndex[string]()
	const stable = 50
	for i := range stable {
		key := fmt.Sprint("stable", i)
		ix.Subscribe(key, "s/+/x", 1)
		ix.Subscribe(key, "s/#", 2)
		ix.Subscribe(key, fmt.Sprintf("s/%d/x", i), 0)
	}
	churnFilters := []string{"s/a/x", "s/+/x", "+/a/#", "#", "s/b/x", "$SYS/#", "s/a", "s/+/+/+"}
	const churners, matchers, rounds = 4, 4, 400
	var wg sync.WaitGroup
	for g := range churners {
		wg.Go(func() {
			for r := range rounds {
				key := fmt.Sprintf("churn%d-%d", g, r%7)
				f := churnFilters[(g+r)%len(churnFilters)]
				ix.Subscribe(key, f, uint32(r%3))
				if r%2 == 0 {
					ix.Unsubscribe(key, f)
				}
			}
		})
	}
	for g := range matchers {
		wg.Go(func() {
			dst := make([]Sub[string], 0, 128)
			for r := range rounds {
				topic := []string{"s/a/x", "s/b/x", "$SYS/x"}[(g+r)%3]
				dst = ix.Match(topic, dst[:0])
				checkConcurrentResult(t, topic, dst, stable, churnFilters)
			}
		})
	}
	wg.Wait()
}

func checkConcurrentResult(t *testing.T, topic string, got []Sub[string], stable int, churnFilters []string) {
	seen := map[string]bool{}
	stableSeen := 0
	for _, s := range got {
		assert.False(t, seen[s.Key], "Match(%q): %q twice", topic, s.Key)
		seen[s.Key] = true
		if strings.HasPrefix(s.Key, "stable") {
			stableSeen++
			assert.Equal(t, byte(2), s.QoS(), "Match(%q): %v", topic, s)
		}
	}
	wantStable := stable
	if topic[0] == '$' {
		wantStable = 0
	}
	assert.Equal(t, wantStable, stableSeen, "Match(%q): stable subscribers", topic)
	// Any churned key found must have a churn filter that matches.
	anyMatch := false
	for _, f := range churnFilters {
		anyMatch = anyMatch || Matches(f, topic)
	}
	assert.False(t, len(got) > stableSeen && !anyMatch, "Match(%q): churned subscriber without a matching filter", topic)
}

// TestRetainedConcurrent sets and deletes retained topics on several
// goroutines while others match and get, under -race. Stable topics must
// always be found; churned ones only by filters that match them.
func TestRetainedConcurrent(t *testing.T) {
	r := NewRetained[string]()
	const stable = 100
	for i := range stable {
		topic := fmt.Sprintf("s/%d/x", i)
		r.Set(topic, topic)
	}
	r.Set("$SYS/up", "$SYS/up")
	const writers, readers, rounds = 4, 4, 400
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range rounds {
				topic := fmt.Sprintf("c/%d/%d/x", g, i%13)
				r.Set(topic, topic)
				if i%2 == 0 {
					r.Delete(topic)
				}
			}
		})
	}
	for g := range readers {
		wg.Go(func() {
			dst := make([]string, 0, 1024)
			for i := range rounds {
				filter := []string{"s/+/x", "#", "+/+/+/x", "$SYS/#"}[(g+i)%4]
				dst = r.Match(filter, dst[:0])
				stableSeen := 0
				for _, topic := range dst {
					assert.True(t, Matches(filter, topic), "Match(%q) gave %q", filter, topic)
					if strings.HasPrefix(topic, "s/") {
						stableSeen++
					}
				}
				want := stable
				if filter == "+/+/+/x" || filter == "$SYS/#" {
					want = 0
				}
				assert.Equal(t, want, stableSeen, "Match(%q): stable topics", filter)
				v, ok := r.Get("s/7/x")
				assert.True(t, ok, "Get(s/7/x)")
				assert.Equal(t, "s/7/x", v, "Get(s/7/x)")
			}
		})
	}
	wg.Wait()
}
