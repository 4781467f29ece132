package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// Resource attributes the mapping reads. The receiver sets all of them; other sources need at
// least the task id (for example from a resource processor).
const (
	attrTaskID        = "propeller.task.id"
	attrPropletID     = "propeller.proplet.id"
	attrHistorySize   = "propeller.monitoring_profile.history_size"
	attrRetainHistory = "propeller.monitoring_profile.retain_history"
	attrExportToMQTT  = "propeller.monitoring_profile.export_to_mqtt"
	attrInterval      = "propeller.monitoring_profile.interval"
	attrPID           = "process.pid"
)

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
	case "process.cpu.time":
		v := value(dp)
		switch attr(dp, "cpu.mode", "state") {
		case "user":
			s.cpuUser += v
		case "system":
			s.cpuSystem += v
		}
		s.cpuTime += v
		s.hasCPUTime = true
	case "process.memory.usage", "process.memory.physical_usage":
		s.rss, s.hasRSS = intValue(dp), true
	case "process.memory.utilization":
		s.memUtil, s.hasMemUtil = value(dp), true
	case "process.disk.io":
		switch attr(dp, "disk.io.direction", "direction") {
		case "read":
			s.diskRead += intValue(dp)
		case "write":
			s.diskWrite += intValue(dp)
		}
		s.hasDisk = true
	case "process.network.io":
		switch attr(dp, "network.io.direction", "direction") {
		case "receive":
			s.netRx += intValue(dp)
		case "transmit":
			s.netTx += intValue(dp)
		}
		s.hasNet = true
	case "process.uptime":
		s.uptime, s.hasUptime = value(dp), true
	case "process.thread.count", "process.threads":
		s.threads, s.hasThreads = intValue(dp), true
	case "process.unix.file_descriptor.count", "process.open_file_descriptors":
		s.fds, s.hasFDs = intValue(dp), true
	case "system.cpu.utilization":
		// Per-CPU points (a "cpu" attribute) are averaged per mode.
		mode := attr(dp, "cpu.mode", "state")
		if s.sysN == nil {
			s.sysN = map[string]int{}
		}
		s.sysN[mode]++
		v := value(dp)
		if mode == "idle" || mode == "iowait" || mode == "wait" {
			s.sysIdle += v
		} else {
			s.sysBusy += v
		}
		s.hasSysCPU = true
	case "propeller.proplet.cgroup.memory.usage":
		s.cgUsage, s.hasCgUsage = intValue(dp), true
	case "propeller.proplet.cgroup.memory.limit":
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

// mapper turns resources into Propeller messages. It keeps, per task, the window of recent
// samples: the aggregated block, and the previous CPU time for cpu_percent. Message building
// is idempotent: a batch sent again after a failure finds its samples in the window and
// produces the same messages.
type mapper struct {
	cfg *Config

	mu        sync.Mutex
	tasks     map[string]*taskState
	lastSweep time.Time
}

type taskState struct {
	w        *propeller.Window
	lastSeen time.Time
	idleTTL  time.Duration
}

func newMapper(cfg *Config) *mapper {
	return &mapper{cfg: cfg, tasks: map[string]*taskState{}}
}

// taskProfile reads the history settings a resource carries.
type taskProfile struct {
	historySize int
	retain      bool
	export      bool
	interval    time.Duration
}

func (m *mapper) profileOf(res pcommon.Map) taskProfile {
	p := taskProfile{historySize: m.cfg.DefaultHistorySize, retain: true, export: true, interval: 10 * time.Second}
	if v, ok := res.Get(attrHistorySize); ok {
		p.historySize = int(v.Int())
	}
	if v, ok := res.Get(attrRetainHistory); ok {
		p.retain = v.Bool()
	}
	if v, ok := res.Get(attrExportToMQTT); ok {
		p.export = v.Bool()
	}
	if v, ok := res.Get(attrInterval); ok && v.Double() > 0 {
		p.interval = time.Duration(v.Double() * float64(time.Second))
	}
	return p
}

