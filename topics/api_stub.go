package topics

// This file holds the signatures the rest of Tern codes against. The topics
// helper replaces every body (and may move them to other files).

// ValidName reports whether name is a valid topic name for PUBLISH:
// at least one character, no wildcards, no U+0000, at most 65535 bytes
// [MQTT-4.7.1-1, MQTT-4.7.3-1, MQTT-4.7.3-2, MQTT-4.7.3-3]. nil when valid.
func ValidName(name string) error { panic("todo") }

// ValidFilter reports whether filter is a valid topic filter for SUBSCRIBE
// and UNSUBSCRIBE [MQTT-4.7.1-2, MQTT-4.7.1-3, MQTT-4.7.3-1..3]. nil when valid.
func ValidFilter(filter string) error { panic("todo") }

// Sub is one subscriber returned by Index.Match.
type Sub[K comparable] struct {
	Key K
	QoS byte
}

// Index is the subscription index: a topic trie of (subscriber, filter,
// QoS) entries. Safe for concurrent use; matches do not serialise behind one
// lock.
type Index[K comparable] struct{}

// NewIndex returns an empty index.
func NewIndex[K comparable]() *Index[K] { panic("todo") }

// Subscribe adds or replaces key's subscription to filter with qos and
// reports whether it is new (false when it replaced one). filter must be valid.
func (ix *Index[K]) Subscribe(key K, filter string, qos byte) bool { panic("todo") }

// Unsubscribe removes key's subscription to filter and reports whether
// there was one.
func (ix *Index[K]) Unsubscribe(key K, filter string) bool { panic("todo") }

// Match appends to dst one Sub per subscriber with at least one filter that
// matches topic, with the highest QoS among that subscriber's matching
// filters [MQTT-3.3.5-1], and returns the extended slice. Filters that start
// with a wildcard do not match topics that start with '$' [MQTT-4.7.2-1].
func (ix *Index[K]) Match(topic string, dst []Sub[K]) []Sub[K] { panic("todo") }

// Len reports the number of (subscriber, filter) entries.
func (ix *Index[K]) Len() int { panic("todo") }

// Retained is the retained-message index: at most one value per topic name,
// found by topic filters, wildcards included. Safe for concurrent use.
type Retained[V any] struct{}

// NewRetained returns an empty retained index.
func NewRetained[V any]() *Retained[V] { panic("todo") }

// Set stores v as the retained value of topic, replacing any previous one.
func (r *Retained[V]) Set(topic string, v V) { panic("todo") }

// Delete clears topic and reports whether it held a value.
func (r *Retained[V]) Delete(topic string) bool { panic("todo") }

// Get returns the value retained on topic.
func (r *Retained[V]) Get(topic string) (V, bool) { panic("todo") }

// Match appends to dst the values of every retained topic that filter
// matches (the same matching rules as Index, including [MQTT-4.7.2-1]) and
// returns the extended slice. The order is unspecified.
func (r *Retained[V]) Match(filter string, dst []V) []V { panic("todo") }

// Len reports the number of retained topics.
func (r *Retained[V]) Len() int { panic("todo") }
