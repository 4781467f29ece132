//go:build !linux

package process

import (
	"errors"
	"runtime"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// Source reads processes through gopsutil. It is the portable fallback: correct, not fast.
type Source struct {
	numCPU   int
	memTotal uint64
}

// NewSource returns a Source; the roots are meaningful on Linux only.
func NewSource(_, _ string) (*Source, error) {
	s := &Source{numCPU: runtime.NumCPU()}
	if vm, err := mem.VirtualMemory(); err == nil {
		s.memTotal = vm.Total
	}
	return s, nil
}

// Close releases nothing on this platform.
func (*Source) Close() error { return nil }

// NumCPU is the number of logical CPUs of the host.
func (s *Source) NumCPU() int { return s.numCPU }

// MemTotal is the host's total memory in bytes.
func (s *Source) MemTotal() uint64 { return s.memTotal }

// StartTime converts an ID's start (milliseconds since the epoch here) to wall-clock time.
func (*Source) StartTime(id ID) time.Time { return time.UnixMilli(int64(id.Start)) }

// TicksAt converts a wall-clock time to an ID's start: the start of a process started then.
func (*Source) TicksAt(t time.Time) uint64 { return uint64(max(t.UnixMilli(), 0)) }

// CPUTimes reads the machine-wide CPU times, in clock ticks as on Linux.
func (*Source) CPUTimes() (procfs.CPUTimes, error) {
	ts, err := cpu.Times(false)
	if err != nil || len(ts) == 0 {
		return procfs.CPUTimes{}, errors.Join(errors.New("read machine CPU times"), err)
	}
	t := ts[0]
	ticks := func(s float64) uint64 { return uint64(s * procfs.UserHZ) }
	return procfs.CPUTimes{
		User: ticks(t.User), Nice: ticks(t.Nice), System: ticks(t.System), Idle: ticks(t.Idle),
		IOWait: ticks(t.Iowait), IRQ: ticks(t.Irq), SoftIRQ: ticks(t.Softirq), Steal: ticks(t.Steal),
	}, nil
}

// SetKeptOpenBudget has no effect here: gopsutil keeps nothing open between reads.
func (*Source) SetKeptOpenBudget(int) {}

// SetBudgetObserver has no effect here: nothing is kept open, so no budget fills.
func (*Source) SetBudgetObserver(func(budget int64)) {}
