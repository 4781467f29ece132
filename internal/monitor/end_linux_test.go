//go:build linux

package monitor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/kmsg"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// reports returns the usage reports emitted for a task.
func (h *harness) reports(id string) []*Usage {
	var out []*Usage
	for _, s := range h.of(id) {
		if s.Usage != nil {
			out = append(out, s.Usage)
		}
	}
	return out
}

// waitReport waits for a task's usage report.
func (h *harness) waitReport(t *testing.T, id string, within time.Duration) *Usage {
	t.Helper()
	var u *Usage
	require.Eventually(t, func() bool {
		if rs := h.reports(id); len(rs) > 0 {
			u = rs[0]
			return true
		}
		return false
	}, within, 10*time.Millisecond, "no usage report for task %s", id)
	return u
}

// waitExited waits until cmd's process has ended, without reaping it (its zombie stays for
// the monitor to read), and returns when the test saw the end.
func waitExited(t *testing.T, cmd *exec.Cmd) time.Time {
	t.Helper()
	var si unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &si, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			return time.Now()
		}
		require.ErrorIs(t, err, unix.EINTR, "waiting for the workload to end")
	}
}

// testTaskEnds checks the end of tasks as the monitor reports it in one mode: a short task's
// totals and exit code, a task killed by a signal, and twenty tasks that live 0.2 s each.
// exact says whether the totals must come from the kernel's accounting.
func testTaskEnds(t *testing.T, mode EventsMode, exact bool) {
	t.Run("a task shorter than its interval gets its report", func(t *testing.T) {
		// The monitor runs before the task starts, as it does beside a proplet: the kernel's
		// accounting then covers every thread of the task.
		h := runMonitor(t, Config{Events: mode})
		spawned := time.Now()
		cmd := testworkload.Start(t, testworkload.Task, 3)
		ready := time.Now()
		require.NoError(t, h.m.AddTask(pidTask("short", cmd, 10*time.Second)))
		exited := waitExited(t, cmd)
		u := h.waitReport(t, "short", 30*time.Second)
		reported := time.Now()
		t.Logf("report: %+v (the test saw the exit %s after the spawn, the report %s after)", *u, exited.Sub(spawned), reported.Sub(spawned))

		if exact { // the kernel's high-water mark; scans know the highest RSS a sample happened to see
			assert.GreaterOrEqual(t, u.PeakMemory, uint64(testworkload.TaskMemory), "peak RSS")
		} else {
			assert.Positive(t, u.PeakMemory, "peak RSS")
		}
		if exact { // the run time the scheduler gave the threads, which the workload burnt to TaskCPU by its own getrusage
			assert.GreaterOrEqual(t, u.CPUUser+u.CPUSystem, testworkload.TaskCPU.Seconds(), "CPU seconds")
		} else {
			assert.GreaterOrEqual(t, u.CPUUser+u.CPUSystem, 0.4, "CPU seconds")
		}
		assert.GreaterOrEqual(t, u.WriteBytes, uint64(testworkload.TaskWrite), "bytes written with fsync")
		assert.True(t, u.HasExitCode)
		assert.Equal(t, 3, u.ExitCode)
		assert.False(t, u.HasExitSignal)
		// The task's life as the kernel saw it, however long the machine made it: it started
		// between the spawn and the ready line, and the workload ended TaskLife after its own
		// start or later. The kernel's exit record ends it when the process ended (before the
		// test saw the zombie); a scan ends it when the scan found it gone (before the report).
		const clock = 50 * time.Millisecond // start times are read in 10 ms ticks from a boot time known to 10 ms
		assert.WithinRange(t, u.Start, spawned.Add(-clock), ready.Add(clock), "start")
		assert.GreaterOrEqual(t, u.End.Sub(spawned), testworkload.TaskLife-clock, "end")
		if exact {
			assert.LessOrEqual(t, u.End.Sub(exited), clock, "end")
		} else {
			assert.LessOrEqual(t, u.End.Sub(reported), clock, "end")
		}
		assert.Equal(t, exact, u.Exact)
		assert.False(t, u.OOMKilled)

		final := h.of("short")
		assert.True(t, final[len(final)-1].Final, "the report rides on the final sample")
	})

	t.Run("a task killed by a signal", func(t *testing.T) {
		h := runMonitor(t, Config{Events: mode})
		cmd := testworkload.Start(t, testworkload.Sleep, 0)
		require.NoError(t, h.m.AddTask(pidTask("killed", cmd, 10*time.Second)))
		require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateActive }, patience, 10*time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		u := h.waitReport(t, "killed", 10*time.Second)
		assert.True(t, u.HasExitSignal)
		assert.Equal(t, 9, u.ExitSignal)
		assert.False(t, u.HasExitCode)
		assert.Equal(t, exact, u.Exact)
	})

	t.Run("twenty tasks living 0.2 s each", func(t *testing.T) {
		h := runMonitor(t, Config{Events: mode})
		for i := range 20 {
			cmd := testworkload.Start(t, testworkload.Exit, 200)
			require.NoError(t, h.m.AddTask(pidTask(fmt.Sprintf("brief-%02d", i), cmd, 10*time.Second)))
		}
		require.Eventually(t, func() bool {
			n := 0
			for i := range 20 {
				n += len(h.reports(fmt.Sprintf("brief-%02d", i)))
			}
			return n == 20
		}, 30*time.Second, 20*time.Millisecond, "twenty reports, one each")
		for i := range 20 {
			u := h.reports(fmt.Sprintf("brief-%02d", i))[0]
			assert.Equal(t, 0, u.ExitCode)
			assert.True(t, u.HasExitCode)
		}
	})
}

