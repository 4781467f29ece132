package monitor

import (
	"errors"
	"io/fs"
	"time"

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
//
// A delay longer than the record's threads lived (elapsed time × threads) cannot be a wait and
// is left out, counted as a sample error and logged: Linux 6.18 counts some processes' first
// block I/O wait from boot (a wait that ends without having been started), so a process that
// lived a second reports as many seconds of block I/O delay as the machine has been up; the
// process's own /proc/<pid>/stat says the same (TestUsageReportsDelays sees it in about four
// runs out of ten). A smaller overcount of that kind cannot be told from a wait.

// delaySetting is what the monitor read of kernel.task_delayacct at one moment.
type delaySetting uint8

const (
	delaysUnknown delaySetting = iota // not read, or unreadable
	delaysOff
	delaysOn
)

// delayFlags says which of a record's delays are meant: one bit per delay.
type delayFlags uint8

const (
	delayCPU delayFlags = 1 << iota
	delayBlockIO
	delaySwapIn
	delayMemoryReclaim
)

// delayNames name the delays in logs, in the order of their bits.
var delayNames = [...]string{"cpu", "blkio", "swapin", "memory_reclaim"}

// delaySlack is what a thread's waits may exceed the group's elapsed time by: the two are
// read from different clocks.
const delaySlack = 10 * time.Millisecond

// plausibleDelays returns the record's delays, with each that is longer than its threads lived
// zeroed and its bit set in impossible.
func (x *ProcessExit) plausibleDelays() (d procevents.Delays, impossible delayFlags) {
	d = x.Delays
	limit := (x.Elapsed + delaySlack) * time.Duration(max(x.Threads, 1))
	for i, v := range [...]*time.Duration{&d.CPU, &d.BlockIO, &d.SwapIn, &d.MemoryReclaim} {
		if *v > limit || *v < 0 {
			*v, impossible = 0, impossible|1<<i
		}
	}
	return d, impossible
}

// checkDelays applies plausibleDelays to one of a task's exit records: it adds the plausible
// delays to sum and the impossible ones to bad, and counts and logs those (the first at warning,
// the others at debug). The caller holds t.mu.
func (m *Monitor) checkDelays(t *task, x *ProcessExit, sum *procevents.Delays, bad *delayFlags) {
	d, impossible := x.plausibleDelays()
	*sum = addDelays(*sum, d)
	if impossible == 0 {
		return
	}
	*bad |= impossible
	m.tel.SampleError(KindTask)
	var names []string
	for i, n := range delayNames {
		if impossible&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	fields := []zap.Field{
		zap.String("task_id", t.spec.ID), zap.Int32("pid", x.PID), zap.Strings("delays", names),
		zap.Duration("elapsed", x.Elapsed), zap.Int("threads", x.Threads),
		zap.Duration("cpu_delay", x.Delays.CPU), zap.Duration("blkio_delay", x.Delays.BlockIO),
		zap.Duration("swapin_delay", x.Delays.SwapIn), zap.Duration("memory_reclaim_delay", x.Delays.MemoryReclaim),
	}
	if m.delaysImpossible.CompareAndSwap(false, true) {
		m.log.Warn("The kernel's exit record has a delay longer than the process's threads lived: it is left out of the task's usage report. "+
			"Some kernels count a wait that was never started from boot; nothing to fix in the collector (logged once; every one is counted in otelcol_receiver_proplet_sample_errors{kind=task} and logged at debug)",
			fields...)
		return
	}
	m.log.Debug("Impossible delay in the kernel's exit record left out of the usage report", fields...)
}

// readDelayAccounting is the default hook: the switch under the monitor's proc root.
func readDelayAccounting(m *Monitor) (bool, error) { return m.src.DelayAccounting() }

// delaySetting reads kernel.task_delayacct now. A failed read is logged once: the block I/O,
// swap-in and reclaim delays are then left out of every report.
func (m *Monitor) delaySetting() delaySetting {
	on, err := m.hooks.delayAccounting(m)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A kernel before 5.14 (or a proc_root without sys/): no switch to read. Said once.
		if m.delaysUnreadable.CompareAndSwap(false, true) {
			m.log.Info("No kernel.task_delayacct switch (Linux before 5.14, or no sys/ under proc_root): usage reports leave out block I/O, swap-in and memory reclaim delays (logged once)",
				zap.Error(err))
		}
		return delaysUnknown
	case err != nil:
		m.tel.SampleError(KindTask)
		if m.delaysUnreadable.CompareAndSwap(false, true) {
			m.log.Warn("Cannot read kernel.task_delayacct: usage reports leave out block I/O, swap-in and memory reclaim delays, which the kernel counts only while delay accounting is on. "+
				"It is a Linux 5.14+ switch under the proc_root's sys/kernel/; the collector needs read access to it (logged once; every failed read is counted in otelcol_receiver_proplet_sample_errors{kind=task})",
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
// accounted; a delay in bad was impossible in one of the records, and is left out.
func (u *Usage) setDelays(d procevents.Delays, bad delayFlags, bound, ended delaySetting) {
	if bad&delayCPU == 0 && (ended == delaysOn || d.CPU > 0) {
		u.CPUDelay, u.HasCPUDelay = d.CPU.Seconds(), true
	}
	if bound != delaysOn || ended != delaysOn {
		return
	}
	if bad&delayBlockIO == 0 {
		u.BlockIODelay, u.HasBlockIODelay = d.BlockIO.Seconds(), true
	}
	if bad&delaySwapIn == 0 {
		u.SwapInDelay, u.HasSwapInDelay = d.SwapIn.Seconds(), true
	}
	if bad&delayMemoryReclaim == 0 {
		u.MemoryReclaimDelay, u.HasMemoryReclaimDelay = d.MemoryReclaim.Seconds(), true
	}
}
