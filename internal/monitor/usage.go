package monitor

import (
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// Usage is the report of an ended task: what it used over its whole life and how it ended. It
// rides on the task's final Sample.
type Usage struct {
	Start, End         time.Time
	CPUUser, CPUSystem float64 // seconds over the task's life, children included with include_children
	// PeakMemory is the highest resident set size: the kernel's high-water mark of the task's
	// process (of any of its processes, with include_children) when its exit was accounted,
	// else the highest RSS a sample saw.
	PeakMemory            uint64
	MemoryLimit           uint64 // the cgroup memory limit the task ran under; 0 when none is known
	ReadBytes, WriteBytes uint64
	HasNetwork            bool // the task had a network namespace of its own
	RxBytes, TxBytes      uint64
	// Exactly one of HasExitCode and HasExitSignal is set when the end is known.
	ExitCode, ExitSignal       int
	HasExitCode, HasExitSignal bool
	OOMKilled                  bool
	// Exact says the totals come from the kernel's exit accounting (or, for a cgroup task, from
	// the cgroup once its last process left), not from the last sample.
	Exact bool
}

// Duration is how long the task ran.
func (u *Usage) Duration() time.Duration { return u.End.Sub(u.Start) }

// setStatus records how a process ended from its wait status.
func (u *Usage) setStatus(status uint32) {
	if sig := int(status & 0x7f); sig != 0 {
		u.ExitSignal, u.HasExitSignal = sig, true
		return
	}
	u.ExitCode, u.HasExitCode = int(status>>8&0xff), true
}

// ProcessExit is the kernel's exit accounting of one ended process (all its threads), as the
// process events source reports it.
type ProcessExit struct {
	PID int32
	// StartTicks is when the process started, in the clock ticks /proc/<pid>/stat counts
	// since boot, reckoned back from its elapsed time (so up to startSlack late); 0 when
	// unknown. With the pid it tells the process this record is of.
	StartTicks            uint64
	Elapsed               time.Duration // from its start to its exit
	User, System          time.Duration
	PeakRSS               uint64
	ReadBytes, WriteBytes uint64
	Status                uint32 // wait status
	// Complete is false when the totals may be short: records were lost, or the process
	// started before the source opened.
	Complete bool
}

// startSlack is how late an exit record's start time may be: the time the record waited in
// the socket before it was read.
const startSlack = time.Second

// of reports whether the record is of process id: the same pid, and the same start time within
// a clock tick and startSlack.
func (x *ProcessExit) of(id process.ID) bool {
	if x.PID != id.PID {
		return false
	}
	if x.StartTicks == 0 || id.Start == 0 {
		return true // one of the two start times is unknown
	}
	tick := uint64(time.Second / procfs.UserHZ)
	return id.Start <= x.StartTicks+1 && x.StartTicks <= id.Start+1+uint64(startSlack)/tick
}

// reading turns an exit record into a process reading with the counters it carries.
func (x *ProcessExit) reading() process.Reading {
	return process.Reading{
		Got:     process.FieldCPU | process.FieldDisk,
		State:   'X',
		CPUUser: x.User.Seconds(), CPUSystem: x.System.Seconds(),
		ReadBytes: x.ReadBytes, WriteBytes: x.WriteBytes,
		ExitStatus: x.Status, HasExitStatus: true,
	}
}
