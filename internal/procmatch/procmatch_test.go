package procmatch

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

type table map[int32]struct {
	e process.Entry
	d process.Details
}

func (t table) Entry(pid int32) (process.Entry, bool) { p, ok := t[pid]; return p.e, ok }
func (t table) Environ(e process.Entry) ([]string, bool) {
	if e.ID.PID == 20 {
		return []string{"HOME=/root", "PROPLET_TASK_ID=550e8400-e29b-41d4-a716-446655440001"}, true
	}
	return nil, true
}
func (t table) PIDFile(path string) (int32, bool) { return ReadPIDFile(path) }

// Proplet: in these tables the proplet, when there is one, is pid 10.
func (t table) Proplet() (process.ID, bool) { p, ok := t[10]; return p.e.ID, ok }
func (t table) Details(e process.Entry) (process.Details, bool) {
	p, ok := t[e.ID.PID]
	return p.d, ok
}

func proc(pid, ppid int32, exe, cmd string, uid int64) struct {
	e process.Entry
	d process.Details
} {
	return struct {
		e process.Entry
		d process.Details
	}{process.Entry{ID: process.ID{PID: pid, Start: 1}, PPID: ppid, Comm: exe}, process.Details{Executable: exe, Cmdline: cmd, UID: uid, Owner: process.Owner{Real: uid, Effective: uid}}}
}

func TestMatch(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "proplet.pid")
	require.NoError(t, os.WriteFile(pidFile, []byte("10\n"), 0o600))
	tbl := table{
		1:  proc(1, 0, "init", "/sbin/init", 0),
		10: proc(10, 1, "proplet", "/usr/bin/proplet --config x", 1000),
		20: proc(20, 10, "wasmtime", "wasmtime run --env TASK_ID=550e8400-e29b-41d4-a716-446655440001 --env TASK_NAME=compute /tmp/a.wasm", 1000),
		30: proc(30, 1, "wasmtime", "wasmtime run --env TASK_ID=650e8400-e29b-41d4-a716-446655440001 /tmp/b.wasm", 1000),
	}
	const taskCmd = `TASK_ID=(?P<task_id>[0-9a-f-]{36})(?: --env TASK_NAME=(?P<task_name>\w+))?`
	tests := []struct {
		name string
		spec Spec
		pid  int32
		ok   bool
		want Captures
	}{
		{"executable and captures", Spec{Executable: "^wasmtime$", Cmdline: taskCmd}, 20, true, Captures{TaskID: "550e8400-e29b-41d4-a716-446655440001", TaskName: "compute"}},
		{"parent pid file", Spec{Executable: "^wasmtime$", ParentPIDFile: pidFile}, 20, true, Captures{}},
		{"parent pid file excludes other parents", Spec{Executable: "^wasmtime$", ParentPIDFile: pidFile}, 30, false, Captures{}},
		{"parent pid", Spec{ParentPID: 10}, 20, true, Captures{}},
		{"parent pid and pid file agree", Spec{ParentPID: 10, ParentPIDFile: pidFile}, 20, true, Captures{}},
		{"parent pid and pid file disagree", Spec{ParentPID: 1, ParentPIDFile: pidFile}, 30, false, Captures{}},
		{"unreadable parent pid file", Spec{ParentPIDFile: filepath.Join(dir, "missing")}, 20, false, Captures{}},
		{"nested parent match", Spec{Executable: "wasmtime", Parent: &Spec{Executable: "^proplet$"}}, 20, true, Captures{}},
		{"nested parent mismatch", Spec{Executable: "wasmtime", Parent: &Spec{Executable: "^proplet$"}}, 30, false, Captures{}},
		{"owner by uid", Spec{Owner: "1000", Executable: "proplet"}, 10, true, Captures{}},
		{"owner mismatch", Spec{Owner: "0", Executable: "proplet"}, 10, false, Captures{}},
		{"owner by name", Spec{Owner: "root"}, 1, true, Captures{}},
		{"cmdline mismatch", Spec{Cmdline: "nothing-like-this"}, 20, false, Captures{}},
		{"environment variable", Spec{Environ: `^PROPLET_TASK_ID=(?P<task_id>.+)$`}, 20, true, Captures{TaskID: "550e8400-e29b-41d4-a716-446655440001"}},
		{"environment variable absent", Spec{Environ: `^PROPLET_TASK_ID=`}, 30, false, Captures{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Compile(tt.spec)
			require.NoError(t, err)
			c, ok := m.Match(tbl[tt.pid].e, tbl)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, c)
		})
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := Compile(Spec{})
	assert.ErrorContains(t, err, "at least one of")
	_, err = Compile(Spec{Executable: "(", Cmdline: "[", Owner: "no-such-user-here"})
	require.Error(t, err)
	assert.ErrorContains(t, err, `executable: invalid regular expression "("`)
	assert.ErrorContains(t, err, `cmdline: invalid regular expression "["`)
	assert.ErrorContains(t, err, `owner: unknown user "no-such-user-here"`)
	_, err = Compile(Spec{Parent: &Spec{Cmdline: "("}})
	assert.ErrorContains(t, err, "parent: cmdline: invalid regular expression")

	m, err := Compile(Spec{Cmdline: "TASK_ID=(?P<task_id>.+)"})
	require.NoError(t, err)
	assert.True(t, m.CapturesTask())
	m, err = Compile(Spec{Cmdline: "wasmtime"})
	require.NoError(t, err)
	assert.False(t, m.CapturesTask())
}

