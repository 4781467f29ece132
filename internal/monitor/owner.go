package monitor

import (
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// ownership is what discovery keeps to bind single-process rules (the proplet's, a task's) to
// one process only, and to say so: the candidates of the rule being matched, what was
// reported, and the proplet a candidate is tried as. Guarded by discovery.mu.
type ownership struct {
	log *zap.Logger
	tel Telemetry
	// boundProplet returns the proplet process the collector has bound (the proplet type's
	// boundID); nil while there is none to ask.
	boundProplet func() (process.ID, bool)
	// pending are the match rules of the pending tasks, as the discovery pass left them: a
	// proplet candidate whose child one of them takes is the parent of our tasks.
	pending []*procmatch.Matcher

	notices procmatch.Notices
	cands   []procmatch.Candidate
	// assume, when set, is taken for the bound proplet: to ask whether a proplet candidate's
	// children would be our tasks.
	assume process.ID
}

func newOwnership() ownership {
	return ownership{log: zap.NewNop(), tel: noTelemetry{}}
}

// Proplet returns the bound proplet, for rules that require it (a started task's parent).
func (d *discovery) Proplet() (process.ID, bool) {
	if id := d.own.assume; id.PID != 0 {
		return id, true
	}
	if d.own.boundProplet == nil {
		return process.ID{}, false
	}
	return d.own.boundProplet()
}

// boundID returns the proplet process the proplet job samples, if one is bound.
func (p *proplet) boundID() (process.ID, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.h == nil {
		return process.ID{}, false
	}
	return p.h.ID(), true
}

// seeker is who looks for the task's process. notBefore and prevStart are atomics: discovery
// reads them without t.mu.
func (t *task) seeker() seeker {
	return seeker{notBefore: t.notBefore.Load(), prevStart: t.prevStart.Load()}
}

// candidates collects the processes a single-process rule matches in one pass.
type candidates struct {
	d    *discovery
	r    *procmatch.Matcher
	who  seeker
	list []procmatch.Candidate
}

func (d *discovery) candidatesFor(r *procmatch.Matcher, who seeker) *candidates {
	return &candidates{d: d, r: r, who: who, list: d.own.cands[:0]}
}

// try offers a process to the rule. A process mayBind skips (bound already) is not looked at.
// One that matches all but the conditions saying whom it belongs to (its owner, the bound
// proplet as parent, a start after the task's last process) is not bound, and is counted and
// warned about once: that is what a process posing as the proplet or a task looks like.
func (c *candidates) try(e process.Entry, bound map[process.ID]bool) {
	may := c.d.mayBind(e, bound, c.who)
	if may == procmatch.NoMatch {
		return
	}
	_, v := c.r.Check(e, c.d)
	if v == procmatch.Matched {
		v = may
	}
	switch v {
	case procmatch.Matched:
		uid := int64(-1)
		if det, ok := c.d.Details(e); ok {
			uid = det.UID
		}
		c.list = append(c.list, procmatch.Candidate{Entry: e, UID: uid})
	case procmatch.NoMatch:
	case procmatch.StartedEarly:
		if e.ID.Start > c.who.prevStart {
			c.refused(e, v)
		}
	default:
		c.refused(e, v)
	}
}

// refused warns about a process refused by v, once.
func (c *candidates) refused(e process.Entry, v procmatch.Verdict) {
	own := &c.d.own
	if !own.notices.Refused(e.ID, v) {
		return
	}
	own.tel.Refused(v.String())
	det, _ := c.d.Details(e)
	own.log.Warn("Process matches a rule but is not bound: "+refusalCause(v),
		zap.String("rule", c.r.Spec().String()), zap.Int32("pid", e.ID.PID), zap.Int32("ppid", e.PPID),
		zap.Int64("uid", det.Owner.Real), zap.Int64("euid", det.Owner.Effective), zap.String("reason", v.String()))
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
	return c.chosen("task", i, how)
}

// chooseProplet binds the proplet rule to the only candidate, or to the only one whose children
// are our tasks; with several and no such one it binds none.
func (c *candidates) chooseProplet() (process.Entry, bool) {
	if len(c.list) > 1 {
		c.dropForks()
	}
	if len(c.list) > 1 {
		c.markOurs()
	}
	i, how := procmatch.ChooseProplet(c.list)
	return c.chosen("proplet", i, how)
}

// chosen reports the choice and keeps the list's memory for the next rule.
func (c *candidates) chosen(what string, i int, how string) (process.Entry, bool) {
	c.report(what, i, how)
	c.d.own.cands = c.list
	if i < 0 {
		return process.Entry{}, false
	}
	return c.list[i].Entry, true
}

// dropForks removes the candidates whose parent is a candidate too: a proplet's child between
// its fork and its exec is a copy of the proplet (same executable, command line and user), not
// a second proplet, and must not make the choice ambiguous.
func (c *candidates) dropForks() {
	pids := make(map[int32]bool, len(c.list))
	for _, x := range c.list {
		pids[x.Entry.ID.PID] = true
	}
	c.list = slices.DeleteFunc(c.list, func(x procmatch.Candidate) bool { return pids[x.Entry.PPID] })
}

// markOurs marks the proplet candidates that have a child bound to a task, or a child a pending
// task's rule would take were that candidate the proplet.
func (c *candidates) markOurs() {
	d := c.d
	defer func() { d.own.assume = process.ID{} }()
	for i := range c.list {
		d.own.assume = c.list[i].Entry.ID
		c.list[i].Ours = d.parentOfOurs(c.list[i].Entry.ID.PID)
	}
}

// parentOfOurs reports whether a child of pid is bound to a task, or matches a pending task's
// rule.
func (d *discovery) parentOfOurs(pid int32) bool {
	for _, child := range d.children[pid] {
		e, ok := d.entries[child]
		if !ok {
			continue
		}
		if d.bound[e.ID] {
			return true
		}
		for _, r := range d.own.pending {
			if _, ok := r.Match(e, d); ok {
				return true
			}
		}
	}
	return false
}

// report warns, once per change of the candidates, that a single-process rule matched several
// processes, which one was chosen and by which rule, and which were not.
func (c *candidates) report(what string, chosen int, how string) {
	own := &c.d.own
	if len(c.list) < 2 && !own.notices.AnyChoice() {
		return // nothing reported to forget: no key built on the common path
	}
	key := what + "\x00" + c.r.Key()
	if len(c.list) < 2 {
		own.notices.ForgetChoice(key)
		return
	}
	if !own.notices.ChoiceChanged(key, c.list) {
		return
	}
	own.tel.Refused("ambiguous_" + what)
	describe := func(cand procmatch.Candidate) string {
		return fmt.Sprintf("pid %d user %s started %s parent_of_a_task=%t", cand.Entry.ID.PID, process.OwnerName(cand.UID),
			c.d.src.StartTime(cand.Entry.ID).UTC().Format(time.RFC3339Nano), cand.Ours)
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
		msg = "Several processes match the proplet rule and none, or more than one, is the parent of our tasks: none is bound. Narrow proplet.match (cmdline, owner) or use proplet.pid_file"
	}
	own.log.Warn(msg, zap.String("rule", c.r.Spec().String()), zap.String("decided_by", how),
		zap.String("chosen", chosenS), zap.Strings("not_chosen", others))
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
