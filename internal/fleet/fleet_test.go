package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// now is a receive time a minute after the fixtures' timestamps.
var now = time.Date(2025, 1, 15, 10, 36, 22, 0, time.UTC).UnixNano()

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// withStamp replaces the top-level timestamp of a task message (the last key).
func withStamp(msg, stamp string) string {
	i := strings.LastIndex(msg, `"timestamp":`)
	return msg[:i] + `"timestamp":` + stamp + "}"
}

func TestDecodeOurTaskMessage(t *testing.T) {
	var m Message
	require.NoError(t, Decode(fixture(t, "task_ours.json"), KindTask, now, DefaultOptions(), &m))
	assert.Equal(t, SourceRFC3339, m.Source)
	assert.False(t, m.Repaired)
	assert.Equal(t, time.Date(2025, 1, 15, 10, 35, 22, 123456000, time.UTC).UnixNano(), m.Time)
	assert.Equal(t, "550e8400-e29b-41d4-a716-446655440001", m.TaskID)
	assert.Equal(t, "7c9e6679-7425-40de-944b-e07fc1f90ae7", m.PropletID)
	assert.InDelta(t, 23.5, m.CPUPercent, 0)
	assert.Equal(t, int64(52428800), m.MemoryBytes)
	assert.InDelta(t, 1.2, m.MemoryPercent, 0)
	assert.Equal(t, []int64{1048576, 524288, 4096, 8192, 2, 8}, []int64{m.DiskRead, m.DiskWrite, m.NetworkRx, m.NetworkTx, m.Threads, m.FDs})
	assert.InDelta(t, 45, m.Uptime, 0)
	assert.Equal(t, HasCPUPercent|HasMemoryBytes|HasMemoryPercent|HasDiskRead|HasDiskWrite|HasNetworkRx|HasNetworkTx|HasUptime|HasThreads|HasFDs, m.Has)
}

func TestRustProplet(t *testing.T) {
	payload := fixture(t, "task_rust.json")
	var m Message
	require.NoError(t, Decode(payload, KindTask, now, DefaultOptions(), &m))
	assert.Equal(t, SourceRustProplet, m.Source)
	assert.True(t, m.Repaired)
	assert.Equal(t, int64(52428800), m.MemoryBytes, "memory_bytes / 1024")
	assert.Zero(t, m.Has&HasMemoryPercent, "its always-zero memory_percent is dropped")
	assert.Zero(t, m.Has&(HasNetworkRx|HasNetworkTx), "it sends no network fields")
	assert.Equal(t, now, m.Time, "the manager's rule: not an RFC 3339 string, so the receive time")

	off := DefaultOptions()
	off.Repair = false
	require.NoError(t, Decode(payload, KindTask, now, off, &m))
	assert.False(t, m.Repaired)
	assert.Equal(t, int64(53687091200), m.MemoryBytes)
	assert.NotZero(t, m.Has&HasMemoryPercent)
}

func TestUnknownSourcesAreNeverRepaired(t *testing.T) {
	base := string(fixture(t, "task_rust.json"))
	stamps := map[string]Source{
		"none":                        SourceUnknown,
		"an object of another shape":  SourceUnknown,
		"a number (embedded proplet)": SourceEmbedded,
		"an RFC 3339 string":          SourceRFC3339,
	}
	values := map[string]string{
		"none":                        `null`,
		"an object of another shape":  `{"seconds":1736937322}`,
		"a number (embedded proplet)": `1736937322`,
		"an RFC 3339 string":          `"2025-01-15T10:35:22Z"`,
	}
	for name, want := range stamps {
		t.Run(name, func(t *testing.T) {
			payload := strings.Replace(base, `{"secs_since_epoch":1736937322,"nanos_since_epoch":123456789}`, values[name], 1)
			var m Message
			require.NoError(t, Decode([]byte(payload), KindTask, now, DefaultOptions(), &m))
			assert.Equal(t, want, m.Source)
			assert.False(t, m.Repaired)
			assert.Equal(t, int64(53687091200), m.MemoryBytes)
		})
	}
}

