package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Older semantic-convention names, as the contrib hostmetrics process scraper still emits
// them. The proplet receiver writes only the names of internal/schema; these let metrics from
// other sources (with a resource processor that sets propeller.task.id) map as well.
const (
	oldMemoryPhysicalUsage = "process.memory.physical_usage"
	oldThreads             = "process.threads"
	oldOpenFileDescriptors = "process.open_file_descriptors"
	oldCPUState            = "state"     // the data point attribute cpu.mode was called
	oldDirection           = "direction" // what disk.io.direction and network.io.direction were called
	oldCPUStateWait        = "wait"      // the CPU time waiting for I/O
)

// notCarried lists what the receiver writes (internal/schema) that Propeller's messages have
// no field for, and why. Every name of the schema is either read here or listed here; a test
// fails for a name that is neither.
var notCarried = map[string]string{
	schema.TaskName:              "the messages identify a task by its id only",
	schema.ProfileName:           "the exporter needs the profile's settings, not its name",
	schema.ProcessParentPID:      "no process identity in the messages",
	schema.ProcessExecutableName: "no process identity in the messages",
	schema.ProcessOwner:          "no process identity in the messages",
	schema.ProcessCommandLine:    "no process identity in the messages",
	schema.ProcessCPUUtilization: "cpu_percent is computed from process.cpu.time (schema.CPUPercent): a share of one core, not of all of them",
	schema.ProcessMemoryVirtual:  "the messages have no virtual memory field",
	schema.TaskMemoryPeak:        "the messages have no peak memory field",
	schema.TaskProcessCount:      "the messages have no process count field",
	schema.TaskLookup:            "the messages have no lookup field; a task that is not found sends no message",

	schema.TaskCPUWaitTime:         "the messages have no wait fields",
	schema.TaskDiskIOWaitTime:      "the messages have no wait fields",
	schema.TaskPressureStallTime:   "the messages have no pressure stall fields",
	schema.TaskCPUThrottledTime:    "the messages have no throttling fields",
	schema.TaskCPUThrottledPeriods: "the messages have no throttling fields",
	schema.TaskCPUPeriods:          "the messages have no throttling fields",
}

// attributes is what the exporter reads of a resource's attributes.
type attributes struct {
	taskID       string
	propletID    string
	hasPropletID bool // set, possibly empty: the resource is about a proplet
	hasPID       bool // a process resource
	profile      taskProfile
}

// taskProfile is the part of a task's monitoring profile the messages depend on.
type taskProfile struct {
	historySize int
	retain      bool
	export      bool
	interval    time.Duration
}

// readAttributes reads a resource's attributes in one pass. Profile settings the resource
// does not carry keep the values of defaults.
func readAttributes(res pcommon.Map, defaults taskProfile) attributes {
	a := attributes{profile: defaults}
	for k, v := range res.All() {
		switch k {
		case schema.TaskID:
			a.taskID = v.AsString()
		case schema.PropletID:
			a.propletID, a.hasPropletID = v.AsString(), true
		case schema.ProcessPID:
			a.hasPID = true
		case schema.ProfileHistorySize:
			a.profile.historySize = int(v.Int())
		case schema.ProfileRetainHistory:
			a.profile.retain = v.Bool()
		case schema.ProfileExportToMQTT:
			a.profile.export = v.Bool()
		case schema.ProfileInterval:
			if s := v.Double(); s > 0 {
				a.profile.interval = time.Duration(s * float64(time.Second))
			}
		}
	}
	return a
}

// sample is what one resource says at one timestamp, read from metrics under both the current
// and the older semantic-convention names.
type sample struct {
	ts, start pcommon.Timestamp

	cpuTime      float64 // user + system (+ wait) seconds, cumulative
	hasCPUTime   bool
	cpuUser      float64
	cpuSystem    float64
	rss          int64
	hasRSS       bool
	memUtil      float64 // 0-1
	hasMemUtil   bool
	diskRead     int64
	diskWrite    int64
	hasDisk      bool
	netRx, netTx int64
	hasNet       bool
	uptime       float64
	hasUptime    bool
	threads      int64
	hasThreads   bool
	fds          int64
	hasFDs       bool

	sysIdle, sysBusy float64 // machine CPU shares, averaged over CPUs
	sysN             map[string]int
	hasSysCPU        bool
	cgUsage, cgLimit int64
	hasCgUsage       bool
	hasCgLimit       bool
}

