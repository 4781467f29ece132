package propeller

import (
	"fmt"
	"strings"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Propeller's topics, in one place: the templates this project publishes to and subscribes
// on (placeholders filled by Template.AppendTopic), and the filters a fleet gateway subscribes
// to. Every topic lives under m/{domain_id}/c/{channel_id}/.
const (
	// TaskMetricsTopic carries task metrics messages; the manager reads it.
	TaskMetricsTopic = "m/{domain_id}/c/{channel_id}/control/proplet/task_metrics"
	// TaskMetricsAltTopic is the second topic a Propeller proplet publishes task metrics on.
	TaskMetricsAltTopic = "m/{domain_id}/c/{channel_id}/metrics/proplet"
	// PropletMetricsTopic carries proplet metrics messages.
	PropletMetricsTopic = "m/{domain_id}/c/{channel_id}/control/proplet/metrics"
	// TaskUsageTopic carries task usage messages. The manager subscribes to
	// m/{domain}/c/{channel}/# and ignores suffixes it does not know, so the usage report can
	// share the proplet's control topics.
	TaskUsageTopic = "m/{domain_id}/c/{channel_id}/control/proplet/task_usage"
	// TaskAlertsTopic carries task alert messages: a task near its memory limit, and back.
	TaskAlertsTopic = "m/{domain_id}/c/{channel_id}/control/proplet/task_alerts"
	// ManagerStartTopic carries the manager's task start requests.
	ManagerStartTopic = "m/{domain_id}/c/{channel_id}/control/manager/start"
	// ManagerStopTopic carries the manager's task stop requests.
	ManagerStopTopic = "m/{domain_id}/c/{channel_id}/control/manager/stop"

	// TaskMetricsFilter is every domain's and channel's task metrics.
	TaskMetricsFilter = "m/+/c/+/control/proplet/task_metrics"
	// PropletMetricsFilter is every domain's and channel's proplet metrics.
	PropletMetricsFilter = "m/+/c/+/control/proplet/metrics"
)

// MetricsFilters are the filters of every metrics message a fleet gateway reads.
func MetricsFilters() []string { return []string{TaskMetricsFilter, PropletMetricsFilter} }

// ManagerTopic fills a manager topic template (ManagerStartTopic, ManagerStopTopic) with a
// domain and a channel, refusing a value that CheckValue refuses (check them with CheckID
// first).
func ManagerTopic(template, domainID, channelID string) (string, error) {
	t, err := ParseTemplate(template, DomainID, ChannelID)
	if err != nil {
		return "", err
	}
	b, err := t.AppendTopic(nil, &Values{DomainID: domainID, ChannelID: channelID})
	return string(b), err
}

// Topic is what a metrics message's topic says: m/{domain}/c/{channel}/control/proplet/
// {task_metrics|metrics}.
type Topic struct {
	Domain  string
	Channel string
	Kind    schema.Kind
}

// ParseTopic reads a topic a message arrived on. ok is false for every other topic (a
// heartbeat under a wide filter, a topic of another shape): such messages are not metrics.
// The ids it holds are not checked: Check does, so that a bad one is dropped and counted.
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
		t.Kind = schema.KindTask
	case "control/proplet/metrics":
		t.Kind = schema.KindProplet
	default:
		return Topic{}, false
	}
	return t, true
}

// Check checks the domain and channel ids of a topic with CheckID, as ids in a message are
// checked: at most MaxIDLength bytes (DropIDTooLong), and values CheckValue accepts
// (DropTopicID). They become
// resource attributes, so a 59 KB domain would be a 59 KB label on every series.
func (t Topic) Check() error {
	for _, id := range [2]struct{ key, v string }{{DomainID, t.Domain}, {ChannelID, t.Channel}} {
		switch reason := CheckID(id.v); reason {
		case "":
		case ReasonIDTooLong:
			return drop(DropIDTooLong, "%s in the topic is %d bytes long, more than %d", id.key, len(id.v), MaxIDLength)
		default:
			return drop(DropTopicID, "%s %q in the topic: %s", id.key, id.v, reason)
		}
	}
	return nil
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

// CheckFilter reports why filter is not a topic filter to subscribe to, or nil: not empty, #
// only as the last level, + and # alone in their level, and every other level a value
// CheckValue accepts (the domain or channel id a filter names is checked as the one a topic
// carries).
func CheckFilter(filter string) error {
	if filter == "" {
		return fmt.Errorf("%q is empty", filter)
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "+":
		case l == "#":
			if i != len(levels)-1 {
				return fmt.Errorf("%q has # before its last level", filter)
			}
		case strings.ContainsAny(l, "+#"):
			return fmt.Errorf("%q: + and # must stand alone in a level", filter)
		default:
			if reason := CheckValue(l); reason != "" {
				return fmt.Errorf("%q: level %d (%q): %s", filter, i+1, l, reason)
			}
		}
	}
	return nil
}
