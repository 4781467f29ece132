package monitor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// EventsMode says how the monitor learns of processes starting and ending.
type EventsMode string

// Events modes.
const (
	// EventsAuto listens to the kernel's process events when the collector may (Linux, root or
	// CAP_NET_ADMIN, the initial PID namespace) and scans /proc otherwise, saying which at start.
	EventsAuto EventsMode = "auto"
	// EventsOn requires the kernel's process events: the monitor does not start without them.
	EventsOn EventsMode = "events"
	// EventsOff scans /proc only.
	EventsOff EventsMode = "scan"
)

// EventSource is the kernel's process events and exit accounting. The monitor tells it which
// processes to account for; it calls back processForked, processExec, processExited and
// eventsLost.
type EventSource interface {
	Watch(pid int)
	Unwatch(pid int)
	Close() error
}

// openEvents opens the kernel's process events for m and starts delivering them until ctx
// ends. Tests replace it.
var openEvents = openKernelEvents

// How the monitor waits for the kernel's exit record of a task whose process it found ended
// (a zombie, or gone) before the record arrived, and how long a stopped task's process has to
// end before its report is made from a last reading. Variables so tests can shorten them.
var (
	exitGrace = 2 * time.Second
	stopGrace = 5 * time.Second
)

// childGrace is how long a process tree task's end waits for the exit records of descendants
// still watched when its own process's record arrives.
var childGrace = 200 * time.Millisecond

// reconcileEvery is how often a discovery pass scans the whole process table when process
// events keep the table current: it repairs anything the events missed.
var reconcileEvery = 30 * time.Second

// maxQueued bounds the processes queued for the discovery table between two passes; past it
// the next pass scans instead.
const maxQueued = 65536

// events is the monitor's side of the kernel's process events. Its mutex guards owners,
// queue, stale, and every task's rootExit, childExits and watched fields; it is never held
// while a task's lock is taken.
type events struct {
	src EventSource // nil: scanning only
	on  atomic.Bool // src delivers: set when it opens, cleared if it fails at run time

	mu     sync.Mutex
	owners map[int32]owner // watched processes and the task they belong to
	queue  []int32         // processes forked or exec'd since the last discovery pass
	stale  bool            // events were missed: the next pass scans the process table
	// wanted says a discovery pass needs to hear of new processes: a task is pending, a
	// discovery rule is configured, a process tree is followed, or the proplet is not found.
	wanted atomic.Bool
	lost   atomic.Uint64 // overflows reported by the source
}

type owner struct {
	t    *task
	id   process.ID // the task's own process, when root
	root bool       // the task's own process; otherwise one of its descendants
}

func (e *events) active() bool { return e.on.Load() }

// startEvents opens the kernel's process events as the mode asks: EventsOn fails without
// them, EventsAuto falls back to scanning with one log line.
func (m *Monitor) startEvents(ctx context.Context) error {
	m.ev.owners = map[int32]owner{}
	mode := m.cfg.Events
	if mode == "" {
		mode = EventsAuto
	}
	if mode == EventsOff {
		m.log.Info("Process events off: processes are found by scanning /proc", zap.String("process_events", string(mode)))
		return nil
	}
	src, err := openEvents(ctx, m)
	if err != nil {
		if mode == EventsOn {
			return fmt.Errorf("process_events: events: %w", err)
		}
		m.log.Info("Kernel process events unavailable: processes are found by scanning /proc, and the end-of-task totals come from the last sample",
			zap.String("process_events", string(mode)), zap.Error(err))
		return nil
	}
	m.ev.src = src
	m.ev.on.Store(true)
	m.log.Info("Kernel process events on: processes are bound at exec and accounted exactly at exit", zap.String("process_events", string(mode)))
	return nil
}

func (m *Monitor) stopEvents() error {
	if m.ev.src == nil {
		return nil
	}
	m.ev.on.Store(false)
	return m.ev.src.Close()
}

// EventsLost reports how many times the kernel's process events overflowed.
func (m *Monitor) EventsLost() uint64 { return m.ev.lost.Load() }

// EventsActive reports whether the monitor listens to the kernel's process events.
func (m *Monitor) EventsActive() bool { return m.ev.active() }

