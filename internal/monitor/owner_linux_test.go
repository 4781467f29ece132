//go:build linux

package monitor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// standIn is a proplet stand-in: a copy of /bin/sh named proplet that starts each line written
// to it as a child, run by a given user, as an unprivileged user can with a copy of a shell.
type standIn struct {
	pid   int32
	stdin io.Writer
}

// propletCopy returns a directory every user can read holding a copy of /bin/sh named proplet.
func propletCopy(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	dir, err := os.MkdirTemp("", "proplet-owner-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	sh, err := os.ReadFile("/bin/sh")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "proplet"), sh, 0o755))
	return dir
}

// startStandIn starts the copy in dir as uid, with marker on its command line.
func startStandIn(t *testing.T, dir string, uid uint32, marker string) *standIn {
	t.Helper()
	var cmd *exec.Cmd
	var stdin io.Writer
	// A parallel test's fork may still hold the copy's descriptor open for writing (it was
	// written just now, and a forked child keeps its parent's descriptors until it execs): the
	// exec then fails with ETXTBSY until that child has exec'd. Try again, briefly.
	for attempt := 0; ; attempt++ {
		cmd = exec.Command(filepath.Join(dir, "proplet"), "-c", `while read -r line; do eval "$line" & done; wait`, "proplet", marker)
		cmd.Dir = "/"
		// The stand-in runs sh and sleep by name, as another user: the system's directories, not a
		// PATH that may hold root's private ones (CI's PATH without a C compiler does).
		cmd.Env = append(os.Environ(), "PATH=/usr/local/bin:/usr/bin:/bin")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if uid != 0 {
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: uid}
		}
		var err error
		stdin, err = cmd.StdinPipe()
		require.NoError(t, err)
		err = cmd.Start()
		if errors.Is(err, syscall.ETXTBSY) && attempt < 50 {
			time.Sleep(20 * time.Millisecond) //nolint:forbidigo // waiting out another process's exec
			continue
		}
		require.NoError(t, err)
		break
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return &standIn{pid: int32(cmd.Process.Pid), stdin: stdin}
}

// task makes the stand-in start a child whose command line names the task's wasm file, as the
// proplet's wasmtime runtime does, and returns the child.
func (p *standIn) task(t *testing.T, src *process.Source, id string) process.Entry {
	t.Helper()
	before := childrenNaming(t, src, p.pid, id)
	_, err := fmt.Fprintf(p.stdin, "exec sh -c 'sleep 1000; :' /tmp/proplet_%s.wasm\n", id)
	require.NoError(t, err)
	var child process.Entry
	require.Eventually(t, func() bool {
		for _, e := range childrenList(t, src, p.pid, id) {
			if !before[e.ID] {
				child = e
				return true
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond, "the stand-in did not start the task's process")
	return child
}

func childrenNaming(t *testing.T, src *process.Source, ppid int32, id string) map[process.ID]bool {
	buf := make([]byte, bufSize)
	out := map[process.ID]bool{}
	require.NoError(t, src.Scan(buf, func(e process.Entry) {
		if e.PPID != ppid {
			return
		}
		if d, err := src.Describe(e, buf); err == nil && strings.Contains(d.Cmdline, "proplet_"+id+".wasm") {
			out[e.ID] = true
		}
	}))
	return out
}

func childrenList(t *testing.T, src *process.Source, ppid int32, id string) []process.Entry {
	var out []process.Entry
	buf := make([]byte, bufSize)
	for id := range childrenNaming(t, src, ppid, id) {
		if e, ok := src.Lookup(id.PID, buf); ok {
			out = append(out, e)
		}
	}
	return out
}

// ownerRules are the proplet rule and a started task's rule as the receiver builds them for
// `proplet: {match: {executable: '^proplet$'}}` and `task_match: {cmdline: 'proplet_{task_id}\.wasm'}`
// (the owner defaulted to root and the collector's user, root here), narrowed to this test's
// stand-ins by marker.
func ownerRules(t *testing.T, marker, id string) (proplet, task *procmatch.Matcher) {
	t.Helper()
	rule := procmatch.Spec{Executable: "^proplet$", Cmdline: marker, Owner: "0"}
	proplet, err := procmatch.Compile(rule)
	require.NoError(t, err)
	parent := rule
	parent.Proplet = true
	task, err = procmatch.Compile(procmatch.Spec{Cmdline: `proplet_` + id + `\.wasm`, Parent: &parent})
	require.NoError(t, err)
	return proplet, task
}

func ownerMonitor(t *testing.T, rule *procmatch.Matcher) (*harness, *countingTelemetry, *observer.ObservedLogs) {
	t.Helper()
	log, logs := observed(t)
	tel := newCountingTelemetry()
	h := runMonitorWith(t, Config{
		DiscoveryInterval: 100 * time.Millisecond, PropletInterval: 100 * time.Millisecond,
		Proplet: admission.Locator{Match: rule},
	}, tel, log)
	return h, tel, logs
}

func (h *harness) propletPID() int32 {
	ps := h.proplet()
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].HasProcess {
			return ps[i].PID
		}
	}
	return 0
}

func warned(logs *observer.ObservedLogs, msg string, field string, value any) bool {
	for _, e := range logs.FilterMessageSnippet(msg).All() {
		if field == "" || e.ContextMap()[field] == value {
			return true
		}
	}
	return false
}

// TestAnotherUsersProcessesAreNeverBound: another user's copy of a shell named proplet, with a
// child whose command line names a started task, is neither the proplet nor the task; the
// root proplet started later, and its child, are.
func TestAnotherUsersProcessesAreNeverBound(t *testing.T) {
	t.Parallel()
	dir := propletCopy(t)
	marker := fmt.Sprintf("owner-test-%d", time.Now().UnixNano())
	const id = "t-owner-1"
	propletRule, taskRule := ownerRules(t, marker, id)
	h, tel, logs := ownerMonitor(t, propletRule)

	fake := startStandIn(t, dir, 65534, marker)
	fakeTask := fake.task(t, h.m.src, id)
	require.NoError(t, h.m.AddTask(admission.Spec{ID: id, ProfileName: "test", Profile: prof(100 * time.Millisecond), Locator: admission.Locator{Match: taskRule}}))

	require.Eventually(t, func() bool {
		return warned(logs, "Process matches a rule but is not bound", "pid", fake.pid)
	}, 5*time.Second, 10*time.Millisecond, "the fake proplet is looked at and refused")
	assert.Zero(t, h.propletPID(), "another user's process is not sampled as the proplet")
	s, _ := h.m.Task(id)
	assert.Equal(t, StatePending, s.State, "the fake proplet's child is not the task")
	assert.GreaterOrEqual(t, tel.refusedFor("wrong_owner"), 1)
	e := logs.FilterMessageSnippet("Process matches a rule but is not bound").All()[0]
	assert.Equal(t, "wrong_owner", e.ContextMap()["reason"])
	assert.Equal(t, int64(65534), e.ContextMap()["uid"])

	real := startStandIn(t, dir, 0, marker)
	realTask := real.task(t, h.m.src, id)
	require.Eventually(t, func() bool { s, _ := h.m.Task(id); return s.State == StateActive }, patience, 10*time.Millisecond)
	s, _ = h.m.Task(id)
	assert.Equal(t, realTask.ID.PID, s.PID, "the root proplet's child is the task, not %d", fakeTask.ID.PID)
	require.Eventually(t, func() bool { return h.propletPID() == real.pid }, patience, 10*time.Millisecond)
	n := 0
	for _, e := range logs.FilterMessageSnippet("Process matches a rule but is not bound").All() {
		if e.ContextMap()["pid"] == fake.pid {
			n++
		}
	}
	assert.Equal(t, 1, n, "the refused process is warned about once, not on every pass")
}

// TestTwoPropletsAreNeverGuessed: with two proplet processes of the same user, none is bound
// until one is the parent of a started task's process; each decision is warned about once,
// with the processes chosen and not chosen, and counted.
func TestTwoPropletsAreNeverGuessed(t *testing.T) {
	t.Parallel()
	dir := propletCopy(t)
	marker := fmt.Sprintf("two-test-%d", time.Now().UnixNano())
	const id = "t-owner-2"
	propletRule, taskRule := ownerRules(t, marker, id)
	a := startStandIn(t, dir, 0, marker)
	b := startStandIn(t, dir, 0, marker)
	h, tel, logs := ownerMonitor(t, propletRule)

	const ambiguous = "Several processes match the proplet rule and none, or more than one, is the parent of our tasks"
	require.Eventually(t, func() bool { return warned(logs, ambiguous, "decided_by", procmatch.ChoseNone) }, patience, 10*time.Millisecond)
	e := logs.FilterMessageSnippet(ambiguous).All()[0]
	assert.Equal(t, "none", e.ContextMap()["chosen"])
	notChosen := fmt.Sprint(e.ContextMap()["not_chosen"])
	assert.Contains(t, notChosen, fmt.Sprintf("pid %d user root", a.pid))
	assert.Contains(t, notChosen, fmt.Sprintf("pid %d user root", b.pid))
	assert.Zero(t, h.propletPID(), "neither is sampled as the proplet")

	require.NoError(t, h.m.AddTask(admission.Spec{ID: id, ProfileName: "test", Profile: prof(100 * time.Millisecond), Locator: admission.Locator{Match: taskRule}}))
	child := b.task(t, h.m.src, id)
	require.Eventually(t, func() bool { return h.propletPID() == b.pid }, patience, 10*time.Millisecond, "the parent of the task's process is the proplet")
	require.Eventually(t, func() bool { s, _ := h.m.Task(id); return s.State == StateActive && s.PID == child.ID.PID }, patience, 10*time.Millisecond)

	chose := logs.FilterMessageSnippet("Several processes match the proplet rule: bound the one the documented rule chose").All()
	require.Len(t, chose, 1)
	assert.Equal(t, procmatch.ChoseOurs, chose[0].ContextMap()["decided_by"])
	assert.Contains(t, chose[0].ContextMap()["chosen"], fmt.Sprintf("pid %d user root", b.pid))
	assert.Contains(t, fmt.Sprint(chose[0].ContextMap()["not_chosen"]), fmt.Sprintf("pid %d user root", a.pid))
	assert.Len(t, logs.FilterMessageSnippet(ambiguous).All(), 1, "said once, not on every pass")
	assert.Equal(t, 2, tel.refusedFor("ambiguous_proplet"), "counted once per change")
}

// TestRebindOnlyToALaterProcess: a task whose process ended does not take a process that was
// already running beside it, only one started after it was last seen running.
func TestRebindOnlyToALaterProcess(t *testing.T) {
	t.Parallel()
	dir := propletCopy(t)
	marker := fmt.Sprintf("rebind-test-%d", time.Now().UnixNano())
	const id = "t-owner-3"
	propletRule, taskRule := ownerRules(t, marker, id)
	p := startStandIn(t, dir, 0, marker)
	h, tel, logs := ownerMonitor(t, propletRule)
	require.NoError(t, h.m.AddTask(admission.Spec{ID: id, ProfileName: "test", Profile: prof(100 * time.Millisecond), Locator: admission.Locator{Match: taskRule}}))

	first := p.task(t, h.m.src, id)
	require.Eventually(t, func() bool { s, _ := h.m.Task(id); return s.State == StateActive && s.PID == first.ID.PID }, patience, 10*time.Millisecond)
	beside := p.task(t, h.m.src, id) // started while the first runs
	// The first is seen running after the second started: a sample taken since.
	require.Eventually(t, func() bool {
		got := h.of(id)
		return len(got) > 0 && got[len(got)-1].Time.After(h.m.src.StartTime(beside.ID).Add(rebindMargin))
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, syscall.Kill(int(first.ID.PID), syscall.SIGKILL))

	require.Eventually(t, func() bool {
		return warned(logs, "Process matches a rule but is not bound", "reason", procmatch.StartedEarly.String())
	}, 5*time.Second, 10*time.Millisecond, "the process started beside the ended one is looked at and refused")
	s, _ := h.m.Task(id)
	assert.Equal(t, StatePending, s.State, "not re-bound to %d", beside.ID.PID)
	assert.Equal(t, 1, tel.refusedFor(procmatch.StartedEarly.String()))

	restart := p.task(t, h.m.src, id)
	require.Eventually(t, func() bool { s, _ := h.m.Task(id); return s.State == StateActive }, patience, 10*time.Millisecond)
	s, _ = h.m.Task(id)
	assert.Equal(t, restart.ID.PID, s.PID, "re-bound to the process started after the end")
}
