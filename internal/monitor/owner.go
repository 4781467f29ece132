package monitor

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// ownership is what the discovery pass keeps to bind single-process rules (the proplet's, a
// task's) to one process only, and to say so: the candidates of the rule being matched, what
// was reported, and the proplet a candidate is tried as. Guarded by disc.mu.
type ownership struct {
	notices procmatch.Notices
	cands   []procmatch.Candidate
	// assume, when set, is taken for the bound proplet: to ask whether a proplet candidate's
	// children would be our tasks.
	assume process.ID
	// notBefore is the start the process of the task being looked for must be later than;
	// prevStart the start of the process it had (not warned about: it is that process).
	notBefore, prevStart uint64
}

// Proplet returns the bound proplet, for rules that require it (a started task's parent).
func (t discoveryTable) Proplet() (process.ID, bool) {
	if id := t.m.own.assume; id.PID != 0 {
		return id, true
	}
	p := &t.m.proplet
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.h == nil {
		return process.ID{}, false
	}
	return p.h.ID(), true
}

// candidates collects the processes a single-process rule matches in one pass.
type candidates struct {
	m    *Monitor
	r    *procmatch.Matcher
	list []procmatch.Candidate
}

func (m *Monitor) candidatesFor(r *procmatch.Matcher) *candidates {
	return &candidates{m: m, r: r, list: m.own.cands[:0]}
}

// try offers a process to the rule. A process that matches all but the conditions saying whom
// it belongs to (its owner, the bound proplet as parent, a start after the task's last
// process) is not bound, and is counted and warned about once: that is what a process posing
// as the proplet or a task looks like.
func (c *candidates) try(e process.Entry) {
	tbl := discoveryTable{c.m}
	_, v := c.r.Check(e, tbl)
	if v == procmatch.Matched && !procmatch.StartedAfter(e, c.m.own.notBefore) {
		v = procmatch.StartedEarly
	}
	switch v {
	case procmatch.Matched:
		uid := int64(-1)
		if d, ok := tbl.Details(e); ok {
			uid = d.UID
		}
		c.list = append(c.list, procmatch.Candidate{Entry: e, UID: uid})
	case procmatch.NoMatch:
	case procmatch.StartedEarly:
		if e.ID.Start > c.m.own.prevStart {
			c.refused(e, v, tbl)
		}
	default:
		c.refused(e, v, tbl)
	}
}

// refused warns about a process refused by v, once.
func (c *candidates) refused(e process.Entry, v procmatch.Verdict, tbl discoveryTable) {
	{
		if !c.m.own.notices.Refused(e.ID, v) {
			return
		}
		c.m.tel.Refused(v.String())
		d, _ := tbl.Details(e)
		c.m.log.Warn("Process matches a rule but is not bound: "+refusalCause(v),
			zap.String("rule", c.r.Spec().String()), zap.Int32("pid", e.ID.PID), zap.Int32("ppid", e.PPID),
			zap.Int64("uid", d.Owner.Real), zap.Int64("euid", d.Owner.Effective), zap.String("reason", v.String()))
	}
}

func refusalCause(v procmatch.Verdict) string {
	switch v {
	case procmatch.WrongOwner:
		return "it runs as another user than the rule's owner (or its parent proplet's user); if it is yours, set match.owner"
	case procmatch.NotProplet:
		return "it is not (a child of) the proplet process this collector samples"
	case procmatch.StartedEarly:
		return "it was already running while the task's previous process ran, so it cannot be its restart"
	}
	return v.String()
}

// chooseTask binds a task's rule to the earliest started of its candidates, and warns once per
// change of the candidates when there were several.
func (c *candidates) chooseTask() (process.Entry, bool) {
	i, how := procmatch.ChooseTask(c.list)
	c.report("task", i, how)
	c.m.own.cands = c.list
	if i < 0 {
		return process.Entry{}, false
	}
	return c.list[i].Entry, true
}

