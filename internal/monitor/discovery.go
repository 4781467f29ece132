package monitor

import (
	"errors"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// discovery is the state of the discovery pass: the last scan of the process table and what
// is known about its processes. Only the discovery job touches it.
type discovery struct {
	entries  map[int32]process.Entry
	children map[int32][]int32
	details  map[process.ID]cachedDetails
	misses   map[process.ID]string // processes no rule matched, with the command name then
	capped   map[process.ID]bool   // processes a rule matched while max_tasks was reached
	scanned  bool
	buf      []byte

	cappedLogged     time.Time // when a rule's match past max_tasks was last logged
	cappedSuppressed int       // such refusals not logged since
}

type cachedDetails struct {
	comm    string
	d       process.Details
	ok      bool
	env     []string
	envRead bool
	envOK   bool
}

func (d *discovery) init() {
	d.entries = map[int32]process.Entry{}
	d.children = map[int32][]int32{}
	d.details = map[process.ID]cachedDetails{}
	d.misses = map[process.ID]string{}
	d.capped = map[process.ID]bool{}
	d.buf = make([]byte, bufSize)
}

// discoveryTable gives matchers the scanned table, reading details once per process (and
// again after an exec, which changes the command name but not the identity).
type discoveryTable struct {
	m *Monitor
}

func (t discoveryTable) Entry(pid int32) (process.Entry, bool) {
	e, ok := t.m.disc.entries[pid]
	return e, ok
}

func (t discoveryTable) Details(e process.Entry) (process.Details, bool) {
	d := &t.m.disc
	if c, ok := d.details[e.ID]; ok && c.comm == e.Comm {
		return c.d, c.ok
	}
	det, err := t.m.src.Describe(e, d.buf)
	d.details[e.ID] = cachedDetails{comm: e.Comm, d: det, ok: err == nil}
	return det, err == nil
}

func (t discoveryTable) Environ(e process.Entry) ([]string, bool) {
	d := &t.m.disc
	c := d.details[e.ID]
	if c.comm == e.Comm && c.envRead {
		return c.env, c.envOK
	}
	if c.comm != e.Comm {
		c = cachedDetails{comm: e.Comm}
		c.d, c.ok = t.Details(e)
	}
	env, err := t.m.src.Environ(e, d.buf)
	c.env, c.envRead, c.envOK = env, true, err == nil
	d.details[e.ID] = c
	return c.env, c.envOK
}

func (t discoveryTable) PIDFile(path string) (int32, bool) { return procmatch.ReadPIDFile(path) }

func (m *Monitor) scan() {
	d := &m.disc
	clear(d.entries)
	clear(d.children)
	err := m.src.Scan(d.buf, func(e process.Entry) {
		d.entries[e.ID.PID] = e
		d.children[e.PPID] = append(d.children[e.PPID], e.ID.PID)
	})
	if err != nil {
		m.log.Warn("Cannot list processes", zap.Error(err))
		return
	}
	d.scanned = true
	for id := range d.details {
		if e, ok := d.entries[id.PID]; !ok || e.ID != id {
			delete(d.details, id)
		}
	}
	for id := range d.misses {
		if e, ok := d.entries[id.PID]; !ok || e.ID != id {
			delete(d.misses, id)
		}
	}
	for id := range d.capped {
		if e, ok := d.entries[id.PID]; !ok || e.ID != id {
			delete(d.capped, id)
		}
	}
}

// discover is one discovery pass: expire pending tasks past PendingTimeout, bind pending tasks, create tasks from rules, refresh the
// members of process-tree tasks, and notice exits of tasks sampled less often than discovery
// runs so their last sample is taken while the process can still be read.
func (m *Monitor) discover() {
	start := time.Now()
	m.mu.Lock()
	tasks := make([]*task, 0, len(m.tasks))
	for _, t := range m.tasks {
		tasks = append(tasks, t)
	}
	m.mu.Unlock()

	needScan := len(m.cfg.Rules) > 0
	for _, t := range tasks {
		if needScan {
			break
		}
		if t.mu.TryLock() { // a task being sampled is not pending
			needScan = t.spec.IncludeChildren || (t.state == StatePending && t.spec.Locator.Match != nil)
			t.mu.Unlock()
		}
	}
	if m.proplet.loc.Match != nil && m.proplet.missing() {
		needScan = true
	}
	m.disc.scanned = false
	if needScan {
		m.scan()
	}

	bound := map[process.ID]bool{}
	var expired []string
	for _, t := range tasks {
		if !t.mu.TryLock() {
			continue // being sampled; look again next pass
		}
		switch t.state {
		case StatePending:
			if m.cfg.PendingTimeout > 0 && t.origin == originAPI && start.Sub(t.pendingSince) >= m.cfg.PendingTimeout {
				m.expire(t)
				expired = append(expired, t.spec.ID)
				break
			}
			if t.spec.Cgroup != "" {
				m.bindCgroup(t, bound)
				break
			}
			if e, ok := m.resolve(t.spec.Locator, bound); ok {
				if err := m.bind(t, e, m.disc.buf); err != nil && !errors.Is(err, process.ErrGone) {
					m.bindFailed(t, e.ID.PID, err)
				}
			}
		case StateActive, StateDisabled:
			m.checkExit(t)
		}
		if t.root != nil {
			bound[t.root.h.ID()] = true
			if t.spec.IncludeChildren && m.disc.scanned {
				m.refreshMembers(t, bound)
			}
		}
		t.mu.Unlock()
	}
	m.logExpired(expired)
	if len(m.cfg.Rules) > 0 && m.disc.scanned {
		m.applyRules(bound)
	}
	m.proplet.locate(m, m.disc.buf)
}

// expire removes a task that has been pending for PendingTimeout. The caller holds t.mu.
func (m *Monitor) expire(t *task) {
	t.closeHandles()
	m.setState(t, StateStopped)
	m.mu.Lock()
	if m.tasks[t.spec.ID] == t {
		delete(m.tasks, t.spec.ID)
		m.tel.TasksChanged(-1)
	}
	m.mu.Unlock()
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

// resolve finds the process a locator names, skipping processes already bound to a task.
func (m *Monitor) resolve(l admission.Locator, bound map[process.ID]bool) (process.Entry, bool) {
	var pid int32
	switch {
	case l.Self:
		return selfEntry(m.src, m.disc.buf)
	case l.PID > 0:
		pid = l.PID
	case l.PIDFile != "":
		p, ok := procmatch.ReadPIDFile(l.PIDFile)
		if !ok {
			return process.Entry{}, false // not written yet: keep looking
		}
		pid = p
	case l.Match != nil:
		if !m.disc.scanned {
			return process.Entry{}, false
		}
		var best process.Entry
		found := false
		tbl := discoveryTable{m}
		for _, e := range m.disc.entries {
			if bound[e.ID] {
				continue
			}
			if _, ok := l.Match.Match(e, tbl); ok && (!found || e.ID.Start < best.ID.Start) {
				best, found = e, true
			}
		}
		return best, found
	default:
		return process.Entry{}, false
	}
	e, ok := m.src.Lookup(pid, m.disc.buf)
	if !ok || bound[e.ID] {
		return process.Entry{}, false
	}
	return e, true
}

// checkExit reads a bound task's state cheaply (stat only) and, when its process has exited,
// samples it now: a zombie can still be read once.
func (m *Monitor) checkExit(t *task) {
	if t.root == nil {
		return
	}
	if t.state == StateActive && t.spec.Profile.Interval <= m.cfg.DiscoveryInterval {
		return // sampled at least as often as this check would run
	}
	var r process.Reading
	err := t.root.h.Read(0, &r, m.disc.buf)
	switch {
	case errors.Is(err, process.ErrGone):
		m.finish(t)
	case err == nil && r.Exited():
		if t.state == StateDisabled {
			m.finish(t)
			return
		}
		m.sched.Trigger(taskPrefix + t.spec.ID)
	}
}

// refreshMembers makes a process-tree task's members the current descendants of its root.
func (m *Monitor) refreshMembers(t *task, bound map[process.ID]bool) {
	if t.members == nil {
		t.members = map[int32]*member{}
	}
	seen := map[int32]bool{}
	fields := fieldsOf(t.spec.Profile)
	queue := append([]int32(nil), m.disc.children[t.root.h.ID().PID]...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		e, ok := m.disc.entries[pid]
		if !ok {
			continue
		}
		seen[pid] = true
		queue = append(queue, m.disc.children[pid]...)
		if mb, ok := t.members[pid]; ok && mb.h.ID() == e.ID {
			bound[e.ID] = true
			continue
		}
		h, err := m.src.Open(e.ID, fields, m.disc.buf)
		if err != nil {
			continue
		}
		mb := &member{h: h, whole: m.src.StartTime(e.ID).After(t.prevTime)}
		if old, ok := t.members[pid]; ok {
			old.h.Close()
		}
		t.members[pid] = mb
		bound[e.ID] = true
		if !mb.whole {
			// Existed before this task saw it: its past is not this task's to report.
			_ = h.Read(fields, &mb.prev, m.disc.buf)
		}
	}
	for pid, mb := range t.members {
		if !seen[pid] {
			mb.h.Close()
			delete(t.members, pid)
		}
	}
}

// applyRules creates and binds tasks for processes that match a discovery rule.
func (m *Monitor) applyRules(bound map[process.ID]bool) {
	tbl := discoveryTable{m}
	for _, e := range m.disc.entries {
		if bound[e.ID] {
			continue
		}
		if comm, ok := m.disc.misses[e.ID]; ok && comm == e.Comm {
			continue
		}
		matched := false
		for _, r := range m.cfg.Rules {
			c, ok := r.Match.Match(e, tbl)
			if !ok || c.TaskID == "" {
				continue
			}
			matched = true
			m.bindDiscovered(r, c, e)
			break
		}
		if !matched {
			m.disc.misses[e.ID] = e.Comm
		}
	}
}

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
				IncludeChildren: r.IncludeChildren,
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
		if !exists {
			m.setState(t, StateStopped)
			m.mu.Lock()
			delete(m.tasks, c.TaskID)
			m.mu.Unlock()
			m.tel.TasksChanged(-1)
		}
		return
	}
	m.log.Info("Discovered task", zap.String("task_id", c.TaskID), zap.String("task_name", t.spec.Name), zap.Int32("pid", e.ID.PID), zap.Duration("interval", t.spec.Profile.Interval))
}

