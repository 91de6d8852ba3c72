// Package topics holds Tern's topic machinery, MQTT 3.1.1 section 4.7:
// validation of topic names and topic filters, matching of one against the
// other, the subscription index (Index) that finds the subscribers of a
// published topic, and the retained-message index (Retained) that finds the
// retained messages a new subscription should receive.
//
// Topic names and filters are compared byte for byte, with no normalisation
// [MQTT-4.7.3-4]; levels are separated by '/', and an empty level (as in
// "a//b" or "/a") is a level like any other. A filter whose first level is a
// wildcard never matches a topic name that starts with '$' [MQTT-4.7.2-1].
package topics
