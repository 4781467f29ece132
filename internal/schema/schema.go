// Package schema is the contract between the proplet receiver and the MQTT exporter, which
// never import each other and meet only in pdata: the resource attributes the receiver sets
// and their types, the metrics it writes with their units, the data point attributes and their
// values, and the one definition of CPU percent both sides use.
//
// The receiver's metadata.yaml is where the metrics are declared for mdatagen; this package
// names them for the code that reads them. Tests on both sides hold the two together: every
// name the receiver writes is listed here, every name listed here is written, and every name
// listed here is either read by the exporter or listed by it as not carried on Propeller's wire.
package schema // import "github.com/otelcol-propeller/otelcol-propeller/internal/schema"

// Type is the value type of a resource attribute.
type Type string

// Value types of resource attributes.
const (
	String Type = "string"
	Int    Type = "int"
	Double Type = "double"
	Bool   Type = "bool"
)

// Resource attributes. Task resources carry the propeller.task.* and monitoring profile
// attributes; the proplet's own resource carries neither. Both carry process.* when a process
// was found.
const (
	TaskID    = "propeller.task.id"    // Propeller task id
	TaskName  = "propeller.task.name"  // Propeller task name
	PropletID = "propeller.proplet.id" // the proplet that runs the task, or the proplet itself

	ProfileName          = "propeller.monitoring_profile.name"           // built-in, configured or "inline"
	ProfileInterval      = "propeller.monitoring_profile.interval"       // sampling interval, seconds
	ProfileHistorySize   = "propeller.monitoring_profile.history_size"   // the aggregated window's length
	ProfileRetainHistory = "propeller.monitoring_profile.retain_history" // send the aggregated block
	ProfileExportToMQTT  = "propeller.monitoring_profile.export_to_mqtt" // publish the task at all

	ProcessPID            = "process.pid"             // the task's (root) process
	ProcessParentPID      = "process.parent_pid"      // its parent
	ProcessExecutableName = "process.executable.name" // base name of /proc/<pid>/exe
	ProcessOwner          = "process.owner"           // user name of the owner
	ProcessCommandLine    = "process.command_line"    // full command line
)

// ResourceAttribute is one resource attribute and the type of its value.
type ResourceAttribute struct {
	Name string
	Type Type
}

// ResourceAttributes lists every resource attribute the receiver may set.
var ResourceAttributes = []ResourceAttribute{
	{TaskID, String},
	{TaskName, String},
	{PropletID, String},
	{ProfileName, String},
	{ProfileInterval, Double},
	{ProfileHistorySize, Int},
	{ProfileRetainHistory, Bool},
	{ProfileExportToMQTT, Bool},
	{ProcessPID, Int},
	{ProcessParentPID, Int},
	{ProcessExecutableName, String},
	{ProcessOwner, String},
	{ProcessCommandLine, String},
}

// Metric names.
const (
	ProcessCPUTime             = "process.cpu.time"                   // cumulative CPU seconds, by cpu.mode
	ProcessCPUUtilization      = "process.cpu.utilization"            // share of all CPUs since the previous sample, by cpu.mode
	ProcessMemoryUsage         = "process.memory.usage"               // resident set size
	ProcessMemoryUtilization   = "process.memory.utilization"         // RSS over the memory available to the task
	ProcessMemoryVirtual       = "process.memory.virtual"             // virtual memory size
	ProcessDiskIO              = "process.disk.io"                    // cumulative bytes, by disk.io.direction
	ProcessNetworkIO           = "process.network.io"                 // cumulative bytes, by network.io.direction
	ProcessThreadCount         = "process.thread.count"               // threads
	ProcessFileDescriptorCount = "process.unix.file_descriptor.count" // open file descriptors
	ProcessUptime              = "process.uptime"                     // seconds since the process started
	SystemCPUUtilization       = "system.cpu.utilization"             // machine CPU share by cpu.mode (proplet only)
	PropletCgroupMemoryUsage   = "propeller.proplet.cgroup.memory.usage"
	PropletCgroupMemoryLimit   = "propeller.proplet.cgroup.memory.limit"
	TaskMemoryPeak             = "propeller.task.memory.peak"   // cgroup tasks: memory.peak
	TaskProcessCount           = "propeller.task.process.count" // cgroup tasks: processes in the cgroup
	TaskLookup                 = "propeller.task.lookup"        // 1: the task's process is found; 0: pending

	// What a task waited for (collect_waits): cumulative seconds, or enforcement periods.
	TaskCPUWaitTime         = "propeller.task.cpu.wait.time"         // runnable, waiting for a CPU (schedstat)
	TaskDiskIOWaitTime      = "propeller.task.disk.io.wait.time"     // waiting for block I/O (delay accounting)
	TaskPressureStallTime   = "propeller.task.pressure.stall.time"   // its cgroup's PSI totals, by resource and stall
	TaskCPUThrottledTime    = "propeller.task.cpu.throttled.time"    // its cgroup held back by its CPU quota
	TaskCPUThrottledPeriods = "propeller.task.cpu.throttled.periods" // enforcement periods it was throttled in
	TaskCPUPeriods          = "propeller.task.cpu.periods"           // enforcement periods it was runnable in
)

