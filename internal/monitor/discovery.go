package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// discovery is the state of the discovery pass: the last scan of the process table, what is
// known about its processes, and what this pass has read. The discovery job and, with process
// events, the exec job touch it, each holding mu.
type discovery struct {
	mu       sync.Mutex
	entries  map[int32]process.Entry
	children map[int32][]int32
	details  map[process.ID]cachedDetails
	misses   map[process.ID]string // processes no rule matched, with the command name then
	capped   map[process.ID]bool   // processes a rule matched while max_tasks was reached
	scanned  bool
	buf      []byte
	// With process events: when the table was last scanned whole, and the processes events
	// named since (reused).
	lastScan time.Time
	fresh    []int32
	execs    []process.Entry
	// The pending tasks with a match rule, as the last pass left them, for the exec job.
	byParent  map[int32][]*task
	anyParent []*task

	pass uint64 // the number of this pass
	// cut says the previous pass ran out of time before it looked for every pending task:
	// this pass looks first for those looked for least recently.
	cut bool
	// Inputs read once per pass, however many tasks, rules and processes ask.
	pidFiles map[string]pidFileRead // pid files, by path
	parents  map[string][]int32     // processes a nested parent rule matches, by rule key

	// Reused from pass to pass.
	tasks   []*task             // the registry when the pass began
	pending []*task             // the pending tasks among them
	trees   []*task             // the bound tasks with include_children
	bound   map[process.ID]bool // processes bound to a task (root or member)

	cappedLogged     time.Time // when a rule's match past max_tasks was last logged
	cappedSuppressed int       // such refusals not logged since
}

// readPIDFile reads pid files for the discovery pass. Tests replace it with one that hangs, as
// a read from a hung NFS mount does.
var readPIDFile = procmatch.ReadPIDFile

type pidFileRead struct {
	pid int32
	ok  bool
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
	d.pidFiles = map[string]pidFileRead{}
	d.parents = map[string][]int32{}
	d.bound = map[process.ID]bool{}
	d.byParent = map[int32][]*task{}
	d.buf = make([]byte, bufSize)
}

// begin starts a pass: what the previous pass read is forgotten.
func (d *discovery) begin() {
	d.pass++
	d.scanned = false
	clear(d.pidFiles)
	clear(d.parents)
	clear(d.bound)
	d.tasks, d.pending, d.trees = d.tasks[:0], d.pending[:0], d.trees[:0]
}

// discoveryTable gives matchers the scanned table, reading details once per process (and
// again after an exec, which changes the command name but not the identity), and pid files
// once per pass.
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

// PIDFile reads a pid file once per pass: the proplet's pid file, named by every task the
// control plane started, is read once, not once per task and process.
func (t discoveryTable) PIDFile(path string) (int32, bool) {
	d := &t.m.disc
	if r, ok := d.pidFiles[path]; ok {
		return r.pid, r.ok
	}
	pid, ok := readPIDFile(path)
	d.pidFiles[path] = pidFileRead{pid: pid, ok: ok}
	return pid, ok
}

// refreshTable brings the process table up to date for this pass. With process events it
// reads only the processes forked or exec'd since the last pass, and scans the whole table
// when events were missed, when nobody listened for a while, or every reconcileEvery; without
// events it scans.
func (m *Monitor) refreshTable(now time.Time) {
	d := &m.disc
	if !m.ev.active() {
		m.scan()
		return
	}
	var stale bool
	d.fresh, stale = m.ev.drain(d.fresh)
	if stale || d.lastScan.IsZero() || now.Sub(d.lastScan) >= reconcileEvery {
		m.scan()
		if d.scanned {
			d.lastScan = now
		}
		return
	}
	m.applyFresh(nil)
	d.scanned = true
}

