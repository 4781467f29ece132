package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// The monitor's discovery pass and exec job: which tasks look for a process, and binding what
// discovery (discovery.go) finds for them. Discovery rules, which create tasks, are in
// rules.go.

// passState is what the discovery pass keeps about tasks from pass to pass. discovery.mu
// guards it: the pass holds it throughout.
type passState struct {
	n uint64 // the number of this pass
	// cut says the previous pass ran out of time before it looked for every pending task:
	// this pass looks first for those looked for least recently.
	cut bool
	// Reused from pass to pass.
	tasks   []*task // the registry when the pass began
	pending []*task // the pending tasks among them
	trees   []*task // the bound tasks with include_children

	cappedLogged     time.Time // when a rule's match past max_tasks was last logged
	cappedSuppressed int       // such refusals not logged since
}

// discoveryJob is the discovery pass, every discovery interval and when a task is added.
type discoveryJob struct{ m *Monitor }

func (j discoveryJob) Run(ctx context.Context) { j.m.discover(ctx) }

// execJob is the exec job, run once after each exec while something waits for a process
// (several execs before it runs make one run).
type execJob struct{ m *Monitor }

func (j execJob) Run(ctx context.Context) { j.m.discoverExec(ctx) }

// discover is one discovery pass: expire pending tasks past PendingTimeout, notice exits of
// tasks sampled less often than discovery runs whose exit the kernel does not report (so their
// last sample is taken while the process can still be read), refresh the members of process-tree tasks, look for the
// processes of pending tasks, create tasks from rules, and find the proplet.
//
// Its cost does not multiply: pid files and the processes a nested parent rule matches are
// read once per pass, and a rule with a fixed parent looks at that parent's children only.
// Looking for pending tasks stops when the pass has worked for half the discovery interval;
// the next pass starts with the tasks this one did not reach. A task's lock is held only to
// read or change the task, never while a user-named file is read, so a slow input never holds
// up Tasks or Task (the API's GET /tasks and /health).
func (m *Monitor) discover(ctx context.Context) {
	d := m.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	start := time.Now()
	d.begin()
	p := &m.pass
	p.n++
	p.tasks, p.pending, p.trees = p.tasks[:0], p.pending[:0], p.trees[:0]
	m.mu.Lock()
	for _, t := range m.tasks {
		p.tasks = append(p.tasks, t)
	}
	m.mu.Unlock()

	needScan := len(m.cfg.Rules) > 0 || m.proplet.wanted()
	var expired []string
	for _, t := range p.tasks {
		if !t.mu.TryLock() {
			continue // being sampled (so not pending), or stopped; look again next pass
		}
		switch t.state {
		case StatePending:
			if m.cfg.PendingTimeout > 0 && t.origin == originAPI && start.Sub(t.pendingSince) >= m.cfg.PendingTimeout {
				m.expire(t)
				expired = append(expired, t.spec.ID)
				break
			}
			p.pending = append(p.pending, t)
			needScan = needScan || t.spec.Locator.Match != nil
		case StateActive, StateDisabled:
			m.checkExit(t)
		}
		if t.root != nil {
			d.bound[t.rootID] = true
			for _, mb := range t.members {
				d.bound[mb.h.ID()] = true
			}
			if t.spec.IncludeChildren {
				p.trees = append(p.trees, t)
				needScan = true
			}
		}
		t.mu.Unlock()
	}
	m.logExpired(expired)
	m.ev.wanted.Store(needScan)
	if needScan {
		d.refresh(start, &m.ev, m.hooks.reconcileEvery)
		if d.scanErr != nil {
			m.log.Warn("Cannot list processes", zap.Error(d.scanErr))
		}
	}
	if d.scanned {
		for _, t := range p.trees {
			if t.mu.TryLock() {
				if t.root != nil && (t.state == StateActive || t.state == StateDisabled) {
					m.refreshMembers(t, d.bound)
				}
				t.mu.Unlock()
			}
		}
	}

	if p.cut {
		slices.SortStableFunc(p.pending, func(a, b *task) int { return cmp.Compare(a.tried, b.tried) })
	}
	p.cut = false
	deadline := start.Add(m.passBudget)
	for i, t := range p.pending {
		if i > 0 && time.Now().After(deadline) {
			p.cut = true
			m.log.Debug("Discovery pass out of time; the next pass looks for the others first",
				zap.Int("looked_for", i), zap.Int("pending", len(p.pending)), zap.Duration("budget", m.passBudget))
			break
		}
		t.tried = p.n
		m.findProcess(t)
	}

	if len(m.cfg.Rules) > 0 && d.scanned {
		m.applyRulesInStartOrder(d)
	}
	if m.ev.active() {
		d.indexPending(p.pending)
	}
	d.own.pending = d.own.pending[:0]
	for _, t := range p.pending {
		if r := t.spec.Locator.Match; r != nil {
			d.own.pending = append(d.own.pending, r)
		}
	}
	m.proplet.locate(d)
	m.notFound(ctx, p.pending, time.Now())
}