// taskMessage builds the task message of one sample. The caller holds no lock.
func (m *mapper) taskMessage(taskID, propletID string, p taskProfile, s *sample, now time.Time) propeller.TaskMessage {
	msg := propeller.TaskMessage{TaskID: taskID, PropletID: propletID}
	t := int64(s.ts)

	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.tasks[taskID]
	if st == nil {
		st = &taskState{w: propeller.NewWindow(p.historySize)}
		m.tasks[taskID] = st
	}
	st.w.Resize(p.historySize)
	st.lastSeen = now
	st.idleTTL = max(3*p.interval, time.Minute)

	e, seen := st.w.Find(t)
	if !seen {
		e = propeller.Entry{Time: t}
		if s.hasCPUTime {
			e.Has |= propeller.HasCPU
			e.CPUTime = s.cpuTime
			e.CPUPercent = math.NaN()
			if prev, ok := st.w.Before(t); ok && prev.Has&propeller.HasCPU != 0 && prev.Time < t {
				e.CPUPercent = round4(math.Max(s.cpuTime-prev.CPUTime, 0) / (float64(t-prev.Time) / 1e9) * 100)
			} else if s.start != 0 && s.start < s.ts {
				// First sample of the task: the average since the process started, which for a
				// task found at spawn is its first interval.
				e.CPUPercent = round4(s.cpuTime / (float64(s.ts-s.start) / 1e9) * 100)
			}
		}
		if s.hasRSS {
			e.Has |= propeller.HasMemory
			e.Memory = uint64(max(s.rss, 0))
		}
		if s.hasDisk {
			e.Has |= propeller.HasDisk
			e.DiskRead, e.DiskWrite = uint64(max(s.diskRead, 0)), uint64(max(s.diskWrite, 0))
		}
		if s.hasNet {
			e.Has |= propeller.HasNetwork
			e.NetRx, e.NetTx = uint64(max(s.netRx, 0)), uint64(max(s.netTx, 0))
		}
		st.w.Add(e)
	}

	mt := &msg.Metrics
	mt.Timestamp = s.ts.AsTime()
	if e.Has&propeller.HasCPU != 0 && !math.IsNaN(e.CPUPercent) {
		mt.Has |= propeller.HasCPU
		mt.CPUPercent = e.CPUPercent
	}
	if s.hasRSS {
		mt.Has |= propeller.HasMemory
		mt.MemoryBytes = e.Memory
	}
	if s.hasMemUtil {
		mt.Has |= propeller.HasMemoryPercent
		mt.MemoryPercent = round4(s.memUtil * 100)
	}
	if s.hasDisk {
		mt.Has |= propeller.HasDisk
		mt.DiskReadBytes, mt.DiskWriteBytes = e.DiskRead, e.DiskWrite
	}
	if s.hasNet {
		mt.Has |= propeller.HasNetwork
		mt.NetworkRxBytes, mt.NetworkTxBytes = e.NetRx, e.NetTx
	}
	switch {
	case s.hasUptime:
		mt.Has |= propeller.HasUptime
		mt.UptimeSeconds = uint64(max(s.uptime, 0))
	case s.start != 0 && s.start < s.ts:
		mt.Has |= propeller.HasUptime
		mt.UptimeSeconds = uint64((s.ts - s.start) / 1e9)
	}
	if s.hasThreads {
		mt.Has |= propeller.HasThreads
		mt.ThreadCount = s.threads
	}
	if s.hasFDs {
		mt.Has |= propeller.HasFDs
		mt.FileDescriptorCount = s.fds
	}
	if p.retain && p.historySize > 0 {
		a := st.w.Aggregate(t)
		msg.Aggregated = &a
	}
	return msg
}

// sweep drops the state of tasks that stopped reporting.
func (m *mapper) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) < 10*time.Second {
		return
	}
	m.lastSweep = now
	for id, st := range m.tasks {
		if now.Sub(st.lastSeen) > st.idleTTL {
			delete(m.tasks, id)
		}
	}
}

// propletMessage builds the proplet-level message of one sample.
func (m *mapper) propletMessage(propletID string, s *sample) propeller.PropletMessage {
	msg := propeller.PropletMessage{PropletID: propletID, Namespace: m.cfg.Namespace, Timestamp: s.ts.AsTime()}
	if s.hasCPUTime {
		msg.Has |= propeller.HasCPUTimes
		msg.UserSeconds, msg.SystemSeconds = s.cpuUser, s.cpuSystem
	}
	if s.hasSysCPU {
		n := float64(s.cpuCount())
		idle, busy := s.sysIdle/n, s.sysBusy/n
		msg.Has |= propeller.HasCPUPercent
		if s.sysN["idle"] > 0 {
			msg.Percent = round4(math.Max(0, math.Min(100, (1-idle)*100)))
		} else {
			msg.Percent = round4(math.Max(0, math.Min(100, busy*100)))
		}
	}
	if s.hasRSS {
		msg.Has |= propeller.HasRSS
		msg.RSSBytes = uint64(max(s.rss, 0))
	}
	if s.hasCgUsage {
		msg.Has |= propeller.HasContainerUsage
		msg.ContainerUsageBytes = uint64(max(s.cgUsage, 0))
	}
	if s.hasCgLimit && s.cgLimit > 0 {
		msg.Has |= propeller.HasContainerLimit
		msg.ContainerLimitBytes = uint64(s.cgLimit)
	}
	return msg
}

// isProplet says whether a resource without a task id describes the proplet: it carries the
// proplet id attribute, or machine CPU metrics and no process.
func isProplet(res pcommon.Map, s *sample) bool {
	if _, ok := res.Get(attrPropletID); ok {
		return true
	}
	_, isProcess := res.Get(attrPID)
	return s.hasSysCPU && !isProcess
}

// round4 rounds a percentage to four decimals: more digits are noise from float arithmetic.
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