// applyFresh updates the table with the processes in d.fresh, and appends to into those that
// exist (with their entries), for the exec job.
func (m *Monitor) applyFresh(into *[]process.Entry) {
	d := &m.disc
	for _, pid := range d.fresh {
		old, had := d.entries[pid]
		e, ok := m.src.Lookup(pid, d.buf)
		if had && (!ok || old.PPID != e.PPID) {
			d.children[old.PPID] = slices.DeleteFunc(d.children[old.PPID], func(p int32) bool { return p == pid })
		}
		if !ok {
			delete(d.entries, pid) // ended already
			continue
		}
		// A fork or an exec since the last look: what was read of the process (its command
		// line, read between fork and exec, is its parent's) and whether it matched no rule
		// are out of date, even when its command name is the same (a program that runs itself).
		delete(d.details, e.ID)
		delete(d.misses, e.ID)
		d.entries[pid] = e
		if !had || old.PPID != e.PPID {
			d.children[e.PPID] = append(d.children[e.PPID], pid)
		}
		if into != nil {
			*into = append(*into, e)
		}
	}
}

// indexPending indexes the pending tasks found by a match rule for the exec job: by the
// parent their rule is restricted to, or among those restricted to none.
func (m *Monitor) indexPending() {
	d := &m.disc
	clear(d.byParent)
	d.anyParent = d.anyParent[:0]
	tbl := discoveryTable{m}
	for _, t := range d.pending {
		r := t.spec.Locator.Match
		if r == nil {
			continue
		}
		if ppid, fixed := r.FixedParent(tbl); !fixed {
			d.anyParent = append(d.anyParent, t)
		} else if ppid != 0 {
			d.byParent[ppid] = append(d.byParent[ppid], t)
		}
	}
}

// discoverExec is the exec job: with process events, it looks at the processes forked or
// exec'd since the last pass only, for pending tasks' match rules and for discovery rules, so
// a task is bound within milliseconds of its exec and the cost follows the exec rate, not the
// number of processes on the host. Everything else (pid files, exits, trees, expiry) is the
// discovery pass's.
func (m *Monitor) discoverExec(context.Context) {
	d := &m.disc
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
		m.sched.Trigger(discoveryKey)
		return
	}
	d.execs = d.execs[:0]
	m.applyFresh(&d.execs)
	if len(d.execs) == 0 {
		return
	}
	// Which of the new processes a task already has: a lookup each, not a walk of every
	// process watched.
	clear(d.bound)
	m.ev.mu.Lock()
	for _, e := range d.execs {
		if o, ok := m.ev.owners[e.ID.PID]; ok && (o.id.Start == 0 || o.id == e.ID) {
			d.bound[e.ID] = true
		}
	}
	m.ev.mu.Unlock()

	// Only the pending tasks whose rule could take the process are tried: those restricted
	// to its parent, and those restricted to no parent (the index of the last pass).
	tbl := discoveryTable{m}
	try := func(t *task, e process.Entry) {
		if _, ok := t.spec.Locator.Match.Match(e, tbl); ok && m.bindFound(t, e) {
			d.bound[e.ID] = true
		}
	}
	for _, e := range d.execs {
		for _, t := range d.byParent[e.PPID] {
			if !d.bound[e.ID] {
				try(t, e)
			}
		}
		for _, t := range d.anyParent {
			if !d.bound[e.ID] {
				try(t, e)
			}
		}
	}
	if len(m.cfg.Rules) > 0 {
		m.applyRulesTo(d.execs, d.bound)
	}
}

// forgetEntry removes an ended process from the table.
func (m *Monitor) forgetEntry(e process.Entry) {
	d := &m.disc
	if cur, ok := d.entries[e.ID.PID]; ok && cur.ID == e.ID {
		delete(d.entries, e.ID.PID)
		d.children[e.PPID] = slices.DeleteFunc(d.children[e.PPID], func(p int32) bool { return p == e.ID.PID })
	}
}

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
	gone := func(id process.ID) bool { e, ok := d.entries[id.PID]; return !ok || e.ID != id }
	for id := range d.details {
		if gone(id) {
			delete(d.details, id)
		}
	}
	for id := range d.misses {
		if gone(id) {
			delete(d.misses, id)
		}
	}
	for id := range d.capped {
		if gone(id) {
			delete(d.capped, id)
		}
	}
	m.own.notices.Forget(gone)
}

