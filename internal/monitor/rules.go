package monitor

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// Discovery rules: a process a rule matches with a task id becomes a task (origin
// discovered), bound at once, and leaves the registry when its process exits.

// applyRules creates and binds tasks for the given processes that match a discovery rule (the
// exec job's new processes).
func (m *Monitor) applyRules(entries []process.Entry, bound map[process.ID]bool) {
	for _, e := range entries {
		m.applyRule(e, bound)
	}
}

// ruleMatch is a process a discovery rule matched, waiting to be bound.
type ruleMatch struct {
	rule Rule
	caps procmatch.Captures
	e    process.Entry
}

// applyRulesInStartOrder creates and binds tasks for the scanned processes a discovery rule
// matches, in the order the processes started (the table is a map, in no order). The scheduler
// keeps that order in each round of samples, and processes started one after another have their
// kernel data side by side: a round reads them at less cost than scattered ones.
func (m *Monitor) applyRulesInStartOrder(d *discovery) {
	var found []ruleMatch // none on most passes: nothing allocated
	for _, e := range d.entries {
		if r, c, ok := d.ruleFor(e, m.cfg.Rules, d.bound); ok {
			found = append(found, ruleMatch{r, c, e})
		}
	}
	slices.SortFunc(found, func(a, b ruleMatch) int {
		return cmp.Or(cmp.Compare(a.e.ID.Start, b.e.ID.Start), cmp.Compare(a.e.ID.PID, b.e.ID.PID))
	})
	for _, f := range found {
		m.bindDiscovered(f.rule, f.caps, f.e)
	}
}

// applyRule creates and binds a task for e when a discovery rule matches it.
func (m *Monitor) applyRule(e process.Entry, bound map[process.ID]bool) {
	if r, c, ok := m.disc.ruleFor(e, m.cfg.Rules, bound); ok {
		m.bindDiscovered(r, c, e)
	}
}

// bindDiscovered registers (if new) and binds the task a rule found in e.
func (m *Monitor) bindDiscovered(r Rule, c procmatch.Captures, e process.Entry) {
	if err := errors.Join(admission.CheckID(c.TaskID), admission.CheckName(c.TaskName)); err != nil {
		m.refuseDiscovered(e, err)
		return
	}
	m.mu.Lock()
	t, exists := m.tasks[c.TaskID]
	if !exists {
		if len(m.tasks) >= m.cfg.MaxTasks {
			m.mu.Unlock()
			m.refuseCapped(e, c.TaskID)
			return
		}
		t = &task{
			spec: admission.Spec{
				ID: c.TaskID, Name: c.TaskName, ProfileName: r.ProfileName, Profile: r.Profile,
				IncludeChildren: r.IncludeChildren, Origin: admission.OriginDiscovery,
			},
			origin: originDiscovered,
			state:  StatePending,
		}
		m.addLocked(t)
	}
	m.mu.Unlock()
	if !t.mu.TryLock() {
		return
	}
	defer t.mu.Unlock()
	if t.state != StatePending {
		return
	}
	if t.spec.Name == "" {
		t.spec.Name = c.TaskName
	}
	if err := m.bind(t, e, m.disc.buf); err != nil {
		if errors.Is(err, process.ErrGone) && m.ev.active() {
			m.disc.forget(e)
		}
		if !exists {
			m.setState(t, StateStopped)
			m.unregister(t)
		}
		return
	}
	m.log.Info("Discovered task", zap.String("task_id", c.TaskID), zap.String("task_name", t.spec.Name), zap.Int32("pid", e.ID.PID), zap.Duration("interval", t.spec.Profile.Interval))
}

// refuseCapped reports a process a discovery rule matched while max_tasks tasks are
// registered. It is counted once per process and logged at most once a minute; the process is
// looked at again on every pass, so it becomes a task once there is room.
func (m *Monitor) refuseCapped(e process.Entry, id string) {
	d := m.disc
	if d.capped[e.ID] {
		return
	}
	d.capped[e.ID] = true
	m.tel.Refused("too_many_tasks")
	p := &m.pass
	if now := time.Now(); now.Sub(p.cappedLogged) >= time.Minute {
		m.log.Warn("Discovery rule matched a process, but max_tasks tasks are registered: no task created until there is room",
			zap.String("task_id", id), zap.Int32("pid", e.ID.PID), zap.Int("max_tasks", m.cfg.MaxTasks), zap.Int("not_logged_since_last", p.cappedSuppressed))
		p.cappedLogged, p.cappedSuppressed = now, 0
		return
	}
	p.cappedSuppressed++
}

// refuseDiscovered reports a process a discovery rule matched whose captured id or name cannot
// be a task's. It is counted and logged once: the process is remembered as matching no rule
// until it execs.
func (m *Monitor) refuseDiscovered(e process.Entry, err error) {
	m.tel.Refused("discovered_id")
	m.disc.misses[e.ID] = e.Comm
	m.log.Warn("Discovery rule matched a process whose task id or name is refused", zap.Int32("pid", e.ID.PID), zap.Error(err))
}
