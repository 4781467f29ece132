package mqttexporter

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap/zapcore"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// usageRecord is one ended task as the proplet receiver reports it (internal/schema).
type usageRecord struct {
	start, end                time.Time
	duration, cpuUser, cpuSys float64
	peak, read, write         int64
	net                       bool
	rx, tx                    int64
	exited                    bool // process.exit.code is set
	code                      int64
	killed                    bool // propeller.task.exit.signal is set
	signal                    int64
	oom, exact                bool
	limit                     int64 // propeller.task.memory.limit when positive
}

// exitedRecord: the task that touches 200 MiB, burns half a second of CPU, writes
// 8 MiB and exits with code 3 after 1.5 s; no network namespace of its own.
func exitedRecord() usageRecord {
	return usageRecord{
		start: t0.Add(-1500 * time.Millisecond), end: t0,
		duration: 1.5, cpuUser: 0.42, cpuSys: 0.08,
		peak: 210763776, read: 4096, write: 8388608,
		exited: true, code: 3, exact: true, limit: 536870912,
	}
}

// killedRecord: a task in its own network namespace that the OOM killer ended with SIGKILL,
// its totals from the last sample.
func killedRecord() usageRecord {
	return usageRecord{
		start: t0.Add(-89*time.Second - 250*time.Millisecond), end: t0.Add(time.Second),
		duration: 90.25, cpuUser: 61.5, cpuSys: 3.125,
		peak: 536870912, read: 0, write: 1048576,
		net: true, rx: 123456, tx: 654321,
		killed: true, signal: 9, oom: true,
	}
}

func (r usageRecord) put(m pcommon.Map) {
	m.PutStr(schema.ProcessCreationTime, r.start.UTC().Format(time.RFC3339Nano))
	m.PutStr(schema.ProcessExitTime, r.end.UTC().Format(time.RFC3339Nano))
	if r.exited {
		m.PutInt(schema.ProcessExitCode, r.code)
	}
	if r.killed {
		m.PutInt(schema.TaskExitSignal, r.signal)
	}
	m.PutBool(schema.TaskOOMKilled, r.oom)
	m.PutDouble(schema.TaskDuration, r.duration)
	m.PutDouble(schema.TaskCPUUser, r.cpuUser)
	m.PutDouble(schema.TaskCPUSystem, r.cpuSys)
	m.PutInt(schema.TaskMemoryPeak, r.peak)
	if r.limit > 0 {
		m.PutInt(schema.TaskMemoryLimit, r.limit)
	}
	m.PutInt(schema.TaskDiskRead, r.read)
	m.PutInt(schema.TaskDiskWrite, r.write)
	if r.net {
		m.PutInt(schema.TaskNetworkReceive, r.rx)
		m.PutInt(schema.TaskNetworkTransmit, r.tx)
	}
	m.PutBool(schema.TaskExact, r.exact)
}

// usageLogs builds one task resource, as the receiver writes it, with one propeller.task.end
// record per usage record.
func usageLogs(taskID, propletID string, prof profileAttrs, recs ...usageRecord) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	r := rl.Resource().Attributes()
	if taskID != "" {
		r.PutStr(schema.TaskID, taskID)
	}
	r.PutStr(schema.TaskName, "compute")
	if propletID != "" {
		r.PutStr(schema.PropletID, propletID)
	}
	r.PutStr(schema.ProfileName, "standard")
	r.PutDouble(schema.ProfileInterval, 10)
	r.PutInt(schema.ProfileHistorySize, prof.history)
	r.PutBool(schema.ProfileRetainHistory, prof.retain)
	r.PutBool(schema.ProfileExportToMQTT, prof.export)
	r.PutInt(schema.ProcessPID, 4242)
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for _, rec := range recs {
		lr := lrs.AppendEmpty()
		lr.SetEventName(schema.TaskEndEvent)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(rec.end))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(rec.end.Add(time.Millisecond)))
		rec.put(lr.Attributes())
	}
	return ld
}

// usageKeys is the exact key set of the task usage message without the network pair.
var usageKeys = []string{
	"task_id", "proplet_id", "started_at", "ended_at", "duration_seconds", "cpu_user_seconds", "cpu_system_seconds",
	"peak_memory_bytes", "disk_read_bytes", "disk_write_bytes", "exit_code", "exit_signal", "oom_killed", "exact", "timestamp",
}