// discover is one discovery pass: expire pending tasks past PendingTimeout, notice exits of
// tasks sampled less often than discovery runs (so their last sample is taken while the
// process can still be read), refresh the members of process-tree tasks, look for the
// processes of pending tasks, create tasks from rules, and find the proplet.
//
// Its cost does not multiply: pid files and the processes a nested parent rule matches are
// read once per pass, and a rule with a fixed parent looks at that parent's children only.
// Looking for pending tasks stops when the pass has worked for half the discovery interval;
// the next pass starts with the tasks this one did not reach. A task's lock is held only to
// read or change the task, never while a user-named file is read, so a slow input never holds
// up Tasks or Task (the API's GET /tasks and /health).
func (m *Monitor) discover(ctx context.Context) {
	m.disc.mu.Lock()
	defer m.disc.mu.Unlock()
	start := time.Now()
	d := &m.disc
	d.begin()
	m.mu.Lock()
	for _, t := range m.tasks {
		d.tasks = append(d.tasks, t)
	}
	m.mu.Unlock()

	needScan := len(m.cfg.Rules) > 0 || (m.proplet.loc.Match != nil && m.proplet.missing())
	var expired []string
	for _, t := range d.tasks {
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
			d.pending = append(d.pending, t)
			needScan = needScan || t.spec.Locator.Match != nil
		case StateActive, StateDisabled:
			m.checkExit(t)
		}
		if t.root != nil {
			d.bound[t.root.h.ID()] = true
			for _, mb := range t.members {
				d.bound[mb.h.ID()] = true
			}
			if t.spec.IncludeChildren {
				d.trees = append(d.trees, t)
				needScan = true
			}
		}
		t.mu.Unlock()
	}
	m.logExpired(expired)
	m.ev.wanted.Store(needScan)
	if needScan {
		m.refreshTable(start)
	}
	if d.scanned {
		for _, t := range d.trees {
			if t.mu.TryLock() {
				if t.root != nil {
					m.refreshMembers(t, d.bound)
				}
				t.mu.Unlock()
			}
		}
	}

	if d.cut {
		slices.SortStableFunc(d.pending, func(a, b *task) int { return cmp.Compare(a.tried, b.tried) })
	}
	d.cut = false
	deadline := start.Add(m.passBudget)
	for i, t := range d.pending {
		if i > 0 && time.Now().After(deadline) {
			d.cut = true
			m.log.Debug("Discovery pass out of time; the next pass looks for the others first",
				zap.Int("looked_for", i), zap.Int("pending", len(d.pending)), zap.Duration("budget", m.passBudget))
			break
		}
		t.tried = d.pass
		m.findProcess(t)
	}

	if len(m.cfg.Rules) > 0 && d.scanned {
		m.applyRules(d.bound)
	}
	if m.ev.active() {
		m.indexPending()
	}
	m.proplet.locate(m, d.buf)
	m.notFound(ctx, d.pending, time.Now())
}

// How long a task is pending before the log says it is not found, and how often that line is
// repeated while it stays pending. Variables so tests can shorten them.
var (
	notFoundAfter = 30 * time.Second
	notFoundEvery = 10 * time.Minute
)

