package tasklabelsconverter // import "github.com/otelcol-propeller/otelcol-propeller/converter/tasklabelsconverter"

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Labels are the resource attributes the examples turn into Prometheus labels: enough to tell
// every task apart (the id), to name it (the name) and to tell proplets apart, and nothing that
// changes during a task's life (process.pid, the profile attributes), which would start new
// series on a restart or a profile change.
var Labels = []string{schema.TaskID, schema.TaskName, schema.PropletID}

// Collision is a prometheus exporter that the proplet receiver's metrics reach and that would
// serve every task's metrics as one series per name.
type Collision struct {
	Exporter  string   // the exporter's id, as in the configuration: prometheus, prometheus/2
	Pipelines []string // the pipelines through which the receiver's metrics reach it
	Reason    string   // what in the exporter's configuration makes the tasks collide
}

// Fix is the configuration that keeps the tasks apart, in the YAML the user writes.
func (c Collision) Fix() string {
	return fmt.Sprintf("exporters: { %s: { resource_constant_labels: { included: [%s] } } }", c.Exporter, strings.Join(Labels, ", "))
}

const prometheusType = "prometheus"

// taskReceiverTypes are the receivers that write one resource per task: the proplet receiver,
// and the propeller_mqtt receiver, which writes bridged tasks the same way.
var taskReceiverTypes = []string{"proplet", "propeller_mqtt"}

// collisions finds the prometheus exporters that the proplet receiver's metrics reach, through
// connectors too, and that do not turn propeller.task.id into a label. The Prometheus exporter
// keys a series on the metric's name, its data point attributes and the job and instance of
// the resource's service.* attributes, none of which tell two tasks apart: every other resource
// attribute is left out unless resource_constant_labels (or the deprecated
// resource_to_telemetry_conversion) adds it. conf is the resolved configuration before it is
// decoded; anything it does not understand is left to the Collector's own validation.
func collisions(conf map[string]any) []Collision {
	pipelines := asMap(dig(conf, "service", "pipelines"))
	connectors := asMap(conf["connectors"])
	exporters := asMap(conf["exporters"])

	// Pipelines the receiver's metrics flow through: those it is a receiver of, then those fed
	// by a connector one of them exports to.
	reached := map[string]bool{}
	var queue []string
	for id, p := range pipelines {
		if slices.ContainsFunc(ids(asMap(p)["receivers"]), func(r string) bool { return slices.Contains(taskReceiverTypes, typeOf(r)) }) {
			reached[id] = true
			queue = append(queue, id)
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, e := range ids(asMap(pipelines[id])["exporters"]) {
			if _, ok := connectors[e]; !ok {
				continue
			}
			for next, p := range pipelines {
				if !reached[next] && slices.Contains(ids(asMap(p)["receivers"]), e) {
					reached[next] = true
					queue = append(queue, next)
				}
			}
		}
	}

	via := map[string][]string{}
	for id := range reached {
		for _, e := range ids(asMap(pipelines[id])["exporters"]) {
			if typeOf(e) == prometheusType {
				via[e] = append(via[e], id)
			}
		}
	}
	var out []Collision
	for e, ps := range via {
		reason := labelsReason(asMap(exporters[e]))
		if reason == "" {
			continue
		}
		sort.Strings(ps)
		out = append(out, Collision{Exporter: e, Pipelines: ps, Reason: reason})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Exporter < out[j].Exporter })
	return out
}

// labelsReason says why a prometheus exporter's configuration leaves propeller.task.id out
// of its labels, or returns "" when it does not. The rules are the exporter's at contrib
// v0.161.0: resource_constant_labels with included or excluded patterns wins; otherwise
// resource_to_telemetry_conversion.enabled adds every attribute.
func labelsReason(cfg map[string]any) string {
	rcl := asMap(cfg["resource_constant_labels"])
	included, excluded := strs(rcl["included"]), strs(rcl["excluded"])
	if len(included) > 0 || len(excluded) > 0 {
		if !keeps(included, excluded, schema.TaskID) {
			return "resource_constant_labels does not include " + schema.TaskID
		}
		return ""
	}
	if isTrue(dig(cfg, "resource_to_telemetry_conversion", "enabled")) {
		return ""
	}
	return "neither resource_constant_labels nor resource_to_telemetry_conversion is set, so no resource attribute becomes a label"
}

// keeps reports whether the exporter turns the attribute key into a label, with the
// resourcetotelemetry matcher's rules: '*' and '?' wildcards, excluded wins, and an empty
// included list with a non-empty excluded one includes everything not excluded.
func keeps(included, excluded []string, key string) bool {
	for _, p := range excluded {
		if glob(p, key) {
			return false
		}
	}
	if len(included) == 0 {
		return len(excluded) > 0
	}
	for _, p := range included {
		if glob(p, key) {
			return true
		}
	}
	return false
}

func glob(pattern, s string) bool {
	q := regexp.QuoteMeta(pattern)
	q = strings.ReplaceAll(strings.ReplaceAll(q, `\*`, `.*`), `\?`, `.`)
	re, err := regexp.Compile("(?s)^" + q + "$")
	return err == nil && re.MatchString(s)
}

// typeOf is the component type of an id: prometheus for prometheus/2.
func typeOf(id string) string {
	t, _, _ := strings.Cut(id, "/")
	return t
}

func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		v = asMap(v)[k]
	}
	return v
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// ids reads a list of component ids.
func ids(v any) []string { return strs(v) }

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// isTrue reads a YAML boolean, also as the string an environment variable expands to.
func isTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return strings.EqualFold(b, "true")
	}
	return false
}