func TestTaskEndsWithScans(t *testing.T) {
	testTaskEnds(t, EventsOff, false)
}

func TestTaskEndsWithProcessEvents(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the kernel's process events need root (CAP_NET_ADMIN)")
	}
	testTaskEnds(t, EventsOn, true)
}

// TestEventsAccountForChildrenThatEnded: with include_children, what a child used counts in
// the task's totals even when the child lived and ended between two samples, which /proc
// scans never see: the kernel's exit record of the child carries its share.
// Not parallel: the child needs half a second of CPU, which parallel tests would delay.
func TestEventsAccountForChildrenThatEnded(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the kernel's process events need root (CAP_NET_ADMIN)")
	}
	h := runMonitor(t, Config{Events: EventsOn})
	exe, err := os.Executable()
	require.NoError(t, err)
	// The root waits for its ready line, then for the child, then exits 7.
	cmd := exec.Command("sh", "-c", fmt.Sprintf("read ready; %q -test.run=^$ </dev/null >/dev/null; exit 7", exe))
	cmd.Env = append(os.Environ(), "PROPLET_TEST_WORKLOAD="+testworkload.Task, "PROPLET_TEST_WORKLOAD_ARG=0")
	cmd.Dir = t.TempDir()
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	spec := pidTask("tree", cmd, 10*time.Second)
	spec.IncludeChildren = true
	require.NoError(t, h.m.AddTask(spec))
	require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateActive }, patience, 5*time.Millisecond)
	_, err = stdin.Write([]byte("go\n"))
	require.NoError(t, err)

	u := h.waitReport(t, "tree", 15*time.Second)
	t.Logf("report: %+v", *u)
	assert.Equal(t, 7, u.ExitCode)
	assert.GreaterOrEqual(t, u.CPUUser+u.CPUSystem, 0.4, "the child's CPU")
	assert.GreaterOrEqual(t, u.WriteBytes, uint64(testworkload.TaskWrite), "the child's writes")
	assert.GreaterOrEqual(t, u.PeakMemory, uint64(testworkload.TaskMemory), "the child's peak")
	assert.True(t, u.Exact)
}

// TestEventsBindAtExec: a pending task's process is bound when it execs, not at the next
// discovery pass.
func TestEventsBindAtExec(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("the kernel's process events need root (CAP_NET_ADMIN)")
	}
	h := runMonitor(t, Config{Events: EventsOn, DiscoveryInterval: time.Minute})
	match, err := procmatch.Compile(procmatch.Spec{Executable: "^sleep$", Cmdline: `^sleep 3599\.25$`})
	require.NoError(t, err)
	spec := admission.Spec{ID: "late", ProfileName: "test", Profile: prof(10 * time.Second), Locator: admission.Locator{Match: match}}
	require.NoError(t, h.m.AddTask(spec))
	// The pass AddTask triggers has run: the task is pending, indexed for the exec job.
	require.Eventually(t, func() bool {
		h.m.disc.mu.Lock()
		defer h.m.disc.mu.Unlock()
		return len(h.m.disc.anyParent) == 1
	}, 10*time.Second, time.Millisecond)
	require.Equal(t, StatePending, h.m.Tasks()[0].State)

	cmd := exec.Command("sleep", "3599.25")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	started := time.Now()
	// Within half the discovery interval: the exec bound it, not the next pass.
	require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateActive }, 30*time.Second, time.Millisecond,
		"bound long before the next discovery pass, a minute away")
	t.Logf("bound %s after the process started", time.Since(started))
	assert.Equal(t, int32(cmd.Process.Pid), h.m.Tasks()[0].PID)
}

