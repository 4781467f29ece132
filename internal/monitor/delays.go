package monitor

import (
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procevents"
)

// The waits of an ended task, in its usage report: the delay accounting totals of the exit
// records (procevents.Delays), summed like the CPU times over the task's process and, with
// include_children, the descendants whose records arrived. A total is reported only where the
// kernel provided it, never as a zero that may mean "not counted". What the kernel provides
// (observed on Linux 6.18; kernel.task_delayacct is the switch since Linux 5.14, off by
// default; TestUsageReportsDelays runs a workload both ways):
//
//   - CPU delay (time runnable, waiting for a CPU) comes from the scheduler's own statistics
//     and is in the exit record whatever the switch says; a kernel may also fill it only with
//     delay accounting on. So it is reported when the switch is on at the end, or when the
//     records carry some: any process that ran waited a little for a CPU at least once.
//   - Block I/O, swap-in and memory reclaim delays are counted only for a process forked
//     while the switch was on (it is given its delay record at fork), and are in the exit
//     record only while it is on. So they are reported when the switch was on both when the
//     task was bound and when its end was accounted. A process forked while it was off and
//     bound after it was turned on reads as zero: the switch is meant to be set at boot.
//
// A report without the kernel's exit record (process events off, a cgroup task, a record that
// never came) has no delays at all.

// delaySetting is what the monitor read of kernel.task_delayacct at one moment.
type delaySetting uint8

const (
	delaysUnknown delaySetting = iota // not read, or unreadable
	delaysOff
	delaysOn
)

// readDelayAccounting is the default hook: the switch under the monitor's proc root.
func readDelayAccounting(m *Monitor) (bool, error) { return m.src.DelayAccounting() }

// delaySetting reads kernel.task_delayacct now. A failed read is logged once: the block I/O,
// swap-in and reclaim delays are then left out of every report.
func (m *Monitor) delaySetting() delaySetting {
	on, err := m.hooks.delayAccounting(m)
	switch {
	case err != nil:
		if m.delaysUnreadable.CompareAndSwap(false, true) {
			m.log.Warn("Cannot read kernel.task_delayacct: usage reports leave out block I/O, swap-in and memory reclaim delays, which the kernel counts only while delay accounting is on. "+
				"It is a Linux 5.14+ switch under the proc_root's sys/kernel/; the collector needs read access to it (logged once)",
				zap.Error(err))
		}
		return delaysUnknown
	case on:
		return delaysOn
	default:
		return delaysOff
	}
}

// addDelays returns the sum of two exit records' delays.
func addDelays(a, b procevents.Delays) procevents.Delays {
	return procevents.Delays{
		CPU:           a.CPU + b.CPU,
		BlockIO:       a.BlockIO + b.BlockIO,
		SwapIn:        a.SwapIn + b.SwapIn,
		MemoryReclaim: a.MemoryReclaim + b.MemoryReclaim,
	}
}

// setDelays reports the delays d summed from a task's exit records where the kernel provided
// them: bound is the switch when the task's process was bound, ended when its end was
// accounted.
func (u *Usage) setDelays(d procevents.Delays, bound, ended delaySetting) {
	if ended == delaysOn || d.CPU > 0 {
		u.CPUDelay, u.HasCPUDelay = d.CPU.Seconds(), true
	}
	if bound != delaysOn || ended != delaysOn {
		return
	}
	u.BlockIODelay, u.HasBlockIODelay = d.BlockIO.Seconds(), true
	u.SwapInDelay, u.HasSwapInDelay = d.SwapIn.Seconds(), true
	u.MemoryReclaimDelay, u.HasMemoryReclaimDelay = d.MemoryReclaim.Seconds(), true
}