// chooseProplet binds the proplet rule to the only candidate, or to the only one whose children
// are our tasks; with several and no such one it binds none.
func (c *candidates) chooseProplet() (process.Entry, bool) {
	if len(c.list) > 1 {
		c.markOurs()
	}
	i, how := procmatch.ChooseProplet(c.list)
	c.report("proplet", i, how)
	c.m.own.cands = c.list
	if i < 0 {
		return process.Entry{}, false
	}
	return c.list[i].Entry, true
}

// markOurs marks the proplet candidates that have a child bound to a task, or a child a pending
// task's rule would take were that candidate the proplet.
func (c *candidates) markOurs() {
	d := &c.m.disc
	tbl := discoveryTable{c.m}
	defer func() { c.m.own.assume = process.ID{} }()
	for i := range c.list {
		c.m.own.assume = c.list[i].Entry.ID
		for _, pid := range d.children[c.list[i].Entry.ID.PID] {
			e, ok := d.entries[pid]
			if !ok {
				continue
			}
			if d.bound[e.ID] {
				c.list[i].Ours = true
				break
			}
			for _, t := range d.pending {
				if r := t.spec.Locator.Match; r != nil {
					if _, ok := r.Match(e, tbl); ok {
						c.list[i].Ours = true
						break
					}
				}
			}
			if c.list[i].Ours {
				break
			}
		}
	}
}

// report warns, once per change of the candidates, that a single-process rule matched several
// processes, which one was chosen and by which rule, and which were not.
func (c *candidates) report(what string, chosen int, how string) {
	if len(c.list) < 2 && !c.m.own.notices.AnyChoice() {
		return // nothing reported to forget: no key built on the common path
	}
	key := what + "\x00" + c.r.Key()
	if len(c.list) < 2 {
		c.m.own.notices.ForgetChoice(key)
		return
	}
	if !c.m.own.notices.ChoiceChanged(key, c.list) {
		return
	}
	c.m.tel.Refused("ambiguous_" + what)
	describe := func(cand procmatch.Candidate) string {
		return fmt.Sprintf("pid %d user %s started %s parent_of_a_task=%t", cand.Entry.ID.PID, process.OwnerName(cand.UID),
			c.m.src.StartTime(cand.Entry.ID).UTC().Format(time.RFC3339Nano), cand.Ours)
	}
	chosenS := "none"
	var others []string
	for _, cand := range procmatch.Sorted(c.list) {
		if chosen >= 0 && cand.Entry.ID == c.list[chosen].Entry.ID {
			chosenS = describe(cand)
			continue
		}
		others = append(others, describe(cand))
	}
	msg := "Several processes match the " + what + " rule: bound the one the documented rule chose"
	if chosen < 0 {
		msg = "Several processes match the proplet rule and none is the parent of our tasks: none is bound. Narrow proplet.match (cmdline, owner) or use proplet.pid_file"
	}
	c.m.log.Warn(msg, zap.String("rule", c.r.Spec().String()), zap.String("decided_by", how),
		zap.String("chosen", chosenS), zap.Strings("not_chosen", others))
}

// locateProplet finds the proplet process: a match rule goes through chooseProplet; a pid, a
// pid file or self name the process.
func (m *Monitor) locateProplet(l admission.Locator) (process.Entry, bool) {
	if l.Match == nil {
		return m.resolve(l, nil)
	}
	if !m.disc.scanned {
		return process.Entry{}, false
	}
	return m.collect(l.Match, nil).chooseProplet()
}

// rebindMargin covers the conversion of a wall-clock time to a process start (clock ticks
// after a boot time known to 10 ms): a restart is never refused for it.
const rebindMargin = 30 * time.Millisecond

// rebindAfter makes a task whose process ended take only a process started after the moment
// that process was last read running (and after its start): any process started earlier ran
// beside it, so cannot be its restart. The caller holds t.mu.
func (m *Monitor) rebindAfter(t *task) {
	if t.root == nil || t.spec.Locator.Match == nil {
		return
	}
	after := t.root.h.ID().Start
	t.prevStart.Store(after)
	if !t.aliveAt.IsZero() {
		after = max(after, m.src.TicksAt(t.aliveAt.Add(-rebindMargin)))
	}
	t.notBefore.Store(after)
}
