package propeller

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleUsage() TaskUsage {
	return TaskUsage{
		TaskID: "550e8400-e29b-41d4-a716-446655440001", PropletID: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		StartedAt: ts.Add(-1500 * time.Millisecond), EndedAt: ts,
		DurationSeconds: 1.5, CPUUserSeconds: 0.42, CPUSystemSeconds: 0.08,
		PeakMemoryBytes: 209715200, DiskReadBytes: 4096, DiskWriteBytes: 8388608,
		HasNetwork: true, NetworkRxBytes: 1200, NetworkTxBytes: 3400,
		HasExitCode: true, ExitCode: 3,
		Exact: true, Timestamp: ts,
	}
}

func TestTaskUsageGolden(t *testing.T) {
	m := sampleUsage()
	assert.Equal(t, `{"task_id":"550e8400-e29b-41d4-a716-446655440001","proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",`+
		`"started_at":"2025-01-15T10:35:20.623456789Z","ended_at":"2025-01-15T10:35:22.123456789Z",`+
		`"duration_seconds":1.5,"cpu_user_seconds":0.42,"cpu_system_seconds":0.08,"peak_memory_bytes":209715200,`+
		`"disk_read_bytes":4096,"disk_write_bytes":8388608,"network_rx_bytes":1200,"network_tx_bytes":3400,`+
		`"exit_code":3,"exit_signal":null,"oom_killed":false,"exact":true,"timestamp":"2025-01-15T10:35:22.123456789Z"}`,
		string(m.AppendJSON(nil)))
}

func TestTaskUsageNullsAndOptionalKeys(t *testing.T) {
	m := sampleUsage()
	m.HasNetwork = false
	m.HasExitCode, m.HasExitSignal, m.ExitSignal, m.OOMKilled = false, true, 9, true
	m.StartedAt = m.StartedAt.In(time.FixedZone("CET", 3600))
	var v map[string]any
	require.NoError(t, json.Unmarshal(m.AppendJSON(nil), &v))
	assert.NotContains(t, v, "network_rx_bytes")
	assert.NotContains(t, v, "network_tx_bytes")
	require.Contains(t, v, "exit_code")
	assert.Nil(t, v["exit_code"])
	assert.Equal(t, 9.0, v["exit_signal"])
	assert.Equal(t, true, v["oom_killed"])
	assert.Equal(t, "2025-01-15T10:35:20.623456789Z", v["started_at"], "UTC whatever the input's zone")

	m.HasExitSignal = false
	m.DurationSeconds = math.NaN()
	v = nil
	require.NoError(t, json.Unmarshal(m.AppendJSON(nil), &v), "still JSON")
	assert.Len(t, v, 15, "the key set does not change")
	assert.Nil(t, v["exit_signal"], "neither exit code nor signal: the end is not known")
	assert.Nil(t, v["duration_seconds"])
}

func BenchmarkEncodeTaskUsage(b *testing.B) {
	m := sampleUsage()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
