// Package propeller is Propeller's wire format, written and read in one place: the task and
// proplet metrics messages (encoded as this project's exporter sends them, decoded as any
// proplet sends them, the Rust proplet's mistakes repaired), the task usage message sent once
// per ended task, the manager's start and stop requests, every MQTT topic (the templates
// published to, the manager's topics, the filters a gateway subscribes to, the parser of a
// received topic), the one check of a value that goes into a topic, the physical bounds of
// every measured value, and the "aggregated" history window. It knows nothing of the
// Collector. The formats are those Propeller's manager and Rust proplet send and accept
// (github.com/absmach/propeller): every topic is m/{domain_id}/c/{channel_id}/{path}, and the
// manager keeps a timestamp only when it is an RFC 3339 string at the top level of a message.
package propeller // import "github.com/otelcol-propeller/otelcol-propeller/internal/propeller"

import "time"

// Has flags say which optional fields of a message hold values. A field without its flag is
// left out of the JSON: the manager reads a missing key as 0, and we send no invented zeros.
// A decoded message sets the flag of each field it carried.
type Has uint16

// Fields of a task message (and, grouped, of its aggregated window).
const (
	HasCPU Has = 1 << iota
	HasMemory
	HasMemoryPercent
	HasDiskRead
	HasDiskWrite
	HasNetworkRx
	HasNetworkTx
	HasUptime
	HasThreads
	HasFDs

	// HasDisk is both disk counters, as this project measures them.
	HasDisk = HasDiskRead | HasDiskWrite
	// HasNetwork is both network counters.
	HasNetwork = HasNetworkRx | HasNetworkTx
)

// TaskMetrics is the "metrics" object of a task message.
type TaskMetrics struct {
	Has                 Has
	CPUPercent          float64 // CPU used since the previous sample, 100 = one full core
	MemoryBytes         uint64  // resident set size
	MemoryPercent       float64 // RSS over the memory available to the task, 0-100
	DiskReadBytes       uint64  // cumulative
	DiskWriteBytes      uint64  // cumulative
	NetworkRxBytes      uint64  // cumulative
	NetworkTxBytes      uint64  // cumulative
	UptimeSeconds       uint64  // since the process started
	ThreadCount         int64
	FileDescriptorCount int64
	Timestamp           time.Time
}

// Aggregated is the "aggregated" object: statistics over the task's last history_size samples.
type Aggregated struct {
	Has            Has // HasCPU, HasMemory, HasDisk, HasNetwork
	AvgCPUUsage    float64
	MaxCPUUsage    float64
	AvgMemoryUsage float64
	MaxMemoryUsage uint64
	TotalDiskRead  uint64 // last minus first cumulative value in the window
	TotalDiskWrite uint64
	TotalNetworkRx uint64
	TotalNetworkTx uint64
	SampleCount    int
}

// TaskMessage is published on the task metrics topics.
type TaskMessage struct {
	TaskID     string
	PropletID  string
	Metrics    TaskMetrics
	Aggregated *Aggregated // nil encodes as null: no history
}

// AppendJSON appends the message's JSON encoding to b.
func (m *TaskMessage) AppendJSON(b []byte) []byte {
	o := beginObject(b)
	o.str("task_id", m.TaskID)
	o.str("proplet_id", m.PropletID)
	o.key("metrics")
	o.b = m.Metrics.appendJSON(o.b)
	o.key("aggregated")
	if m.Aggregated == nil {
		o.b = append(o.b, "null"...)
	} else {
		o.b = m.Aggregated.appendJSON(o.b)
	}
	o.time("timestamp", m.Metrics.Timestamp)
	return o.end()
}

