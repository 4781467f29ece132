package monitor

import (
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Kind says what a Sample describes: schema's, shared with the fleet gateway.
type Kind = schema.Kind

// Kinds of sample.
const (
	KindTask    = schema.KindTask
	KindProplet = schema.KindProplet
)

// Machine CPU modes, in the order of Sample.MachineCPU.
const (
	ModeUser = iota
	ModeNice
	ModeSystem
	ModeIdle
	ModeIOWait
	ModeInterrupt
	ModeSteal
	numModes
)

// Sample is one measurement of a task or of the proplet. Got says which counter families
// hold values; everything else is zero and must not be emitted.
type Sample struct {
	Kind Kind
	Time time.Time

	TaskID, TaskName string
	ProfileName      string
	Profile          profile.Profile

	HasProcess bool // a process was found (the proplet may have none)
	PID, PPID  int32
	Executable string
	Owner      string
	Cmdline    string
	Start      time.Time // the process's start time

	Got                   process.Fields
	CPUUser, CPUSystem    float64 // cumulative CPU seconds, monotonic
	UtilUser, UtilSystem  float64 // share of all CPUs since the previous sample, 0-1
	HasUtil               bool
	RSS, VMS              uint64
	MemUtil               float64 // RSS over the memory available to the task
	ReadBytes, WriteBytes uint64  // cumulative, monotonic
	RxBytes, TxBytes      uint64  // cumulative, monotonic; only with FieldNetwork in Got
	Threads, FDs          int64
	Uptime                float64 // seconds since the process started
	Final                 bool    // the task's process exited; no sample follows
	// Usage is the task's usage report, on the final sample of a task whose process ended
	// (or that was stopped), when its profile is enabled.
	Usage *Usage
	// Memory is a memory warning this sample raised (memwarn.go); nil on most samples.
	Memory *MemoryEvent
	// Pending says the task's process (or cgroup) is not found: a lookup sample, with the
	// task's identity and no measurement, so a task that is not found shows in the data.
	Pending        bool
	MemoryPeak     uint64 // cgroup tasks: memory.peak
	HasMemoryPeak  bool
	Processes      int64 // cgroup tasks: processes in the cgroup
	HasProcesses   bool
	CgroupUsage    uint64 // proplet only
	CgroupLimit    uint64 // proplet only
	HasCgroupUsage bool
	HasCgroupLimit bool
	MachineCPU     [numModes]float64 // proplet only: share of machine CPU per mode, 0-1
	HasMachineCPU  bool

	// What the task waited for (collect_waits), cumulative seconds. CPUWait (run-queue delay)
	// and DiskIOWait (block I/O delay, only with the kernel's delay accounting on) are summed
	// over a process task's processes; Pressure (by process.PressureCPU, ...) and the
	// throttling figures are its cgroup's. A figure without its Has flag is absent, not 0.
	CPUWait, DiskIOWait       float64
	HasCPUWait, HasDiskIOWait bool
	Pressure                  [process.NumPressure]Stall
	ThrottledTime             float64 // time the cgroup was held back by its CPU quota
	ThrottledPeriods, Periods uint64  // enforcement periods it was throttled in, and all of them
	HasThrottling             bool
}

// Stall is a cgroup's pressure stall total for one resource, in seconds: Some is the time at
// least one of its tasks stalled on the resource, Full the time all of them did at once.
type Stall struct {
	Some, Full       float64
	HasSome, HasFull bool
}
