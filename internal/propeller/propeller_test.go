package propeller

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var ts = time.Date(2025, 1, 15, 10, 35, 22, 123456789, time.UTC)

func sampleTask() TaskMessage {
	return TaskMessage{
		TaskID:    "550e8400-e29b-41d4-a716-446655440001",
		PropletID: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		Metrics: TaskMetrics{
			Has:        HasCPU | HasMemory | HasMemoryPercent | HasDisk | HasNetwork | HasUptime | HasThreads | HasFDs,
			CPUPercent: 23.5, MemoryBytes: 52428800, MemoryPercent: 1.2,
			DiskReadBytes: 1048576, DiskWriteBytes: 524288, NetworkRxBytes: 4096, NetworkTxBytes: 8192,
			UptimeSeconds: 45, ThreadCount: 2, FileDescriptorCount: 8, Timestamp: ts,
		},
		Aggregated: &Aggregated{
			Has:         HasCPU | HasMemory | HasDisk | HasNetwork,
			AvgCPUUsage: 38.2, MaxCPUUsage: 65, AvgMemoryUsage: 62914560, MaxMemoryUsage: 71303168,
			TotalDiskRead: 2097152, TotalDiskWrite: 1048576, TotalNetworkRx: 12288, TotalNetworkTx: 24576, SampleCount: 24,
		},
	}
}

func TestTaskMessageGolden(t *testing.T) {
	m := sampleTask()
	got := string(m.AppendJSON(nil))
	want := `{"task_id":"550e8400-e29b-41d4-a716-446655440001","proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",` +
		`"metrics":{"cpu_percent":23.5,"memory_bytes":52428800,"memory_percent":1.2,"disk_read_bytes":1048576,"disk_write_bytes":524288,` +
		`"network_rx_bytes":4096,"network_tx_bytes":8192,"uptime_seconds":45,"thread_count":2,"file_descriptor_count":8,"timestamp":"2025-01-15T10:35:22.123456789Z"},` +
		`"aggregated":{"avg_cpu_usage":38.2,"max_cpu_usage":65,"avg_memory_usage":62914560,"max_memory_usage":71303168,"total_disk_read":2097152,"total_disk_write":1048576,` +
		`"total_network_rx":12288,"total_network_tx":24576,"sample_count":24},"timestamp":"2025-01-15T10:35:22.123456789Z"}`
	assert.Equal(t, want, got)

	// As the manager reads it: a generic map with float64 numbers, an RFC 3339 nano timestamp.
	var decoded map[string]any
	require.NoError(t, json.Unmarshal([]byte(got), &decoded))
	parsed, err := time.Parse(time.RFC3339Nano, decoded["timestamp"].(string))
	require.NoError(t, err)
	assert.True(t, parsed.Equal(ts))
	assert.InDelta(t, 52428800.0, decoded["metrics"].(map[string]any)["memory_bytes"].(float64), 0)
}

func TestTaskMessageWithoutHistoryOrOptionalFields(t *testing.T) {
	m := TaskMessage{TaskID: "t", PropletID: "p", Metrics: TaskMetrics{Has: HasMemory, MemoryBytes: 1, Timestamp: ts}}
	assert.Equal(t, `{"task_id":"t","proplet_id":"p","metrics":{"memory_bytes":1,"timestamp":"2025-01-15T10:35:22.123456789Z"},"aggregated":null,"timestamp":"2025-01-15T10:35:22.123456789Z"}`,
		string(m.AppendJSON(nil)))
}

func TestNaNAndInfAreLeftOut(t *testing.T) {
	m := TaskMessage{TaskID: "t", PropletID: "p", Metrics: TaskMetrics{Has: HasCPU | HasMemoryPercent, CPUPercent: math.NaN(), MemoryPercent: math.Inf(1), Timestamp: ts}}
	got := string(m.AppendJSON(nil))
	assert.NotContains(t, got, "cpu_percent")
	assert.NotContains(t, got, "memory_percent")
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(got), &v), got)
}

