package monitor

import (
	"slices"
	"sync"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// procTable is the process table discovery reads: process.Source on a host, a fake table in
// the tests of discovery's decisions.
type procTable interface {
	Scan(buf []byte, fn func(process.Entry)) error
	Lookup(pid int32, buf []byte) (process.Entry, bool)
	Describe(e process.Entry, buf []byte) (process.Details, error)
	Environ(e process.Entry, buf []byte) ([]string, error)
	// StartTime is when a process started, for the log of a choice between processes.
	StartTime(id process.ID) time.Time
}

// newProcesses is what discovery hears of processes as they start: the monitor's side of the
// kernel's process events.
type newProcesses interface {
	// active reports whether events are heard at all; without them the table is scanned.
	active() bool
	// drain takes the processes forked or exec'd since the last call (appended to into), and
	// whether some were missed, so the table must be scanned instead.
	drain(into []int32) ([]int32, bool)
}

// discovery is the process table as the discovery pass and the exec job see it, and the one
// place that decides which process a locator or a rule finds. It knows processes and rules,
// not tasks' lifecycles: the monitor's pass (pass.go) asks it, then binds. mu is held by the
// pass and the exec job for their whole run; every method below expects it held.
type discovery struct {
	src         procTable
	readPIDFile func(path string) (int32, bool)
	self        int32 // this process, for the in-process locator

	mu       sync.Mutex
	entries  map[int32]process.Entry
	children map[int32][]int32
	details  map[process.ID]cachedDetails
	misses   map[process.ID]string // processes no rule matched, with the command name then
	capped   map[process.ID]bool   // processes a rule matched while max_tasks was reached
	scanned  bool
	buf      []byte
	scanErr  error // the last scan's error, for the pass to log
	// With process events: when the table was last scanned whole, and the processes events
	// named since (reused).
	lastScan time.Time
	fresh    []int32
	execs    []process.Entry
	// The pending tasks with a match rule, as the last pass left them, for the exec job.
	byParent  map[int32][]*task
	anyParent []*task

	// Inputs read once per pass, however many tasks, rules and processes ask.
	pidFiles map[string]pidFileRead // pid files, by path
	parents  map[string][]int32     // processes a nested parent rule matches, by rule key

	// bound are the processes bound to a task (root or member), as the pass or the exec job
	// found them; mayBind skips them.
	bound map[process.ID]bool

	// own binds single-process rules to one process only, and says so (owner.go).
	own ownership
}

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

func newDiscovery(src procTable, readPIDFile func(string) (int32, bool), self int32) *discovery {
	return &discovery{
		src: src, readPIDFile: readPIDFile, self: self,
		entries:  map[int32]process.Entry{},
		children: map[int32][]int32{},
		details:  map[process.ID]cachedDetails{},
		misses:   map[process.ID]string{},
		capped:   map[process.ID]bool{},
		pidFiles: map[string]pidFileRead{},
		parents:  map[string][]int32{},
		bound:    map[process.ID]bool{},
		byParent: map[int32][]*task{},
		buf:      make([]byte, bufSize),
		own:      newOwnership(),
	}
}

// begin starts a pass: what the previous pass read is forgotten.
func (d *discovery) begin() {
	d.scanned = false
	clear(d.pidFiles)
	clear(d.parents)
	clear(d.bound)
}

// The table as matchers read it (procmatch.Table): details read once per process (and again
// after an exec, which changes the command name but not the identity), pid files once per
// pass.

// Entry returns the scanned entry of a pid.
func (d *discovery) Entry(pid int32) (process.Entry, bool) {
	e, ok := d.entries[pid]
	return e, ok
}

// Details returns the slower fields of a process, read once.
func (d *discovery) Details(e process.Entry) (process.Details, bool) {
	if c, ok := d.details[e.ID]; ok && c.comm == e.Comm {
		return c.d, c.ok
	}
	det, err := d.src.Describe(e, d.buf)
	d.details[e.ID] = cachedDetails{comm: e.Comm, d: det, ok: err == nil}
	return det, err == nil
}

// Environ returns a process's environment, read once and only for rules that need it.
func (d *discovery) Environ(e process.Entry) ([]string, bool) {
	c := d.details[e.ID]
	if c.comm == e.Comm && c.envRead {
		return c.env, c.envOK
	}
	if c.comm != e.Comm {
		c = cachedDetails{comm: e.Comm}
		c.d, c.ok = d.Details(e)
	}
	env, err := d.src.Environ(e, d.buf)
	c.env, c.envRead, c.envOK = env, true, err == nil
	d.details[e.ID] = c
	return c.env, c.envOK
}

// PIDFile reads a pid file once per pass: the proplet's pid file, named by every task the
// control plane started, is read once, not once per task and process.
func (d *discovery) PIDFile(path string) (int32, bool) {
	if r, ok := d.pidFiles[path]; ok {
		return r.pid, r.ok
	}
	pid, ok := d.readPIDFile(path)
	d.pidFiles[path] = pidFileRead{pid: pid, ok: ok}
	return pid, ok
}

// refresh brings the process table up to date for this pass. With process events it reads
// only the processes forked or exec'd since the last pass, and scans the whole table when
// events were missed, when nobody listened for a while, or every reconcileEvery; without
// events it scans.
func (d *discovery) refresh(now time.Time, ev newProcesses, reconcileEvery time.Duration) {
	if !ev.active() {
		d.scan()
		return
	}
	var stale bool
	d.fresh, stale = ev.drain(d.fresh)
	if stale || d.lastScan.IsZero() || now.Sub(d.lastScan) >= reconcileEvery {
		d.scan()
		if d.scanned {
			d.lastScan = now
		}
		return
	}
	d.applyFresh(nil)
	d.scanned = true
}

// applyFresh updates the table with the processes in d.fresh, and appends to into those that
// exist (with their entries), for the exec job.
func (d *discovery) applyFresh(into *[]process.Entry) {
	for _, pid := range d.fresh {
		old, had := d.entries[pid]
		e, ok := d.src.Lookup(pid, d.buf)
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

// scan reads the whole process table, and forgets what it knew of processes that are gone.
// On an error the table is left empty and d.scanErr says why.
func (d *discovery) scan() {
	clear(d.entries)
	clear(d.children)
	d.scanErr = d.src.Scan(d.buf, func(e process.Entry) {
		d.entries[e.ID.PID] = e
		d.children[e.PPID] = append(d.children[e.PPID], e.ID.PID)
	})
	if d.scanErr != nil {
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
	d.own.notices.Forget(gone)
}

// forget removes an ended process from the table.
func (d *discovery) forget(e process.Entry) {
	if cur, ok := d.entries[e.ID.PID]; ok && cur.ID == e.ID {
		delete(d.entries, e.ID.PID)
		d.children[e.PPID] = slices.DeleteFunc(d.children[e.PPID], func(p int32) bool { return p == e.ID.PID })
	}
}

// seeker is who a process is looked for: the proplet, or a task with the start its next
// process must follow (0 before its first process ended).
type seeker struct {
	proplet bool
	// notBefore is the start a task's process must be later than (procmatch.StartedAfter);
	// prevStart the start of the process it had, which is not warned about: it is that process.
	notBefore, prevStart uint64
}

// mayBind is the one decision whether a process found for a task, a rule or the proplet is
// taken: every way of finding a process (a fixed pid, a pid file, a match rule, the exec job,
// a discovery rule) asks it. A process already bound to a task is skipped (NoMatch); one
// started before the seeker's previous process was last read running is refused
// (StartedEarly): it ran beside that process, so it is not its restart.
func (d *discovery) mayBind(e process.Entry, bound map[process.ID]bool, who seeker) procmatch.Verdict {
	switch {
	case bound[e.ID]:
		return procmatch.NoMatch
	case !procmatch.StartedAfter(e, who.notBefore):
		return procmatch.StartedEarly
	}
	return procmatch.Matched
}

// takes reports whether mayBind takes e.
func (d *discovery) takes(e process.Entry, bound map[process.ID]bool, who seeker) bool {
	return d.mayBind(e, bound, who) == procmatch.Matched
}

// resolve finds the process a locator names for who, skipping processes mayBind refuses.
func (d *discovery) resolve(l admission.Locator, bound map[process.ID]bool, who seeker) (process.Entry, bool) {
	var pid int32
	switch {
	case l.Self:
		return d.src.Lookup(d.self, d.buf)
	case l.PID > 0:
		pid = l.PID
	case l.PIDFile != "":
		p, ok := d.PIDFile(l.PIDFile)
		if !ok {
			return process.Entry{}, false // not written yet: keep looking
		}
		pid = p
	case l.Match != nil:
		return d.match(l.Match, bound, who)
	default:
		return process.Entry{}, false
	}
	e, ok := d.src.Lookup(pid, d.buf)
	if !ok || !d.takes(e, bound, who) {
		return process.Entry{}, false
	}
	return e, true
}

// match finds the one process a rule matches for who among those mayBind takes: the
// candidates that pass the rule's ownership conditions, then the documented choice (owner.go:
// the earliest started for a task; for the proplet the only one, or the only parent of our
// tasks). A rule with a fixed parent (parent_pid, parent_pid_file) looks at that parent's
// children only, a rule with a nested parent rule at the children of the processes that rule
// matches (found once per pass); only a rule with neither looks at every process.
func (d *discovery) match(r *procmatch.Matcher, bound map[process.ID]bool, who seeker) (process.Entry, bool) {
	if !d.scanned {
		return process.Entry{}, false
	}
	c := d.candidatesFor(r, who)
	if ppid, fixed := r.FixedParent(d); fixed {
		if ppid != 0 {
			d.matchChildren(ppid, bound, c)
		}
	} else if pr := r.ParentRule(); pr != nil {
		for _, ppid := range d.matchingParents(pr) {
			d.matchChildren(ppid, bound, c)
		}
	} else {
		for _, e := range d.entries {
			c.try(e, bound)
		}
	}
	if who.proplet {
		return c.chooseProplet()
	}
	return c.chooseTask()
}

// matchChildren offers the children of ppid.
func (d *discovery) matchChildren(ppid int32, bound map[process.ID]bool, c *candidates) {
	for _, pid := range d.children[ppid] {
		if e, ok := d.entries[pid]; ok {
			c.try(e, bound)
		}
	}
}

// matchingParents returns the processes a nested parent rule matches, found once per pass for
// every rule with the same key.
func (d *discovery) matchingParents(r *procmatch.Matcher) []int32 {
	if pids, ok := d.parents[r.Key()]; ok {
		return pids
	}
	pids := []int32{}
	for _, e := range d.entries {
		if _, ok := r.Match(e, d); ok {
			pids = append(pids, e.ID.PID)
		}
	}
	d.parents[r.Key()] = pids
	return pids
}

// descendants calls fn for every descendant of pid in the table, parents before children.
func (d *discovery) descendants(pid int32, fn func(process.Entry)) {
	queue := append([]int32(nil), d.children[pid]...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		e, ok := d.entries[p]
		if !ok {
			continue
		}
		queue = append(queue, d.children[p]...)
		fn(e)
	}
}

// indexPending indexes the pending tasks found by a match rule for the exec job: by the
// parent their rule is restricted to, or among those restricted to none.
func (d *discovery) indexPending(pending []*task) {
	clear(d.byParent)
	d.anyParent = d.anyParent[:0]
	for _, t := range pending {
		r := t.spec.Locator.Match
		if r == nil {
			continue
		}
		if ppid, fixed := r.FixedParent(d); !fixed {
			d.anyParent = append(d.anyParent, t)
		} else if ppid != 0 {
			d.byParent[ppid] = append(d.byParent[ppid], t)
		}
	}
}

// execCandidates offers each new process to the pending tasks whose rule could take it (those
// restricted to its parent, and those restricted to none, as the last pass indexed them),
// until bind takes it.
func (d *discovery) execCandidates(execs []process.Entry, bound map[process.ID]bool, bind func(*task, process.Entry) bool) {
	try := func(t *task, e process.Entry) {
		if !d.takes(e, bound, t.seeker()) {
			return
		}
		if _, ok := t.spec.Locator.Match.Match(e, d); ok && bind(t, e) {
			bound[e.ID] = true
		}
	}
	for _, e := range execs {
		for _, t := range d.byParent[e.PPID] {
			try(t, e)
		}
		for _, t := range d.anyParent {
			try(t, e)
		}
	}
}

// ruleFor returns the first discovery rule that matches e with a task id, remembering a process
// no rule matched until it execs.
func (d *discovery) ruleFor(e process.Entry, rules []Rule, bound map[process.ID]bool) (Rule, procmatch.Captures, bool) {
	if !d.takes(e, bound, seeker{}) {
		return Rule{}, procmatch.Captures{}, false
	}
	if comm, ok := d.misses[e.ID]; ok && comm == e.Comm {
		return Rule{}, procmatch.Captures{}, false
	}
	for _, r := range rules {
		if c, ok := r.Match.Match(e, d); ok && c.TaskID != "" {
			return r, c, true
		}
	}
	d.misses[e.ID] = e.Comm
	return Rule{}, procmatch.Captures{}, false
}
