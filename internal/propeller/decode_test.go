package propeller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// now is a receive time a minute after the fixtures' timestamps.
var now = time.Date(2025, 1, 15, 10, 36, 22, 0, time.UTC).UnixNano()

var (
	taskTopic    = Topic{Domain: "d1", Channel: "c1", Kind: schema.KindTask}
	propletTopic = Topic{Domain: "d1", Channel: "c1", Kind: schema.KindProplet}
)

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
	var m Received
	require.NoError(t, Decode(fixture(t, "task_ours.json"), taskTopic, now, DefaultDecodeOptions(), &m))
	assert.Equal(t, SourceRFC3339, m.Source)
	assert.False(t, m.Repaired)
	assert.Equal(t, time.Date(2025, 1, 15, 10, 35, 22, 123456000, time.UTC).UnixNano(), m.Time)
	assert.Equal(t, "550e8400-e29b-41d4-a716-446655440001", m.Task.TaskID)
	assert.Equal(t, "7c9e6679-7425-40de-944b-e07fc1f90ae7", m.Task.PropletID)
	mt := m.Task.Metrics
	assert.InDelta(t, 23.5, mt.CPUPercent, 0)
	assert.Equal(t, uint64(52428800), mt.MemoryBytes)
	assert.InDelta(t, 1.2, mt.MemoryPercent, 0)
	assert.Equal(t, []uint64{1048576, 524288, 4096, 8192, 45}, []uint64{mt.DiskReadBytes, mt.DiskWriteBytes, mt.NetworkRxBytes, mt.NetworkTxBytes, mt.UptimeSeconds})
	assert.Equal(t, []int64{2, 8}, []int64{mt.ThreadCount, mt.FileDescriptorCount})
	assert.Equal(t, HasCPU|HasMemory|HasMemoryPercent|HasDisk|HasNetwork|HasUptime|HasThreads|HasFDs, mt.Has)
}

func TestRustProplet(t *testing.T) {
	payload := fixture(t, "task_rust.json")
	var m Received
	require.NoError(t, Decode(payload, taskTopic, now, DefaultDecodeOptions(), &m))
	assert.Equal(t, SourceRustProplet, m.Source)
	assert.True(t, m.Repaired)
	assert.Equal(t, uint64(52428800), m.Task.Metrics.MemoryBytes, "memory_bytes / 1024")
	assert.Zero(t, m.Task.Metrics.Has&HasMemoryPercent, "its always-zero memory_percent is dropped")
	assert.Zero(t, m.Task.Metrics.Has&HasNetwork, "it sends no network fields")
	assert.Equal(t, now, m.Time, "the manager's rule: not an RFC 3339 string, so the receive time")

	off := DefaultDecodeOptions()
	off.Repair = false
	require.NoError(t, Decode(payload, taskTopic, now, off, &m))
	assert.False(t, m.Repaired)
	assert.Equal(t, uint64(53687091200), m.Task.Metrics.MemoryBytes)
	assert.NotZero(t, m.Task.Metrics.Has&HasMemoryPercent)
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
			var m Received
			require.NoError(t, Decode([]byte(payload), taskTopic, now, DefaultDecodeOptions(), &m))
			assert.Equal(t, want, m.Source)
			assert.False(t, m.Repaired)
			assert.Equal(t, uint64(53687091200), m.Task.Metrics.MemoryBytes)
		})
	}
}

func TestDecodeProplet(t *testing.T) {
	var m Received
	require.NoError(t, Decode(fixture(t, "proplet.json"), propletTopic, now, DefaultDecodeOptions(), &m))
	p := m.Proplet
	assert.Equal(t, "default", p.Namespace)
	assert.InDelta(t, 12.5, p.UserSeconds, 0)
	assert.InDelta(t, 3.1, p.SystemSeconds, 0)
	assert.InDelta(t, 17, p.Percent, 0)
	assert.Equal(t, []uint64{41943040, 73400320, 536870912}, []uint64{p.RSSBytes, p.ContainerUsageBytes, p.ContainerLimitBytes})
}

func TestAnUnlimitedCgroupLimitIsLeftOut(t *testing.T) {
	const id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	var m Received
	require.NoError(t, Decode([]byte(`{"proplet_id":"`+id+`","memory_metrics":{"rss_bytes":1,"container_limit_bytes":9223372036854771712}}`), propletTopic, now, DefaultDecodeOptions(), &m))
	assert.Equal(t, HasRSS, m.Proplet.Has)
}