// decodeAsManager decodes a payload the way the Propeller manager does (a generic map, every
// number a float64), checks the exact key set and each key's JSON type, and parses the times
// back as RFC 3339 with nanoseconds.
func decodeAsManager(t *testing.T, payload []byte, withNetwork bool) (map[string]any, map[string]time.Time) {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(payload, &v), "%s", payload)
	want := append([]string(nil), usageKeys...)
	if withNetwork {
		want = append(want, "network_rx_bytes", "network_tx_bytes")
	}
	got := make([]string, 0, len(v))
	for k := range v {
		got = append(got, k)
	}
	sort.Strings(want)
	sort.Strings(got)
	require.Equal(t, want, got, "exactly these keys")

	times := map[string]time.Time{}
	for k, x := range v {
		switch k {
		case "task_id", "proplet_id":
			require.IsType(t, "", x, k)
		case "started_at", "ended_at", "timestamp":
			s, ok := x.(string)
			require.True(t, ok, "%s is a string", k)
			ts, err := time.Parse(time.RFC3339Nano, s)
			require.NoError(t, err, "%s is RFC 3339 with nanoseconds", k)
			assert.Equal(t, time.UTC, ts.Location(), "%s is UTC", k)
			times[k] = ts
		case "oom_killed", "exact":
			require.IsType(t, true, x, k)
		case "exit_code", "exit_signal":
			if x != nil {
				require.IsType(t, float64(0), x, k)
			}
		default:
			require.IsType(t, float64(0), x, "%s is a number", k)
		}
	}
	return v, times
}

func newUsageExporter(t *testing.T) *mqttExporter {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.DomainID, cfg.ChannelID = "dom", "chn"
	e, err := newExporter(exportertestSettings(), cfg)
	require.NoError(t, err)
	return e
}

var updateGolden = flag.Bool("update", false, "rewrite the golden task usage messages in testdata")

// TestUsageGolden maps both kinds of end, compares each payload byte for byte with its golden
// file, and decodes it as the manager does.
func TestUsageGolden(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		rec    usageRecord
		golden string
	}{
		"exited": {exitedRecord(), "task_usage_exited.json"},
		"killed": {killedRecord(), "task_usage_killed.json"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			e := newUsageExporter(t)
			outs := e.builtLogs(usageLogs(taskID, propletID, fullHistory, tt.rec))
			require.Len(t, outs, 1)
			assert.Equal(t, "m/dom/c/chn/control/proplet/task_usage", outs[0].topic)
			path := filepath.Join("testdata", tt.golden)
			if *updateGolden {
				require.NoError(t, os.WriteFile(path, append(outs[0].payload, '\n'), 0o644))
			}
			golden, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, strings.TrimSpace(string(golden)), string(outs[0].payload))

			v, times := decodeAsManager(t, outs[0].payload, tt.rec.net)
			assert.Equal(t, taskID, v["task_id"])
			assert.Equal(t, propletID, v["proplet_id"])
			assert.True(t, times["started_at"].Equal(tt.rec.start), "started_at round-trips to the nanosecond")
			assert.True(t, times["ended_at"].Equal(tt.rec.end))
			assert.True(t, times["timestamp"].Equal(tt.rec.end), "timestamp: the record's, when the task ended")
			assert.InDelta(t, tt.rec.duration, v["duration_seconds"], 0)
			assert.InDelta(t, tt.rec.cpuUser, v["cpu_user_seconds"], 0)
			assert.InDelta(t, tt.rec.cpuSys, v["cpu_system_seconds"], 0)
			assert.InDelta(t, float64(tt.rec.peak), v["peak_memory_bytes"], 0)
			assert.InDelta(t, float64(tt.rec.read), v["disk_read_bytes"], 0)
			assert.InDelta(t, float64(tt.rec.write), v["disk_write_bytes"], 0)
			assert.Equal(t, tt.rec.oom, v["oom_killed"])
			assert.Equal(t, tt.rec.exact, v["exact"])
			if tt.rec.exited {
				assert.InDelta(t, float64(tt.rec.code), v["exit_code"], 0)
				assert.Nil(t, v["exit_signal"], "null: it exited")
			} else {
				assert.Nil(t, v["exit_code"], "null: a signal ended it")
				assert.InDelta(t, float64(tt.rec.signal), v["exit_signal"], 0)
			}
			if tt.rec.net {
				assert.InDelta(t, float64(tt.rec.rx), v["network_rx_bytes"], 0)
				assert.InDelta(t, float64(tt.rec.tx), v["network_tx_bytes"], 0)
			}
		})
	}
}

