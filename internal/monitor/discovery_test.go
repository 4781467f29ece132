package monitor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// tableProc is one process of a fakeTable.
type tableProc struct {
	e   process.Entry
	d   process.Details
	env []string
}

// fakeTable is a process table in memory that counts what discovery reads of it.
type fakeTable struct {
	procs     map[int32]tableProc
	scans     int
	lookups   int
	describes map[process.ID]int
	environs  int
}

func newFakeTable(procs ...tableProc) *fakeTable {
	f := &fakeTable{procs: map[int32]tableProc{}, describes: map[process.ID]int{}}
	for _, p := range procs {
		f.put(p)
	}
	return f
}

func (f *fakeTable) put(p tableProc) { f.procs[p.e.ID.PID] = p }

func (f *fakeTable) Scan(_ []byte, fn func(process.Entry)) error {
	f.scans++
	for _, p := range f.procs {
		fn(p.e)
	}
	return nil
}

func (f *fakeTable) Lookup(pid int32, _ []byte) (process.Entry, bool) {
	f.lookups++
	p, ok := f.procs[pid]
	return p.e, ok
}

func (f *fakeTable) Describe(e process.Entry, _ []byte) (process.Details, error) {
	f.describes[e.ID]++
	p, ok := f.procs[e.ID.PID]
	if !ok || p.e.ID != e.ID {
		return process.Details{}, process.ErrGone
	}
	return p.d, nil
}

// StartTime is a process's start in clock ticks of 10 ms after the epoch.
func (f *fakeTable) StartTime(id process.ID) time.Time {
	return time.Unix(0, 0).Add(time.Duration(id.Start) * 10 * time.Millisecond)
}

func (f *fakeTable) Environ(e process.Entry, _ []byte) ([]string, error) {
	f.environs++
	p, ok := f.procs[e.ID.PID]
	if !ok || p.e.ID != e.ID {
		return nil, process.ErrGone
	}
	return p.env, nil
}

// proc is a process of a fake table: pid, parent, start time and command line.
func proc(pid, ppid int32, start uint64, cmdline string) tableProc {
	exe, _, _ := strings.Cut(cmdline, " ")
	return tableProc{e: process.Entry{ID: process.ID{PID: pid, Start: start}, PPID: ppid, Comm: exe}, d: process.Details{Executable: exe, Cmdline: cmdline, UID: 1000, Owner: process.Owner{Real: 1000, Effective: 1000}}}
}

// pidFiles is a set of pid files that counts its reads.
type pidFiles struct {
	pids  map[string]int32
	reads map[string]int
}

func (p *pidFiles) read(path string) (int32, bool) {
	p.reads[path]++
	pid, ok := p.pids[path]
	return pid, ok
}

// fakeDiscovery is discovery over tbl, with the pid files in files, after one scan.
func fakeDiscovery(t *testing.T, tbl *fakeTable, files map[string]int32) (*discovery, *pidFiles) {
	t.Helper()
	pf := &pidFiles{pids: files, reads: map[string]int{}}
	d := newDiscovery(tbl, pf.read, 1)
	d.begin()
	d.refresh(time.Now(), scanOnly{}, time.Hour)
	require.True(t, d.scanned)
	return d, pf
}

// scanOnly is a monitor without process events.
type scanOnly struct{}

func (scanOnly) active() bool                       { return false }
func (scanOnly) drain(into []int32) ([]int32, bool) { return into, false }

// heard is process events that named the processes in fresh, or missed some (stale).
type heard struct {
	fresh []int32
	stale bool
}

func (h *heard) active() bool { return true }
func (h *heard) drain(into []int32) ([]int32, bool) {
	into = append(into[:0], h.fresh...)
	stale := h.stale
	h.fresh, h.stale = nil, false
	return into, stale
}

func rule(t *testing.T, s procmatch.Spec) *procmatch.Matcher {
	t.Helper()
	m, err := procmatch.Compile(s)
	require.NoError(t, err)
	return m
}

