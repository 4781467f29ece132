package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"math"
	"sync"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// mapper turns samples into Propeller messages. It keeps, per task, the window of recent
// samples: the aggregated block, and the previous CPU time for cpu_percent. Message building
// is idempotent: a batch sent again after a failure finds its samples in the window and
// produces the same messages.
type mapper struct {
	cfg      *Config
	defaults taskProfile

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
	// Tasks whose resource carries no profile settings (metrics from other sources) get
	// Propeller's standard profile, with the configured history size.
	std := standardProfile()
	return &mapper{
		cfg:      cfg,
		defaults: taskProfile{historySize: cfg.DefaultHistorySize, retain: std.RetainHistory, export: std.ExportToMQTT, interval: std.Interval},
		tasks:    map[string]*taskState{},
	}
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
				e.CPUPercent = round4(schema.CPUPercent(s.cpuTime-prev.CPUTime, float64(t-prev.Time)/1e9))
			} else if s.start != 0 && s.start < s.ts {
				// First sample of the task: the average since the process started, which for a
				// task found at spawn is its first interval.
				e.CPUPercent = round4(schema.CPUPercent(s.cpuTime, float64(s.ts-s.start)/1e9))
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
		if s.sysN[schema.CPUModeIdle] > 0 {
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
func isProplet(a *attributes, s *sample) bool {
	return a.hasPropletID || (s.hasSysCPU && !a.hasPID)
}

// round4 rounds a percentage to four decimals: more digits are noise from float arithmetic.
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
