package propeller

import "math"

// Physical bounds of every value a metrics message carries. A received value beyond its bound
// (or negative, or not finite) cannot have been measured: the message is dropped
// (DropValue), as are messages whose sender is broken or hostile. Each bound is the most the
// quantity can be on any Linux machine, so no real sample is refused.
const (
	// MaxCPUs is Linux's largest configurable CPU count (NR_CPUS).
	MaxCPUs = 8192
	// MaxCPUPercent bounds a task's cpu_percent (100 = one full core): every CPU busy.
	MaxCPUPercent = 100 * MaxCPUs
	// MaxPercent bounds a share: memory_percent and the proplet's machine-wide CPU percent.
	MaxPercent = 100
	// MaxMemoryBytes bounds memory_bytes, rss_bytes and container_usage_bytes: 4 PiB, the most
	// physical memory 52-bit physical addresses (x86-64 and arm64 Linux) reach.
	MaxMemoryBytes = 1 << 52
	// MaxIOBytes bounds the cumulative disk and network byte counters: 1 EiB, 30 years at
	// 1 GB/s.
	MaxIOBytes = 1 << 60
	// MaxUptimeSeconds bounds uptime_seconds: 100 years.
	MaxUptimeSeconds = 100 * 365.25 * 24 * 3600
	// MaxCPUSeconds bounds the proplet's cumulative user and system CPU seconds: every CPU busy
	// for MaxUptimeSeconds.
	MaxCPUSeconds = MaxUptimeSeconds * MaxCPUs
	// MaxThreads bounds thread_count: Linux's PID_MAX_LIMIT, past which no thread can exist.
	MaxThreads = 1 << 22
	// MaxFDs bounds file_descriptor_count: Linux's largest fs.nr_open.
	MaxFDs = 1 << 30
)

// A container_limit_bytes beyond MaxMemoryBytes is not refused: it is how an unlimited cgroup
// reads (v1: 2^63 - 4096 bytes), so the field is left out, as this project's exporter does for
// an unlimited cgroup.

// check checks the values of one message; the first error is kept.
type check struct {
	err error
}

func (c *check) task(mt *TaskMetrics, w *wireTaskMetrics) {
	mt.CPUPercent = c.float(&mt.Has, HasCPU, "metrics.cpu_percent", w.CPUPercent, MaxCPUPercent)
	mt.MemoryBytes = c.uint(&mt.Has, HasMemory, "metrics.memory_bytes", w.MemoryBytes, MaxMemoryBytes)
	mt.MemoryPercent = c.float(&mt.Has, HasMemoryPercent, "metrics.memory_percent", w.MemoryPercent, MaxPercent)
	mt.DiskReadBytes = c.uint(&mt.Has, HasDiskRead, "metrics.disk_read_bytes", w.DiskRead, MaxIOBytes)
	mt.DiskWriteBytes = c.uint(&mt.Has, HasDiskWrite, "metrics.disk_write_bytes", w.DiskWrite, MaxIOBytes)
	mt.NetworkRxBytes = c.uint(&mt.Has, HasNetworkRx, "metrics.network_rx_bytes", w.NetworkRx, MaxIOBytes)
	mt.NetworkTxBytes = c.uint(&mt.Has, HasNetworkTx, "metrics.network_tx_bytes", w.NetworkTx, MaxIOBytes)
	mt.UptimeSeconds = c.uint(&mt.Has, HasUptime, "metrics.uptime_seconds", w.Uptime, MaxUptimeSeconds)
	mt.ThreadCount = int64(c.uint(&mt.Has, HasThreads, "metrics.thread_count", w.Threads, MaxThreads))
	mt.FileDescriptorCount = int64(c.uint(&mt.Has, HasFDs, "metrics.file_descriptor_count", w.FDs, MaxFDs))
}

func (c *check) proplet(m *PropletMessage, cpu *wireCPU, mem *wireMemory) {
	m.UserSeconds = c.float(&m.Has, HasCPUUser, "cpu_metrics.user_seconds", cpu.User, MaxCPUSeconds)
	m.SystemSeconds = c.float(&m.Has, HasCPUSystem, "cpu_metrics.system_seconds", cpu.System, MaxCPUSeconds)
	m.Percent = c.float(&m.Has, HasCPUPercent, "cpu_metrics.percent", cpu.Percent, MaxPercent)
	m.RSSBytes = c.uint(&m.Has, HasRSS, "memory_metrics.rss_bytes", mem.RSS, MaxMemoryBytes)
	m.ContainerUsageBytes = c.uint(&m.Has, HasContainerUsage, "memory_metrics.container_usage_bytes", mem.CgroupUsage, MaxMemoryBytes)
	limit := mem.CgroupLimit
	if limit.set && !limit.bad && limit.v > MaxMemoryBytes {
		limit = optNumber{} // unlimited
	}
	m.ContainerLimitBytes = c.uint(&m.Has, HasContainerLimit, "memory_metrics.container_limit_bytes", limit, MaxMemoryBytes)
}

// float checks one measured quantity: finite, not negative, at most limit.
func (c *check) float(has *Has, bit Has, key string, n optNumber, limit float64) float64 {
	if !n.set {
		return 0
	}
	if n.bad || math.IsInf(n.v, 0) || math.IsNaN(n.v) || n.v < 0 || n.v > limit {
		if c.err == nil {
			switch {
			case n.bad:
				c.err = drop(DropValue, "%s: out of range", key)
			case n.v < 0:
				c.err = drop(DropValue, "%s: %g is negative", key, n.v)
			default:
				c.err = drop(DropValue, "%s: %g is more than %g, its physical bound", key, n.v, limit)
			}
		}
		return 0
	}
	*has |= bit
	return n.v
}

// uint checks one counted quantity; a fraction is truncated, as the manager truncates.
func (c *check) uint(has *Has, bit Has, key string, n optNumber, limit float64) uint64 {
	return uint64(c.float(has, bit, key, n, limit))
}