func TestPropletMessageGolden(t *testing.T) {
	m := PropletMessage{
		Has:       HasCPUTimes | HasCPUPercent | HasRSS | HasContainerUsage | HasContainerLimit,
		PropletID: "7c9e6679-7425-40de-944b-e07fc1f90ae7", Namespace: "default", Timestamp: ts,
		UserSeconds: 12.5, SystemSeconds: 3.1, Percent: 17, RSSBytes: 41943040,
		ContainerUsageBytes: 73400320, ContainerLimitBytes: 536870912,
	}
	assert.Equal(t, `{"proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","namespace":"default","timestamp":"2025-01-15T10:35:22.123456789Z",`+
		`"cpu_metrics":{"user_seconds":12.5,"system_seconds":3.1,"percent":17},`+
		`"memory_metrics":{"rss_bytes":41943040,"container_usage_bytes":73400320,"container_limit_bytes":536870912}}`,
		string(m.AppendJSON(nil)))
}

func TestStringEscapingMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"plain", `q"uote\back`, "ctl\x00\x01\n\t\r", "ünïcödé ✓", "bad\xffutf8", "sep\u2028\u2029", ""} {
		b := appendString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(b, &back), "%q -> %s", s, b)
		want, _ := json.Marshal(s)
		var wantBack string
		require.NoError(t, json.Unmarshal(want, &wantBack))
		assert.Equal(t, wantBack, back, "%q", s)
	}
}

func TestTemplates(t *testing.T) {
	all := []string{DomainID, ChannelID, PropletID, TaskID}
	tpl, err := ParseTemplate("m/{domain_id}/c/{channel_id}/control/proplet/task_metrics", all...)
	require.NoError(t, err)
	v := Values{DomainID: "d1", ChannelID: "c1", TaskID: "t1"}
	got, err := tpl.AppendTopic(nil, &v)
	require.NoError(t, err)
	assert.Equal(t, "m/d1/c/c1/control/proplet/task_metrics", string(got))

	tpl, err = ParseTemplate("tasks/{task_id}/metrics", all...)
	require.NoError(t, err)
	for _, bad := range []string{"a/b", "+", "#", "x\x00", ""} {
		v.TaskID = bad
		_, err := tpl.AppendTopic(nil, &v)
		assert.ErrorIs(t, err, ErrUnsafeValue, "%q", bad)
	}

	for text, msg := range map[string]string{
		"":                   "empty",
		"m/+/c":              "wildcard",
		"m/#":                "wildcard",
		"m//c":               "empty level",
		"/m/c":               "empty level",
		"m/c/":               "empty level",
		"m/{nope}/c":         "uses {nope}",
		"m/{domain_id/c":     "unclosed",
		"m/domain_id}/c":     "unmatched",
		"m/{task_id}/c":      "allowed here: {domain_id}",
		"m/{channel_id}}/c/": "empty level",
	} {
		_, err := ParseTemplate(text, DomainID, ChannelID)
		if assert.Error(t, err, text) {
			assert.Contains(t, err.Error(), msg, text)
		}
	}
}

func TestWindow(t *testing.T) {
	w := NewWindow(3)
	for i := int64(1); i <= 5; i++ {
		require.True(t, w.Add(Entry{Time: i, Has: HasCPU | HasMemory | HasDisk, CPUPercent: float64(10 * i), Memory: uint64(100 * i), DiskRead: uint64(1000 * i)}))
	}
	a := w.Aggregate(5)
	assert.Equal(t, 3, a.SampleCount, "the window keeps the last history_size samples")
	assert.InDelta(t, 40.0, a.AvgCPUUsage, 1e-9)
	assert.InDelta(t, 50.0, a.MaxCPUUsage, 1e-9)
	assert.InDelta(t, 400.0, a.AvgMemoryUsage, 1e-9)
	assert.Equal(t, uint64(500), a.MaxMemoryUsage)
	assert.Equal(t, uint64(2000), a.TotalDiskRead, "last minus first cumulative value")
	assert.Zero(t, a.Has&HasNetwork)

	assert.False(t, w.Add(Entry{Time: 5}), "a retried sample adds nothing")
	assert.Equal(t, 3, w.Aggregate(5).SampleCount)
	assert.Equal(t, 2, w.Aggregate(4).SampleCount, "a retry of an older sample sees the window as it was")
	e, ok := w.Before(5)
	require.True(t, ok)
	assert.Equal(t, int64(4), e.Time)

	w.Resize(1)
	assert.Equal(t, 1, w.Aggregate(5).SampleCount)
	assert.False(t, w.Add(Entry{Time: 2}), "older than everything kept")
}