// memoryCgroup makes a memory cgroup limited to limit bytes for the test, or skips saying why
// this machine cannot: cgroup v2 with the memory controller, else the v1 memory hierarchy.
func memoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating a memory-limited cgroup needs root")
	}
	name := fmt.Sprintf("otelcol-propeller-test-%d", os.Getpid())
	var dir, limitFile string
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(b), "memory") {
		dir, limitFile = filepath.Join("/sys/fs/cgroup", name), "memory.max"
	} else if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		dir, limitFile = filepath.Join("/sys/fs/cgroup/memory", name), "memory.limit_in_bytes"
	} else {
		t.Skip("no cgroup v2 memory controller at /sys/fs/cgroup and no v1 memory hierarchy: cannot limit a task's memory here")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a memory cgroup here: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	require.NoError(t, os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644))
	return dir
}

// testOOMKill: a task in a memory-limited cgroup that touches more than its limit is killed by
// the kernel's OOM killer, and its report says so.
func testOOMKill(t *testing.T, mode EventsMode, mods ...func(*hooks)) {
	cg := memoryCgroup(t, 64<<20)
	h := runMonitor(t, Config{Events: mode}, mods...)
	exe, err := os.Executable()
	require.NoError(t, err)
	// The shell joins the cgroup, waits for the go-ahead, and becomes a workload that holds
	// 256 MiB, four times the limit.
	cmd := exec.Command("sh", "-c", fmt.Sprintf("echo $$ > %q/cgroup.procs && read go && exec %q -test.run=^$", cg, exe))
	cmd.Env = append(os.Environ(), "PROPLET_TEST_WORKLOAD="+testworkload.Hold, "PROPLET_TEST_WORKLOAD_ARG=256")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
		return strings.Contains(string(b), filepath.Base(cg))
	}, 5*time.Second, 5*time.Millisecond, "the shell joined the cgroup")
	require.NoError(t, h.m.AddTask(pidTask("hog", cmd, 10*time.Second)))
	require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateActive }, patience, 5*time.Millisecond)
	_, err = stdin.Write([]byte("go\n"))
	require.NoError(t, err)

	u := h.waitReport(t, "hog", 15*time.Second)
	t.Logf("report: %+v", *u)
	assert.True(t, u.OOMKilled, "killed by the OOM killer")
	assert.True(t, u.HasExitSignal)
	assert.Equal(t, 9, u.ExitSignal)
	assert.Equal(t, uint64(64<<20), u.MemoryLimit, "the limit it ran under")
}

func TestOOMKillIsReported(t *testing.T) {
	t.Parallel()
	t.Run("scan", func(t *testing.T) { testOOMKill(t, EventsOff) })
	t.Run("events", func(t *testing.T) { testOOMKill(t, EventsOn) })
	// Without the kernel log (a container without /dev/kmsg, the systemd unit's
	// ProtectKernelLogs=), the memory cgroup's OOM kill count tells.
	t.Run("cgroup count only", func(t *testing.T) {
		testOOMKill(t, EventsOff, func(hk *hooks) {
			hk.openKernelLog = func() (*kmsg.Follower, error) { return nil, os.ErrPermission }
		})
	})
}

// TestLostEventsNeverLeaveATaskStuck: when the kernel drops a task's exit record (an overflow
// of the listener's socket), the overflow is counted, the next pass rescans, and the task still
// ends, from a last reading after exitGrace, inexact.
// Not parallel: the kernel drops process events when many listeners and processes are
// busy at once, and this test asserts exact totals or the count of overflows.
func TestLostEventsNeverLeaveATaskStuck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the kernel's process events need root (CAP_NET_ADMIN)")
	}
	tel := newCountingTelemetry()
	h := runMonitorWith(t, Config{Events: EventsOn}, tel, zaptest.NewLogger(t), func(hk *hooks) { hk.exitGrace = 300 * time.Millisecond })
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, h.m.AddTask(pidTask("dropped", cmd, 200*time.Millisecond)))
	require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateActive }, patience, 5*time.Millisecond)

	// The record is lost: the listener no longer sums the process, and says so.
	h.m.ev.src.Unwatch(cmd.Process.Pid)
	h.m.eventsLost()
	require.NoError(t, cmd.Process.Kill())

	u := h.waitReport(t, "dropped", 5*time.Second)
	assert.False(t, u.Exact, "totals from the last reading")
	assert.Equal(t, 1, tel.lostCount())
	assert.Equal(t, uint64(1), h.m.EventsLost())
	_, ok := h.m.Task("dropped")
	assert.True(t, ok, "a fixed-pid task stays registered, exited")
	assert.Equal(t, StateExited, h.m.Tasks()[0].State)
}

