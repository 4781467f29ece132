package mqttexporter

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

func TestTaskStateIsDroppedWhenTheTaskStopsReporting(t *testing.T) {
	t.Parallel()
	m := newMapper(createDefaultConfig().(*Config))
	p := taskProfile{historySize: 100, retain: true, export: true, interval: 10 * time.Second}
	now := time.Now()
	for i, id := range []string{"a", "b"} {
		s := &sample{ts: pcommon.NewTimestampFromTime(now.Add(time.Duration(i) * time.Second)), hasRSS: true, rss: 1}
		m.taskMessage(id, "p", p, s, now)
	}
	assert.Len(t, m.tasks, 2)

	// "a" keeps reporting; "b" falls silent for longer than three intervals (at least a minute).
	later := now.Add(2 * time.Minute)
	m.taskMessage("a", "p", p, &sample{ts: pcommon.NewTimestampFromTime(later), hasRSS: true, rss: 1}, later)
	m.sweep(later)
	assert.Contains(t, m.tasks, "a")
	assert.NotContains(t, m.tasks, "b")
}

// receiverOutput is what the proplet receiver writes for a full task sample and a full proplet
// sample (kept up to date by the receiver's TestSchemaGoldenReceiverOutput).
const receiverOutput = "../../internal/schema/testdata/receiver_output.json"

// TestReceiverOutputMapsToEveryField maps the receiver's golden output and checks every field
// of both Propeller messages, with its value: the exporter understands every attribute the
// receiver writes that Propeller's messages have a field for.
func TestReceiverOutputMapsToEveryField(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(receiverOutput)
	require.NoError(t, err)
	md, err := (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics(raw)
	require.NoError(t, err)

	cfg := createDefaultConfig().(*Config)
	cfg.DomainID, cfg.ChannelID = "dom", "chn"
	set, _, logs := observedSettings(t)
	e, err := newExporter(set, cfg)
	require.NoError(t, err)
	outs := e.built(md, time.Now())
	require.Zero(t, logs.FilterMessageSnippet("refused").Len(), "nothing refused")

	byTopic := map[string][]map[string]any{}
	for _, o := range outs {
		var v map[string]any
		require.NoError(t, json.Unmarshal(o.payload, &v), "%s", o.payload)
		byTopic[o.topic] = append(byTopic[o.topic], v)
	}
	require.Len(t, byTopic, 3, "both task topics and the proplet topic")

	const ts = "2025-01-15T10:35:22.123456789Z"
	// cpu_percent: 8 s user + 2 s system over the 50 s since the process started.
	cpuPercent := schema.CPUPercent(10, 50)
	wantTask := map[string]any{
		"task_id":    "550e8400-e29b-41d4-a716-446655440001",
		"proplet_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		"metrics": map[string]any{
			"cpu_percent":     cpuPercent,
			"memory_bytes":    52428800.0,
			"memory_percent":  1.2,
			"disk_read_bytes": 1048576.0, "disk_write_bytes": 524288.0,
			"network_rx_bytes": 4096.0, "network_tx_bytes": 2048.0,
			"uptime_seconds": 50.0, "thread_count": 2.0, "file_descriptor_count": 8.0,
			"timestamp": ts,
		},
		// The standard profile's history: retained, one sample so far.
		"aggregated": map[string]any{
			"avg_cpu_usage": cpuPercent, "max_cpu_usage": cpuPercent,
			"avg_memory_usage": 52428800.0, "max_memory_usage": 52428800.0,
			"total_disk_read": 0.0, "total_disk_write": 0.0, "total_network_rx": 0.0, "total_network_tx": 0.0,
			"sample_count": 1.0,
		},
		"timestamp": ts,
	}
	for _, topic := range []string{"m/dom/c/chn/control/proplet/task_metrics", "m/dom/c/chn/metrics/proplet"} {
		require.Len(t, byTopic[topic], 1, topic)
		assert.Equal(t, wantTask, byTopic[topic][0], topic)
	}

	wantProplet := map[string]any{
		"proplet_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		"namespace":  "default",
		"timestamp":  ts,
		// percent: 100 × (1 − idle − iowait) of the machine's CPU.
		"cpu_metrics": map[string]any{"user_seconds": 12.5, "system_seconds": 3.25, "percent": 17.0},
		"memory_metrics": map[string]any{
			"rss_bytes": 41943040.0, "container_usage_bytes": 73400320.0, "container_limit_bytes": 536870912.0,
		},
	}
	require.Len(t, byTopic["m/dom/c/chn/control/proplet/metrics"], 1)
	assert.Equal(t, wantProplet, byTopic["m/dom/c/chn/control/proplet/metrics"][0])
}

func TestTasksWithoutProfileAttributesGetTheStandardProfile(t *testing.T) {
	t.Parallel()
	std, _ := profile.Builtin(profile.Standard)
	cfg := createDefaultConfig().(*Config)
	cfg.DefaultHistorySize = 7
	m := newMapper(cfg)
	assert.Equal(t, taskProfile{historySize: 7, retain: std.RetainHistory, export: std.ExportToMQTT, interval: std.Interval}, m.defaults)
}

// TestLookupOfATaskNotFoundSendsNoMessage: while a task is pending the receiver sends only
// propeller.task.lookup 0 for it; that is no Propeller sample, and the manager must not store
// an empty one.
func TestLookupOfATaskNotFoundSendsNoMessage(t *testing.T) {
	t.Parallel()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(schema.TaskID, "pending-task")
	rm.Resource().Attributes().PutStr(schema.PropletID, "p")
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName(schema.TaskLookup)
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	// The receiver's MetricsBuilder gives gauges its start time too.
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Now().Add(-time.Minute)))
	dp.SetIntValue(0)

	cfg := createDefaultConfig().(*Config)
	cfg.DomainID, cfg.ChannelID = "dom", "chn"
	set, _, logs := observedSettings(t)
	e, err := newExporter(set, cfg)
	require.NoError(t, err)
	outs := e.built(md, time.Now())
	assert.Empty(t, outs)
	assert.Zero(t, logs.FilterMessageSnippet("refused").Len(), "not refused either")
}
