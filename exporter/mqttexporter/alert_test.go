package mqttexporter

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// receiverMemory is the proplet receiver's golden memory warnings (receiver/propletreceiver's
// memwarn_test.go writes it): what this exporter is fed in the distribution.
const receiverMemory = "../../internal/schema/testdata/receiver_memory.json"

// TestReceiverMemoryWarningsMap maps the receiver's own memory warnings to task_alerts
// messages, byte for byte, on the task_alerts topic.
func TestReceiverMemoryWarningsMap(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(receiverMemory)
	require.NoError(t, err)
	ld, err := (&plog.JSONUnmarshaler{}).UnmarshalLogs(b)
	require.NoError(t, err)
	require.Equal(t, 3, ld.LogRecordCount())

	outs := newUsageExporter(t).builtLogs(ld)
	require.Len(t, outs, 3, "every warning becomes a message")
	for _, o := range outs {
		assert.Equal(t, "m/dom/c/chn/control/proplet/task_alerts", o.topic)
	}
	assert.Equal(t, `{"task_id":"550e8400-e29b-41d4-a716-446655440001","proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",`+
		`"kind":"memory_high","value":60397977,"limit":67108864,"seconds_to_limit":0.8,"timestamp":"2025-01-15T10:35:22.123456789Z"}`,
		string(outs[0].payload))
	assert.Equal(t, `{"task_id":"550e8400-e29b-41d4-a716-446655440002","proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",`+
		`"kind":"memory_high","value":62914560,"limit":67108864,"timestamp":"2025-01-15T10:35:32.123456789Z"}`,
		string(outs[1].payload), "not growing: no seconds_to_limit")
	assert.Equal(t, `{"task_id":"550e8400-e29b-41d4-a716-446655440001","proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",`+
		`"kind":"memory_recovered","value":52428800,"limit":67108864,"timestamp":"2025-01-15T10:35:42.123456789Z"}`,
		string(outs[2].payload))
}

// alertLogs builds one task resource, as the receiver writes it, with one memory warning
// record whose attributes put sets.
func alertLogs(taskID string, prof profileAttrs, event string, put func(pcommon.Map)) plog.Logs {
	ld := usageLogs(taskID, propletID, prof)
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty()
	lr.SetEventName(event)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	put(lr.Attributes())
	return ld
}

func putAlert(m pcommon.Map) {
	m.PutStr(schema.TaskID, taskID)
	m.PutStr(schema.PropletID, propletID)
	m.PutInt(schema.TaskMemoryUsage, 60397977)
	m.PutInt(schema.TaskMemoryLimit, 67108864)
	m.PutDouble(schema.TaskMemoryShare, 0.9)
	m.PutDouble(schema.TaskMemoryGrowthRate, 8388608)
	m.PutDouble(schema.TaskMemorySecondsToLimit, 0.8)
}

// TestAlertsArePublished: a warning goes to the broker on the task_alerts topic, through the
// logs path's queue and publish; a task whose profile has export_to_mqtt false sends none.
func TestAlertsArePublished(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	domain, channel := uniqueIDs(t)
	sub := mqtttest.Subscribe(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
	e, tel, _ := directObserved(t, testConfig(b.Endpoint(), domain, channel))

	ld := alertLogs(taskID, fullHistory, schema.TaskMemoryHighEvent, putAlert)
	alertLogs("quiet", profileAttrs{history: 100, retain: true, export: false}, schema.TaskMemoryHighEvent, putAlert).ResourceLogs().MoveAndAppendTo(ld.ResourceLogs())
	require.NoError(t, e.pushLogs(context.Background(), ld))

	msgs := sub.Wait(t, 10*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 1 })
	require.Len(t, msgs, 1)
	assert.Equal(t, fmt.Sprintf("m/%s/c/%s/control/proplet/task_alerts", domain, channel), msgs[0].Topic)
	v := msgs[0].Decoded(t)
	assert.Equal(t, taskID, v["task_id"])
	assert.Equal(t, "memory_high", v["kind"])
	assert.InDelta(t, 0.8, v["seconds_to_limit"], 1e-12)
	assert.Equal(t, map[string]int64{skipNotExport: 1}, counterByReason(t, tel, "exporter_mqtt_log_records_skipped"))
}