// TestUsageEndNotKnown: neither an exit code nor a signal (the end was not observed) sends
// both as null, never a made-up 0.
func TestUsageEndNotKnown(t *testing.T) {
	t.Parallel()
	r := exitedRecord()
	r.exited = false
	outs := newUsageExporter(t).builtLogs(usageLogs(taskID, propletID, fullHistory, r))
	require.Len(t, outs, 1)
	v, _ := decodeAsManager(t, outs[0].payload, false)
	assert.Nil(t, v["exit_code"])
	assert.Nil(t, v["exit_signal"])
}

// TestEveryUsageAttributeIsReadOrNotCarried holds the logs path to internal/schema as
// TestEverySchemaNameIsReadOrNotCarried holds the metrics path: each attribute of the task
// usage report changes the message (or refuses the record) when it changes, or is listed in
// usageNotCarried, never both.
func TestEveryUsageAttributeIsReadOrNotCarried(t *testing.T) {
	t.Parallel()
	listed := map[string]bool{}
	for _, a := range schema.UsageAttributes {
		listed[a.Name] = true
	}
	for name := range usageNotCarried {
		assert.True(t, listed[name], "usageNotCarried lists %s, which schema.UsageAttributes does not have", name)
	}

	// The base record sets neither exit code nor signal, nor the network pair, nor the limit,
	// so setting any of them is a change.
	base := exitedRecord()
	base.exited, base.limit = false, 0
	decode := func(attrs pcommon.Map) string {
		m := propeller.TaskUsage{TaskID: "t", PropletID: "p"}
		if err := decodeUsage(attrs, 0, &m); err != nil {
			return "refused: " + err.Error()
		}
		return string(m.AppendJSON(nil))
	}
	baseAttrs := pcommon.NewMap()
	base.put(baseAttrs)
	want := decode(baseAttrs)
	require.NotContains(t, want, "refused")

	for _, a := range schema.UsageAttributes {
		attrs := pcommon.NewMap()
		baseAttrs.CopyTo(attrs)
		switch a.Type {
		case schema.String:
			attrs.PutStr(a.Name, "2020-02-02T02:02:02.000000002Z")
		case schema.Int:
			attrs.PutInt(a.Name, 7)
		case schema.Double:
			attrs.PutDouble(a.Name, 2.25)
		case schema.Bool:
			v, _ := attrs.Get(a.Name)
			attrs.PutBool(a.Name, !v.Bool())
		default:
			t.Fatalf("%s: unknown type %q", a.Name, a.Type)
		}
		read := decode(attrs) != want
		reason, skipped := usageNotCarried[a.Name]
		switch {
		case read && skipped:
			t.Errorf("%s is read, yet listed as not carried (%s)", a.Name, reason)
		case !read && !skipped:
			t.Errorf("%s is in schema.UsageAttributes but the exporter neither reads it nor lists it in usageNotCarried", a.Name)
		}
	}
}

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

// viaFactoryLogs starts the logs signal as the Collector does: queue, retry and timeout.
func viaFactoryLogs(t *testing.T, cfg *Config, set exporter.Settings) exporter.Logs {
	t.Helper()
	exp, err := NewFactory().CreateLogs(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })
	return exp
}