// TestWindowHoldsNoMoreThanItsSize: a full window holds exactly its size (append's doubling
// would leave a window of 100 with room for 128, for every task), and shrinking it gives the
// room back.
func TestWindowHoldsNoMoreThanItsSize(t *testing.T) {
	w := NewWindow(100)
	for i := int64(1); i <= 250; i++ {
		w.Add(Entry{Time: i, Has: HasDisk, DiskRead: uint64(i)})
		require.LessOrEqual(t, cap(w.slots), 100)
		require.LessOrEqual(t, cap(w.disk), 100)
	}
	assert.Len(t, w.slots, 100)
	assert.Len(t, w.disk, 100)
	assert.Nil(t, w.net, "no sample had network counters")
	assert.Equal(t, int64(151), w.slots[0].time, "the oldest kept")
	assert.Equal(t, uint64(151), w.disk[0].a, "the counters move with their samples")
	w.Resize(10)
	assert.Equal(t, 10, cap(w.slots))
	assert.Equal(t, 10, cap(w.disk))
	assert.Equal(t, int64(241), w.slots[0].time)
	assert.Equal(t, uint64(241), w.disk[0].a)
	w.Resize(20)
	require.True(t, w.Add(Entry{Time: 251}))
	assert.Len(t, w.slots, 11)
	assert.Len(t, w.disk, 11)
}

// TestWindowKeepsWhatItIsGiven: an entry comes back as it went in, its CPU percentage to four
// decimals (as a message sends it), NaN kept; disk and network counters that start late,
// samples out of order, and a full window that drops its oldest keep each entry's own
// counters.
func TestWindowKeepsWhatItIsGiven(t *testing.T) {
	w := NewWindow(4)
	in := []Entry{
		{Time: 30, Has: HasCPU | HasMemory, CPUTime: 1.5, CPUPercent: math.NaN(), Memory: 1 << 20},
		{Time: 10, Has: HasCPU | HasMemory | HasDisk, CPUTime: 0.5, CPUPercent: 12.3456, Memory: 3 << 20, DiskRead: 7, DiskWrite: 8},
		{Time: 50, Has: HasCPU | HasDisk | HasNetwork, CPUTime: 2.25, CPUPercent: 199.9999, DiskRead: 70, DiskWrite: 80, NetRx: 5, NetTx: 6},
		{Time: 20, Has: HasCPU, CPUTime: 1, CPUPercent: 0.00004},
		{Time: 40, Has: HasCPU | HasNetwork, CPUTime: 2, CPUPercent: 50, NetRx: 1 << 40, NetTx: 2},
	}
	for _, e := range in {
		require.True(t, w.Add(e))
	}
	require.Len(t, w.slots, 4)
	assert.Equal(t, int64(20), w.slots[0].time, "full: the oldest (10) went")
	for _, e := range in[2:] {
		got, ok := w.Find(e.Time)
		require.True(t, ok, e.Time)
		want := e
		want.CPUPercent = roundPercent(e.CPUPercent)
		if math.IsNaN(e.CPUPercent) {
			assert.True(t, math.IsNaN(got.CPUPercent))
			got.CPUPercent, want.CPUPercent = 0, 0
		}
		assert.Equal(t, want, got, e.Time)
	}
	prev, ok := w.Before(40)
	require.True(t, ok)
	assert.Equal(t, int64(30), prev.Time)
	a := w.Aggregate(50)
	assert.Equal(t, uint64(0), a.TotalDiskRead, "one disk sample left in the window: nothing between first and last")
	assert.Zero(t, a.TotalNetworkRx, "a counter that went back counts 0")
	assert.Equal(t, uint64(4), a.TotalNetworkTx)
}

