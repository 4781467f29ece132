package fleet

import "strings"

// Topic is what a message's topic says: m/{domain}/c/{channel}/control/proplet/{task_metrics|metrics}.
type Topic struct {
	Domain  string
	Channel string
	Kind    Kind
}

// ParseTopic reads a topic a message arrived on. ok is false for every other topic (a
// heartbeat under a wide filter, a topic of another shape): such messages are not metrics.
func ParseTopic(topic string) (t Topic, ok bool) {
	rest, found := strings.CutPrefix(topic, "m/")
	if !found {
		return Topic{}, false
	}
	t.Domain, rest, found = strings.Cut(rest, "/")
	if !found || t.Domain == "" {
		return Topic{}, false
	}
	rest, found = strings.CutPrefix(rest, "c/")
	if !found {
		return Topic{}, false
	}
	t.Channel, rest, found = strings.Cut(rest, "/")
	if !found || t.Channel == "" {
		return Topic{}, false
	}
	switch rest {
	case "control/proplet/task_metrics":
		t.Kind = KindTask
	case "control/proplet/metrics":
		t.Kind = KindProplet
	default:
		return Topic{}, false
	}
	return t, true
}

// Match reports whether topic matches the MQTT topic filter (with + and # wildcards, a
// $share/<group>/ prefix ignored). Brokers deliver only what a session subscribed to, but a
// persistent session keeps the subscriptions of an earlier configuration: what no configured
// filter matches is not for this receiver.
func Match(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, filter, _ = strings.Cut(rest, "/")
	}
	// Topics starting with $ are not matched by filters starting with a wildcard (MQTT 4.7.2).
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// "a/#" also matches "a".
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}

// ValidFilter reports whether filter is a valid MQTT topic filter: not empty, # only as the
// last level, + and # alone in their level.
func ValidFilter(filter string) bool {
	if filter == "" {
		return false
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && len(l) != 1 {
			return false
		}
		if l == "#" && i != len(levels)-1 {
			return false
		}
	}
	return true
}
