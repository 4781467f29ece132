package propletreceiver

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadatatest"
)

// receiverMemory is the golden file of the memory warnings the receiver writes; the MQTT
// exporter's tests map it.
const receiverMemory = "../../internal/schema/testdata/receiver_memory.json"

// warnedSamples are task samples that raised memory warnings: a crossing with a time to the
// limit, a reminder of a task that is not growing, and a recovery.
func warnedSamples() []monitor.Sample {
	high, flat, back := fullSamples()[0], fullSamples()[0], fullSamples()[0]
	high.Memory = &monitor.MemoryEvent{
		Kind: monitor.MemoryHigh, First: true, Usage: 60397977, Limit: 67108864, Share: 0.9,
		GrowthRate: 8388608, HasGrowthRate: true, SecondsToLimit: 0.8, HasSecondsToLimit: true,
	}
	flat.TaskID, flat.TaskName = "550e8400-e29b-41d4-a716-446655440002", "serve"
	flat.Time = flat.Time.Add(10 * time.Second)
	flat.Memory = &monitor.MemoryEvent{Kind: monitor.MemoryHigh, Usage: 62914560, Limit: 67108864, Share: 0.9375, HasGrowthRate: true}
	back.Time = back.Time.Add(20 * time.Second)
	back.Memory = &monitor.MemoryEvent{Kind: monitor.MemoryRecovered, Usage: 52428800, Limit: 67108864, Share: 0.78125, GrowthRate: -1048576, HasGrowthRate: true}
	return []monitor.Sample{high, flat, back}
}

// recordMemoryWarnings records the warned samples and returns the logs the receiver sends,
// with the telemetry that counted them.
func recordMemoryWarnings(t *testing.T) (plog.Logs, *componenttest.Telemetry) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	enableAll(&cfg.MetricsBuilderConfig.ResourceAttributes)
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	tel, err := metadata.NewTelemetryBuilder(tt.NewTelemetrySettings())
	require.NoError(t, err)
	set := receivertest.NewNopSettings(metadata.Type)
	r, err := newReceiver(set, cfg)
	require.NoError(t, err)
	sink := new(consumertest.LogsSink)
	r.logs, r.tel, r.pendingLogs = sink, tel, plog.NewLogs()
	r.mb = metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, set)
	for _, s := range warnedSamples() {
		r.record(&s)
	}
	r.flush(context.Background())
	require.Len(t, sink.AllLogs(), 1, "one batch")
	ld := sink.AllLogs()[0]
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rls.At(i).ScopeLogs().At(0).LogRecords().At(0).SetObservedTimestamp(pcommon.NewTimestampFromTime(schemaTime))
	}
	return ld, tt
}

// TestMemoryWarningFollowsTheSchema: each warning is one log record, its event named by its
// kind, with the task's resource and exactly the schema's attributes and types, timestamped
// when its sample was taken; each is counted by kind.
func TestMemoryWarningFollowsTheSchema(t *testing.T) {
	t.Parallel()
	ld, tt := recordMemoryWarnings(t)
	require.Equal(t, 3, ld.LogRecordCount())
	types := map[string]schema.Type{}
	for _, a := range schema.MemoryEventAttributes {
		types[a.Name] = a.Type
	}
	written := map[string]bool{}
	for i, s := range warnedSamples() {
		rl := ld.ResourceLogs().At(i)
		id, _ := rl.Resource().Attributes().Get(schema.TaskID)
		assert.Equal(t, s.TaskID, id.Str(), "the task's resource")
		lr := rl.ScopeLogs().At(0).LogRecords().At(0)
		want := schema.TaskMemoryHighEvent
		if s.Memory.Kind == monitor.MemoryRecovered {
			want = schema.TaskMemoryRecoveredEvent
		}
		assert.Equal(t, want, lr.EventName())
		assert.Equal(t, s.Time, lr.Timestamp().AsTime(), "timestamped when the sample was taken")
		for k, v := range lr.Attributes().All() {
			want, ok := types[k]
			if assert.True(t, ok, "attribute %q is written but not in schema.MemoryEventAttributes", k) {
				assert.Equal(t, want, schemaTypes[v.Type()], "type of %s", k)
			}
			written[k] = true
		}
		task, _ := lr.Attributes().Get(schema.TaskID)
		assert.Equal(t, s.TaskID, task.Str())
		proplet, _ := lr.Attributes().Get(schema.PropletID)
		assert.Equal(t, "7c9e6679-7425-40de-944b-e07fc1f90ae7", proplet.Str())
		_, eta := lr.Attributes().Get(schema.TaskMemorySecondsToLimit)
		assert.Equal(t, s.Memory.HasSecondsToLimit, eta, "seconds_to_limit only when growing")
	}
	for _, a := range schema.MemoryEventAttributes {
		assert.True(t, written[a.Name], "%s is in schema.MemoryEventAttributes but never written", a.Name)
	}
	metadatatest.AssertEqualReceiverPropletMemoryWarnings(t, tt, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("kind", "high")), Value: 2},
		{Attributes: attribute.NewSet(attribute.String("kind", "recovered")), Value: 1},
	}, metricdatatest.IgnoreTimestamp())
}

// TestMemoryWarningGolden compares the warnings with the golden file the exporter's tests map.
// Regenerate it with go test ./receiver/propletreceiver/ -run TestMemoryWarningGolden -update
func TestMemoryWarningGolden(t *testing.T) {
	t.Parallel()
	ld, _ := recordMemoryWarnings(t)
	raw, err := (&plog.JSONMarshaler{}).MarshalLogs(ld)
	require.NoError(t, err)
	var got bytes.Buffer
	require.NoError(t, json.Indent(&got, raw, "", "  "))
	got.WriteByte('\n')
	if *update {
		require.NoError(t, os.WriteFile(receiverMemory, got.Bytes(), 0o600))
	}
	want, err := os.ReadFile(receiverMemory)
	require.NoError(t, err, "run with -update to create it")
	assert.Equal(t, string(want), got.String(), "the memory warnings changed: check the exporter still maps them, then run with -update")
}

func TestMemorySummary(t *testing.T) {
	s := warnedSamples()
	assert.Equal(t, "task 550e8400-e29b-41d4-a716-446655440001 memory at 90.0% of its memory limit (60397977 of 67108864 bytes), growing 8388608 bytes/s: at the limit in 0.8s, where the kernel's OOM killer ends it",
		memorySummary(s[0].TaskID, s[0].Memory))
	assert.Equal(t, "task 550e8400-e29b-41d4-a716-446655440002 memory at 93.8% of its memory limit (62914560 of 67108864 bytes), not growing; the kernel's OOM killer ends it at the limit",
		memorySummary(s[1].TaskID, s[1].Memory))
	assert.Equal(t, "task 550e8400-e29b-41d4-a716-446655440001 memory back to 78.1% of its memory limit (52428800 of 67108864 bytes)",
		memorySummary(s[2].TaskID, s[2].Memory))
}
