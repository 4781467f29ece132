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

// TestTaskUsageDelays: each delay key is sent only where the kernel provided the figure,
// zero included; the keys of the message before them are unchanged.
func TestTaskUsageDelays(t *testing.T) {
	m := sampleUsage()
	before := string(m.AppendJSON(nil))
	m.HasCPUDelay, m.CPUDelaySeconds = true, 0.5
	m.HasBlkioDelay, m.BlkioDelaySeconds = true, 0.125
	m.HasSwapinDelay, m.SwapinDelaySeconds = true, 0
	m.HasMemoryReclaimDelay, m.MemoryReclaimDelaySeconds = true, 0.0625
	var v map[string]any
	require.NoError(t, json.Unmarshal(m.AppendJSON(nil), &v))
	assert.Equal(t, 0.5, v["cpu_delay_seconds"])
	assert.Equal(t, 0.125, v["blkio_delay_seconds"])
	assert.Equal(t, 0.0, v["swapin_delay_seconds"], "a zero the kernel counted is sent")
	assert.Equal(t, 0.0625, v["memory_reclaim_delay_seconds"])
	var old map[string]any
	require.NoError(t, json.Unmarshal([]byte(before), &old))
	for k, want := range old {
		assert.Equal(t, want, v[k], "existing key %s unchanged", k)
	}
	assert.Len(t, v, len(old)+4, "four keys added")

	m.HasBlkioDelay, m.HasSwapinDelay, m.HasMemoryReclaimDelay = false, false, false
	v = nil
	require.NoError(t, json.Unmarshal(m.AppendJSON(nil), &v))
	assert.Contains(t, v, "cpu_delay_seconds")
	for _, k := range []string{"blkio_delay_seconds", "swapin_delay_seconds", "memory_reclaim_delay_seconds"} {
		assert.NotContains(t, v, k, "absent, not zero, where the kernel provided none")
	}
}

// TestTaskUsageCompactWithoutDelays: a record of the compact form before the delays (what an
// earlier version left in a persistent queue) reads as the same message, without delays.
func TestTaskUsageCompactWithoutDelays(t *testing.T) {
	m := sampleUsage()
	b, err := m.AppendBinary(nil)
	require.NoError(t, err)
	require.Equal(t, byte(0), b[len(b)-1], "no delay set: the form before them and a zero flag byte")
	old := b[:len(b)-1]
	var got TaskUsage
	require.NoError(t, got.UnmarshalBinaryWithoutDelays(old))
	assert.Equal(t, m, got)
	assert.Error(t, got.UnmarshalBinary(old), "the current form has the flag byte")
	assert.Error(t, got.UnmarshalBinaryWithoutDelays(b), "the earlier form has none")
	assert.ErrorContains(t, got.UnmarshalBinary(append(old, 0x10)), "unknown delay flags")
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
