package mqttexporter

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap/zapcore"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// counterByReason reads one of the exporter's counters split by its reason attribute.
func counterByReason(t *testing.T, tel *componenttest.Telemetry, name string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	m, err := tel.GetMetric("otelcol_" + name)
	if err != nil {
		return out
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is an int sum", name)
	for _, dp := range sum.DataPoints {
		r, _ := dp.Attributes.Value("reason")
		out[r.AsString()] += dp.Value
	}
	return out
}

// TestBadUsageRecordsAreRefusedByReason sends, with one good record, records that cannot make
// a message: each is refused (never published, never retried), counted under its reason, and
// logged at warning once per reason with the attribute at fault.
func TestBadUsageRecordsAreRefusedByReason(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	domain, channel := uniqueIDs(t)
	sub := mqtttest.Subscribe(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
	e, tel, logs := directObserved(t, testConfig(b.Endpoint(), domain, channel))

	mutate := func(f func(m pcommon.Map)) plog.Logs {
		ld := usageLogs(taskID, propletID, fullHistory, exitedRecord())
		f(ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes())
		return ld
	}
	bad := []struct {
		name, reason, attr string
		ld                 plog.Logs
	}{
		{"no exit time", reasonMissingAttr, schema.ProcessExitTime, mutate(func(m pcommon.Map) { m.Remove(schema.ProcessExitTime) })},
		{"no exact", reasonMissingAttr, schema.TaskExact, mutate(func(m pcommon.Map) { m.Remove(schema.TaskExact) })},
		{"half the network pair", reasonMissingAttr, schema.TaskNetworkTransmit, mutate(func(m pcommon.Map) { m.PutInt(schema.TaskNetworkReceive, 1) })},
		{"peak as a double", reasonWrongType, schema.TaskMemoryPeak, mutate(func(m pcommon.Map) { m.PutDouble(schema.TaskMemoryPeak, 1.5e8) })},
		{"exit code as a string", reasonWrongType, schema.ProcessExitCode, mutate(func(m pcommon.Map) { m.PutStr(schema.ProcessExitCode, "3") })},
		{"cpu as an int", reasonWrongType, schema.TaskCPUUser, mutate(func(m pcommon.Map) { m.PutInt(schema.TaskCPUUser, 1) })},
		{"oom as a string", reasonWrongType, schema.TaskOOMKilled, mutate(func(m pcommon.Map) { m.PutStr(schema.TaskOOMKilled, "false") })},
		{"start not a time", reasonImpossibleVal, schema.ProcessCreationTime, mutate(func(m pcommon.Map) { m.PutStr(schema.ProcessCreationTime, "yesterday") })},
		{"negative cpu", reasonImpossibleVal, schema.TaskCPUSystem, mutate(func(m pcommon.Map) { m.PutDouble(schema.TaskCPUSystem, -0.5) })},
		{"NaN duration", reasonImpossibleVal, schema.TaskDuration, mutate(func(m pcommon.Map) { m.PutDouble(schema.TaskDuration, math.NaN()) })},
		{"negative bytes", reasonImpossibleVal, schema.TaskDiskRead, mutate(func(m pcommon.Map) { m.PutInt(schema.TaskDiskRead, -1) })},
		{"negative delay", reasonImpossibleVal, schema.TaskBlkioDelay, mutate(func(m pcommon.Map) { m.PutDouble(schema.TaskBlkioDelay, -0.25) })},
		{"delay as an int", reasonWrongType, schema.TaskCPUDelay, mutate(func(m pcommon.Map) { m.PutInt(schema.TaskCPUDelay, 1) })},
		{"exit code and signal", reasonImpossibleVal, schema.TaskExitSignal, mutate(func(m pcommon.Map) { m.PutInt(schema.TaskExitSignal, 9) })},
		{"signal 0", reasonImpossibleVal, schema.TaskExitSignal, mutate(func(m pcommon.Map) {
			m.Remove(schema.ProcessExitCode)
			m.PutInt(schema.TaskExitSignal, 0)
		})},
		{"no task id", reasonNoTaskID, "", usageLogs("", propletID, fullHistory, exitedRecord())},
		{"no proplet id", reasonNoPropletID, "", usageLogs(taskID, "", fullHistory, exitedRecord())},
		{"unsafe task id", string(propeller.ReasonSeparator), "", usageLogs("a/b", propletID, fullHistory, exitedRecord())},
	}
	// The last one is refused only where a topic holds the task id.
	e.tpl.usage = append(e.tpl.usage, mustTemplate(t, "m/{domain_id}/c/{channel_id}/usage/{task_id}"))
	ctx := context.Background()
	want := map[string]int64{}
	for _, c := range bad {
		require.NoError(t, e.pushLogs(ctx, c.ld), c.name)
		if c.reason == string(propeller.ReasonSeparator) {
			want[c.reason]++ // one topic of the two
			continue
		}
		want[c.reason] += 2
	}
	require.NoError(t, e.pushLogs(ctx, usageLogs("good", propletID, fullHistory, exitedRecord())))

	msgs := sub.Wait(t, 5*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 3 })
	topics := []string{}
	for _, m := range msgs {
		topics = append(topics, m.Topic)
	}
	sort.Strings(topics)
	assert.Equal(t, []string{
		fmt.Sprintf("m/%s/c/%s/control/proplet/task_usage", domain, channel), // a/b, on the topic without its id
		fmt.Sprintf("m/%s/c/%s/control/proplet/task_usage", domain, channel),
		fmt.Sprintf("m/%s/c/%s/usage/good", domain, channel),
	}, topics)
	assert.Equal(t, want, counterByReason(t, tel, "exporter_mqtt_messages_refused"))
	assert.Equal(t, int64(3), counter(t, tel, "exporter_mqtt_messages_published"))

	warned := map[string]bool{}
	for _, w := range logs.FilterMessageSnippet("refused").FilterLevelExact(zapcore.WarnLevel).All() {
		r := w.ContextMap()["reason"].(string)
		assert.False(t, warned[r], "reason %q logged at warning twice", r)
		warned[r] = true
	}
	assert.Len(t, warned, len(want), "each reason at warning once")
	// The first record of each reason is the one at warning: it names the attribute at fault.
	firstOf := map[string]string{}
	for _, c := range bad {
		if _, ok := firstOf[c.reason]; !ok {
			firstOf[c.reason] = c.attr
		}
	}
	for _, w := range logs.FilterMessageSnippet("Task usage report refused").FilterLevelExact(zapcore.WarnLevel).All() {
		r := w.ContextMap()["reason"].(string)
		if a := firstOf[r]; a != "" {
			assert.Equal(t, a, w.ContextMap()["attribute"], r)
		}
	}
}

func mustTemplate(t *testing.T, text string) propeller.Template {
	t.Helper()
	tpl, err := propeller.ParseTemplate(text, propeller.DomainID, propeller.ChannelID, propeller.PropletID, propeller.TaskID)
	require.NoError(t, err)
	return tpl
}

// TestOtherRecordsAreSkippedAndCounted: records that are not task usage reports, and reports of
// tasks whose profile says export_to_mqtt false, make no message; they are counted by reason,
// not refused, and said once at info.
func TestOtherRecordsAreSkippedAndCounted(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	domain, channel := uniqueIDs(t)
	sub := mqtttest.Subscribe(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
	e, tel, logs := directObserved(t, testConfig(b.Endpoint(), domain, channel))

	ld := usageLogs(taskID, propletID, fullHistory, exitedRecord(), exitedRecord())
	lrs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
	lrs.At(0).SetEventName("propeller.task.start")
	other := lrs.AppendEmpty()
	other.Body().SetStr("an application log line")
	usageLogs("quiet", propletID, profileAttrs{history: 100, retain: true, export: false}, exitedRecord()).ResourceLogs().MoveAndAppendTo(ld.ResourceLogs())
	require.NoError(t, e.pushLogs(context.Background(), ld))

	msgs := sub.Wait(t, 5*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 1 })
	require.Len(t, msgs, 1)
	assert.Equal(t, taskID, msgs[0].Decoded(t)["task_id"])
	assert.Equal(t, map[string]int64{skipOtherEvent: 2, skipNotExport: 1}, counterByReason(t, tel, "exporter_mqtt_log_records_skipped"))
	assert.Empty(t, counterByReason(t, tel, "exporter_mqtt_messages_refused"))
	assert.Equal(t, 2, logs.FilterMessageSnippet("skipped").FilterLevelExact(zapcore.InfoLevel).Len(), "once per reason")
	assert.Equal(t, 1, logs.FilterMessageSnippet("skipped").FilterLevelExact(zapcore.DebugLevel).Len(), "the rest at debug")
}

// FuzzDecodeUsage feeds records with arbitrary times, numbers and types: decoding never
// panics, and a record it accepts always encodes as valid JSON with the message's key set.
func FuzzDecodeUsage(f *testing.F) {
	f.Add("2025-01-15T10:35:20.623456789Z", "2025-01-15T10:35:22.123456789Z", 1.5, int64(3), int64(0), true, uint8(0))
	f.Add("2025-01-15T10:35:20+02:00", "yesterday", math.NaN(), int64(-1), int64(9), false, uint8(5))
	f.Add("0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", 0.0, int64(0), int64(0), false, uint8(0))
	f.Fuzz(func(t *testing.T, start, end string, seconds float64, code, signal int64, net bool, wrongType uint8) {
		attrs := pcommon.NewMap()
		r := exitedRecord()
		r.put(attrs)
		attrs.PutStr(schema.ProcessCreationTime, start)
		attrs.PutStr(schema.ProcessExitTime, end)
		attrs.PutDouble(schema.TaskDuration, seconds)
		attrs.PutDouble(schema.TaskCPUUser, seconds)
		attrs.PutInt(schema.ProcessExitCode, code)
		if signal != 0 {
			attrs.Remove(schema.ProcessExitCode)
			attrs.PutInt(schema.TaskExitSignal, signal)
		}
		if net {
			attrs.PutInt(schema.TaskNetworkReceive, code)
			attrs.PutInt(schema.TaskNetworkTransmit, signal)
		}
		if a := schema.UsageAttributes[int(wrongType)%len(schema.UsageAttributes)]; wrongType > 0 {
			attrs.PutEmptyBytes(a.Name)
		}
		m := propeller.TaskUsage{TaskID: "t\x00\uffff", PropletID: "p"}
		if err := decodeUsage(attrs, 0, &m); err != nil {
			assert.NotEmpty(t, err.reason)
			return
		}
		var v map[string]any
		require.NoError(t, json.Unmarshal(m.AppendJSON(nil), &v))
		want := len(usageKeys)
		if m.HasNetwork {
			want += 2
		}
		assert.Len(t, v, want)
		for _, k := range []string{"started_at", "ended_at", "timestamp"} {
			_, err := time.Parse(time.RFC3339Nano, v[k].(string))
			assert.NoError(t, err, k)
		}
	})
}