// TestAlertRecordsRefused: a warning without its usage or limit, or with a value of the wrong
// type or impossible, is refused and counted by reason, never published as a guess.
func TestAlertRecordsRefused(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		change func(pcommon.Map)
		reason string
		attr   string
	}{
		"no usage":        {func(m pcommon.Map) { m.Remove(schema.TaskMemoryUsage) }, reasonMissingAttr, schema.TaskMemoryUsage},
		"no limit":        {func(m pcommon.Map) { m.Remove(schema.TaskMemoryLimit) }, reasonMissingAttr, schema.TaskMemoryLimit},
		"zero limit":      {func(m pcommon.Map) { m.PutInt(schema.TaskMemoryLimit, 0) }, reasonImpossibleVal, schema.TaskMemoryLimit},
		"negative usage":  {func(m pcommon.Map) { m.PutInt(schema.TaskMemoryUsage, -1) }, reasonImpossibleVal, schema.TaskMemoryUsage},
		"usage as double": {func(m pcommon.Map) { m.PutDouble(schema.TaskMemoryUsage, 1.5) }, reasonWrongType, schema.TaskMemoryUsage},
		"NaN to limit":    {func(m pcommon.Map) { m.PutDouble(schema.TaskMemorySecondsToLimit, math.NaN()) }, reasonImpossibleVal, schema.TaskMemorySecondsToLimit},
		"negative ETA":    {func(m pcommon.Map) { m.PutDouble(schema.TaskMemorySecondsToLimit, -2) }, reasonImpossibleVal, schema.TaskMemorySecondsToLimit},
		"ETA as string":   {func(m pcommon.Map) { m.PutStr(schema.TaskMemorySecondsToLimit, "soon") }, reasonWrongType, schema.TaskMemorySecondsToLimit},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			attrs := pcommon.NewMap()
			putAlert(attrs)
			tt.change(attrs)
			lr := plog.NewLogRecord()
			lr.SetEventName(schema.TaskMemoryHighEvent)
			attrs.CopyTo(lr.Attributes())
			var m propeller.TaskAlert
			err := decodeAlert(lr, &m)
			require.NotNil(t, err)
			assert.Equal(t, tt.reason, err.reason)
			assert.Equal(t, tt.attr, err.attr)
		})
	}

	// Through the exporter: counted by reason, nothing built.
	e := newUsageExporter(t)
	outs := e.builtLogs(alertLogs(taskID, fullHistory, schema.TaskMemoryRecoveredEvent, func(m pcommon.Map) { putAlert(m); m.Remove(schema.TaskMemoryLimit) }))
	assert.Empty(t, outs)
}

// TestEveryMemoryAttributeIsReadOrNotCarried holds the alerts to internal/schema as
// TestEveryUsageAttributeIsReadOrNotCarried holds the usage reports: each attribute of a memory
// warning changes the message when it changes, or is listed in alertNotCarried, never both.
func TestEveryMemoryAttributeIsReadOrNotCarried(t *testing.T) {
	t.Parallel()
	listed := map[string]bool{}
	for _, a := range schema.MemoryEventAttributes {
		listed[a.Name] = true
	}
	for name := range alertNotCarried {
		assert.True(t, listed[name], "alertNotCarried lists %s, which schema.MemoryEventAttributes does not have", name)
	}
	decode := func(attrs pcommon.Map) string {
		lr := plog.NewLogRecord()
		lr.SetEventName(schema.TaskMemoryHighEvent)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
		attrs.CopyTo(lr.Attributes())
		m := propeller.TaskAlert{TaskID: "t", PropletID: "p"}
		if err := decodeAlert(lr, &m); err != nil {
			return "refused: " + err.Error()
		}
		return string(m.AppendJSON(nil))
	}
	base := pcommon.NewMap()
	putAlert(base)
	want := decode(base)
	require.NotContains(t, want, "refused")
	for _, a := range schema.MemoryEventAttributes {
		attrs := pcommon.NewMap()
		base.CopyTo(attrs)
		switch a.Type {
		case schema.String:
			attrs.PutStr(a.Name, "other")
		case schema.Int:
			attrs.PutInt(a.Name, 7)
		case schema.Double:
			attrs.PutDouble(a.Name, 2.25)
		default:
			t.Fatalf("%s: unknown type %q", a.Name, a.Type)
		}
		read := decode(attrs) != want
		reason, skipped := alertNotCarried[a.Name]
		switch {
		case read && skipped:
			t.Errorf("%s is read, yet listed as not carried (%s)", a.Name, reason)
		case !read && !skipped:
			t.Errorf("%s is in schema.MemoryEventAttributes but the exporter neither reads it nor lists it in alertNotCarried", a.Name)
		}
	}
}