// BenchmarkWindowFill: the bytes a task's window of Propeller's standard history (100) takes
// as it fills, per task, with the disk counters the standard profile collects.
func BenchmarkWindowFill(b *testing.B) {
	b.ReportAllocs()
	var w *Window
	for b.Loop() {
		w = NewWindow(100)
		for i := int64(1); i <= 100; i++ {
			w.Add(Entry{Time: i, Has: HasCPU | HasMemory | HasDisk, CPUTime: float64(i), CPUPercent: 1, Memory: 1 << 20, DiskRead: uint64(i)})
		}
	}
	kept := cap(w.slots)*int(unsafe.Sizeof(slot{})) + (cap(w.disk)+cap(w.net))*int(unsafe.Sizeof(counter{}))
	b.ReportMetric(float64(kept), "B-kept/task")
}

// TestAggregatedPercentagesAreRounded: the averages of a window are rounded to four decimals,
// as cpu_percent is, so the message does not carry float noise such as 98.61855263157896.
func TestAggregatedPercentagesAreRounded(t *testing.T) {
	w := NewWindow(10)
	for i, cpu := range []float64{98.6, 98.7, 98.61, 98.6556, 98.6} {
		require.True(t, w.Add(Entry{Time: int64(i + 1), Has: HasCPU | HasMemory, CPUPercent: cpu, Memory: 1 << 20}))
	}
	w.Add(Entry{Time: 6, Has: HasCPU, CPUPercent: 100.123456789})
	a := w.Aggregate(6)
	m := TaskMessage{TaskID: "t", PropletID: "p", Metrics: TaskMetrics{Timestamp: ts}, Aggregated: &a}
	assert.Equal(t, `{"task_id":"t","proplet_id":"p","metrics":{"timestamp":"2025-01-15T10:35:22.123456789Z"},`+
		`"aggregated":{"avg_cpu_usage":98.8815,"max_cpu_usage":100.1235,"avg_memory_usage":1048576,"max_memory_usage":1048576,"sample_count":6},`+
		`"timestamp":"2025-01-15T10:35:22.123456789Z"}`, string(m.AppendJSON(nil)))
}

func BenchmarkEncodeTaskMessage(b *testing.B) {
	m := sampleTask()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"m/{domain_id}/c/{channel_id}/control/proplet/task_metrics", "a/{task_id}", "{", "}", "a//b", "+/#"} {
		f.Add(s, "value")
	}
	f.Add("a/{task_id}", "\x01\uffff\ufdd0\xff")
	f.Fuzz(func(t *testing.T, text, value string) {
		tpl, err := ParseTemplate(text, DomainID, ChannelID, PropletID, TaskID)
		if err != nil {
			return
		}
		v := Values{DomainID: value, ChannelID: value, PropletID: value, TaskID: value}
		topic, err := tpl.AppendTopic(nil, &v)
		if err != nil {
			return
		}
		if strings.ContainsAny(string(topic), "+#") || strings.Contains(string(topic), "//") ||
			len(topic) > MaxTopicLength || scan(string(topic), true) != "" || !utf8.Valid(topic) {
			t.Fatalf("template %q with %q gave unsafe topic %q", text, value, topic)
		}
	})
}

func FuzzTaskMessageIsValidJSON(f *testing.F) {
	f.Add("550e8400-e29b-41d4-a716-446655440001", "p", 1.5)
	f.Add("\"\\\x00\xff", "\u2028", math.NaN())
	f.Fuzz(func(t *testing.T, id, proplet string, cpu float64) {
		m := TaskMessage{TaskID: id, PropletID: proplet, Metrics: TaskMetrics{Has: HasCPU, CPUPercent: cpu, Timestamp: ts}}
		var v map[string]any
		if err := json.Unmarshal(m.AppendJSON(nil), &v); err != nil {
			t.Fatalf("invalid JSON for %q/%q/%v: %v", id, proplet, cpu, err)
		}
	})
}
