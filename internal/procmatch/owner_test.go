package procmatch

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// hostTable is a process table with a bound proplet, for the ownership conditions.
type hostTable struct {
	procs   map[int32]fakeProc
	proplet int32 // 0: none bound
}

type fakeProc struct {
	e process.Entry
	d process.Details
}

func (t hostTable) Entry(pid int32) (process.Entry, bool) { p, ok := t.procs[pid]; return p.e, ok }
func (t hostTable) Details(e process.Entry) (process.Details, bool) {
	p, ok := t.procs[e.ID.PID]
	return p.d, ok && p.e.ID == e.ID
}
func (hostTable) Environ(process.Entry) ([]string, bool) { return nil, true }
func (hostTable) PIDFile(string) (int32, bool)           { return 0, false }
func (t hostTable) Proplet() (process.ID, bool) {
	p, ok := t.procs[t.proplet]
	return p.e.ID, ok && t.proplet != 0
}

// fake is a process started at start (clock ticks) running as real and effective uids.
func fake(pid, ppid int32, start uint64, exe, cmd string, real, effective int64) fakeProc {
	return fakeProc{
		e: process.Entry{ID: process.ID{PID: pid, Start: start}, PPID: ppid, Comm: exe},
		d: process.Details{Executable: exe, Cmdline: cmd, UID: effective, Owner: process.Owner{Real: real, Effective: effective}},
	}
}

// host: the real proplet (root, pid 10) with its task t1 (pid 11) and a task child run as
// another user (pid 12); another job's root proplet (pid 20) with a child for t1 (pid 21); an
// unprivileged user's copy of a shell named proplet (pid 30, uid 65534) with a child whose
// command line names t1 (pid 31); a set-user-id proplet started by that user (pid 40, real
// 65534, effective 0).
func host() hostTable {
	return hostTable{proplet: 10, procs: map[int32]fakeProc{
		1:  fake(1, 0, 1, "init", "/sbin/init", 0, 0),
		10: fake(10, 1, 1000, "proplet", "/usr/local/bin/proplet", 0, 0),
		11: fake(11, 10, 2000, "wasmtime", "wasmtime run /tmp/proplet_t1.wasm", 0, 0),
		12: fake(12, 10, 2001, "wasmtime", "wasmtime run /tmp/proplet_t1.wasm", 65534, 65534),
		20: fake(20, 1, 900, "proplet", "/opt/other/proplet", 0, 0),
		21: fake(21, 20, 1999, "wasmtime", "wasmtime run /tmp/proplet_t1.wasm", 0, 0),
		30: fake(30, 1, 1500, "proplet", "/home/eve/proplet", 65534, 65534),
		31: fake(31, 30, 1600, "sh", "sleep 1000 /tmp/proplet_t1.wasm", 65534, 65534),
		40: fake(40, 1, 1700, "proplet", "/home/eve/proplet-suid", 65534, 0),
	}}
}

func TestPropletRuleOwner(t *testing.T) {
	tbl := host()
	m, err := Compile(Spec{Executable: "^proplet$", Owner: "0"})
	require.NoError(t, err)
	verdicts := map[int32]Verdict{}
	for pid, p := range tbl.procs {
		_, v := m.Check(p.e, tbl)
		verdicts[pid] = v
	}
	assert.Equal(t, map[int32]Verdict{
		1: NoMatch, 10: Matched, 11: NoMatch, 12: NoMatch, 20: Matched, 21: NoMatch,
		30: WrongOwner, // another user's copy named proplet
		31: NoMatch,
		40: WrongOwner, // effective root, started by another user
	}, verdicts)
}

