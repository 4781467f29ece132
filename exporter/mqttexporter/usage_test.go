package mqttexporter

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

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
	limit                     int64              // propeller.task.memory.limit when positive
	delays                    map[string]float64 // the delays the kernel provided, by attribute
}

// delayKeys maps each delay attribute to its key in the task usage message.
var delayKeys = map[string]string{
	schema.TaskCPUDelay:           "cpu_delay_seconds",
	schema.TaskBlkioDelay:         "blkio_delay_seconds",
	schema.TaskSwapinDelay:        "swapin_delay_seconds",
	schema.TaskMemoryReclaimDelay: "memory_reclaim_delay_seconds",
}

// waitedRecord: the exited task with the delays of its exit record, a swap-in delay of zero
// among them (counted, and none).
func waitedRecord() usageRecord {
	r := exitedRecord()
	r.delays = map[string]float64{
		schema.TaskCPUDelay: 0.75, schema.TaskBlkioDelay: 0.0625, schema.TaskSwapinDelay: 0, schema.TaskMemoryReclaimDelay: 0.003,
	}
	return r
}

// keys are the message keys of the record's delays.
func (r usageRecord) delayKeys() []string {
	var out []string
	for attr := range r.delays {
		out = append(out, delayKeys[attr])
	}
	return out
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
	for attr, v := range r.delays {
		m.PutDouble(attr, v)
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
// back as RFC 3339 with nanoseconds. delays are the delay keys the payload must have.
func decodeAsManager(t *testing.T, payload []byte, withNetwork bool, delays ...string) (map[string]any, map[string]time.Time) {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(payload, &v), "%s", payload)
	want := append([]string(nil), usageKeys...)
	if withNetwork {
		want = append(want, "network_rx_bytes", "network_tx_bytes")
	}
	want = append(want, delays...)
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
		"waited": {waitedRecord(), "task_usage_delays.json"},
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

			v, times := decodeAsManager(t, outs[0].payload, tt.rec.net, tt.rec.delayKeys()...)
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
			for attr, want := range tt.rec.delays {
				assert.InDelta(t, want, v[delayKeys[attr]], 0, attr)
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

	exited, _ := decodeAsManager(t, outs[0].payload, false,
		"cpu_delay_seconds", "blkio_delay_seconds", "swapin_delay_seconds", "memory_reclaim_delay_seconds")
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
	assert.InDelta(t, 0.25, exited["cpu_delay_seconds"], 1e-9)
	assert.InDelta(t, 0.125, exited["blkio_delay_seconds"], 1e-9)
	assert.InDelta(t, 0, exited["swapin_delay_seconds"], 0)
	assert.InDelta(t, 0.0625, exited["memory_reclaim_delay_seconds"], 1e-9)

	killed, _ := decodeAsManager(t, outs[1].payload, true) // no delays: none of their keys
	assert.Equal(t, "550e8400-e29b-41d4-a716-446655440002", killed["task_id"])
	assert.Nil(t, killed["exit_code"])
	assert.InDelta(t, 9, killed["exit_signal"], 0)
	assert.Equal(t, true, killed["oom_killed"])
	assert.Equal(t, false, killed["exact"])
	assert.InDelta(t, 65536, killed["network_rx_bytes"], 0)
}

// TestUsageDelaysEachOptional: a report with only some delays sends those keys only, and the
// queue's compact form keeps which.
func TestUsageDelaysEachOptional(t *testing.T) {
	t.Parallel()
	r := exitedRecord()
	r.delays = map[string]float64{schema.TaskCPUDelay: 1.5}
	outs := newUsageExporter(t).builtLogs(usageLogs(taskID, propletID, fullHistory, r))
	require.Len(t, outs, 1)
	v, _ := decodeAsManager(t, outs[0].payload, false, "cpu_delay_seconds")
	assert.InDelta(t, 1.5, v["cpu_delay_seconds"], 0)
}