func TestFill(t *testing.T) {
	s := Spec{Cmdline: `--env TASK_ID={task_id} .*{task_name}\.wasm`, Parent: &Spec{Executable: "proplet-{task_name}"}}
	f := s.Fill("550e8400-e29b-41d4-a716-446655440001", "a.b")
	assert.Equal(t, `--env TASK_ID=550e8400-e29b-41d4-a716-446655440001 .*a\.b\.wasm`, f.Cmdline)
	assert.Equal(t, `proplet-a\.b`, f.Parent.Executable)
	assert.Equal(t, "proplet-{task_name}", s.Parent.Executable, "the original is not changed")
	_, err := Compile(f)
	require.NoError(t, err)
}

// countingTable counts the pid file reads matching asks for.
type countingTable struct {
	table
	reads int
}

func (t *countingTable) PIDFile(path string) (int32, bool) {
	t.reads++
	return ReadPIDFile(path)
}

func TestFixedParent(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "proplet.pid")
	require.NoError(t, os.WriteFile(pidFile, []byte("10\n"), 0o600))
	tests := []struct {
		name  string
		spec  Spec
		pid   int32
		fixed bool
	}{
		{"no parent condition", Spec{Cmdline: "x"}, 0, false},
		{"nested rule only", Spec{Parent: &Spec{Executable: "proplet"}}, 0, false},
		{"parent pid", Spec{ParentPID: 7}, 7, true},
		{"parent pid file", Spec{ParentPIDFile: pidFile}, 10, true},
		{"both, agreeing", Spec{ParentPID: 10, ParentPIDFile: pidFile}, 10, true},
		{"both, disagreeing: nothing matches", Spec{ParentPID: 7, ParentPIDFile: pidFile}, 0, true},
		{"unreadable file: nothing matches", Spec{ParentPIDFile: filepath.Join(dir, "missing")}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Compile(tt.spec)
			require.NoError(t, err)
			tbl := &countingTable{}
			pid, fixed := m.FixedParent(tbl)
			assert.Equal(t, tt.pid, pid)
			assert.Equal(t, tt.fixed, fixed)
			if tt.spec.ParentPIDFile != "" {
				assert.Equal(t, 1, tbl.reads, "the pid file is read through the table")
			}
		})
	}
}

func TestMatchReadsThePIDFileThroughTheTable(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "proplet.pid")
	require.NoError(t, os.WriteFile(pidFile, []byte("10\n"), 0o600))
	m, err := Compile(Spec{Cmdline: "wasmtime", ParentPIDFile: pidFile})
	require.NoError(t, err)
	tbl := &countingTable{table: table{20: proc(20, 10, "wasmtime", "wasmtime run", 1000)}}
	_, ok := m.Match(tbl.table[20].e, tbl)
	assert.True(t, ok)
	assert.Equal(t, 1, tbl.reads)
}

func TestKey(t *testing.T) {
	spec := func() Spec {
		return Spec{Cmdline: "a", ParentPIDFile: "/run/p.pid", Parent: &Spec{Executable: "proplet"}}
	}
	a, err := Compile(spec())
	require.NoError(t, err)
	b, err := Compile(spec())
	require.NoError(t, err)
	assert.Equal(t, a.Key(), b.Key(), "equal specs, equal keys")
	assert.Equal(t, a.ParentRule().Key(), b.ParentRule().Key())
	other := spec()
	other.Parent = &Spec{Executable: "proplet2"}
	c, err := Compile(other)
	require.NoError(t, err)
	assert.NotEqual(t, a.Key(), c.Key(), "a nested rule is part of the key")
	assert.Nil(t, c.ParentRule().ParentRule())
}
