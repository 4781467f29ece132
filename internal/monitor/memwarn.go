package monitor

import (
	"errors"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

// The early warning before an OOM kill. When a task's memory (its RSS, process trees summed, or
// its cgroup's memory usage) passes its profile's memory_warning share of its limit, the task is
// sampled every memory_warning_interval instead of every interval, and the sample carries a
// MemoryEvent (MemoryHigh); the receiver makes it a propeller.task.memory.high log record. While
// the task stays high, another event follows at most every memRepeat, and at once whenever the
// time to the limit has halved since the last one. Below the share by memHysteresis, one
// MemoryRecovered event, and the task is sampled on its interval again.
//
// The limit is the profile's memory_limit when set, else the task's cgroup's (read when the
// task is bound, see cgroupLimit). No limit, or memory_warning 0, is off.

const (
	// memRing is how many of a task's last samples the growth rate is taken over.
	memRing = 4
	// memRepeat is how often a task that stays above its warning share is warned about again:
	// a reminder with fresh figures, not a new alert. A constant, not a profile key: it bounds
	// the messages a fleet receives, whatever the interval.
	memRepeat = 10 * time.Second
	// memHysteresis is how far below its warning share a task must fall to recover (0.05 of
	// the limit, or half the share when that is smaller), so a task that hovers at the share
	// does not warn and recover on every sample.
	memHysteresis = 0.05
	// memLimitEvery is how many samples of a process task pass between two reads of its
	// cgroup's memory limit (cgroupLimit says why).
	memLimitEvery = 16
)

// MemoryEventKind says what a MemoryEvent reports.
type MemoryEventKind uint8

// Kinds of memory event.
const (
	// MemoryHigh: the task's memory passed its warning share (or is still above it).
	MemoryHigh MemoryEventKind = iota + 1
	// MemoryRecovered: it fell back below the share, by memHysteresis, or the warning was
	// turned off (the limit went away, memory_warning 0, collect_memory false).
	MemoryRecovered
)

func (k MemoryEventKind) String() string {
	switch k {
	case MemoryHigh:
		return "high"
	case MemoryRecovered:
		return "recovered"
	}
	return "unknown"
}

// MemoryEvent is a task's memory warning, on the sample that raised it.
type MemoryEvent struct {
	Kind  MemoryEventKind
	Usage uint64  // bytes: the task's RSS (process trees summed), or its cgroup's memory usage
	Limit uint64  // bytes: the profile's memory_limit, else the task's cgroup's limit
	Share float64 // Usage over Limit
	// GrowthRate is the usage's increase in bytes per second over the last samples (at most
	// memRing), a least-squares slope; HasGrowthRate is false before two samples.
	GrowthRate    float64
	HasGrowthRate bool
	// SecondsToLimit is when Usage reaches Limit at GrowthRate (0 when it is there already);
	// HasSecondsToLimit is false when the usage is not growing.
	SecondsToLimit    float64
	HasSecondsToLimit bool
	// First says the event starts an episode: the task just crossed its share.
	First bool
}

// memPoint is one sample's memory usage.
type memPoint struct {
	at    time.Time
	usage uint64
}

// memWatch is the memory warning's state of a task that has a limit, guarded by t.mu. Its
// ring holds the last samples in place: a sample costs no allocation. A task without a limit
// has none (most tasks of a host: 232 bytes each not kept, thousands of times over).
type memWatch struct {
	ring    [memRing]memPoint
	n, next int // points held; where the next one goes

	high       bool      // above the warning share: an episode is on
	lastAt     time.Time // the episode's last MemoryHigh event
	lastETA    float64   // its SecondsToLimit
	hasLastETA bool
	lastUsage  uint64 // the last sample's usage and limit, for an episode the warning ends
	lastLimit  uint64
	fast       bool // the scheduler was last asked for the warning interval
}

// memBinding is what the memory warning keeps of every task: the incarnation its state belongs
// to (a task bound again starts afresh), and its cgroup's limit as last read. Guarded by t.mu.
type memBinding struct {
	bound   bool
	boundID process.ID
	boundCg *process.Cgroup

	cgLimit     uint64 // the task's cgroup limit as last read; 0 when none
	limitAt     uint64 // t.samples when it was read
	limitFailed bool   // the last re-read failed (logged and counted once until one succeeds)
}

// recoverAt is the share a high task must fall below to recover.
func recoverAt(share float64) float64 { return share - min(memHysteresis, share/2) }

// observe adds one sample's usage and decides whether an event is due. A limit of 0 or a share
// of 0 turns the warning off: an episode on ends with a MemoryRecovered event, and the growth
// rate starts over. now must not go back.
func (w *memWatch) observe(now time.Time, usage, limit uint64, share float64) (MemoryEvent, bool) {
	if limit == 0 || share <= 0 {
		w.n, w.next = 0, 0
		if !w.high {
			return MemoryEvent{}, false
		}
		w.high = false
		ev := MemoryEvent{Kind: MemoryRecovered, Usage: w.lastUsage, Limit: w.lastLimit}
		if ev.Limit > 0 {
			ev.Share = float64(ev.Usage) / float64(ev.Limit)
		}
		return ev, true
	}
	w.ring[w.next] = memPoint{at: now, usage: usage}
	w.next = (w.next + 1) % memRing
	w.n = min(w.n+1, memRing)
	w.lastUsage, w.lastLimit = usage, limit

	ev := MemoryEvent{Usage: usage, Limit: limit, Share: float64(usage) / float64(limit)}
	ev.GrowthRate, ev.HasGrowthRate = w.growthRate()
	if ev.HasGrowthRate && ev.GrowthRate > 0 {
		ev.HasSecondsToLimit = true
		if usage < limit {
			ev.SecondsToLimit = float64(limit-usage) / ev.GrowthRate
		}
	}
	switch {
	case !w.high && ev.Share >= share:
		w.high, ev.First = true, true
	case !w.high:
		return MemoryEvent{}, false
	case ev.Share < recoverAt(share):
		w.high = false
		ev.Kind = MemoryRecovered
		return ev, true
	case ev.HasSecondsToLimit && (!w.hasLastETA || ev.SecondsToLimit <= w.lastETA/2):
		// Worse: the limit is now twice as near, or it is nearing where it was not.
	case now.Sub(w.lastAt) >= memRepeat:
	default:
		return MemoryEvent{}, false
	}
	ev.Kind = MemoryHigh
	w.lastAt, w.lastETA, w.hasLastETA = now, ev.SecondsToLimit, ev.HasSecondsToLimit
	return ev, true
}

// growthRate is the least-squares slope of the ring's points, in bytes per second: one
// sample's jump (a burst between two reads) moves it less than a difference of the ends would.
func (w *memWatch) growthRate() (float64, bool) {
	if w.n < 2 {
		return 0, false
	}
	first := (w.next - w.n + memRing) % memRing
	t0 := w.ring[first].at
	var st, su float64
	for i := range w.n {
		p := &w.ring[(first+i)%memRing]
		st += p.at.Sub(t0).Seconds()
		su += float64(p.usage)
	}
	n := float64(w.n)
	mt, mu := st/n, su/n
	var num, den float64
	for i := range w.n {
		p := &w.ring[(first+i)%memRing]
		dt := p.at.Sub(t0).Seconds() - mt
		num += dt * (float64(p.usage) - mu)
		den += dt * dt
	}
	if den <= 0 {
		return 0, false
	}
	return num / den, true
}

// watchMemory runs the memory warning on a task's sample: the decision, the interval, the
// log. The event rides on the sample. The caller holds t.mu.
func (m *Monitor) watchMemory(t *task, s *Sample) {
	if s.Final || s.Pending {
		return // the task's sampling ends here: its usage report tells the rest
	}
	if t.memBind.rebound(t) {
		t.mem = nil
	}
	p := &t.spec.Profile
	var limit uint64
	if s.Got&process.FieldMemory != 0 {
		limit = p.MemoryLimit
		if limit == 0 {
			limit = m.cgroupLimit(t)
		}
	}
	watching := limit > 0 && p.MemoryWarning > 0
	w := t.mem
	if w == nil {
		if !watching {
			return // no episode to end, no growth to follow
		}
		w = &memWatch{}
		t.mem = w
	}
	ev, ok := w.observe(s.Time, s.RSS, limit, p.MemoryWarning)
	was := w.fast
	iv := m.sampleInterval(t)
	if w.fast != was {
		// From the next sample on: this one's run is what the scheduler times it from.
		m.sched.SetInterval(sampleJob{m, t}, iv)
	}
	if !watching && !w.high {
		t.mem = nil // the limit went away: observe started the state over, and it holds nothing
	}
	if !ok {
		return
	}
	s.Memory = &ev
	m.logMemory(t, &ev, iv)
}

// rebound starts the state afresh when the task was bound to another process or cgroup since
// its last sample: what the old one used says nothing of the new one, and activate scheduled
// the new one on its profile's interval. A cgroup task is its cgroup, whatever becomes of the
// process that identified it (readCgroup lets that go and goes on measuring the cgroup).
//
// It reports whether the task was bound again: its memWatch is then dropped.
func (b *memBinding) rebound(t *task) bool {
	var id process.ID
	if t.root != nil && t.cg == nil {
		id = t.root.h.ID()
	}
	if b.bound && id == b.boundID && t.cg == b.boundCg {
		return false
	}
	*b = memBinding{bound: true, boundID: id, boundCg: t.cg, cgLimit: t.cgLimit, limitAt: t.samples}
	return true
}

// sampleInterval is the interval a task is sampled at: its memory_warning_interval while its
// memory is high (when that is shorter), else its profile's interval. It records which of the
// two it returned, so watchMemory tells the scheduler only of a change. The caller holds t.mu.
func (m *Monitor) sampleInterval(t *task) time.Duration {
	p := &t.spec.Profile
	if t.mem == nil {
		return p.Interval
	}
	t.mem.fast = t.mem.high && p.MemoryWarningInterval >= profile.MinInterval && p.MemoryWarningInterval < p.Interval
	if t.mem.fast {
		return p.MemoryWarningInterval
	}
	return p.Interval
}

// cgroupLimit is the memory limit of the task's cgroup, 0 when none (or when it is not below
// the machine's memory, where it limits nothing). A cgroup task's memory.max is read with every
// sample, through its kept-open file (readCgroup keeps t.cgLimit). A process task's was read
// when it was bound (bind) and is read again only every memLimitEvery samples: a read opens,
// reads and closes a file per level of the cgroup hierarchy, where a sample reads only
// kept-open files, and a limit changes seldom (an operator, a runtime's update). A read that
// fails keeps the last limit read, and is counted and logged when it starts failing.
func (m *Monitor) cgroupLimit(t *task) uint64 {
	w := &t.memBind
	if t.cg != nil {
		return t.cgLimit
	}
	if t.memcg.Dir == "" || t.samples-w.limitAt < memLimitEvery {
		return w.cgLimit
	}
	w.limitAt = t.samples
	limit, limited, err := t.memcg.Limit()
	if err != nil {
		if !w.limitFailed {
			w.limitFailed = true
			t.errors++
			m.tel.SampleError(KindTask)
			cause := "its files cannot be read"
			if errors.Is(err, process.ErrGone) {
				cause = "the cgroup is gone (the process moved to another one?)"
			}
			m.log.Warn("Cannot read a task's memory limit again: "+cause+"; its memory warning keeps the limit read before",
				zap.String("task_id", t.spec.ID), zap.String("cgroup", t.memcg.Dir), zap.Uint64("limit", w.cgLimit), zap.Error(err))
		}
		return w.cgLimit
	}
	w.limitFailed = false
	w.cgLimit = 0
	if total := m.src.MemTotal(); limited && limit > 0 && (total == 0 || limit < total) {
		w.cgLimit = limit
	}
	return w.cgLimit
}

// logMemory logs an event: the crossing at warn, once per episode; the reminders at debug; the
// recovery at info.
func (m *Monitor) logMemory(t *task, ev *MemoryEvent, interval time.Duration) {
	fields := []zap.Field{
		zap.String("task_id", t.spec.ID), zap.Uint64("usage", ev.Usage), zap.Uint64("limit", ev.Limit),
		zap.String("share", percent(ev.Share)),
	}
	switch {
	case ev.Kind == MemoryRecovered:
		m.log.Info("Task memory back below its warning share: sampled on its interval again", append(fields, zap.Duration("interval", t.spec.Profile.Interval))...)
	case ev.First:
		toLimit := zap.String("time_to_limit", "unknown: its memory is not growing")
		if ev.HasSecondsToLimit {
			toLimit = zap.Duration("time_to_limit", time.Duration(ev.SecondsToLimit*float64(time.Second)).Round(time.Millisecond))
		}
		m.log.Warn("Task memory near its limit: the kernel kills it at the limit (raise the limit or lower its use); sampled more often until it falls back",
			append(fields, toLimit, zap.Float64("growth_bytes_per_second", ev.GrowthRate), zap.Duration("interval", interval))...)
	default:
		m.log.Debug("Task memory still near its limit", append(fields, zap.Float64("seconds_to_limit", ev.SecondsToLimit))...)
	}
}

// percent writes a share as a percentage with one decimal.
func percent(share float64) string {
	return strconv.FormatFloat(share*100, 'f', 1, 64) + "%"
}