// TestUsageDelivery sends a report through the logs signal as the Collector runs it, to each
// broker over both protocol versions: it arrives once, on the task_usage topic, at QoS 1.
func TestUsageDelivery(t *testing.T) {
	t.Parallel()
	for _, b := range brokers(t) {
		for _, version := range []string{"3.1.1", "5"} {
			t.Run(b.name+"/"+version, func(t *testing.T) {
				domain, channel := uniqueIDs(t)
				sub := mqtttest.Subscribe(t, b.endpoint, fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
				cfg := testConfig(b.endpoint, domain, channel)
				cfg.ProtocolVersion = version
				set, tel, _ := observedSettings(t)
				exp := viaFactoryLogs(t, cfg, set)
				require.NoError(t, exp.ConsumeLogs(context.Background(), usageLogs(taskID, propletID, fullHistory, killedRecord())))

				msgs := sub.Wait(t, 10*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 1 })
				require.Len(t, msgs, 1)
				assert.Equal(t, fmt.Sprintf("m/%s/c/%s/control/proplet/task_usage", domain, channel), msgs[0].Topic)
				assert.Equal(t, byte(1), msgs[0].QoS, "published at QoS 1: the broker acknowledged it")
				v, _ := decodeAsManager(t, msgs[0].Payload, true)
				assert.InDelta(t, 9.0, v["exit_signal"], 0)
				require.Eventually(t, func() bool { return counter(t, tel, "exporter_mqtt_messages_published") == 1 }, 5*time.Second, 10*time.Millisecond)
			})
		}
	}
}

// TestUsageSurvivesABrokerRestart: task usage reports sent while the broker restarts all
// arrive, as the metrics samples do in TestBrokerRestartAtQoS1.
func TestUsageSurvivesABrokerRestart(t *testing.T) {
	t.Parallel()
	brokerRestart(t, "control/proplet/task_usage", func(t *testing.T, cfg *Config) func(i int, ts time.Time) error {
		exp := viaFactoryLogs(t, cfg, exportertestSettings())
		return func(i int, ts time.Time) error {
			r := exitedRecord()
			r.start, r.end, r.code = ts.Add(-1500*time.Millisecond), ts, int64(i%256)
			return exp.ConsumeLogs(context.Background(), usageLogs(fmt.Sprintf("task-%02d", i), propletID, fullHistory, r))
		}
	})
}

// TestMetricsAndLogsShareOneConnection: both signals of one exporter configuration use one
// client. With a fixed client_id, two connections would throw each other off the broker;
// here every message of both arrives, the logs signal keeps sending after the metrics one
// shut down, and the last shutdown disconnects.
func TestMetricsAndLogsShareOneConnection(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	domain, channel := uniqueIDs(t)
	sub := mqtttest.Subscribe(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
	cfg := testConfig(b.Endpoint(), domain, channel)
	cfg.ClientID = "proplet-fixed"
	cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
	ctx := context.Background()
	f := NewFactory()
	me, err := f.CreateMetrics(ctx, exportertestSettings(), cfg)
	require.NoError(t, err)
	logsSet, _, logsLog := observedSettings(t)
	le, err := f.CreateLogs(ctx, logsSet, cfg)
	require.NoError(t, err)
	shared, holds, ok := exporters.Peek(cfg)
	require.True(t, ok)
	assert.Equal(t, 2, holds)
	require.NoError(t, me.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, le.Start(ctx, componenttest.NewNopHost()))

	require.NoError(t, me.ConsumeMetrics(ctx, taskMetrics(taskID, propletID, fullHistory, firstPoint())))
	require.NoError(t, le.ConsumeLogs(ctx, usageLogs(taskID, propletID, fullHistory, exitedRecord())))
	sub.Wait(t, 10*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 2 })

	other := plog.NewLogs()
	other.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("not a report")
	require.NoError(t, le.ConsumeLogs(ctx, other))
	require.Eventually(t, func() bool { return logsLog.FilterMessageSnippet("skipped").Len() == 1 }, 5*time.Second, 10*time.Millisecond,
		"the logs path logs with the logs signal's logger, though the metrics signal created the exporter")

	require.NoError(t, me.Shutdown(ctx))
	assert.True(t, shared.client.connected(), "the logs signal still holds the connection")
	r := exitedRecord()
	r.end = r.end.Add(time.Minute)
	require.NoError(t, le.ConsumeLogs(ctx, usageLogs(taskID, propletID, fullHistory, r)))
	msgs := sub.Wait(t, 10*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 3 })
	assert.Len(t, msgs, 3)

	require.NoError(t, le.Shutdown(ctx))
	assert.False(t, shared.client.connected(), "the last shutdown disconnects")
	_, _, ok = exporters.Peek(cfg)
	assert.False(t, ok, "and forgets the configuration")
}