func TestDecodeProplet(t *testing.T) {
	var m Message
	require.NoError(t, Decode(fixture(t, "proplet.json"), KindProplet, now, DefaultOptions(), &m))
	assert.Equal(t, "default", m.Namespace)
	assert.InDelta(t, 12.5, m.CPUUser, 0)
	assert.InDelta(t, 3.1, m.CPUSystem, 0)
	assert.InDelta(t, 17, m.MachineCPU, 0)
	assert.Equal(t, []int64{41943040, 73400320, 536870912}, []int64{m.RSS, m.CgroupUsage, m.CgroupLimit})
}

func TestBadInputIsDroppedWithItsReason(t *testing.T) {
	task := string(fixture(t, "task_ours.json"))
	const id = "550e8400-e29b-41d4-a716-446655440001"
	tests := map[string]struct {
		payload string
		kind    Kind
		want    Reason
	}{
		"not JSON":                 {"cpu 23.5", KindTask, ReasonNotJSON},
		"truncated":                {task[:100], KindTask, ReasonNotJSON},
		"an array":                 {`[1,2]`, KindTask, ReasonNotJSON},
		"a string":                 {`"x"`, KindTask, ReasonNotJSON},
		"empty":                    {``, KindTask, ReasonNotJSON},
		"task_id a number":         {strings.Replace(task, `"`+id+`"`, `42`, 1), KindTask, ReasonWrongType},
		"cpu_percent a string":     {strings.Replace(task, `"cpu_percent":23.5`, `"cpu_percent":"23.5"`, 1), KindTask, ReasonWrongType},
		"metrics an array":         {`{"task_id":"` + id + `","proplet_id":"` + id + `","metrics":[1]}`, KindTask, ReasonWrongType},
		"NaN as a string":          {strings.Replace(task, `"cpu_percent":23.5`, `"cpu_percent":"NaN"`, 1), KindTask, ReasonWrongType},
		"NaN bare":                 {strings.Replace(task, `"cpu_percent":23.5`, `"cpu_percent":NaN`, 1), KindTask, ReasonNotJSON},
		"Infinity by overflow":     {strings.Replace(task, `"cpu_percent":23.5`, `"cpu_percent":1e400`, 1), KindTask, ReasonValue},
		"negative memory":          {strings.Replace(task, `"memory_bytes":52428800`, `"memory_bytes":-1`, 1), KindTask, ReasonValue},
		"memory beyond int64":      {strings.Replace(task, `"memory_bytes":52428800`, `"memory_bytes":1e30`, 1), KindTask, ReasonValue},
		"machine CPU over 100":     {`{"proplet_id":"` + id + `","cpu_metrics":{"percent":250}}`, KindProplet, ReasonValue},
		"task_id missing":          {strings.Replace(task, `"task_id":"`+id+`",`, ``, 1), KindTask, ReasonMissingID},
		"task_id empty":            {strings.Replace(task, id, ``, 1), KindTask, ReasonMissingID},
		"proplet_id missing":       {`{"cpu_metrics":{"percent":5}}`, KindProplet, ReasonMissingID},
		"task_id over 36 bytes":    {strings.Replace(task, id, id+"-and-more", 1), KindTask, ReasonIDTooLong},
		"task_id not a UUID":       {strings.Replace(task, id, "task-1", 1), KindTask, ReasonIDNotUUID},
		"proplet_id not a UUID":    {strings.Replace(task, "7c9e6679-7425-40de-944b-e07fc1f90ae7", "7c9e6679x7425-40de-944b-e07fc1f90ae7", 1), KindTask, ReasonIDNotUUID},
		"timestamp a year ahead":   {withStamp(task, `"2026-01-15T10:35:22Z"`), KindTask, ReasonTimestamp},
		"timestamp from 1970":      {withStamp(task, `"1970-01-01T00:00:01Z"`), KindTask, ReasonTimestamp},
		"no metric at all":         {`{"task_id":"` + id + `","proplet_id":"` + id + `"}`, KindTask, ReasonNoMetrics},
		"larger than MaxPayload":   {`{"x":"` + strings.Repeat("a", MaxPayload) + `"}`, KindTask, ReasonBadPayloads},
		"proplet message all null": {`{"proplet_id":"` + id + `","cpu_metrics":null}`, KindProplet, ReasonNoMetrics},
	}
	seen := map[Reason]bool{}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var m Message
			err := Decode([]byte(tt.payload), tt.kind, now, DefaultOptions(), &m)
			require.Error(t, err)
			assert.Equal(t, tt.want, ReasonOf(err), "%v", err)
			seen[tt.want] = true
		})
	}
	for _, r := range Reasons {
		assert.True(t, seen[r], "no case for reason %s", r)
	}
}