// TestExitRecordOfAnotherIncarnation: a record is the task's only if the pid and the start
// time agree, so a pid reused between an exit and the read is never taken for the old task.
func TestExitRecordOfAnotherIncarnation(t *testing.T) {
	t.Parallel()
	id := process.ID{PID: 4242, Start: 5000} // clock ticks after boot
	same := ProcessExit{PID: 4242, StartTicks: 5000}
	late := ProcessExit{PID: 4242, StartTicks: 5000 + 50} // reckoned back, read half a second late
	other := ProcessExit{PID: 4242, StartTicks: 9000}     // the pid's next process
	earlier := ProcessExit{PID: 4242, StartTicks: 1000}
	assert.True(t, same.of(id))
	assert.True(t, late.of(id))
	assert.False(t, other.of(id))
	assert.False(t, earlier.of(id))
	assert.False(t, (&ProcessExit{PID: 4243, StartTicks: 5000}).of(id))
	assert.True(t, (&ProcessExit{PID: 4242}).of(id), "a record without a start time: the pid decides")
}

// TestEventsRereadAProcessAfterItsExec: a process that execs the same program (its command name
// unchanged) with new arguments is matched on its new command line, not on what was read of it
// before the exec.
func TestEventsRereadAProcessAfterItsExec(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("the kernel's process events need root (CAP_NET_ADMIN)")
	}
	h := runMonitor(t, Config{Events: EventsOn, DiscoveryInterval: time.Minute})
	match, err := procmatch.Compile(procmatch.Spec{Cmdline: `marker-42$`})
	require.NoError(t, err)
	require.NoError(t, h.m.AddTask(admission.Spec{ID: "reexec", ProfileName: "test", Profile: prof(10 * time.Second), Locator: admission.Locator{Match: match}}))
	// The pass AddTask triggers has run: the task is pending, indexed for the exec job.
	require.Eventually(t, func() bool {
		h.m.disc.mu.Lock()
		defer h.m.disc.mu.Unlock()
		return len(h.m.disc.anyParent) == 1
	}, 30*time.Second, time.Millisecond)

	// The shell is read at its first exec (no marker-42 in its arguments), then runs sh again.
	cmd := exec.Command("sh", "-c", `sleep 0.3; exec sh -c "sleep 30" marker-$((40+2))`)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateActive }, 30*time.Second, 5*time.Millisecond,
		"bound after its second exec, with the next discovery pass a minute away")
	assert.Equal(t, int32(cmd.Process.Pid), h.m.Tasks()[0].PID)
}

// TestExitCheckOnlyWithoutRecords: a task sampled less often than discovery runs is not read
// by every discovery pass while the kernel will report its exit; once events were lost it is
// again, so its end is noticed by the next pass, not its next sample a minute later.
func TestExitCheckOnlyWithoutRecords(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the kernel's process events need root (CAP_NET_ADMIN)")
	}
	h := runMonitor(t, Config{Events: EventsOn}, func(hk *hooks) { hk.exitGrace = 300 * time.Millisecond })
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, h.m.AddTask(pidTask("slow", cmd, time.Minute)))
	require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateActive }, 5*time.Second, 5*time.Millisecond)
	reported := func() bool {
		h.m.mu.Lock()
		tk := h.m.tasks["slow"]
		h.m.mu.Unlock()
		tk.mu.Lock()
		defer tk.mu.Unlock()
		return h.m.exitReported(tk)
	}
	assert.True(t, reported(), "events on, none lost: the exit record will come")

	h.m.ev.src.Unwatch(cmd.Process.Pid)
	h.m.eventsLost()
	assert.False(t, reported(), "events lost since the task was bound: the pass checks it")
	require.NoError(t, cmd.Process.Kill())
	u := h.waitReport(t, "slow", 10*time.Second)
	assert.False(t, u.Exact, "totals from the last reading")
}
