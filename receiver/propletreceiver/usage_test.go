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

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

// receiverUsage is the golden file of the usage reports the receiver writes; the MQTT
// exporter's tests map it.
const receiverUsage = "../../internal/schema/testdata/receiver_usage.json"

// endedSamples are final task samples with usage reports: one task that exited with code 3
// under a cgroup limit, with the kernel's delays (a swap-in delay of zero among them), one
// killed by SIGKILL with a network namespace of its own, inexact, without delays.
func endedSamples() []monitor.Sample {
	exited, killed := fullSamples()[0], fullSamples()[0]
	exited.Final = true
	exited.Usage = &monitor.Usage{
		Start: schemaTime.Add(-1500 * time.Millisecond), End: schemaTime,
		CPUUser: 0.42, CPUSystem: 0.11, PeakMemory: 220200960, MemoryLimit: 268435456,
		ReadBytes: 4096, WriteBytes: 8388608, ExitCode: 3, HasExitCode: true, Exact: true,
		CPUDelay: 0.25, HasCPUDelay: true, BlockIODelay: 0.125, HasBlockIODelay: true,
		SwapInDelay: 0, HasSwapInDelay: true, MemoryReclaimDelay: 0.0625, HasMemoryReclaimDelay: true,
	}
	killed.TaskID, killed.TaskName = "550e8400-e29b-41d4-a716-446655440002", "serve"
	killed.Final = true
	killed.Usage = &monitor.Usage{
		Start: schemaTime.Add(-90 * time.Second), End: schemaTime,
		CPUUser: 12.5, CPUSystem: 1.25, PeakMemory: 52428800, WriteBytes: 1024,
		HasNetwork: true, RxBytes: 65536, TxBytes: 32768, ExitSignal: 9, HasExitSignal: true, OOMKilled: true,
	}
	return []monitor.Sample{exited, killed}
}

// recordUsageReports records the ended samples and returns the logs the receiver sends.
func recordUsageReports(t *testing.T) plog.Logs {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	enableAll(&cfg.MetricsBuilderConfig.ResourceAttributes)
	tel, err := metadata.NewTelemetryBuilder(componenttest.NewNopTelemetrySettings())
	require.NoError(t, err)
	set := receivertest.NewNopSettings(metadata.Type)
	r, err := newReceiver(set, cfg)
	require.NoError(t, err)
	sink := new(consumertest.LogsSink)
	r.logs, r.tel, r.pendingLogs = sink, tel, plog.NewLogs()
	r.mb = metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, set)
	for _, s := range endedSamples() {
		r.record(&s)
	}
	r.flush(context.Background())
	require.Len(t, sink.AllLogs(), 1, "one batch")
	ld := sink.AllLogs()[0]
	// The observed time is when the record was made; fix it so the golden file is stable.
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rls.At(i).ScopeLogs().At(0).LogRecords().At(0).SetObservedTimestamp(pcommon.NewTimestampFromTime(schemaTime))
	}
	return ld
}

// TestUsageReportFollowsTheSchema: each report is one log record, event propeller.task.end,
// with the task's resource and exactly the schema's attributes and types; between the two
// reports every attribute the schema lists is written.
func TestUsageReportFollowsTheSchema(t *testing.T) {
	t.Parallel()
	ld := recordUsageReports(t)
	require.Equal(t, 2, ld.LogRecordCount())
	types := map[string]schema.Type{}
	for _, a := range schema.UsageAttributes {
		types[a.Name] = a.Type
	}
	written := map[string]bool{}
	for i, s := range endedSamples() {
		rl := ld.ResourceLogs().At(i)
		id, _ := rl.Resource().Attributes().Get(schema.TaskID)
		assert.Equal(t, s.TaskID, id.Str(), "the task's resource")
		lr := rl.ScopeLogs().At(0).LogRecords().At(0)
		assert.Equal(t, schema.TaskEndEvent, lr.EventName())
		assert.Equal(t, s.Usage.End, lr.Timestamp().AsTime(), "timestamped when the task ended")
		for k, v := range lr.Attributes().All() {
			want, ok := types[k]
			if assert.True(t, ok, "attribute %q is written but not in schema.UsageAttributes", k) {
				assert.Equal(t, want, schemaTypes[v.Type()], "type of %s", k)
			}
			written[k] = true
		}
		_, code := lr.Attributes().Get(schema.ProcessExitCode)
		_, sig := lr.Attributes().Get(schema.TaskExitSignal)
		assert.NotEqual(t, code, sig, "exactly one of exit code and signal")
	}
	for _, a := range schema.UsageAttributes {
		assert.True(t, written[a.Name], "%s is in schema.UsageAttributes but never written", a.Name)
	}
}