// measures reports whether a task sample holds anything a Propeller task message carries. A
// lookup sample of a task that is not found yet (propeller.task.lookup 0 alone) does not: no
// message is sent for it, so the manager stores no empty sample.
func (s *sample) measures() bool {
	return s.hasCPUTime || s.hasRSS || s.hasMemUtil || s.hasDisk || s.hasNet || s.hasUptime || s.hasThreads || s.hasFDs
}

// readResource groups a resource's data points by timestamp: usually there is one.
func readResource(rm pmetric.ResourceMetrics) []*sample {
	var out []*sample
	at := func(ts pcommon.Timestamp) *sample {
		for _, s := range out {
			if s.ts == ts {
				return s
			}
		}
		s := &sample{ts: ts}
		out = append(out, s)
		return s
	}
	sms := rm.ScopeMetrics()
	for i := 0; i < sms.Len(); i++ {
		ms := sms.At(i).Metrics()
		for j := 0; j < ms.Len(); j++ {
			m := ms.At(j)
			var dps pmetric.NumberDataPointSlice
			switch m.Type() {
			case pmetric.MetricTypeSum:
				dps = m.Sum().DataPoints()
			case pmetric.MetricTypeGauge:
				dps = m.Gauge().DataPoints()
			default:
				continue
			}
			for k := 0; k < dps.Len(); k++ {
				dp := dps.At(k)
				s := at(dp.Timestamp())
				if dp.StartTimestamp() != 0 && (s.start == 0 || dp.StartTimestamp() < s.start) {
					s.start = dp.StartTimestamp()
				}
				s.add(m.Name(), dp)
			}
		}
	}
	return out
}

func value(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}

func intValue(dp pmetric.NumberDataPoint) int64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return dp.IntValue()
	}
	return int64(dp.DoubleValue())
}

// attr returns the first of the given data point attributes that is set.
func attr(dp pmetric.NumberDataPoint, keys ...string) string {
	for _, k := range keys {
		if v, ok := dp.Attributes().Get(k); ok {
			return v.AsString()
		}
	}
	return ""
}

func (s *sample) add(name string, dp pmetric.NumberDataPoint) {
	switch name {
	case schema.ProcessCPUTime:
		v := value(dp)
		switch attr(dp, schema.CPUMode, oldCPUState) {
		case schema.CPUModeUser:
			s.cpuUser += v
		case schema.CPUModeSystem:
			s.cpuSystem += v
		}
		s.cpuTime += v
		s.hasCPUTime = true
	case schema.ProcessMemoryUsage, oldMemoryPhysicalUsage:
		s.rss, s.hasRSS = intValue(dp), true
	case schema.ProcessMemoryUtilization:
		s.memUtil, s.hasMemUtil = value(dp), true
	case schema.ProcessDiskIO:
		switch attr(dp, schema.DiskIODirection, oldDirection) {
		case schema.DirectionRead:
			s.diskRead += intValue(dp)
		case schema.DirectionWrite:
			s.diskWrite += intValue(dp)
		}
		s.hasDisk = true
	case schema.ProcessNetworkIO:
		switch attr(dp, schema.NetworkIODirection, oldDirection) {
		case schema.DirectionReceive:
			s.netRx += intValue(dp)
		case schema.DirectionTransmit:
			s.netTx += intValue(dp)
		}
		s.hasNet = true
	case schema.ProcessUptime:
		s.uptime, s.hasUptime = value(dp), true
	case schema.ProcessThreadCount, oldThreads:
		s.threads, s.hasThreads = intValue(dp), true
	case schema.ProcessFileDescriptorCount, oldOpenFileDescriptors:
		s.fds, s.hasFDs = intValue(dp), true
	case schema.SystemCPUUtilization:
		// Per-CPU points (a "cpu" attribute) are averaged per mode.
		mode := attr(dp, schema.CPUMode, oldCPUState)
		if s.sysN == nil {
			s.sysN = map[string]int{}
		}
		s.sysN[mode]++
		v := value(dp)
		if mode == schema.CPUModeIdle || mode == schema.CPUModeIOWait || mode == oldCPUStateWait {
			s.sysIdle += v
		} else {
			s.sysBusy += v
		}
		s.hasSysCPU = true
	case schema.PropletCgroupMemoryUsage:
		s.cgUsage, s.hasCgUsage = intValue(dp), true
	case schema.PropletCgroupMemoryLimit:
		s.cgLimit, s.hasCgLimit = intValue(dp), true
	}
}

// cpuCount is how many CPUs per-CPU system.cpu.utilization points covered.
func (s *sample) cpuCount() int {
	n := 1
	for _, c := range s.sysN {
		n = max(n, c)
	}
	return n
}