func TestDiscoveryEarliestStartedUnboundProcessWins(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(
		proc(10, 1, 300, "worker task-a"),
		proc(11, 1, 100, "worker task-a"),
		proc(12, 1, 200, "worker task-a"),
		proc(13, 1, 50, "worker task-b"),
	)
	d, _ := fakeDiscovery(t, tbl, nil)
	r := rule(t, procmatch.Spec{Cmdline: "task-a$"})
	bound := map[process.ID]bool{}

	e, ok := d.resolve(admission.Locator{Match: r}, bound, seeker{})
	require.True(t, ok)
	assert.Equal(t, int32(11), e.ID.PID, "the earliest started of those that match")

	bound[e.ID] = true
	e, ok = d.resolve(admission.Locator{Match: r}, bound, seeker{})
	require.True(t, ok)
	assert.Equal(t, int32(12), e.ID.PID, "a process bound to a task is skipped")

	bound[e.ID] = true
	bound[tbl.procs[10].e.ID] = true
	_, ok = d.resolve(admission.Locator{Match: r}, bound, seeker{})
	assert.False(t, ok, "every match is bound")
}

// A rule restricted to the proplet's children, whichever way it names the proplet, finds the
// task's process among them, and never a process with the same command line elsewhere; named
// by pid or pid file, it reads the details of the proplet's children only.
func TestDiscoveryRulesRestrictedToTheProplet(t *testing.T) {
	t.Parallel()
	const proplet = 500
	for name, spec := range map[string]procmatch.Spec{
		"by-pid":      {ParentPID: proplet},
		"by-pid-file": {ParentPIDFile: "/run/proplet.pid"},
		"by-rule":     {Parent: &procmatch.Spec{Executable: "^proplet$"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tbl := newFakeTable(
				proc(1, 0, 1, "init"),
				proc(proplet, 1, 10, "proplet --config /etc/proplet"),
				proc(600, 1, 20, "worker --task-id=t1"),       // same command line, elsewhere, earlier
				proc(601, proplet, 30, "worker --task-id=t1"), // the proplet's child
				proc(602, proplet, 40, "worker --task-id=t2"),
			)
			for pid := int32(1000); pid < 1100; pid++ {
				tbl.put(proc(pid, 1, uint64(pid), "other"))
			}
			d, files := fakeDiscovery(t, tbl, map[string]int32{"/run/proplet.pid": proplet})
			spec.Cmdline = "--task-id=t1$"
			e, ok := d.resolve(admission.Locator{Match: rule(t, spec)}, nil, seeker{})
			require.True(t, ok)
			assert.Equal(t, int32(601), e.ID.PID, "the proplet's child, not the earlier process elsewhere")
			if spec.Parent == nil {
				assert.Zero(t, tbl.describes[tbl.procs[600].e.ID], "a process outside the proplet is not read")
				assert.Len(t, tbl.describes, 2, "only the proplet's children are read")
			}

			// Many pending tasks naming the same pid file cost one read per pass.
			for range 100 {
				d.resolve(admission.Locator{Match: rule(t, spec)}, nil, seeker{})
			}
			assert.LessOrEqual(t, files.reads["/run/proplet.pid"], 1)
			d.begin()
			d.resolve(admission.Locator{Match: rule(t, spec)}, nil, seeker{})
			assert.LessOrEqual(t, files.reads["/run/proplet.pid"], 2, "read again in the next pass")
		})
	}
}

func TestDiscoveryLocators(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(proc(1, 0, 1, "collector"), proc(42, 1, 5, "task"))
	d, _ := fakeDiscovery(t, tbl, map[string]int32{"/run/task.pid": 42, "/run/stale.pid": 77})

	e, ok := d.resolve(admission.Locator{PID: 42}, nil, seeker{})
	assert.True(t, ok)
	assert.Equal(t, int32(42), e.ID.PID)
	_, ok = d.resolve(admission.Locator{PID: 42}, map[process.ID]bool{e.ID: true}, seeker{})
	assert.False(t, ok, "a fixed pid already bound")

	e, ok = d.resolve(admission.Locator{PIDFile: "/run/task.pid"}, nil, seeker{})
	assert.True(t, ok)
	assert.Equal(t, int32(42), e.ID.PID)
	_, ok = d.resolve(admission.Locator{PIDFile: "/run/missing.pid"}, nil, seeker{})
	assert.False(t, ok, "a pid file not written yet")
	_, ok = d.resolve(admission.Locator{PIDFile: "/run/stale.pid"}, nil, seeker{})
	assert.False(t, ok, "a pid file naming no process")

	e, ok = d.resolve(admission.Locator{Self: true}, nil, seeker{})
	assert.True(t, ok)
	assert.Equal(t, int32(1), e.ID.PID, "in_process: this process")
	_, ok = d.resolve(admission.Locator{}, nil, seeker{})
	assert.False(t, ok)
}