// refuseCapped reports a process a discovery rule matched while max_tasks tasks are
// registered. It is counted once per process and logged at most once a minute; the process is
// looked at again on every pass, so it becomes a task once there is room.
func (m *Monitor) refuseCapped(e process.Entry, id string) {
	d := &m.disc
	if d.capped[e.ID] {
		return
	}
	d.capped[e.ID] = true
	m.tel.Refused("too_many_tasks")
	if now := time.Now(); now.Sub(d.cappedLogged) >= time.Minute {
		m.log.Warn("Discovery rule matched a process, but max_tasks tasks are registered: no task created until there is room",
			zap.String("task_id", id), zap.Int32("pid", e.ID.PID), zap.Int("max_tasks", m.cfg.MaxTasks), zap.Int("not_logged_since_last", d.cappedSuppressed))
		d.cappedLogged, d.cappedSuppressed = now, 0
		return
	}
	d.cappedSuppressed++
}

// refuseDiscovered reports a process a discovery rule matched whose captured id or name cannot
// be a task's. It is counted and logged once: the process is remembered as matching no rule
// until it execs.
func (m *Monitor) refuseDiscovered(e process.Entry, err error) {
	m.tel.Refused("discovered_id")
	m.disc.misses[e.ID] = e.Comm
	m.log.Warn("Discovery rule matched a process whose task id or name is refused", zap.Int32("pid", e.ID.PID), zap.Error(err))
}
