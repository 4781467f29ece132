//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/otlptranslator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// served is one series name the prometheus exporter serves, with the data point labels its
// metric has.
type served struct {
	otel   string // the OTLP name
	labels map[string]bool
}

// otelMetric is a metric as the receiver defines it: enough for the exporter's name.
type otelMetric struct {
	unit      string
	typ       otlptranslator.MetricType
	attrs     []string // data point attributes, OTLP names
	monotonic bool
}

// receiverMetrics reads the proplet receiver's metrics from its metadata.yaml.
func receiverMetrics(t *testing.T) map[string]otelMetric {
	t.Helper()
	md := yamlFile(t, "../receiver/propletreceiver/metadata.yaml")
	attrNames := map[string]string{}
	for id, a := range asMap(md["attributes"]) {
		attrNames[id] = id
		if o, ok := asMap(a)["name_override"].(string); ok {
			attrNames[id] = o
		}
	}
	out := map[string]otelMetric{}
	for name, raw := range asMap(md["metrics"]) {
		m := asMap(raw)
		om := otelMetric{}
		om.unit, _ = m["unit"].(string)
		switch {
		case m["gauge"] != nil:
			om.typ = otlptranslator.MetricTypeGauge
		case asMap(m["sum"])["monotonic"] == true:
			om.typ, om.monotonic = otlptranslator.MetricTypeMonotonicCounter, true
		default:
			om.typ = otlptranslator.MetricTypeNonMonotonicCounter
		}
		for _, id := range list(m["attributes"]) {
			om.attrs = append(om.attrs, attrNames[fmt.Sprint(id)])
		}
		out[name] = om
	}
	require.NotEmpty(t, out)
	return out
}

// servedSeries is every series name the distribution's prometheus exporter serves for the
// proplet receiver's metrics and the fleet gateway's bridged ones, named as the exporter
// names them (otlptranslator, with suffixes: the exporter's default), with its labels: the
// resource attributes examples/agent.yaml makes labels, and the metric's own attributes.
func servedSeries(t *testing.T) map[string]served {
	t.Helper()
	metrics := receiverMetrics(t)
	for _, m := range schema.FleetMetrics {
		metrics[m.Name] = otelMetric{unit: m.Unit, typ: otlptranslator.MetricTypeGauge}
	}
	var resourceLabels []string
	for _, l := range list(yamlFile(t, "../examples/agent.yaml")["exporters"].(map[string]any)["prometheus"].(map[string]any)["resource_constant_labels"].(map[string]any)["included"]) {
		resourceLabels = append(resourceLabels, fmt.Sprint(l))
	}
	require.NotEmpty(t, resourceLabels)

	names := otlptranslator.MetricNamer{WithMetricSuffixes: true}
	labels := otlptranslator.LabelNamer{}
	label := func(attr string) string {
		l, err := labels.Build(attr)
		require.NoError(t, err, attr)
		return l
	}
	out := map[string]served{}
	for name, m := range metrics {
		prom, err := names.Build(otlptranslator.Metric{Name: name, Unit: m.unit, Type: m.typ})
		require.NoError(t, err, name)
		s := served{otel: name, labels: map[string]bool{}}
		for _, a := range append(append([]string(nil), resourceLabels...), m.attrs...) {
			s.labels[label(a)] = true
		}
		out[prom] = s
	}
	return out
}