// Data point attribute keys.
const (
	CPUMode            = "cpu.mode"
	DiskIODirection    = "disk.io.direction"
	NetworkIODirection = "network.io.direction"
	PressureResource   = "propeller.pressure.resource"
	PressureStall      = "propeller.pressure.stall"
)

// Data point attribute values.
const (
	CPUModeUser      = "user"
	CPUModeSystem    = "system"
	CPUModeNice      = "nice"
	CPUModeIdle      = "idle"
	CPUModeIOWait    = "iowait"
	CPUModeInterrupt = "interrupt"
	CPUModeSteal     = "steal"

	DirectionRead     = "read"
	DirectionWrite    = "write"
	DirectionReceive  = "receive"
	DirectionTransmit = "transmit"

	PressureCPU    = "cpu"
	PressureMemory = "memory"
	PressureIO     = "io"
	StallSome      = "some"
	StallFull      = "full"
)

// Metric is one metric the receiver writes: its name, its unit, and the data point attribute
// that splits it with the values that attribute takes ("" and nil when there is none). A metric
// split two ways has a second one, Attr2 and Values2: every point carries both.
type Metric struct {
	Name    string
	Unit    string
	Attr    string
	Values  []string
	Attr2   string
	Values2 []string
}

var (
	processCPUModes = []string{CPUModeUser, CPUModeSystem}
	systemCPUModes  = []string{CPUModeUser, CPUModeNice, CPUModeSystem, CPUModeIdle, CPUModeIOWait, CPUModeInterrupt, CPUModeSteal}
)

// Metrics lists every metric the receiver may write.
var Metrics = []Metric{
	{Name: ProcessCPUTime, Unit: "s", Attr: CPUMode, Values: processCPUModes},
	{Name: ProcessCPUUtilization, Unit: "1", Attr: CPUMode, Values: processCPUModes},
	{Name: ProcessMemoryUsage, Unit: "By"},
	{Name: ProcessMemoryUtilization, Unit: "1"},
	{Name: ProcessMemoryVirtual, Unit: "By"},
	{Name: ProcessDiskIO, Unit: "By", Attr: DiskIODirection, Values: []string{DirectionRead, DirectionWrite}},
	{Name: ProcessNetworkIO, Unit: "By", Attr: NetworkIODirection, Values: []string{DirectionReceive, DirectionTransmit}},
	{Name: ProcessThreadCount, Unit: "{thread}"},
	{Name: ProcessFileDescriptorCount, Unit: "{file_descriptor}"},
	{Name: ProcessUptime, Unit: "s"},
	{Name: SystemCPUUtilization, Unit: "1", Attr: CPUMode, Values: systemCPUModes},
	{Name: PropletCgroupMemoryUsage, Unit: "By"},
	{Name: PropletCgroupMemoryLimit, Unit: "By"},
	{Name: TaskMemoryPeak, Unit: "By"},
	{Name: TaskProcessCount, Unit: "{process}"},
	{Name: TaskLookup, Unit: "{found}"},
	{Name: TaskCPUWaitTime, Unit: "s"},
	{Name: TaskDiskIOWaitTime, Unit: "s"},
	{Name: TaskPressureStallTime, Unit: "s", Attr: PressureResource, Values: []string{PressureCPU, PressureMemory, PressureIO},
		Attr2: PressureStall, Values2: []string{StallSome, StallFull}},
	{Name: TaskCPUThrottledTime, Unit: "s"},
	{Name: TaskCPUThrottledPeriods, Unit: "{period}"},
	{Name: TaskCPUPeriods, Unit: "{period}"},
}