// notFound makes the tasks still pending visible: a lookup sample on each task's interval (the
// receiver's propeller.task.lookup 0), and one info line once a task has been pending for
// notFoundAfter, saying what it looks for, repeated every notFoundEvery.
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
		logIt := since >= notFoundAfter && (t.notFoundLogged.IsZero() || now.Sub(t.notFoundLogged) >= notFoundEvery)
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
		m.own.notBefore, m.own.prevStart = t.notBefore.Load(), t.prevStart.Load()
		e, ok = m.resolve(loc, m.disc.bound)
		m.own.notBefore, m.own.prevStart = 0, 0
		if !ok {
			return // not there yet: keep looking
		}
	} else if cgroup == "" {
		return
	}
	if m.bindFound(t, e) && t.root != nil {
		m.disc.bound[t.root.h.ID()] = true
	}
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
	if !procmatch.StartedAfter(e, t.notBefore.Load()) {
		return false // running beside the task's previous process: not its restart
	}
	if t.spec.Cgroup != "" {
		m.bindCgroup(t, e, !t.spec.Locator.IsZero())
	} else if err := m.bind(t, e, m.disc.buf); err != nil {
		if !errors.Is(err, process.ErrGone) {
			m.bindFailed(t, e.ID.PID, err)
		} else if m.ev.active() {
			// Events name new processes, not every ended one: forget it and look again.
			m.forgetEntry(e)
			m.sched.Trigger(discoveryKey)
		}
		return false
	}
	if t.root != nil && t.spec.IncludeChildren && m.disc.scanned {
		m.refreshMembers(t, m.disc.bound)
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

// resolve finds the process a locator names, skipping processes already bound to a task.
func (m *Monitor) resolve(l admission.Locator, bound map[process.ID]bool) (process.Entry, bool) {
	var pid int32
	switch {
	case l.Self:
		return selfEntry(m.src, m.disc.buf)
	case l.PID > 0:
		pid = l.PID
	case l.PIDFile != "":
		p, ok := discoveryTable{m}.PIDFile(l.PIDFile)
		if !ok {
			return process.Entry{}, false // not written yet: keep looking
		}
		pid = p
	case l.Match != nil:
		return m.match(l.Match, bound)
	default:
		return process.Entry{}, false
	}
	e, ok := m.src.Lookup(pid, m.disc.buf)
	if !ok || bound[e.ID] {
		return process.Entry{}, false
	}
	return e, true
}

// match finds the process a task's rule matches that is not bound yet: the earliest started
// of its candidates (chooseTask).
func (m *Monitor) match(r *procmatch.Matcher, bound map[process.ID]bool) (process.Entry, bool) {
	if !m.disc.scanned {
		return process.Entry{}, false
	}
	return m.collect(r, bound).chooseTask()
}

// collect gathers the processes a rule matches that are not bound yet. A rule with a fixed
// parent (parent_pid, parent_pid_file) looks at that parent's children only, a rule with a
// nested parent rule at the children of the processes that rule matches (found once per pass);
// only a rule with neither looks at every process.
func (m *Monitor) collect(r *procmatch.Matcher, bound map[process.ID]bool) *candidates {
	d := &m.disc
	best := m.candidatesFor(r)
	if ppid, fixed := r.FixedParent(discoveryTable{m}); fixed {
		if ppid != 0 {
			m.matchChildren(ppid, bound, best)
		}
	} else if pr := r.ParentRule(); pr != nil {
		for _, ppid := range m.matchingParents(pr) {
			m.matchChildren(ppid, bound, best)
		}
	} else {
		for _, e := range d.entries {
			if !bound[e.ID] {
				best.try(e)
			}
		}
	}
	return best
}

// matchChildren offers the children of ppid to the rule.
func (m *Monitor) matchChildren(ppid int32, bound map[process.ID]bool, best *candidates) {
	d := &m.disc
	for _, pid := range d.children[ppid] {
		e, ok := d.entries[pid]
		if ok && !bound[e.ID] {
			best.try(e)
		}
	}
}

// matchingParents returns the processes a nested parent rule matches, found once per pass for
// every rule with the same key.
func (m *Monitor) matchingParents(r *procmatch.Matcher) []int32 {
	d := &m.disc
	if pids, ok := d.parents[r.Key()]; ok {
		return pids
	}
	pids := []int32{}
	for _, e := range d.entries {
		if _, ok := r.Match(e, discoveryTable{m}); ok {
			pids = append(pids, e.ID.PID)
		}
	}
	d.parents[r.Key()] = pids
	return pids
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
	m.sched.Trigger(taskPrefix + t.spec.ID)
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
		m.watch(t, e.ID, false)
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
	for _, e := range m.disc.entries {
		m.applyRulesToEntry(e, bound)
	}
}

// applyRulesTo applies the discovery rules to some processes only.
func (m *Monitor) applyRulesTo(entries []process.Entry, bound map[process.ID]bool) {
	for _, e := range entries {
		m.applyRulesToEntry(e, bound)
	}
}

func (m *Monitor) applyRulesToEntry(e process.Entry, bound map[process.ID]bool) {
	if bound[e.ID] {
		return
	}
	if comm, ok := m.disc.misses[e.ID]; ok && comm == e.Comm {
		return
	}
	tbl := discoveryTable{m}
	for _, r := range m.cfg.Rules {
		if c, ok := r.Match.Match(e, tbl); ok && c.TaskID != "" {
			m.bindDiscovered(r, c, e)
			return
		}
	}
	m.disc.misses[e.ID] = e.Comm
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
		if errors.Is(err, process.ErrGone) && m.ev.active() {
			m.forgetEntry(e)
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