func TestDiscoveryRulesCaptureTaskIDs(t *testing.T) {
	t.Parallel()
	const id = "650e8400-e29b-41d4-a716-446655440009"
	env := proc(20, 1, 2, "sleep")
	env.env = []string{"HOME=/", "PROPLET_TASK_ID=" + id}
	tbl := newFakeTable(proc(1, 0, 1, "init"), env, proc(21, 1, 3, "wasm proplet_t9.wasm"), proc(22, 1, 4, "bash"))
	d, _ := fakeDiscovery(t, tbl, nil)
	rules := []Rule{
		{Match: rule(t, procmatch.Spec{Environ: `^PROPLET_TASK_ID=(?P<task_id>[0-9a-f-]{36})$`})},
		{Match: rule(t, procmatch.Spec{Cmdline: `proplet_(?P<task_id>\w+)\.wasm`})},
	}
	found := map[int32]string{}
	for pid, p := range tbl.procs {
		if _, c, ok := d.ruleFor(p.e, rules, nil); ok {
			found[pid] = c.TaskID
		}
	}
	assert.Equal(t, map[int32]string{20: id, 21: "t9"}, found)

	// A process no rule matched is not read again until it execs.
	reads, envs := tbl.describes[tbl.procs[22].e.ID], tbl.environs
	_, _, ok := d.ruleFor(tbl.procs[22].e, rules, nil)
	assert.False(t, ok)
	assert.Equal(t, reads, tbl.describes[tbl.procs[22].e.ID])
	assert.Equal(t, envs, tbl.environs)
	_, _, ok = d.ruleFor(tbl.procs[21].e, rules, map[process.ID]bool{tbl.procs[21].e.ID: true})
	assert.False(t, ok, "a process bound to a task")
}

// With process events, the table follows the processes the events name; it is scanned whole
// at first, when events were missed, and every reconcileEvery.
func TestDiscoveryTableFollowsEvents(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(proc(1, 0, 1, "init"), proc(5, 1, 2, "shell"))
	d := newDiscovery(tbl, (&pidFiles{reads: map[string]int{}}).read, 1)
	ev := &heard{}
	now := time.Now()
	const every = 30 * time.Second

	d.begin()
	d.refresh(now, ev, every)
	assert.Equal(t, 1, tbl.scans, "the first pass scans")

	tbl.put(proc(6, 5, 3, "worker task-a"))
	ev.fresh = []int32{6}
	d.begin()
	d.refresh(now.Add(time.Second), ev, every)
	assert.Equal(t, 1, tbl.scans, "then only the processes events named are read")
	assert.True(t, d.scanned)
	e, ok := d.resolve(admission.Locator{Match: rule(t, procmatch.Spec{Cmdline: "task-a", ParentPID: 5})}, nil, seeker{})
	require.True(t, ok)
	assert.Equal(t, int32(6), e.ID.PID)

	ev.stale = true
	d.begin()
	d.refresh(now.Add(2*time.Second), ev, every)
	assert.Equal(t, 2, tbl.scans, "events were missed: scan")

	d.begin()
	d.refresh(now.Add(2*time.Second+every), ev, every)
	assert.Equal(t, 3, tbl.scans, "reconcile")

	// A process that ended before it was looked at leaves the table.
	delete(tbl.procs, 6)
	ev.fresh = []int32{6}
	d.begin()
	d.refresh(now.Add(3*time.Second+every), ev, every)
	_, ok = d.Entry(6)
	assert.False(t, ok)
	assert.Empty(t, d.children[5])
}