// CPUPercent is CPU use as Propeller reports it: the increase in cumulative CPU time
// (cpuSeconds) over the wall time it took (wallSeconds), as a share of one core, times 100.
// A process that keeps two cores busy is at 200, whatever the host's core count. It is 0 when
// wallSeconds is not positive, and a negative increase (counters that went back) counts as 0.
//
// The receiver's process.cpu.utilization is CPUPercent / 100 / the number of logical CPUs.
func CPUPercent(cpuSeconds, wallSeconds float64) float64 {
	// Written so that NaN inputs also answer 0.
	if !(wallSeconds > 0) || !(cpuSeconds > 0) {
		return 0
	}
	return cpuSeconds / wallSeconds * 100
}

// The task usage report: one log record per ended task, with the task's resource, event name
// TaskEndEvent, its timestamp the moment the task ended, and the attributes below. The MQTT
// exporter turns it into Propeller's task_usage message.
const (
	TaskEndEvent = "propeller.task.end"

	ProcessCreationTime = "process.creation.time" // RFC 3339 with nanoseconds, UTC: when the task's process started
	ProcessExitTime     = "process.exit.time"     // RFC 3339 with nanoseconds, UTC: when it ended
	ProcessExitCode     = "process.exit.code"     // set only when the process exited (not killed by a signal)

	TaskExitSignal      = "propeller.task.exit.signal"      // set only when a signal ended the process
	TaskOOMKilled       = "propeller.task.oom_killed"       // the kernel's OOM killer ended it
	TaskDuration        = "propeller.task.duration"         // seconds from start to end
	TaskCPUUser         = "propeller.task.cpu.user"         // CPU seconds in user mode, whole life
	TaskCPUSystem       = "propeller.task.cpu.system"       // CPU seconds in kernel mode, whole life
	TaskPeakMemory      = "propeller.task.memory.peak"      // peak resident set size, bytes (also a metric, for cgroup tasks)
	TaskMemoryLimit     = "propeller.task.memory.limit"     // the memory limit the task ran under, bytes; absent when none is known
	TaskDiskRead        = "propeller.task.disk.read"        // bytes read from storage, whole life
	TaskDiskWrite       = "propeller.task.disk.write"       // bytes written to storage, whole life
	TaskNetworkReceive  = "propeller.task.network.receive"  // bytes received; only when the task had its own network namespace
	TaskNetworkTransmit = "propeller.task.network.transmit" // bytes sent; same condition
	TaskExact           = "propeller.task.exact"            // true: totals from the kernel's exit accounting or the cgroup; false: from the last sample

	// Seconds the task's processes waited, by cause, from the kernel's delay accounting in
	// their exit records; each only where the kernel provided it (internal/monitor, delays.go).
	TaskCPUDelay           = "propeller.task.cpu.delay"            // runnable, waiting for a CPU
	TaskBlkioDelay         = "propeller.task.blkio.delay"          // waiting for synchronous block I/O
	TaskSwapinDelay        = "propeller.task.swapin.delay"         // waiting for pages to be swapped in
	TaskMemoryReclaimDelay = "propeller.task.memory.reclaim.delay" // in direct memory reclaim
)

