package mqttexporter

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// BenchmarkFullWindowsHeap: the heap the mapper keeps for 1,000 tasks of the standard profile
// (history_size 100, CPU, memory and disk counters, no network) once every window is full,
// per task: what a host running thousands of tasks keeps for as long as they run.
func BenchmarkFullWindowsHeap(b *testing.B) {
	const tasks, samples = 1000, 100
	p := taskProfile{historySize: samples, retain: true, export: true, interval: 10 * time.Second}
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
	}
	t0 := time.Unix(1_700_000_000, 0)
	var perTask float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := newMapper(&Config{})
		for n := range samples {
			now := t0.Add(time.Duration(n) * 10 * time.Second)
			for i, id := range ids {
				s := sample{ts: pcommon.NewTimestampFromTime(now), start: pcommon.NewTimestampFromTime(t0.Add(-time.Second)),
					cpuTime: float64(n) * 0.01 * float64(i%7), hasCPUTime: true, rss: int64(8<<20 + 4096*i), hasRSS: true,
					diskRead: int64(n * 4096), diskWrite: int64(n * 512), hasDisk: true}
				m.taskMessage(id, "proplet", p, &s, now)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perTask = float64(after.HeapAlloc-before.HeapAlloc) / tasks
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perTask, "B-heap/task")
}