// watch asks for the exit record of a task's process (root) or of one of its descendants.
func (m *Monitor) watch(t *task, id process.ID, root bool) {
	if !m.ev.active() {
		return
	}
	pid := id.PID
	m.ev.mu.Lock()
	m.ev.owners[pid] = owner{t: t, id: id, root: root}
	if t.watched == nil {
		t.watched = map[int32]bool{}
	}
	t.watched[pid] = true
	m.ev.src.Watch(int(pid))
	m.ev.mu.Unlock()
}

// unwatchAll stops accounting for a task's processes and forgets records that arrived for it.
func (m *Monitor) unwatchAll(t *task) {
	if m.ev.src == nil {
		return
	}
	m.ev.mu.Lock()
	for pid := range t.watched {
		if o, ok := m.ev.owners[pid]; ok && o.t == t {
			delete(m.ev.owners, pid)
			m.ev.src.Unwatch(int(pid))
		}
	}
	t.watched, t.rootExit, t.childExits = nil, nil, nil
	m.ev.mu.Unlock()
}

// processForked is a new process: a descendant of a process tree task is accounted from its
// first moment; any process is queued for the discovery table.
func (m *Monitor) processForked(parent, child int32) {
	m.ev.mu.Lock()
	if o, ok := m.ev.owners[parent]; ok && o.t.spec.IncludeChildren {
		m.ev.owners[child] = owner{t: o.t, id: process.ID{PID: child}}
		o.t.watched[child] = true
		m.ev.src.Watch(int(child))
	}
	m.ev.noteLocked(child)
	m.ev.mu.Unlock()
}

// processExec is a process that called exec: what a pending task's match rule or a discovery
// rule waits for. The discovery pass runs at once when something waits.
func (m *Monitor) processExec(pid int32) {
	m.ev.mu.Lock()
	m.ev.noteLocked(pid)
	m.ev.mu.Unlock()
	if m.ev.wanted.Load() {
		m.sched.After(execJob{m}, 0)
	}
}

// processExited is the kernel's exit record of a watched process: a task's own process ends
// the task, a descendant's adds to its totals.
func (m *Monitor) processExited(x ProcessExit) {
	m.ev.mu.Lock()
	o, ok := m.ev.owners[x.PID]
	if ok && !x.of(o.id) {
		ok = false // a record of an earlier process with this pid, missed until now
	}
	var children bool
	if ok {
		delete(m.ev.owners, x.PID)
		delete(o.t.watched, x.PID)
		if o.root {
			o.t.rootExit = &x
		} else {
			o.t.childExits = append(o.t.childExits, x)
		}
		children = len(o.t.watched) > 0
	}
	m.ev.mu.Unlock()
	if ok && o.root {
		// A descendant that ended just before the task's own process may still be on its
		// way: the kernel sends a multi-threaded process's record once its last thread is
		// accounted, which can be after a single-threaded parent's.
		delay := time.Duration(0)
		if children {
			delay = childGrace
		}
		m.scheduleEnd(o.t, o.id, delay)
	}
}

// eventsFailed is the events source failing at run time: from now on the monitor scans, and
// tasks waiting for an exit record end from their last reading when their grace runs out.
func (m *Monitor) eventsFailed(err error) {
	m.ev.on.Store(false)
	m.ev.mu.Lock()
	m.ev.stale = true
	m.ev.mu.Unlock()
	m.log.Warn("Kernel process events stopped: processes are found by scanning /proc from now on", zap.Error(err))
	m.sched.Trigger(discoveryJob{m})
}

// eventsLost is an overflow of the kernel's events: the next discovery pass scans, and no
// task bound before it reports exact totals.
func (m *Monitor) eventsLost() {
	m.ev.lost.Add(1)
	m.tel.EventsLost()
	m.ev.mu.Lock()
	m.ev.stale = true
	m.ev.mu.Unlock()
	m.sched.Trigger(discoveryJob{m})
}

// noteLocked queues a process for the discovery table. The caller holds e.mu.
func (e *events) noteLocked(pid int32) {
	if !e.wanted.Load() || len(e.queue) >= maxQueued {
		e.stale = true
		return
	}
	e.queue = append(e.queue, pid)
}

// drain takes the queued processes, and whether the table must be rebuilt by a scan instead.
func (e *events) drain(into []int32) ([]int32, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	into = append(into[:0], e.queue...)
	e.queue = e.queue[:0]
	stale := e.stale
	e.stale = false
	return into, stale
}