// notFound makes the tasks still pending visible: a lookup sample on each task's interval (the
// receiver's propeller.task.lookup 0), and one info line once a task has been pending for
// hooks.notFoundAfter, saying what it looks for, repeated every hooks.notFoundEvery.
func (m *Monitor) notFound(ctx context.Context, pending []*task, now time.Time) {
	for _, t := range pending {
		if !t.mu.TryLock() {
			continue
		}
		if t.state != StatePending || !t.spec.Profile.Enabled {
			t.mu.Unlock()
			continue
		}
		var lookup Sample
		due := now.Sub(t.lookupSent) >= t.spec.Profile.Interval
		if due {
			t.lookupSent = now
			lookup = t.newSample(now)
			lookup.Pending = true
		}
		since := now.Sub(t.pendingSince)
		logIt := since >= m.hooks.notFoundAfter && (t.notFoundLogged.IsZero() || now.Sub(t.notFoundLogged) >= m.hooks.notFoundEvery)
		if logIt {
			t.notFoundLogged = now
		}
		spec := t.spec
		t.mu.Unlock()
		if logIt {
			// lookingFor may stat a pid file: never under the task's lock.
			m.log.Info("Task not found yet", zap.String("task_id", spec.ID), zap.Duration("pending_for", since.Round(time.Second)),
				zap.String("looking_for", lookingFor(spec)))
		}
		if due {
			m.emit(ctx, lookup)
		}
	}
}

// lookingFor says what a pending task waits for, for the log: the pid, the pid file (and
// whether it exists), the rule with its parent restriction, the cgroup.
func lookingFor(spec admission.Spec) string {
	l := spec.Locator
	var what string
	switch {
	case l.PID != 0:
		what = fmt.Sprintf("process %d", l.PID)
	case l.PIDFile != "":
		what = "the process whose pid is in " + l.PIDFile
		if _, err := os.Stat(l.PIDFile); err != nil {
			what += " (" + err.Error() + ")"
		}
	case l.Match != nil:
		what = "a process matching " + l.Match.Spec().String()
	}
	if spec.Cgroup != "" {
		if what != "" {
			what += ", in "
		}
		what += "cgroup " + spec.Cgroup
	}
	return what
}

// expire removes a task that has been pending for PendingTimeout. The caller holds t.mu.
func (m *Monitor) expire(t *task) {
	t.closeHandles()
	m.setState(t, StateStopped)
	m.unregister(t)
	m.tel.Refused("pending_expired")
}

// logExpired logs the tasks one pass expired, in one line.
func (m *Monitor) logExpired(ids []string) {
	if len(ids) == 0 {
		return
	}
	m.log.Info("Pending tasks removed: their process was not found within pending_timeout",
		zap.Int("tasks", len(ids)), zap.Duration("pending_timeout", m.cfg.PendingTimeout), zap.Strings("task_ids", ids[:min(len(ids), 5)]))
}

// findProcess looks for a pending task's process (or cgroup) and binds it. The lookup (pid
// files, the process table) runs without the task's lock; only binding takes it.
func (m *Monitor) findProcess(t *task) {
	// The locator and the cgroup never change once a task is registered.
	loc, cgroup := t.spec.Locator, t.spec.Cgroup
	var e process.Entry
	if !loc.IsZero() {
		var ok bool
		if e, ok = m.disc.resolve(loc, m.disc.bound, t.seeker()); !ok {
			return // not there yet: keep looking
		}
	} else if cgroup == "" {
		return
	}
	m.bindFound(t, e)
}

// bindFound binds a pending task to the process (or the cgroup) found for it, and reports
// whether it did. The caller holds disc.mu, not t.mu.
func (m *Monitor) bindFound(t *task, e process.Entry) bool {
	if !t.mu.TryLock() {
		return false
	}
	defer t.mu.Unlock()
	if t.state != StatePending {
		return false // stopped, or bound, meanwhile
	}
	if t.spec.Cgroup != "" {
		m.bindCgroup(t, e, !t.spec.Locator.IsZero())
	} else if err := m.bind(t, e, m.disc.buf); err != nil {
		if !errors.Is(err, process.ErrGone) {
			m.bindFailed(t, e.ID.PID, err)
		} else if m.ev.active() {
			// Events name new processes, not every ended one: forget it and look again.
			m.disc.forget(e)
			m.sched.Trigger(discoveryJob{m})
		}
		return false
	}
	if t.root != nil {
		m.disc.bound[t.root.h.ID()] = true // read under t.mu: a stop may close it right after
		if t.spec.IncludeChildren && m.disc.scanned {
			m.refreshMembers(t, m.disc.bound)
		}
	}
	return t.state != StatePending
}