func TestAMessageTheManagerReadsAsReceiveTimeIsKept(t *testing.T) {
	task := withStamp(string(fixture(t, "task_ours.json")), `"yesterday"`)
	var m Message
	require.NoError(t, Decode([]byte(task), KindTask, now, DefaultOptions(), &m))
	assert.Equal(t, now, m.Time)
}

func TestAppendTask(t *testing.T) {
	var m Message
	require.NoError(t, Decode(fixture(t, "task_ours.json"), KindTask, now, DefaultOptions(), &m))
	md := pmetric.NewMetrics()
	Append(md.ResourceMetrics(), &m, Topic{Domain: "d1", Channel: "c1"}, Scope{Name: "s", Version: "v"})
	rm := md.ResourceMetrics().At(0)
	assert.Equal(t, map[string]any{
		schema.TaskID: m.TaskID, schema.PropletID: m.PropletID, schema.DomainID: "d1", schema.ChannelID: "c1",
	}, rm.Resource().Attributes().AsRaw())
	units := map[string]string{}
	for _, s := range append(append([]schema.Metric(nil), schema.Metrics...), schema.FleetMetrics...) {
		units[s.Name] = s.Unit
	}
	ms := rm.ScopeMetrics().At(0).Metrics()
	var names []string
	for i := range ms.Len() {
		mt := ms.At(i)
		names = append(names, mt.Name())
		assert.Equal(t, units[mt.Name()], mt.Unit(), mt.Name())
	}
	assert.Equal(t, []string{schema.TaskCPUUsage, schema.ProcessDiskIO, schema.ProcessMemoryUsage,
		schema.ProcessMemoryUtilization, schema.ProcessNetworkIO, schema.ProcessThreadCount,
		schema.ProcessFileDescriptorCount, schema.ProcessUptime}, names)
	assert.Equal(t, 10, md.DataPointCount())
}

func TestTopics(t *testing.T) {
	tp, ok := ParseTopic("m/d1/c/c1/control/proplet/task_metrics")
	assert.True(t, ok)
	assert.Equal(t, Topic{"d1", "c1", KindTask}, tp)
	tp, ok = ParseTopic("m/d1/c/c1/control/proplet/metrics")
	assert.True(t, ok)
	assert.Equal(t, KindProplet, tp.Kind)
	for _, bad := range []string{"m/d1/c/c1/control/proplet/alive", "m//c/c1/control/proplet/metrics", "x/d/c/c/control/proplet/metrics", "m/d/x/c/control/proplet/metrics", "m/d/c/c/control/proplet/metrics/x"} {
		_, ok := ParseTopic(bad)
		assert.False(t, ok, bad)
	}

	matches := map[[2]string]bool{
		{"m/+/c/+/control/proplet/task_metrics", "m/d/c/c/control/proplet/task_metrics"}:       true,
		{"$share/fleet/m/+/c/+/control/proplet/metrics", "m/d/c/c/control/proplet/metrics"}:    true,
		{"m/+/c/+/control/proplet/metrics", "m/d/c/c/control/proplet/task_metrics"}:            false,
		{"m/d1/c/+/control/proplet/#", "m/d1/c/c/control/proplet/metrics"}:                     true,
		{"m/d1/c/+/control/proplet/#", "m/d2/c/c/control/proplet/metrics"}:                     false,
		{"m/+/c/+/control/proplet/#", "m/d/c/c/control/proplet"}:                               true,
		{"m/+/c/+/control/proplet/task_metrics", "m/d/c/c/control/proplet/task_metrics/extra"}: false,
		{"#", "$SYS/broker/uptime"}: false,
	}
	for c, want := range matches {
		assert.Equal(t, want, Match(c[0], c[1]), "%s ~ %s", c[0], c[1])
	}
	assert.True(t, ValidFilter("m/+/c/+/control/proplet/#"))
	for _, bad := range []string{"", "m/#/c", "m/a+/c", "m/#x"} {
		assert.False(t, ValidFilter(bad), bad)
	}
}