func TestBadInputIsDroppedWithItsReason(t *testing.T) {
	task := string(fixture(t, "task_ours.json"))
	const id = "550e8400-e29b-41d4-a716-446655440001"
	value := func(key, v string) string {
		i := strings.Index(task, `"`+key+`":`)
		j := i + len(key) + 3 + strings.IndexAny(task[i+len(key)+3:], ",}")
		return task[:i] + `"` + key + `":` + v + task[j:]
	}
	tests := map[string]struct {
		payload string
		topic   Topic
		want    DropReason
	}{
		"not JSON":                          {"cpu 23.5", taskTopic, DropNotJSON},
		"truncated":                         {task[:100], taskTopic, DropNotJSON},
		"an array":                          {`[1,2]`, taskTopic, DropNotJSON},
		"a string":                          {`"x"`, taskTopic, DropNotJSON},
		"empty":                             {``, taskTopic, DropNotJSON},
		"task_id a number":                  {strings.Replace(task, `"`+id+`"`, `42`, 1), taskTopic, DropWrongType},
		"cpu_percent a string":              {value("cpu_percent", `"23.5"`), taskTopic, DropWrongType},
		"metrics an array":                  {`{"task_id":"` + id + `","proplet_id":"` + id + `","metrics":[1]}`, taskTopic, DropWrongType},
		"NaN as a string":                   {value("cpu_percent", `"NaN"`), taskTopic, DropWrongType},
		"NaN bare":                          {value("cpu_percent", `NaN`), taskTopic, DropNotJSON},
		"Infinity by overflow":              {value("cpu_percent", `1e400`), taskTopic, DropValue},
		"negative memory":                   {value("memory_bytes", `-1`), taskTopic, DropValue},
		"memory beyond int64":               {value("memory_bytes", `1e30`), taskTopic, DropValue},
		"machine CPU over 100":              {`{"proplet_id":"` + id + `","cpu_metrics":{"percent":250}}`, propletTopic, DropValue},
		"task_id missing":                   {strings.Replace(task, `"task_id":"`+id+`",`, ``, 1), taskTopic, DropMissingID},
		"task_id empty":                     {strings.Replace(task, id, ``, 1), taskTopic, DropMissingID},
		"proplet_id missing":                {`{"cpu_metrics":{"percent":5}}`, propletTopic, DropMissingID},
		"task_id over 36 bytes":             {strings.Replace(task, id, id+"-and-more", 1), taskTopic, DropIDTooLong},
		"task_id not a UUID":                {strings.Replace(task, id, "task-1", 1), taskTopic, DropIDNotUUID},
		"proplet_id not a UUID":             {strings.Replace(task, "7c9e6679-7425-40de-944b-e07fc1f90ae7", "7c9e6679x7425-40de-944b-e07fc1f90ae7", 1), taskTopic, DropIDNotUUID},
		"timestamp a year ahead":            {withStamp(task, `"2026-01-15T10:35:22Z"`), taskTopic, DropTimestamp},
		"timestamp from 1970":               {withStamp(task, `"1970-01-01T00:00:01Z"`), taskTopic, DropTimestamp},
		"no metric at all":                  {`{"task_id":"` + id + `","proplet_id":"` + id + `"}`, taskTopic, DropNoMetrics},
		"larger than MaxPayload":            {`{"x":"` + strings.Repeat("a", MaxPayload) + `"}`, taskTopic, DropTooLarge},
		"proplet message all null":          {`{"proplet_id":"` + id + `","cpu_metrics":null}`, propletTopic, DropNoMetrics},
		"a 59 KB domain":                    {task, Topic{Domain: strings.Repeat("d", 59<<10), Channel: "c1"}, DropIDTooLong},
		"a 37-byte channel":                 {task, Topic{Domain: "d1", Channel: strings.Repeat("c", 37)}, DropIDTooLong},
		"a control character in the domain": {task, Topic{Domain: "d\x01", Channel: "c1"}, DropTopicID},
		"a noncharacter in the channel":     {task, Topic{Domain: "d1", Channel: "c\uFFFE"}, DropTopicID},
		"invalid UTF-8 in the domain":       {task, Topic{Domain: "d\xff", Channel: "c1"}, DropTopicID},
	}
	seen := map[DropReason]bool{}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var m Received
			err := Decode([]byte(tt.payload), tt.topic, now, DefaultDecodeOptions(), &m)
			require.Error(t, err)
			assert.Equal(t, tt.want, DropReasonOf(err), "%v", err)
			assert.Less(t, len(err.Error()), 300, "the error does not carry a large value whole")
			seen[tt.want] = true
		})
	}
	for _, r := range DropReasons {
		assert.True(t, seen[r], "no case for reason %s", r)
	}
}

