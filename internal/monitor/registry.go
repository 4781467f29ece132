package monitor

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

// The registry of tasks: what the three doors (the configuration, the task API, the control
// plane) call, and the caps on what they may register.

// AddTask registers an admitted task at run time. Its process is looked for on every
// discovery pass until it appears, or until PendingTimeout. Past MaxTasks registered tasks, or
// MaxPendingTasks pending ones, it fails with an error wrapping ErrTooManyTasks or
// ErrTooManyPending; the caller counts and logs the refusal.
func (m *Monitor) AddTask(spec admission.Spec) error {
	if err := m.register(spec, originAPI); err != nil {
		return err
	}
	m.sched.Trigger(discoveryJob{m})
	return nil
}

// Collect samples a task now, outside its cadence. It reports whether the task is sampled.
func (m *Monitor) Collect(id string) bool {
	t, ok := m.lookup(id)
	return ok && m.sched.Trigger(sampleJob{m, t})
}

// Tasks returns a snapshot of every registered task, sorted by id.
func (m *Monitor) Tasks() []Status {
	m.mu.Lock()
	ts := make([]*task, 0, len(m.tasks))
	for _, t := range m.tasks {
		ts = append(ts, t)
	}
	m.mu.Unlock()
	out := make([]Status, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.status())
	}
	slices.SortFunc(out, func(a, b Status) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// register adds a task of the configuration or the task API to the registry, within the caps.
func (m *Monitor) register(spec admission.Spec, o origin) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tasks[spec.ID]; ok {
		return fmt.Errorf("task %s is %w", admission.Quote(spec.ID), admission.ErrDuplicate)
	}
	state := StatePending
	if spec.Locator.InProcess {
		state = StateInProcess
	}
	if n := len(m.tasks); n >= m.cfg.MaxTasks {
		return fmt.Errorf("task %s refused: %w: %d are registered, the most max_tasks (%d) allows", admission.Quote(spec.ID), ErrTooManyTasks, n, m.cfg.MaxTasks)
	}
	if n := m.pending.Load(); state == StatePending && n >= int64(m.cfg.MaxPendingTasks) {
		return fmt.Errorf("task %s refused: %w: %d are waiting for their process, the most max_pending_tasks (%d) allows", admission.Quote(spec.ID), ErrTooManyPending, n, m.cfg.MaxPendingTasks)
	}
	m.addLocked(&task{spec: spec, origin: o, state: state})
	return nil
}

// unregister removes a task from the registry, if it is still there. The caller holds t.mu
// (not m.mu).
func (m *Monitor) unregister(t *task) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !t.registered || m.tasks[t.spec.ID] != t {
		return
	}
	delete(m.tasks, t.spec.ID)
	t.registered = false
	m.tel.TaskState(t.state, "")
}

// addLocked adds a task to the registry. The caller holds m.mu and has checked the caps.
func (m *Monitor) addLocked(t *task) {
	if t.state == StatePending {
		m.pending.Add(1)
		t.pendingSince = time.Now()
	}
	m.tasks[t.spec.ID] = t
	t.registered = true
	m.tel.TaskState("", t.state)
}

// lookup returns a registered task.
func (m *Monitor) lookup(id string) (*task, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tasks[id]
	return t, ok
}

// Task returns the status of one task.
func (m *Monitor) Task(id string) (Status, bool) {
	t, ok := m.lookup(id)
	if !ok {
		return Status{}, false
	}
	return t.status(), true
}

// CollectAll samples every sampled task now, outside its cadence. It returns how many.
func (m *Monitor) CollectAll() int {
	m.mu.Lock()
	ids := make([]string, 0, len(m.tasks))
	for id := range m.tasks {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	n := 0
	for _, id := range ids {
		if m.Collect(id) {
			n++
		}
	}
	return n
}

// SetProfile changes a task's monitoring profile. It takes effect on the task's next sample:
// the interval moves to one new interval after the previous sample, files of newly enabled
// metrics are opened then, and a profile with enabled: false stops sampling (and true starts
// it again). It reports whether the task exists.
func (m *Monitor) SetProfile(id, name string, p profile.Profile) bool {
	t, ok := m.lookup(id)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.registered {
		return false // stopped between the lookup and the lock
	}
	t.spec.ProfileName, t.spec.Profile = name, p
	key := sampleJob{m, t}
	switch {
	case t.state == StateActive && !p.Enabled:
		m.sched.Remove(key)
		m.setState(t, StateDisabled)
	case t.state == StateDisabled && p.Enabled:
		m.setState(t, StateActive)
		iv := m.sampleInterval(t) // the memory warning's, while the task's memory is high
		m.sched.Add(key, iv, iv)
	case t.state == StateActive:
		m.sched.SetInterval(key, m.sampleInterval(t))
	}
	return true
}

// StopTask ends a task's monitoring after a last sample, marked final, when its process can
// still be read, and removes it from the registry. It reports whether it stopped a task: of
// concurrent stops of one task, one reports true (the task API answers 204 from EndTask's,
// the others 404).
func (m *Monitor) StopTask(ctx context.Context, id string) bool {
	stopped, _ := m.stop(ctx, id, nil)
	return stopped
}

// EndTask is StopTask for a door (the task API, the control plane): it stops task id only
// when door may end it (admission.MayEnd), and otherwise returns an *admission.OwnerError and
// leaves the task running. The origin is checked under the task's lock, on the task it then
// stops: a door that looked first and stopped after could end a task another door registered
// under the same id in between.
func (m *Monitor) EndTask(ctx context.Context, id string, door admission.Origin) (bool, error) {
	return m.stop(ctx, id, func(t *task) error { return admission.CheckEnd(door, id, t.spec.Origin) })
}

// stop stops task id when allowed says nil (nil allows every task).
func (m *Monitor) stop(ctx context.Context, id string, allowed func(*task) error) (bool, error) {
	t, ok := m.lookup(id)
	if !ok {
		return false, nil
	}
	t.mu.Lock()
	if !t.registered {
		// Stopped, expired or ended between the lookup and the lock: not this call's.
		t.mu.Unlock()
		return false, nil
	}
	if allowed != nil {
		if err := allowed(t); err != nil {
			t.mu.Unlock()
			return false, err
		}
	}
	var last Sample
	var emit bool
	if (t.state == StateActive || t.state == StateDisabled) && m.ev.active() && t.root != nil && t.cg == nil {
		// The process is usually ended by whoever asked for the stop: its exit record gives
		// the final sample and the report, or a last reading after stopGrace.
		m.sched.Remove(sampleJob{m, t})
		m.setState(t, StateStopped)
		m.unregister(t)
		t.stopping = true
		m.mu.Lock()
		m.stopping[t] = true
		m.mu.Unlock()
		m.scheduleEnd(t, t.root.h.ID(), m.hooks.stopGrace)
		t.mu.Unlock()
		return true, nil
	}
	if t.state == StateActive || t.state == StateDisabled {
		bp := m.buf()
		last, emit = m.read(t, *bp)
		m.putBuf(bp)
		if emit && last.Usage == nil {
			m.endFromReading(t, &last, nil, last.Time)
		}
		last.Final = true
	}
	m.sched.Remove(sampleJob{m, t})
	t.closeHandles()
	m.setState(t, StateStopped)
	m.unregister(t)
	t.mu.Unlock()
	if emit {
		m.emit(ctx, last)
	}
	return true, nil
}
