package propeller

import (
	"math"
	"strconv"
	"time"
)

// TaskUsage is the task usage message, published once per ended task on the task_usage
// topics: what the task used over its whole life and how it ended. Unlike the metrics
// messages, every key is always present, so a reader can tell "no network namespace" (the
// network keys are absent) from "the process was killed" (exit_code is null).
type TaskUsage struct {
	TaskID    string
	PropletID string
	StartedAt time.Time // when the task's process started
	EndedAt   time.Time // when it ended

	DurationSeconds  float64 // from start to end
	CPUUserSeconds   float64 // whole life
	CPUSystemSeconds float64 // whole life
	PeakMemoryBytes  uint64  // peak resident set size
	DiskReadBytes    uint64  // whole life
	DiskWriteBytes   uint64  // whole life

	// HasNetwork: the task had its own network namespace, so its traffic is known and the
	// network keys are sent; without it they are left out.
	HasNetwork     bool
	NetworkRxBytes uint64
	NetworkTxBytes uint64

	// HasExitCode: the process exited (exit_code is set, else null). HasExitSignal: a signal
	// ended it (exit_signal is set, else null). At most one of the two; neither when the end
	// is not known.
	HasExitCode   bool
	ExitCode      int64
	HasExitSignal bool
	ExitSignal    int64

	// The delays: seconds the task's processes waited, by cause, from the kernel's delay
	// accounting (runnable waiting for a CPU, synchronous block I/O, swap-in, direct memory
	// reclaim). Like the network keys, each is sent only when its Has flag is set, where the
	// kernel provided the figure: a reader tells "not counted" (absent) from "no wait" (0).
	HasCPUDelay, HasBlkioDelay, HasSwapinDelay, HasMemoryReclaimDelay                 bool
	CPUDelaySeconds, BlkioDelaySeconds, SwapinDelaySeconds, MemoryReclaimDelaySeconds float64

	OOMKilled bool // the kernel's OOM killer ended it
	// Exact: the totals come from the kernel's exit accounting or the task's cgroup; false:
	// from the last sample taken before the end.
	Exact     bool
	Timestamp time.Time // when the report was made; the manager keys a message by it
}

// AppendJSON appends the message's JSON encoding to b, keys in a fixed order. A non-finite
// float, which JSON cannot hold, is written as null rather than dropped, so the key set never
// changes; the exporter refuses such input before it gets here.
func (m *TaskUsage) AppendJSON(b []byte) []byte {
	o := beginObject(b)
	o.str("task_id", m.TaskID)
	o.str("proplet_id", m.PropletID)
	o.time("started_at", m.StartedAt)
	o.time("ended_at", m.EndedAt)
	o.floatOrNull("duration_seconds", m.DurationSeconds)
	o.floatOrNull("cpu_user_seconds", m.CPUUserSeconds)
	o.floatOrNull("cpu_system_seconds", m.CPUSystemSeconds)
	o.uint("peak_memory_bytes", m.PeakMemoryBytes)
	o.uint("disk_read_bytes", m.DiskReadBytes)
	o.uint("disk_write_bytes", m.DiskWriteBytes)
	if m.HasNetwork {
		o.uint("network_rx_bytes", m.NetworkRxBytes)
		o.uint("network_tx_bytes", m.NetworkTxBytes)
	}
	for _, d := range m.delays() {
		if *d.has {
			o.floatOrNull(d.key, *d.seconds)
		}
	}
	if m.HasExitCode {
		o.int("exit_code", m.ExitCode)
	} else {
		o.null("exit_code")
	}
	if m.HasExitSignal {
		o.int("exit_signal", m.ExitSignal)
	} else {
		o.null("exit_signal")
	}
	o.bool("oom_killed", m.OOMKilled)
	o.bool("exact", m.Exact)
	o.time("timestamp", m.Timestamp)
	return o.end()
}

// usageDelay is one delay of a task usage message: its key, its flags and its value.
type usageDelay struct {
	key     string
	bit     byte // in the compact form
	has     *bool
	seconds *float64
}

// delays lists the message's delays, in the order of their keys.
func (m *TaskUsage) delays() [4]usageDelay {
	return [4]usageDelay{
		{"cpu_delay_seconds", 1, &m.HasCPUDelay, &m.CPUDelaySeconds},
		{"blkio_delay_seconds", 2, &m.HasBlkioDelay, &m.BlkioDelaySeconds},
		{"swapin_delay_seconds", 4, &m.HasSwapinDelay, &m.SwapinDelaySeconds},
		{"memory_reclaim_delay_seconds", 8, &m.HasMemoryReclaimDelay, &m.MemoryReclaimDelaySeconds},
	}
}

func (o *object) null(k string) { o.key(k); o.b = append(o.b, "null"...) }

func (o *object) bool(k string, v bool) { o.key(k); o.b = strconv.AppendBool(o.b, v) }

// floatOrNull writes v, or null when v is NaN or infinite.
func (o *object) floatOrNull(k string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		o.null(k)
		return
	}
	o.float(k, v)
}