// UsageAttributes lists every attribute of the task usage report and its type; the peak RSS is
// TaskMemoryPeak, the metric's name. ProcessExitCode and TaskExitSignal are exclusive (exactly
// one is set when the end is known, neither when it is not); the network pair,
// TaskMemoryLimit and each of the four delays are optional; every other one is always set.
var UsageAttributes = []ResourceAttribute{
	{ProcessCreationTime, String},
	{ProcessExitTime, String},
	{ProcessExitCode, Int},
	{TaskExitSignal, Int},
	{TaskOOMKilled, Bool},
	{TaskDuration, Double},
	{TaskCPUUser, Double},
	{TaskCPUSystem, Double},
	{TaskMemoryPeak, Int},
	{TaskMemoryLimit, Int},
	{TaskDiskRead, Int},
	{TaskDiskWrite, Int},
	{TaskNetworkReceive, Int},
	{TaskNetworkTransmit, Int},
	{TaskExact, Bool},
	{TaskCPUDelay, Double},
	{TaskBlkioDelay, Double},
	{TaskSwapinDelay, Double},
	{TaskMemoryReclaimDelay, Double},
}

// The memory warning, the early warning before an OOM kill: one log record when a task's memory
// crosses its profile's memory_warning share of its limit (again while it stays above: at most
// every 10 s, and whenever its time to the limit halves), and one when it falls back below;
// with the task's resource and the attributes below. The MQTT exporter turns both
// into Propeller's task_alerts message.
const (
	TaskMemoryHighEvent      = "propeller.task.memory.high"
	TaskMemoryRecoveredEvent = "propeller.task.memory.recovered"

	TaskMemoryUsage          = "propeller.task.memory.usage"            // bytes: the task's RSS, or its cgroup's memory usage
	TaskMemoryShare          = "propeller.task.memory.share"            // usage over the limit, 0-1 (above 1 past it)
	TaskMemoryGrowthRate     = "propeller.task.memory.growth_rate"      // bytes per second over the last samples; absent before two
	TaskMemorySecondsToLimit = "propeller.task.memory.seconds_to_limit" // at that rate; absent when the usage is not growing
)

// MemoryEventAttributes lists every attribute of a memory warning record and its type: the
// task and proplet ids (also on the record, so a log view that drops the resource still names
// the task), the usage, the limit (TaskMemoryLimit, the usage report's name), the share, and
// the two optional ones, the growth rate and the time to the limit.
var MemoryEventAttributes = []ResourceAttribute{
	{TaskID, String},
	{PropletID, String},
	{TaskMemoryUsage, Int},
	{TaskMemoryLimit, Int},
	{TaskMemoryShare, Double},
	{TaskMemoryGrowthRate, Double},
	{TaskMemorySecondsToLimit, Double},
}

// Resource attributes of data bridged from Propeller's own MQTT messages (the propeller_mqtt
// receiver): where the message was published, and the proplet's namespace from its proplet
// message. The proplet receiver knows none of them, so they are not in ResourceAttributes.
const (
	DomainID         = "propeller.domain.id"         // {domain_id} of the topic (newer Propeller: the tenant id)
	ChannelID        = "propeller.channel.id"        // {channel_id} of the topic
	PropletNamespace = "propeller.proplet.namespace" // the proplet message's namespace
)

// TaskCPUUsage is the CPU a task used over the proplet's last sampling interval, in cores (1 =
// one full core): Propeller's cpu_percent over 100. Only bridged data carries it: a Propeller
// task message has that rate, not the cumulative CPU time, and not the host's CPU count that
// process.cpu.utilization would need. A dashboard reads it where process.cpu.time is absent.
const TaskCPUUsage = "propeller.task.cpu.usage"

// FleetMetrics lists the metrics only bridged data carries.
var FleetMetrics = []Metric{
	{Name: TaskCPUUsage, Unit: "{cpu}"},
}

// TopicAttributes lists the resource attributes only bridged data carries, with their types.
var TopicAttributes = []ResourceAttribute{
	{DomainID, String},
	{ChannelID, String},
	{PropletNamespace, String},
}

// Kind is what a resource describes: one task, or the proplet (its process and its machine).
// The proplet receiver's samples and the fleet gateway's messages are of these two kinds.
type Kind uint8

// Kinds of resource.
const (
	KindTask    Kind = iota // one task's process (or process tree); Propeller's task_metrics
	KindProplet             // the proplet process and the machine; Propeller's proplet metrics
)

// String names the kind as telemetry attributes and logs do.
func (k Kind) String() string {
	if k == KindProplet {
		return "proplet"
	}
	return "task"
}
