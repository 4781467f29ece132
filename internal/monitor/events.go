package monitor

import (
	"context"
	"fmt"
	"slices"
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

// maxQueued bounds the processes queued for the discovery table between two passes; past it
// the next pass scans instead.
const maxQueued = 65536

// events is the monitor's side of the kernel's process events. Its mutex guards owners,
// queue, stale, and every task's rootExit, childExits and watched fields; it is never held
// while a task's lock is taken.
type events struct {
	src EventSource // nil: scanning only
	on  atomic.Bool // src delivers: set when it opens, cleared if it fails at run time

	mu sync.Mutex
	// owners are the watched processes and the tasks they belong to: usually one, more while
	// a stopped task that waits for its process's end and the task registered again under
	// its id both watch the same process. The source watches a pid while it has an owner.
	owners map[int32][]owner
	queue  []int32 // processes forked or exec'd since the last discovery pass
	stale  bool    // events were missed: the next pass scans the process table
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
	m.ev.owners = map[int32][]owner{}
	mode := m.cfg.Events
	if mode == "" {
		mode = EventsAuto
	}
	if mode == EventsOff {
		m.log.Info("Process events off: processes are found by scanning /proc", zap.String("process_events", string(mode)))
		return nil
	}
	src, err := m.hooks.openEvents(ctx, m)
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
	if root {
		t.delaysAtBind = m.delaySetting() // the caller holds t.mu, as bind does
	}
	m.ev.mu.Lock()
	m.ev.addOwnerLocked(owner{t: t, id: id, root: root})
	m.ev.mu.Unlock()
}

// addOwnerLocked makes o.t an owner of o.id's process, in place of what it owned under that
// pid before. The caller holds e.mu.
func (e *events) addOwnerLocked(o owner) {
	pid := o.id.PID
	// Watched again even when owned: an owner whose record was missed (a pid reused since)
	// says nothing of whether the source still watches this pid. Watch is idempotent.
	e.src.Watch(int(pid))
	list := e.owners[pid]
	list = slices.DeleteFunc(list, func(x owner) bool { return x.t == o.t })
	e.owners[pid] = append(list, o)
	if o.t.watched == nil {
		o.t.watched = map[int32]bool{}
	}
	o.t.watched[pid] = true
}

// dropOwnerLocked removes t from the owners of pid; the source stops watching a pid nobody
// owns. The caller holds e.mu.
func (e *events) dropOwnerLocked(pid int32, t *task) {
	list := slices.DeleteFunc(e.owners[pid], func(x owner) bool { return x.t == t })
	if len(list) > 0 {
		e.owners[pid] = list
		return
	}
	if _, ok := e.owners[pid]; ok {
		delete(e.owners, pid)
		e.src.Unwatch(int(pid))
	}
}

// ownedLocked reports whether a task watches process id. The caller holds e.mu.
func (e *events) ownedLocked(id process.ID) bool {
	for _, o := range e.owners[id.PID] {
		if o.id.Start == 0 || o.id == id {
			return true
		}
	}
	return false
}

// unwatchAll stops accounting for a task's processes and forgets records that arrived for it.
func (m *Monitor) unwatchAll(t *task) {
	if m.ev.src == nil {
		return
	}
	m.ev.mu.Lock()
	for pid := range t.watched {
		m.ev.dropOwnerLocked(pid, t)
	}
	t.watched, t.rootExit, t.childExits = nil, nil, nil
	m.ev.mu.Unlock()
}

// processForked is a new process: a descendant of a process tree task is accounted from its
// first moment; any process is queued for the discovery table.
func (m *Monitor) processForked(parent, child int32) {
	m.ev.mu.Lock()
	for _, o := range m.ev.owners[parent] {
		if o.t.spec.IncludeChildren {
			m.ev.addOwnerLocked(owner{t: o.t, id: process.ID{PID: child}})
		}
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

// processExited is the kernel's exit record of a watched process, given to every task that
// watches it: a task's own process ends the task, a descendant's adds to its totals.
func (m *Monitor) processExited(x ProcessExit) {
	type end struct {
		t        *task
		id       process.ID
		children bool
	}
	var ends []end
	m.ev.mu.Lock()
	owners := m.ev.owners[x.PID]
	kept := owners[:0]
	for _, o := range owners {
		if !x.of(o.id) {
			kept = append(kept, o) // a record of an earlier process with this pid, missed until now
			continue
		}
		delete(o.t.watched, x.PID)
		if !o.root {
			o.t.childExits = append(o.t.childExits, x)
			continue
		}
		rec := x
		o.t.rootExit = &rec
		ends = append(ends, end{o.t, o.id, len(o.t.watched) > 0})
	}
	if len(kept) == 0 {
		delete(m.ev.owners, x.PID) // ended: the source watches it no more
	} else {
		m.ev.owners[x.PID] = kept
	}
	m.ev.mu.Unlock()
	for _, e := range ends {
		// A descendant that ended just before the task's own process may still be on its
		// way: the kernel sends a multi-threaded process's record once its last thread is
		// accounted, which can be after a single-threaded parent's.
		delay := time.Duration(0)
		if e.children {
			delay = m.hooks.childGrace
		}
		m.scheduleEnd(e.t, e.id, delay)
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
