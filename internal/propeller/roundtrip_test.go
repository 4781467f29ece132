package propeller

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// received is what decoding m should give: the message without its window (not read), its
// timestamp the message's time.
func receivedTask(m TaskMessage) Received {
	m.Aggregated = nil
	m.Metrics.Timestamp = m.Metrics.Timestamp.UTC()
	return Received{Topic: taskTopic, Source: SourceRFC3339, Time: m.Metrics.Timestamp.UnixNano(), Task: m}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	task := sampleTask()
	task.Metrics.Timestamp = time.Unix(0, now).Add(-time.Minute)
	var got Received
	require.NoError(t, Decode(task.AppendJSON(nil), taskTopic, now, DefaultDecodeOptions(), &got))
	assert.Equal(t, receivedTask(task), got)

	proplet := PropletMessage{
		Has: HasCPUTimes | HasCPUPercent | HasRSS | HasContainerUsage | HasContainerLimit, PropletID: task.PropletID,
		Namespace: "default", Timestamp: task.Metrics.Timestamp.UTC(), UserSeconds: 12.5, SystemSeconds: 3.1, Percent: 17,
		RSSBytes: 41943040, ContainerUsageBytes: 73400320, ContainerLimitBytes: 536870912,
	}
	require.NoError(t, Decode(proplet.AppendJSON(nil), propletTopic, now, DefaultDecodeOptions(), &got))
	assert.Equal(t, Received{Topic: propletTopic, Source: SourceRFC3339, Time: proplet.Timestamp.UnixNano(), Proplet: proplet}, got)

	// Each field alone: a field the encoder writes is one the decoder reads, under its flag.
	for bit := HasCPU; bit <= HasFDs; bit <<= 1 {
		one := task
		one.Metrics.Has = bit
		want := receivedTask(one)
		require.NoError(t, Decode(one.AppendJSON(nil), taskTopic, now, DefaultDecodeOptions(), &got))
		assert.Equal(t, bit, got.Task.Metrics.Has)
		// Fields without their flag are not read.
		assert.Equal(t, want.Task.Metrics.Has, got.Task.Metrics.Has)
	}
	for bit := HasCPUUser; bit <= HasContainerLimit; bit <<= 1 {
		one := proplet
		one.Has = bit
		require.NoError(t, Decode(one.AppendJSON(nil), propletTopic, now, DefaultDecodeOptions(), &got))
		assert.Equal(t, bit, got.Proplet.Has)
	}
}

// FuzzRoundTrip encodes a task message from any values and decodes it: within the bounds, the
// decoded message is the one encoded (counters truncated to integers by the encoder's types);
// beyond them, it is dropped as DropValue, never taken.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint16(0xffff), 23.5, uint64(52428800), 1.2, uint64(1<<20), uint64(45), int64(2))
	f.Add(uint16(1), 1e308, uint64(math.MaxUint64), -1.0, uint64(0), uint64(1<<62), int64(-1))
	f.Fuzz(func(t *testing.T, has uint16, cpu float64, mem uint64, memPct float64, io, uptime uint64, count int64) {
		m := TaskMessage{
			TaskID: "550e8400-e29b-41d4-a716-446655440001", PropletID: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
			Metrics: TaskMetrics{
				Has: Has(has) & (HasFDs<<1 - 1), CPUPercent: cpu, MemoryBytes: mem, MemoryPercent: memPct,
				DiskReadBytes: io, DiskWriteBytes: io / 2, NetworkRxBytes: io / 3, NetworkTxBytes: io / 4,
				UptimeSeconds: uptime, ThreadCount: count, FileDescriptorCount: count * 2,
				Timestamp: time.Unix(0, now),
			},
		}
		if math.IsNaN(cpu) || math.IsInf(cpu, 0) {
			m.Metrics.Has &^= HasCPU // left out by the encoder
		}
		if math.IsNaN(memPct) || math.IsInf(memPct, 0) {
			m.Metrics.Has &^= HasMemoryPercent
		}
		var got Received
		err := Decode(m.AppendJSON(nil), taskTopic, now, DefaultDecodeOptions(), &got)
		mt := m.Metrics
		within := (mt.Has&HasCPU == 0 || cpu >= 0 && cpu <= MaxCPUPercent) &&
			(mt.Has&HasMemory == 0 || float64(mem) <= MaxMemoryBytes) &&
			(mt.Has&HasMemoryPercent == 0 || memPct >= 0 && memPct <= MaxPercent) &&
			(mt.Has&HasDiskRead == 0 || float64(io) <= MaxIOBytes) &&
			(mt.Has&HasDiskWrite == 0 || float64(io/2) <= MaxIOBytes) &&
			(mt.Has&HasNetworkRx == 0 || float64(io/3) <= MaxIOBytes) &&
			(mt.Has&HasNetworkTx == 0 || float64(io/4) <= MaxIOBytes) &&
			(mt.Has&HasUptime == 0 || float64(uptime) <= MaxUptimeSeconds) &&
			(mt.Has&HasThreads == 0 || count >= 0 && count <= MaxThreads) &&
			(mt.Has&HasFDs == 0 || count >= 0 && count*2 <= MaxFDs && count*2 >= 0)
		switch {
		case mt.Has == 0:
			assert.Equal(t, DropNoMetrics, DropReasonOf(err))
		case !within:
			if err == nil {
				t.Fatalf("took a value beyond its bound: %+v", got.Task.Metrics)
			}
			assert.Equal(t, DropValue, DropReasonOf(err), "%v", err)
		case err != nil:
			t.Fatalf("refused values within their bounds: %v", err)
		default:
			mt.Timestamp = mt.Timestamp.UTC()
			for bit, v := range map[Has]*uint64{HasMemory: &mt.MemoryBytes, HasDiskRead: &mt.DiskReadBytes, HasDiskWrite: &mt.DiskWriteBytes,
				HasNetworkRx: &mt.NetworkRxBytes, HasNetworkTx: &mt.NetworkTxBytes, HasUptime: &mt.UptimeSeconds} {
				if mt.Has&bit == 0 {
					*v = 0
				} else {
					*v = uint64(float64(*v)) // read as a JSON number: a float64
				}
			}
			if mt.Has&HasCPU == 0 {
				mt.CPUPercent = 0
			}
			if mt.Has&HasMemoryPercent == 0 {
				mt.MemoryPercent = 0
			}
			if mt.Has&HasThreads == 0 {
				mt.ThreadCount = 0
			}
			if mt.Has&HasFDs == 0 {
				mt.FileDescriptorCount = 0
			}
			assert.Equal(t, schema.KindTask, got.Topic.Kind)
			assert.Equal(t, mt, got.Task.Metrics)
		}
	})
}