// A process that execs is read again: its command line before the exec was its parent's, and
// a rule that did not match it may match it now (a program that runs itself keeps its name).
func TestDiscoveryRereadsAProcessAfterItsExec(t *testing.T) {
	t.Parallel()
	forked := proc(7, 1, 3, "runner")
	tbl := newFakeTable(proc(1, 0, 1, "init"), forked)
	d := newDiscovery(tbl, (&pidFiles{reads: map[string]int{}}).read, 1)
	ev := &heard{}
	d.begin()
	d.refresh(time.Now(), ev, time.Hour)
	rules := []Rule{{Match: rule(t, procmatch.Spec{Cmdline: `--task=(?P<task_id>\w+)`})}}
	_, _, ok := d.ruleFor(forked.e, rules, nil)
	assert.False(t, ok)

	execd := forked
	execd.d.Cmdline = "runner --task=t7"
	tbl.put(execd)
	ev.fresh = []int32{7}
	d.execs = d.execs[:0]
	d.fresh, _ = ev.drain(d.fresh)
	d.applyFresh(&d.execs)
	require.Len(t, d.execs, 1)
	_, c, ok := d.ruleFor(d.execs[0], rules, nil)
	assert.True(t, ok)
	assert.Equal(t, "t7", c.TaskID)
}

// The exec job offers a new process only to the pending tasks whose rule could take it, and
// to one task at most.
func TestDiscoveryExecCandidates(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(proc(1, 0, 1, "init"), proc(500, 1, 2, "proplet"), proc(600, 1, 3, "other"))
	d, _ := fakeDiscovery(t, tbl, nil)
	mk := func(id string, s procmatch.Spec) *task {
		return &task{spec: admission.Spec{ID: id, Locator: admission.Locator{Match: rule(t, s)}}}
	}
	under := mk("under", procmatch.Spec{Cmdline: "job", ParentPID: 500})
	twin := mk("twin", procmatch.Spec{Cmdline: "job", ParentPID: 500})
	anywhere := mk("anywhere", procmatch.Spec{Cmdline: "lone"})
	elsewhere := mk("elsewhere", procmatch.Spec{Cmdline: "job", ParentPID: 600})
	d.indexPending([]*task{under, twin, anywhere, elsewhere, {spec: admission.Spec{ID: "pid", Locator: admission.Locator{PID: 9}}}})
	assert.Len(t, d.byParent[500], 2)
	assert.Equal(t, []*task{anywhere}, d.anyParent)

	execs := []process.Entry{proc(501, 500, 10, "job").e, proc(502, 1, 11, "lone").e, proc(503, 1, 12, "job").e}
	for _, e := range execs {
		tbl.put(tableProc{e: e, d: process.Details{Cmdline: e.Comm}})
	}
	var offered []string
	bound := map[process.ID]bool{}
	d.execCandidates(execs, bound, func(t *task, e process.Entry) bool {
		offered = append(offered, t.spec.ID+"@"+e.Comm)
		return true
	})
	assert.Equal(t, []string{"under@job", "anywhere@lone"}, offered, "one task per process; a job outside the parent is nobody's")
	assert.Len(t, bound, 2)
}

func TestDiscoveryDescendants(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(proc(1, 0, 1, "init"), proc(10, 1, 2, "root"), proc(11, 10, 3, "child"), proc(12, 11, 4, "grandchild"), proc(13, 1, 5, "other"))
	d, _ := fakeDiscovery(t, tbl, nil)
	var got []int32
	d.descendants(10, func(e process.Entry) { got = append(got, e.ID.PID) })
	assert.Equal(t, []int32{11, 12}, got)

	d.forget(tbl.procs[11].e)
	got = got[:0]
	d.descendants(10, func(e process.Entry) { got = append(got, e.ID.PID) })
	assert.Empty(t, got, "a forgotten process and what hangs below it")
}

func TestDiscoveryScanError(t *testing.T) {
	t.Parallel()
	d := newDiscovery(&failingTable{}, nil, 1)
	d.begin()
	d.refresh(time.Now(), scanOnly{}, time.Hour)
	assert.False(t, d.scanned)
	assert.Error(t, d.scanErr)
	_, ok := d.resolve(admission.Locator{Match: rule(t, procmatch.Spec{Cmdline: "x"})}, nil, seeker{})
	assert.False(t, ok, "no table: nothing found, nothing guessed")
}

type failingTable struct{ fakeTable }

func (*failingTable) Scan([]byte, func(process.Entry)) error {
	return errors.New("too many open files")
}
