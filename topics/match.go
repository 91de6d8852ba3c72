package topics

import "strings"

// Matches reports whether the topic filter matches the topic name, by the
// rules of MQTT 3.1.1 section 4.7: levels are compared byte for byte with no
// normalisation [MQTT-4.7.3-4]; '+' matches exactly one level, possibly
// empty [MQTT-4.7.1-3]; a trailing '#' matches the parent level and any
// number of child levels [MQTT-4.7.1-2]; a filter that starts with a
// wildcard never matches a topic that starts with '$' [MQTT-4.7.2-1].
//
// Matches does not validate its arguments (see ValidFilter and ValidName)
// and never panics. In an invalid filter, a '+' or '#' that does not occupy
// a whole level, or a '#' that is not the last level, is compared as an
// ordinary character. An empty topic matches nothing.
func Matches(filter, topic string) bool {
	if filter == "" || topic == "" {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false // [MQTT-4.7.2-1]
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" && !fmore {
			return true // [MQTT-4.7.1-2] the rest of the topic, if any
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// The topic ends here: only "/#" can still match, as the parent
			// level ("sport/#" matches "sport") [MQTT-4.7.1-2].
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