// TestValuesBeyondTheirPhysicalBoundAreDropped: each value one step past its documented bound
// is refused, and the bound itself is accepted.
func TestValuesBeyondTheirPhysicalBoundAreDropped(t *testing.T) {
	const id = "550e8400-e29b-41d4-a716-446655440001"
	task := func(key, v string) string {
		return `{"task_id":"` + id + `","proplet_id":"` + id + `","metrics":{"` + key + `":` + v + `}}`
	}
	proplet := func(group, key, v string) string {
		return `{"proplet_id":"` + id + `","` + group + `":{"` + key + `":` + v + `}}`
	}
	cases := []struct {
		payload string
		topic   Topic
		ok      bool
	}{
		{task("cpu_percent", "1e308"), taskTopic, false},
		{task("cpu_percent", "819200"), taskTopic, true},
		{task("cpu_percent", "819200.1"), taskTopic, false},
		{task("memory_bytes", "9.2e18"), taskTopic, false},
		{task("memory_bytes", "4503599627370496"), taskTopic, true},
		{task("memory_bytes", "4503599627370497"), taskTopic, false},
		{task("memory_percent", "100.5"), taskTopic, false},
		{task("disk_read_bytes", "1.2e18"), taskTopic, false},
		{task("disk_read_bytes", "1152921504606846976"), taskTopic, true},
		{task("network_tx_bytes", "2e18"), taskTopic, false},
		{task("uptime_seconds", "1e300"), taskTopic, false},
		{task("uptime_seconds", "3155760000"), taskTopic, true},
		{task("thread_count", "4194305"), taskTopic, false},
		{task("file_descriptor_count", "1073741825"), taskTopic, false},
		{proplet("cpu_metrics", "user_seconds", "1e20"), propletTopic, false},
		{proplet("cpu_metrics", "system_seconds", "1e9"), propletTopic, true},
		{proplet("memory_metrics", "rss_bytes", "1e17"), propletTopic, false},
		{proplet("memory_metrics", "container_usage_bytes", "1e17"), propletTopic, false},
	}
	for _, c := range cases {
		var m Received
		err := Decode([]byte(c.payload), c.topic, now, DefaultDecodeOptions(), &m)
		if c.ok {
			assert.NoError(t, err, c.payload)
			continue
		}
		if assert.Error(t, err, c.payload) {
			assert.Equal(t, DropValue, DropReasonOf(err), c.payload)
		}
	}
}

func TestAMessageTheManagerReadsAsReceiveTimeIsKept(t *testing.T) {
	task := withStamp(string(fixture(t, "task_ours.json")), `"yesterday"`)
	var m Received
	require.NoError(t, Decode([]byte(task), taskTopic, now, DefaultDecodeOptions(), &m))
	assert.Equal(t, now, m.Time)
}

// FuzzDecode feeds the decoder anything: it must never panic, and what it accepts must be
// complete (ids that pass the checks, values within their bounds, a kind-specific metric), and
// encode to a message that decodes to the same.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"task_ours.json", "task_rust.json", "proplet.json"} {
		f.Add(fixture(f, name), false)
		f.Add(fixture(f, name), true)
	}
	f.Add([]byte(`{"task_id":"550e8400-e29b-41d4-a716-446655440001","proplet_id":"550e8400-e29b-41d4-a716-446655440001","metrics":{"cpu_percent":1e400}}`), false)
	f.Add([]byte(`{"timestamp":{"secs_since_epoch":"x"}}`), true)
	f.Fuzz(func(t *testing.T, payload []byte, proplet bool) {
		topic := taskTopic
		if proplet {
			topic = propletTopic
		}
		var m Received
		err := Decode(payload, topic, now, DefaultDecodeOptions(), &m)
		if err != nil {
			if DropReasonOf(err) == "" {
				t.Fatalf("no reason: %v", err)
			}
			return
		}
		var again []byte
		if proplet {
			if checkID("proplet_id", m.Proplet.PropletID) != nil || m.Proplet.Has == 0 {
				t.Fatalf("accepted an incomplete message: %+v", m)
			}
			again = m.Proplet.AppendJSON(nil)
		} else {
			if checkID("proplet_id", m.Task.PropletID) != nil || checkID("task_id", m.Task.TaskID) != nil || m.Task.Metrics.Has == 0 {
				t.Fatalf("accepted an incomplete message: %+v", m)
			}
			again = m.Task.AppendJSON(nil)
		}
		// What was accepted, written again by the encoder, reads back the same.
		var back Received
		if err := Decode(again, topic, m.Time, DecodeOptions{MaxAge: time.Hour, MaxAhead: time.Hour}, &back); err != nil {
			t.Fatalf("re-encoded %s: %v", again, err)
		}
		back.Source, back.Repaired, m.Source, m.Repaired = 0, false, 0, false
		assert.Equal(t, m, back)
	})
}

// BenchmarkDecode is the decoder alone (parse, check, repair) of one task message.
func BenchmarkDecode(b *testing.B) {
	payload := fixture(b, "task_ours.json")
	opts := DefaultDecodeOptions()
	b.ReportAllocs()
	var m Received
	for b.Loop() {
		if err := Decode(payload, taskTopic, now, opts, &m); err != nil {
			b.Fatal(err)
		}
	}
}