// TestUsageReportDelays: a delay the kernel provided is written, zero included; one it did not
// is absent, never a zero.
func TestUsageReportDelays(t *testing.T) {
	t.Parallel()
	ld := recordUsageReports(t)
	delays := []string{schema.TaskCPUDelay, schema.TaskBlkioDelay, schema.TaskSwapinDelay, schema.TaskMemoryReclaimDelay}
	exited := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes()
	for name, want := range map[string]float64{
		schema.TaskCPUDelay: 0.25, schema.TaskBlkioDelay: 0.125, schema.TaskSwapinDelay: 0, schema.TaskMemoryReclaimDelay: 0.0625,
	} {
		v, ok := exited.Get(name)
		if assert.True(t, ok, "%s present", name) {
			assert.Equal(t, pcommon.ValueTypeDouble, v.Type(), name)
			assert.InDelta(t, want, v.Double(), 0, name)
		}
	}
	killed := ld.ResourceLogs().At(1).ScopeLogs().At(0).LogRecords().At(0).Attributes()
	for _, name := range delays {
		_, ok := killed.Get(name)
		assert.False(t, ok, "%s absent from a report without them", name)
	}

	// Only the CPU delay: the others absent.
	u := *endedSamples()[0].Usage
	u.HasBlockIODelay, u.HasSwapInDelay, u.HasMemoryReclaimDelay = false, false, false
	lr := plog.NewLogRecord()
	fillUsage(lr, "t", &u, schemaTime)
	for _, name := range delays {
		_, ok := lr.Attributes().Get(name)
		assert.Equal(t, name == schema.TaskCPUDelay, ok, name)
	}
}

// TestUsageReportGolden compares the reports with the golden file the exporter's tests map.
// Regenerate it with go test ./receiver/propletreceiver/ -run TestUsageReportGolden -update
func TestUsageReportGolden(t *testing.T) {
	t.Parallel()
	raw, err := (&plog.JSONMarshaler{}).MarshalLogs(recordUsageReports(t))
	require.NoError(t, err)
	var got bytes.Buffer
	require.NoError(t, json.Indent(&got, raw, "", "  "))
	got.WriteByte('\n')
	if *update {
		require.NoError(t, os.WriteFile(receiverUsage, got.Bytes(), 0o600))
	}
	want, err := os.ReadFile(receiverUsage)
	require.NoError(t, err, "run with -update to create it")
	assert.Equal(t, string(want), got.String(), "the usage report changed: check the exporter still maps it, then run with -update")
}

// TestOneReceiverForBothSignals: a configuration used in a metrics and a logs pipeline is one
// receiver, started once and stopped with its last pipeline.
func TestOneReceiverForBothSignals(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "p"
	f := NewFactory()
	set := receivertest.NewNopSettings(metadata.Type)
	metricsSink, logsSink := consumertest.NewNop(), new(consumertest.LogsSink)
	mr, err := f.CreateMetrics(context.Background(), set, cfg, metricsSink)
	require.NoError(t, err)
	lr, err := f.CreateLogs(context.Background(), set, cfg, logsSink)
	require.NoError(t, err)
	r := mr.(*receiverUse).use.Value()
	assert.Same(t, r, lr.(*receiverUse).use.Value(), "one receiver")
	assert.Equal(t, metricsSink, r.next)
	assert.Equal(t, logsSink, r.logs)

	other := createDefaultConfig().(*Config)
	or, err := f.CreateLogs(context.Background(), set, other, consumertest.NewNop())
	require.NoError(t, err)
	assert.NotSame(t, r, or.(*receiverUse).use.Value(), "another configuration is another receiver")
	require.NoError(t, or.Shutdown(context.Background()))

	host := componenttest.NewNopHost()
	require.NoError(t, mr.Start(context.Background(), host))
	mon := r.mon
	require.NotNil(t, mon)
	require.NoError(t, lr.Start(context.Background(), host))
	assert.Same(t, mon, r.mon, "started once")
	require.NoError(t, lr.Shutdown(context.Background()))
	assert.NotNil(t, r.mon, "still running for the metrics pipeline")
	require.NoError(t, mr.Shutdown(context.Background()))
	assert.Nil(t, r.mon)

	again, err := f.CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.NotSame(t, r, again.(*receiverUse).use.Value(), "a receiver shut down is forgotten")
	require.NoError(t, again.Shutdown(context.Background()))
}
