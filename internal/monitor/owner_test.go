package monitor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// as is p run by uid, really and effectively.
func as(p tableProc, uid int64) tableProc {
	p.d.UID, p.d.Owner = uid, process.Owner{Real: uid, Effective: uid}
	return p
}

// refusals counts the monitor's refusals by reason.
type refusals struct {
	noTelemetry
	n map[string]int
}

func (r *refusals) Refused(reason string) { r.n[reason]++ }

// ownedDiscovery is discovery over tbl that logs to an observer and counts refusals, with
// bound as the proplet the collector has bound (none when its PID is 0).
func ownedDiscovery(t *testing.T, tbl *fakeTable, bound *process.ID) (*discovery, *observer.ObservedLogs, *refusals) {
	t.Helper()
	d, _ := fakeDiscovery(t, tbl, nil)
	core, logs := observer.New(zap.WarnLevel)
	tel := &refusals{n: map[string]int{}}
	d.own.log, d.own.tel = zap.New(core), tel
	d.own.boundProplet = func() (process.ID, bool) { return *bound, bound.PID != 0 }
	return d, logs, tel
}

// rescan is the next discovery pass's table.
func rescan(t *testing.T, d *discovery) {
	t.Helper()
	d.begin()
	d.refresh(d.lastScan, scanOnly{}, 0)
	require.True(t, d.scanned)
}

var (
	propletSpec = procmatch.Spec{Executable: "^proplet$", Owner: "0"}
	startedSpec = procmatch.Spec{Cmdline: `proplet_t1\.wasm`, Parent: &procmatch.Spec{Executable: "^proplet$", Owner: "0", Proplet: true}}
)

func TestProplet_AnotherUsersProcessIsRefusedOnce(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(as(proc(10, 1, 100, "proplet"), 65534), as(proc(20, 1, 200, "proplet"), 0))
	var none process.ID
	d, logs, tel := ownedDiscovery(t, tbl, &none)
	loc := admission.Locator{Match: rule(t, propletSpec)}

	for range 3 {
		e, ok := d.resolve(loc, nil, seeker{proplet: true})
		require.True(t, ok)
		assert.Equal(t, int32(20), e.ID.PID, "root's proplet, though another user's started first")
		rescan(t, d)
	}
	refused := logs.FilterMessageSnippet("not bound").All()
	require.Len(t, refused, 1, "warned once, not on every pass")
	assert.Equal(t, int32(10), refused[0].ContextMap()["pid"])
	assert.Equal(t, "wrong_owner", refused[0].ContextMap()["reason"])
	assert.Equal(t, map[string]int{"wrong_owner": 1}, tel.n)
}

func TestProplet_AForkOfTheProplet_IsNotASecond(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(as(proc(10, 1, 100, "proplet"), 0), as(proc(11, 10, 200, "proplet"), 0))
	var none process.ID
	d, logs, tel := ownedDiscovery(t, tbl, &none)
	e, ok := d.resolve(admission.Locator{Match: rule(t, propletSpec)}, nil, seeker{proplet: true})
	require.True(t, ok)
	assert.Equal(t, int32(10), e.ID.PID, "its child between fork and exec is the proplet's copy")
	assert.Zero(t, logs.Len(), "nothing ambiguous to say")
	assert.Empty(t, tel.n)
}

func TestProplet_SeveralAreNeverGuessed(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(as(proc(10, 1, 100, "proplet"), 0), as(proc(20, 1, 200, "proplet"), 0))
	var none process.ID
	d, logs, tel := ownedDiscovery(t, tbl, &none)
	loc := admission.Locator{Match: rule(t, propletSpec)}

	_, ok := d.resolve(loc, nil, seeker{proplet: true})
	assert.False(t, ok, "two of root's proplets, neither the parent of our tasks: none")
	tbl.put(as(proc(12, 10, 150, "proplet"), 0)) // forked, not exec'd yet: a copy, not a third
	rescan(t, d)
	_, ok = d.resolve(loc, nil, seeker{proplet: true})
	assert.False(t, ok)
	delete(tbl.procs, 12)
	assert.Len(t, logs.FilterField(zap.String("decided_by", procmatch.ChoseNone)).All(), 1, "said once per change")

	// A pending started task's rule takes a child of the later one: that one is ours.
	d.own.pending = []*procmatch.Matcher{rule(t, startedSpec)}
	tbl.put(as(proc(21, 20, 300, "sh /tmp/proplet_t1.wasm"), 0))
	rescan(t, d)
	e, ok := d.resolve(loc, nil, seeker{proplet: true})
	require.True(t, ok)
	assert.Equal(t, int32(20), e.ID.PID)
	assert.Len(t, logs.FilterField(zap.String("decided_by", procmatch.ChoseOurs)).All(), 1)
	assert.Equal(t, 2, tel.n["ambiguous_proplet"], "counted once per change")

	// A child bound to a task says the same of the earlier one.
	d.own.pending = nil
	tbl.put(proc(11, 10, 400, "sh other"))
	rescan(t, d)
	d.bound[tbl.procs[11].e.ID] = true
	e, ok = d.resolve(loc, nil, seeker{proplet: true})
	require.True(t, ok)
	assert.Equal(t, int32(10), e.ID.PID)
	assert.Equal(t, process.ID{}, d.own.assume, "no candidate is left assumed to be the proplet")
}