// TestOnlyFailedRecordsAreRetried: when some messages of a batch are not acknowledged, only
// their records are sent again, the same bytes.
func TestOnlyFailedRecordsAreRetried(t *testing.T) {
	t.Parallel()
	ld := usageLogs("a", propletID, fullHistory, exitedRecord(), killedRecord())
	usageLogs("b", propletID, fullHistory, killedRecord()).ResourceLogs().MoveAndAppendTo(ld.ResourceLogs())
	e := newUsageExporter(t)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	var err error
	e.tel, err = metadata.NewTelemetryBuilder(tel.NewTelemetrySettings())
	require.NoError(t, err)
	e.client = &failingClient{fail: `"task_id":"b"`}
	req := e.buildLogs(ld)
	first := e.expand(req, e.usageRefusals)
	require.Len(t, first, 3)

	// The records whose messages were not acknowledged are what the retry sends; the rest
	// counts as sent.
	err = e.pushQueuedLogs(context.Background(), req)
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "retried, not dropped")
	retry := req.OnError(err).(*queued)
	require.Equal(t, 1, retry.ItemsCount())
	again := e.expand(retry, e.usageRefusals)
	require.Len(t, again, 1)
	assert.Equal(t, first[2].topic, again[0].topic)
	assert.Equal(t, string(first[2].payload), string(again[0].payload), "the same bytes")
	assert.Equal(t, int64(2), counter(t, tel, "exporter_mqtt_messages_published"))
	assert.Equal(t, int64(1), counter(t, tel, "exporter_mqtt_messages_failed"))
	assert.Same(t, req, req.OnError(errors.New("another error")), "an error without a subset retries the whole request")
}

// failingClient acknowledges every publish except those whose payload contains fail.
type failingClient struct{ fail string }

func (*failingClient) start(context.Context) error { return nil }
func (*failingClient) connected() bool             { return true }
func (*failingClient) stop()                       {}
func (c *failingClient) publish(_ string, payload []byte) token {
	t := &asyncToken{done: make(chan struct{})}
	if strings.Contains(string(payload), c.fail) {
		t.err = errors.New("connection lost before the acknowledgement")
	}
	close(t.done)
	return t
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

// receiverUsage is the proplet receiver's golden usage reports (receiver/propletreceiver's
// usage_test.go writes it): what this exporter is fed in the distribution.
const receiverUsage = "../../internal/schema/testdata/receiver_usage.json"

// TestReceiverUsageReportsMap maps the receiver's own usage reports: both are accepted, and
// each message carries the report's values as the manager decodes them.
func TestReceiverUsageReportsMap(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(receiverUsage)
	require.NoError(t, err)
	ld, err := (&plog.JSONUnmarshaler{}).UnmarshalLogs(b)
	require.NoError(t, err)
	require.Equal(t, 2, ld.LogRecordCount())

	outs := newUsageExporter(t).builtLogs(ld)
	require.Len(t, outs, 2, "both reports become messages")

	exited, _ := decodeAsManager(t, outs[0].payload, false)
	assert.Equal(t, "550e8400-e29b-41d4-a716-446655440001", exited["task_id"])
	assert.Equal(t, "7c9e6679-7425-40de-944b-e07fc1f90ae7", exited["proplet_id"])
	assert.InDelta(t, 3, exited["exit_code"], 0)
	assert.Nil(t, exited["exit_signal"])
	assert.InDelta(t, 1.5, exited["duration_seconds"], 1e-9)
	assert.InDelta(t, 0.42, exited["cpu_user_seconds"], 1e-9)
	assert.InDelta(t, 220200960, exited["peak_memory_bytes"], 0)
	assert.InDelta(t, 8388608, exited["disk_write_bytes"], 0)
	assert.Equal(t, true, exited["exact"])
	assert.Equal(t, false, exited["oom_killed"])

	killed, _ := decodeAsManager(t, outs[1].payload, true)
	assert.Equal(t, "550e8400-e29b-41d4-a716-446655440002", killed["task_id"])
	assert.Nil(t, killed["exit_code"])
	assert.InDelta(t, 9, killed["exit_signal"], 0)
	assert.Equal(t, true, killed["oom_killed"])
	assert.Equal(t, false, killed["exact"])
	assert.InDelta(t, 65536, killed["network_rx_bytes"], 0)
}