// TestWaitMetricNames pins the Prometheus names of the wait metrics the dashboard and the
// alerts read, as the exporter derives them: unit s gives _seconds, a unit in braces adds
// nothing, a cumulative monotonic sum ends in _total.
func TestWaitMetricNames(t *testing.T) {
	names := otlptranslator.MetricNamer{WithMetricSuffixes: true}
	metrics := receiverMetrics(t)
	for otel, prom := range map[string]string{
		"process.cpu.time":                     "process_cpu_time_seconds_total",
		"propeller.task.cpu.wait.time":         "propeller_task_cpu_wait_time_seconds_total",
		"propeller.task.disk.io.wait.time":     "propeller_task_disk_io_wait_time_seconds_total",
		"propeller.task.pressure.stall.time":   "propeller_task_pressure_stall_time_seconds_total",
		"propeller.task.cpu.throttled.time":    "propeller_task_cpu_throttled_time_seconds_total",
		"propeller.task.cpu.throttled.periods": "propeller_task_cpu_throttled_periods_total",
		"propeller.task.cpu.periods":           "propeller_task_cpu_periods_total",
	} {
		m, ok := metrics[otel]
		require.True(t, ok, "%s is not in the receiver's metadata.yaml", otel)
		got, err := names.Build(otlptranslator.Metric{Name: otel, Unit: m.unit, Type: m.typ})
		require.NoError(t, err)
		assert.Equal(t, prom, got, otel)
	}
	var labels otlptranslator.LabelNamer
	l, err := labels.Build("propeller.pressure.resource")
	require.NoError(t, err)
	assert.Equal(t, "propeller_pressure_resource", l)
}

// rangeRE finds a metric selected without labels over a range: name[10m].
var rangeRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\[`)

// TestDashboardQueriesNameServedMetrics: every metric a query of the dashboard (its panels and
// its annotations) or of the alert rules names is one the distribution serves for the proplet
// receiver or the fleet gateway, and every label it selects or groups by is one that series
// has. The exceptions: Prometheus's own series (ALERTS, up), and the collector's own telemetry
// (otelcol_*) that some alerts read.
func TestDashboardQueriesNameServedMetrics(t *testing.T) {
	series := servedSeries(t)
	b, err := os.ReadFile(dashboard)
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Annotations struct {
			List []struct {
				Name string
				Expr string
			}
		}
	}
	require.NoError(t, json.Unmarshal(b, &d))
	type query struct {
		where, expr string
		dashboard   bool
	}
	var queries []query
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			queries = append(queries, query{"panel " + p.Title, tg.Expr, true})
		}
	}
	require.NotEmpty(t, d.Annotations.List, "the dashboard's annotations")
	for _, a := range d.Annotations.List {
		queries = append(queries, query{"annotation " + a.Name, a.Expr, true})
	}
	for _, g := range list(yamlFile(t, alertRules)["groups"]) {
		for _, r := range list(asMap(g)["rules"]) {
			queries = append(queries, query{fmt.Sprintf("alert %v", asMap(r)["alert"]), fmt.Sprint(asMap(r)["expr"]), false})
		}
	}

	for _, q := range queries {
		var grouping []string
		for _, m := range byRE.FindAllStringSubmatch(q.expr, -1) {
			grouping = append(grouping, splitLabels(m[1])...)
		}
		sels := selectorRE.FindAllStringSubmatch(q.expr, -1)
		for _, m := range rangeRE.FindAllStringSubmatch(q.expr, -1) {
			sels = append(sels, []string{m[0], m[1], ""})
		}
		if q.dashboard {
			assert.NotEmpty(t, sels, "%s: no metric selector in %q", q.where, q.expr)
		}
		for _, sel := range sels {
			name := sel[1]
			if name == "ALERTS" || name == "up" || strings.HasPrefix(name, "otelcol_") {
				continue
			}
			s, ok := series[name]
			if !assert.True(t, ok, "%s: %s is not a series the distribution serves", q.where, name) {
				continue
			}
			for _, m := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
				assert.True(t, s.labels[m[1]], "%s: %s (%s) has no label %s", q.where, name, s.otel, m[1])
			}
			for _, l := range grouping {
				// A query groups several selectors by one list: the label is the query's if
				// any of them has it.
				assert.True(t, anyHas(series, sels, l), "%s: grouped by %s, which none of its series has", q.where, l)
			}
		}
	}
}

func anyHas(series map[string]served, sels [][]string, label string) bool {
	for _, sel := range sels {
		if series[sel[1]].labels[label] {
			return true
		}
	}
	return false
}

// splitLabels splits a "by (a, b)" list.
func splitLabels(s string) []string {
	var out []string
	for _, l := range strings.Split(s, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