func TestStartedTaskOwnership(t *testing.T) {
	tbl := host()
	m, err := Compile(Spec{Cmdline: `proplet_t1\.wasm`, Parent: &Spec{Executable: "^proplet$", Owner: "0", Proplet: true}})
	require.NoError(t, err)
	check := func(pid int32) Verdict { _, v := m.Check(tbl.procs[pid].e, tbl); return v }
	assert.Equal(t, Matched, check(11), "the bound proplet's child, of its user")
	assert.Equal(t, WrongOwner, check(12), "the bound proplet's child run as another user")
	assert.Equal(t, NotProplet, check(21), "a child of another root proplet")
	assert.Equal(t, NotProplet, check(31), "a child of another user's fake proplet")
	assert.Equal(t, NoMatch, check(10))

	tbl.proplet = 0
	assert.Equal(t, NotProplet, check(11), "no proplet bound: no started task binds")

	// The proplet named by a pid file: the task rule keeps the same-owner condition.
	tbl.proplet = 10
	byPID, err := Compile(Spec{Cmdline: `proplet_t1\.wasm`, ParentPID: 10, Parent: &Spec{Proplet: true}})
	require.NoError(t, err)
	_, v := byPID.Check(tbl.procs[11].e, tbl)
	assert.Equal(t, Matched, v)
	_, v = byPID.Check(tbl.procs[12].e, tbl)
	assert.Equal(t, WrongOwner, v)
}

func TestStartedAfter(t *testing.T) {
	e := process.Entry{ID: process.ID{PID: 11, Start: 2000}}
	assert.True(t, StartedAfter(e, 0), "a first bind takes a process of any age")
	assert.False(t, StartedAfter(e, 2000), "started at the moment the previous process was last seen: not its restart")
	assert.False(t, StartedAfter(e, 2500))
	assert.True(t, StartedAfter(e, 1999))
}

func TestChooseProplet(t *testing.T) {
	c := func(pid int32, start uint64, ours bool) Candidate {
		return Candidate{Entry: process.Entry{ID: process.ID{PID: pid, Start: start}}, Ours: ours}
	}
	tests := []struct {
		name  string
		cands []Candidate
		want  int
		how   string
	}{
		{"none", nil, -1, ""},
		{"one", []Candidate{c(10, 5, false)}, 0, ChoseOnly},
		{"two, one parent of our tasks", []Candidate{c(20, 1, false), c(10, 5, true)}, 1, ChoseOurs},
		{"two, none ours: refused, not the youngest nor the oldest", []Candidate{c(20, 1, false), c(10, 5, false)}, -1, ChoseNone},
		{"two, both ours: refused", []Candidate{c(20, 1, true), c(10, 5, true)}, -1, ChoseNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, how := ChooseProplet(tt.cands)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.how, how)
		})
	}
	got, how := ChooseTask([]Candidate{c(12, 7, false), c(11, 3, false), c(13, 3, false)})
	assert.Equal(t, 1, got, "the earliest started, the lower pid on a tie")
	assert.Equal(t, ChoseEarliest, how)
}

func TestNotices(t *testing.T) {
	var n Notices
	a := Candidate{Entry: process.Entry{ID: process.ID{PID: 10, Start: 5}}}
	b := Candidate{Entry: process.Entry{ID: process.ID{PID: 20, Start: 1}}}
	assert.True(t, n.ChoiceChanged("proplet", []Candidate{a, b}))
	assert.False(t, n.ChoiceChanged("proplet", []Candidate{b, a}), "the same candidates in another order: said already")
	a.Ours = true
	assert.True(t, n.ChoiceChanged("proplet", []Candidate{b, a}), "one became the parent of a task: said")
	assert.True(t, n.ChoiceChanged("proplet", []Candidate{a}), "a change is said")
	n.ForgetChoice("proplet")
	assert.True(t, n.ChoiceChanged("proplet", []Candidate{a}))

	id := process.ID{PID: 30, Start: 9}
	assert.True(t, n.Refused(id, WrongOwner))
	assert.False(t, n.Refused(id, WrongOwner))
	n.Forget(func(process.ID) bool { return true })
	assert.True(t, n.Refused(id, WrongOwner), "forgotten once gone")
}

func TestSeveralOwners(t *testing.T) {
	tbl := host()
	m, err := Compile(Spec{Executable: "^proplet$", Owner: "root, 65534"})
	require.NoError(t, err)
	for pid, want := range map[int32]Verdict{10: Matched, 30: Matched, 40: WrongOwner} {
		_, v := m.Check(tbl.procs[pid].e, tbl)
		assert.Equal(t, want, v, "pid %d", pid)
	}
	_, err = Compile(Spec{Owner: "0,no-such-user-here"})
	assert.ErrorContains(t, err, `owner: unknown user "no-such-user-here"`)
}