// FuzzDecode feeds the decoder anything: it must never panic, and what it accepts must be
// complete (ids that pass the checks, finite values, a kind-specific metric).
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"task_ours.json", "task_rust.json", "proplet.json"} {
		f.Add(fixture(f, name), false)
		f.Add(fixture(f, name), true)
	}
	f.Add([]byte(`{"task_id":"550e8400-e29b-41d4-a716-446655440001","proplet_id":"550e8400-e29b-41d4-a716-446655440001","metrics":{"cpu_percent":1e400}}`), false)
	f.Add([]byte(`{"timestamp":{"secs_since_epoch":"x"}}`), true)
	f.Fuzz(func(t *testing.T, payload []byte, proplet bool) {
		k := KindTask
		if proplet {
			k = KindProplet
		}
		var m Message
		err := Decode(payload, k, now, DefaultOptions(), &m)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("no reason: %v", err)
			}
			return
		}
		if checkID("proplet_id", m.PropletID) != nil || (k == KindTask && checkID("task_id", m.TaskID) != nil) || m.Has == 0 {
			t.Fatalf("accepted an incomplete message: %+v", m)
		}
		md := pmetric.NewMetrics()
		Append(md.ResourceMetrics(), &m, Topic{Domain: "d", Channel: "c", Kind: k}, Scope{})
		if md.DataPointCount() == 0 {
			t.Fatalf("no data point from %+v", m)
		}
	})
}

func benchmarkMessage(b *testing.B, name string, k Kind) {
	payload := fixture(b, name)
	topic := Topic{Domain: "d1", Channel: "c1", Kind: k}
	opts := DefaultOptions()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	var m Message
	for b.Loop() {
		if err := Decode(payload, k, now, opts, &m); err != nil {
			b.Fatal(err)
		}
		md := pmetric.NewMetrics()
		Append(md.ResourceMetrics(), &m, topic, Scope{Name: "s"})
	}
}

// BenchmarkDecodeConvert is one message in, one pmetric.Metrics out: what the receiver does
// for every message.
func BenchmarkDecodeConvert(b *testing.B) {
	b.Run("task", func(b *testing.B) { benchmarkMessage(b, "task_ours.json", KindTask) })
	b.Run("task_rust", func(b *testing.B) { benchmarkMessage(b, "task_rust.json", KindTask) })
	b.Run("proplet", func(b *testing.B) { benchmarkMessage(b, "proplet.json", KindProplet) })
}

// BenchmarkDecode is the decoder alone (parse, check, repair).
func BenchmarkDecode(b *testing.B) {
	payload := fixture(b, "task_ours.json")
	opts := DefaultOptions()
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := Decode(payload, KindTask, now, opts, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend is the conversion alone: one task resource of 8 metrics and 10 points.
func BenchmarkAppend(b *testing.B) {
	var m Message
	require.NoError(b, Decode(fixture(b, "task_ours.json"), KindTask, now, DefaultOptions(), &m))
	topic := Topic{Domain: "d1", Channel: "c1"}
	b.ReportAllocs()
	for b.Loop() {
		md := pmetric.NewMetrics()
		Append(md.ResourceMetrics(), &m, topic, Scope{Name: "s"})
	}
}