// bindFailed reports a task whose process exists but cannot be opened. It warns once per task:
// running out of file descriptors (each task keeps three open) is a configuration problem the
// user must see, not a debug line.
func (m *Monitor) bindFailed(t *task, pid int32, err error) {
	t.errors++
	m.tel.SampleError(KindTask)
	if t.warnedBind {
		return
	}
	t.warnedBind = true
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		m.log.Warn("Cannot open the task's /proc files: out of file descriptors. Each sampled task keeps three open; raise the collector's RLIMIT_NOFILE (systemd: LimitNOFILE=)",
			zap.String("task_id", t.spec.ID), zap.Int32("pid", pid), zap.Error(err))
		return
	}
	m.log.Warn("Cannot open the task's process; retrying on every discovery pass", zap.String("task_id", t.spec.ID), zap.Int32("pid", pid), zap.Error(err))
}

// discoverExec is the exec job: with process events, it looks at the processes forked or
// exec'd since the last pass only, for pending tasks' match rules and for discovery rules, so
// a task is bound within milliseconds of its exec and the cost follows the exec rate, not the
// number of processes on the host. Everything else (pid files, exits, trees, expiry) is the
// discovery pass's.
func (m *Monitor) discoverExec(context.Context) {
	d := m.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	if !m.ev.active() || d.lastScan.IsZero() {
		return // no table to keep current: the discovery pass scans
	}
	var stale bool
	d.fresh, stale = m.ev.drain(d.fresh)
	if stale {
		m.ev.mu.Lock()
		m.ev.stale = true // the discovery pass rescans
		m.ev.mu.Unlock()
		m.sched.Trigger(discoveryJob{m})
		return
	}
	d.execs = d.execs[:0]
	d.applyFresh(&d.execs)
	if len(d.execs) == 0 {
		return
	}
	// Which of the new processes a task already has: a lookup each, not a walk of every
	// process watched.
	clear(d.bound)
	m.ev.mu.Lock()
	for _, e := range d.execs {
		if m.ev.ownedLocked(e.ID) {
			d.bound[e.ID] = true
		}
	}
	m.ev.mu.Unlock()

	d.execCandidates(d.execs, d.bound, m.bindFound)
	if len(m.cfg.Rules) > 0 {
		m.applyRules(d.execs, d.bound)
	}
}

// checkExit reads a bound task's state cheaply (stat only) and, when its process has exited,
// samples it now: a zombie can still be read once. Tasks whose exit the kernel reports are not
// read (exitReported).
func (m *Monitor) checkExit(t *task) {
	if t.root == nil {
		return
	}
	if t.state == StateActive && t.spec.Profile.Interval <= m.cfg.DiscoveryInterval {
		return // sampled at least as often as this check would run
	}
	if m.exitReported(t) {
		return
	}
	var r process.Reading
	// Memory comes from the same stat file: the peak a usage report gives without the
	// kernel's accounting is at least as fine as this check.
	err := t.root.h.Read(process.FieldMemory, &r, m.disc.buf)
	if err == nil && !r.Exited() {
		t.peak = max(t.peak, r.RSS)
	}
	if !goneOrExited(err, &r) {
		return
	}
	if t.state == StateDisabled {
		if !m.awaitRecord(t) {
			m.finish(t)
		}
		return
	}
	// The task's sample job takes the final sample and the usage report.
	m.sched.Trigger(sampleJob{m, t})
}

// exitReported reports whether the kernel reports the end of t's process: process events are
// on, and none was lost since t was bound, so its exit record ends it (with the kernel's peak),
// and the discovery pass need not read its stat. At 10,000 tasks on 10 s that read was 10,000
// preads a second, more than the samples themselves. A cgroup task ends by its cgroup. The
// caller holds t.mu.
func (m *Monitor) exitReported(t *task) bool {
	return m.ev.active() && t.cg == nil && t.lostAt == m.ev.lost.Load()
}

// refreshMembers makes a process-tree task's members the current descendants of its root.
func (m *Monitor) refreshMembers(t *task, bound map[process.ID]bool) {
	if t.members == nil {
		t.members = map[int32]*member{}
	}
	seen := map[int32]bool{}
	fields := fieldsOf(t.spec.Profile)
	m.disc.descendants(t.root.h.ID().PID, func(e process.Entry) {
		pid := e.ID.PID
		seen[pid] = true
		if mb, ok := t.members[pid]; ok && mb.h.ID() == e.ID {
			bound[e.ID] = true
			return
		}
		h, err := m.src.Open(e.ID, fields, m.disc.buf)
		if err != nil {
			return
		}
		mb := &member{h: h, whole: m.src.StartTime(e.ID).After(t.prevTime)}
		if old, ok := t.members[pid]; ok {
			old.h.Close()
		}
		t.members[pid] = mb
		bound[e.ID] = true
		m.watch(t, e.ID, false)
		if !mb.whole {
			// Existed before this task saw it: its past is not this task's to report.
			if h.Read(fields, &mb.prev, m.disc.buf) == nil {
				m.threadGroupWaits(t, pid, &process.Reading{}, &mb.prev)
			}
		}
	})
	for pid, mb := range t.members {
		if !seen[pid] {
			mb.h.Close()
			delete(t.members, pid)
		}
	}
}