func (m *TaskMetrics) appendJSON(b []byte) []byte {
	o := beginObject(b)
	if m.Has&HasCPU != 0 {
		o.float("cpu_percent", m.CPUPercent)
	}
	if m.Has&HasMemory != 0 {
		o.uint("memory_bytes", m.MemoryBytes)
	}
	if m.Has&HasMemoryPercent != 0 {
		o.float("memory_percent", m.MemoryPercent)
	}
	if m.Has&HasDiskRead != 0 {
		o.uint("disk_read_bytes", m.DiskReadBytes)
	}
	if m.Has&HasDiskWrite != 0 {
		o.uint("disk_write_bytes", m.DiskWriteBytes)
	}
	if m.Has&HasNetworkRx != 0 {
		o.uint("network_rx_bytes", m.NetworkRxBytes)
	}
	if m.Has&HasNetworkTx != 0 {
		o.uint("network_tx_bytes", m.NetworkTxBytes)
	}
	if m.Has&HasUptime != 0 {
		o.uint("uptime_seconds", m.UptimeSeconds)
	}
	if m.Has&HasThreads != 0 {
		o.int("thread_count", m.ThreadCount)
	}
	if m.Has&HasFDs != 0 {
		o.int("file_descriptor_count", m.FileDescriptorCount)
	}
	o.time("timestamp", m.Timestamp)
	return o.end()
}

func (a *Aggregated) appendJSON(b []byte) []byte {
	o := beginObject(b)
	if a.Has&HasCPU != 0 {
		o.float("avg_cpu_usage", a.AvgCPUUsage)
		o.float("max_cpu_usage", a.MaxCPUUsage)
	}
	if a.Has&HasMemory != 0 {
		o.float("avg_memory_usage", a.AvgMemoryUsage)
		o.uint("max_memory_usage", a.MaxMemoryUsage)
	}
	if a.Has&HasDisk != 0 {
		o.uint("total_disk_read", a.TotalDiskRead)
		o.uint("total_disk_write", a.TotalDiskWrite)
	}
	if a.Has&HasNetwork != 0 {
		o.uint("total_network_rx", a.TotalNetworkRx)
		o.uint("total_network_tx", a.TotalNetworkTx)
	}
	o.int("sample_count", int64(a.SampleCount))
	return o.end()
}

// Fields of a proplet message.
const (
	HasCPUUser Has = 1 << iota
	HasCPUSystem
	HasCPUPercent
	HasRSS
	HasContainerUsage
	HasContainerLimit

	// HasCPUTimes is both CPU times, as this project measures them.
	HasCPUTimes = HasCPUUser | HasCPUSystem
)

// PropletMessage is published on the proplet metrics topics.
type PropletMessage struct {
	Has                 Has
	PropletID           string
	Namespace           string
	Timestamp           time.Time
	UserSeconds         float64 // the proplet process's CPU times
	SystemSeconds       float64
	Percent             float64 // machine-wide CPU utilisation, 0-100
	RSSBytes            uint64
	ContainerUsageBytes uint64 // cgroup memory.current
	ContainerLimitBytes uint64 // cgroup memory.max; left out when unlimited
}

// AppendJSON appends the message's JSON encoding to b.
func (m *PropletMessage) AppendJSON(b []byte) []byte {
	o := beginObject(b)
	o.str("proplet_id", m.PropletID)
	o.str("namespace", m.Namespace)
	o.time("timestamp", m.Timestamp)
	o.key("cpu_metrics")
	c := beginObject(o.b)
	if m.Has&HasCPUUser != 0 {
		c.float("user_seconds", m.UserSeconds)
	}
	if m.Has&HasCPUSystem != 0 {
		c.float("system_seconds", m.SystemSeconds)
	}
	if m.Has&HasCPUPercent != 0 {
		c.float("percent", m.Percent)
	}
	o.b = c.end()
	o.key("memory_metrics")
	mm := beginObject(o.b)
	if m.Has&HasRSS != 0 {
		mm.uint("rss_bytes", m.RSSBytes)
	}
	if m.Has&HasContainerUsage != 0 {
		mm.uint("container_usage_bytes", m.ContainerUsageBytes)
	}
	if m.Has&HasContainerLimit != 0 {
		mm.uint("container_limit_bytes", m.ContainerLimitBytes)
	}
	o.b = mm.end()
	return o.end()
}