func TestStartedTask_OnlyTheBoundPropletsChildAsItsUser(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(
		as(proc(10, 1, 100, "proplet"), 0),
		as(proc(11, 10, 110, "sh /tmp/proplet_t1.wasm"), 0), // another proplet's: not even looked at
		as(proc(20, 1, 200, "proplet"), 0),
		as(proc(21, 20, 210, "sh /tmp/proplet_t1.wasm"), 1000), // ours, another user's
		as(proc(22, 20, 220, "sh /tmp/proplet_t1.wasm"), 0),
		as(proc(23, 20, 230, "sh /tmp/proplet_t1.wasm"), 0), // a retry
	)
	bound := tbl.procs[20].e.ID
	d, logs, tel := ownedDiscovery(t, tbl, &bound)
	loc := admission.Locator{Match: rule(t, startedSpec)}

	e, ok := d.resolve(loc, map[process.ID]bool{}, seeker{})
	require.True(t, ok)
	assert.Equal(t, int32(22), e.ID.PID, "the earliest of the bound proplet's children run as its user")
	assert.Equal(t, map[string]int{"wrong_owner": 1, "ambiguous_task": 1}, tel.n)
	chose := logs.FilterField(zap.String("decided_by", procmatch.ChoseEarliest)).All()
	require.Len(t, chose, 1)
	assert.Contains(t, chose[0].ContextMap()["chosen"], "pid 22 ")

	var nobody process.ID
	d2, _, _ := ownedDiscovery(t, tbl, &nobody)
	_, ok = d2.resolve(loc, nil, seeker{})
	assert.False(t, ok, "no proplet bound: no started task's process")
}

func TestRebind_OnlyAProcessStartedAfterThePreviousOneRan(t *testing.T) {
	t.Parallel()
	tbl := newFakeTable(
		proc(10, 1, 100, "worker t1"), // the task's previous process, still in the table
		proc(11, 1, 150, "worker t1"), // ran beside it
		proc(12, 1, 300, "worker t1"), // its restart
	)
	var none process.ID
	d, logs, tel := ownedDiscovery(t, tbl, &none)
	loc := admission.Locator{Match: rule(t, procmatch.Spec{Cmdline: "t1$"})}
	who := seeker{notBefore: 200, prevStart: 100}

	e, ok := d.resolve(loc, nil, who)
	require.True(t, ok)
	assert.Equal(t, int32(12), e.ID.PID, "not the earlier ones: they ran beside the ended process")
	refused := logs.FilterMessageSnippet("not bound").All()
	require.Len(t, refused, 1, "the previous process itself is not warned about")
	assert.Equal(t, int32(11), refused[0].ContextMap()["pid"])
	assert.Equal(t, map[string]int{"started_before_the_task": 1}, tel.n)

	assert.Equal(t, procmatch.StartedEarly, d.mayBind(tbl.procs[11].e, nil, who))
	assert.Equal(t, procmatch.NoMatch, d.mayBind(tbl.procs[12].e, map[process.ID]bool{tbl.procs[12].e.ID: true}, who))
	_, ok = d.resolve(admission.Locator{PID: 11}, nil, who)
	assert.False(t, ok, "a pid names it, mayBind still refuses it")
	_, ok = d.resolve(admission.Locator{PID: 11}, nil, seeker{})
	assert.True(t, ok, "a task that never ended takes any")
}
