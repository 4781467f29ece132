//go:build linux

package monitor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

func TestSamplesMeasureWhatTheWorkloadsDo(t *testing.T) {
	before := time.Now()
	burn := testworkload.Start(t, testworkload.Burn, 0)
	after := time.Now()
	hold := testworkload.Start(t, testworkload.Hold, 256)
	write := testworkload.Start(t, testworkload.Write, 64)
	files := testworkload.Start(t, testworkload.Files, 0)
	cpuBefore, h := testworkload.CPUTime(t, burn.Process.Pid), runMonitor(t, Config{Tasks: []admission.Spec{
		pidTask("burn", burn, time.Second),
		pidTask("hold", hold, time.Second),
		pidTask("write", write, time.Second),
		pidTask("files", files, time.Second),
	}})

	// The first sample already covers a real interval: the baseline was taken when the task
	// was bound.
	burns := h.wait(t, "burn", 2, 30*time.Second)
	first, second, cpuAfter := burns[0], burns[1], testworkload.CPUTime(t, burn.Process.Pid)
	require.True(t, first.HasUtil)
	// The busy loop's CPU, whatever share it got: read between the test's readings; utilisation is
	// the CPU used between two samples over their interval, one core at most (10 ms ticks).
	cpu1, cpu2, dt := first.CPUUser+first.CPUSystem, second.CPUUser+second.CPUSystem, second.Time.Sub(first.Time).Seconds()
	assert.True(t, cpuBefore.Seconds()-1e-6 <= cpu1 && cpu1 < cpu2 && cpu2 <= cpuAfter.Seconds()+1e-6, "CPU %v then %v, read %v before and %v after", cpu1, cpu2, cpuBefore, cpuAfter)
	cores := (second.UtilUser + second.UtilSystem) * float64(h.m.Source().NumCPU())
	assert.InDelta(t, cpu2-cpu1, cores*dt, 1e-9, "utilisation is the CPU used over the interval")
	assert.LessOrEqual(t, cores, 1+0.02/dt, "one thread uses one core at most")
	// Uptime counts from the process's start (known to 10 ms), not from when monitoring began.
	assert.GreaterOrEqual(t, first.Uptime, first.Time.Sub(after).Seconds()-0.03)
	assert.LessOrEqual(t, first.Uptime, first.Time.Sub(before).Seconds()+0.03)

	hs := h.wait(t, "hold", 1, 5*time.Second)[0]
	assert.GreaterOrEqual(t, hs.RSS, uint64(256<<20))
	assert.Greater(t, hs.MemUtil, 0.0)
	assert.Less(t, hs.MemUtil, 1.0)

	ws := h.wait(t, "write", 1, 5*time.Second)[0]
	assert.GreaterOrEqual(t, ws.WriteBytes, uint64(64<<20))

	fs := h.wait(t, "files", 1, 5*time.Second)[0]
	assert.GreaterOrEqual(t, fs.FDs, int64(100))
	assert.GreaterOrEqual(t, fs.Threads, int64(8))
	assert.Equal(t, int32(files.Process.Pid), fs.PID)
	assert.NotEmpty(t, fs.Executable)
	assert.NotEmpty(t, fs.Owner)
	assert.Zero(t, fs.Got&process.FieldNetwork, "no network for a task in the collector's namespace")

	// Process start time, not monitoring start.
	assert.WithinDuration(t, time.Now(), fs.Start, 30*time.Second)
	assert.Greater(t, fs.Uptime, 0.0)
}

func TestCollectFlagsOffMeansNotRead(t *testing.T) {
	t.Parallel()
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	p := prof(300 * time.Millisecond)
	p.CollectDiskIO, p.CollectFileDescriptors, p.CollectMemory, p.CollectWaits = false, false, false, false
	spec := admission.Spec{ID: "t", ProfileName: "custom", Profile: p, Locator: admission.Locator{PID: int32(cmd.Process.Pid)}}
	h := runMonitor(t, Config{Tasks: []admission.Spec{spec}})
	s := h.wait(t, "t", 1, 5*time.Second)[0]
	assert.Equal(t, process.FieldCPU|process.FieldThreads, s.Got)
	assert.Zero(t, s.RSS)
	assert.Zero(t, s.FDs)
}

func TestDisabledProfileIsNotSampled(t *testing.T) {
	t.Parallel()
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	p, _ := profile.Builtin("disabled")
	spec := admission.Spec{ID: "off", ProfileName: "disabled", Profile: p, Locator: admission.Locator{PID: int32(cmd.Process.Pid)}}
	h := runMonitor(t, Config{Tasks: []admission.Spec{spec}, PropletInterval: 200 * time.Millisecond, Proplet: admission.Locator{Self: true}})
	h.waitProplet(t, 3)
	assert.Empty(t, h.of("off"))
	st := h.m.Tasks()
	require.Len(t, st, 1)
	assert.Equal(t, StateDisabled, st[0].State)
}

func TestTwoProfilesKeepTheirOwnCadence(t *testing.T) {
	t.Parallel()
	a := testworkload.Start(t, testworkload.Sleep, 0)
	b := testworkload.Start(t, testworkload.Sleep, 0)
	began := time.Now()
	h := runMonitor(t, Config{Tasks: []admission.Spec{pidTask("fast", a, 300*time.Millisecond), pidTask("slow", b, 900*time.Millisecond)}})
	h.wait(t, "slow", 3, time.Minute)
	fast, slow := len(h.of("fast")), len(h.of("slow"))
	elapsed := time.Since(began)
	// What the scheduler decides, whatever a busy machine grants: neither task is sampled more
	// often than its own interval allows in the time that passed, and the fast one more often.
	assert.LessOrEqual(t, fast, int(elapsed/(300*time.Millisecond))+1, "fast=%d in %s", fast, elapsed)
	assert.LessOrEqual(t, slow, int(elapsed/(900*time.Millisecond))+1, "slow=%d in %s", slow, elapsed)
	assert.Greater(t, fast, slow, "fast=%d slow=%d", fast, slow)
}

func TestExitMidRunTakesALastSampleThenStops(t *testing.T) {
	t.Parallel()
	cmd := testworkload.Command(t, testworkload.Sleep, 0)
	testworkload.StartCmd(t, cmd)
	h := runMonitor(t, Config{Tasks: []admission.Spec{pidTask("short", cmd, 200*time.Millisecond)}})
	h.wait(t, "short", 2, 5*time.Second)
	// Kill without reaping: the zombie can be read once more.
	require.NoError(t, cmd.Process.Kill())
	var last Sample
	require.Eventually(t, func() bool {
		got := h.of("short")
		last = got[len(got)-1]
		return last.Final
	}, 5*time.Second, 10*time.Millisecond)
	n := len(h.of("short"))
	_ = cmd.Wait()
	require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateExited }, patience, 10*time.Millisecond)
	// Several intervals later nothing more was emitted.
	time.Sleep(600 * time.Millisecond) //nolint:forbidigo // asserting that nothing happens needs a wait
	assert.Len(t, h.of("short"), n)
}

func TestPendingTaskIsFoundWhenItsPIDFileAppears(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "task.pid")
	spec := admission.Spec{ID: "late", ProfileName: "test", Profile: prof(200 * time.Millisecond), Locator: admission.Locator{PIDFile: pidFile}}
	h := runMonitor(t, Config{Tasks: []admission.Spec{spec}})
	assert.Equal(t, StatePending, h.m.Tasks()[0].State)

	first := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, os.WriteFile(pidFile, []byte(strconv.Itoa(first.Process.Pid)), 0o600))
	s := h.wait(t, "late", 1, 5*time.Second)[0]
	assert.Equal(t, int32(first.Process.Pid), s.PID)

	// The process goes away and another takes its place in the pid file: the task follows
	// the new process and never reports the old one again.
	second := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, first.Process.Kill())
	_ = first.Wait()
	require.NoError(t, os.WriteFile(pidFile, []byte(strconv.Itoa(second.Process.Pid)), 0o600))
	require.Eventually(t, func() bool {
		got := h.of("late")
		return got[len(got)-1].PID == int32(second.Process.Pid)
	}, 5*time.Second, 10*time.Millisecond)
	got := h.of("late")
	seenSecond := false
	for _, s := range got {
		if s.PID == int32(second.Process.Pid) {
			seenSecond = true
		} else {
			assert.False(t, seenSecond, "a sample of the old process after the new one")
		}
	}
}

func TestDiscoveryRuleCreatesTasks(t *testing.T) {
	t.Parallel()
	const id = "550e8400-e29b-41d4-a716-446655440001"
	m, err := procmatch.Compile(procmatch.Spec{
		Cmdline:   `--task-id=(?P<task_id>` + id + `) --task-name=(?P<task_name>\w+)`, // this test's process only: tests run in parallel
		ParentPID: int32(os.Getpid()),
	})
	require.NoError(t, err)
	p, _ := profile.Builtin("intensive")
	h := runMonitor(t, Config{Rules: []Rule{{Match: m, ProfileName: "intensive", Profile: p}}})

	cmd := testworkload.Command(t, testworkload.Sleep, 0)
	cmd.Args = append(cmd.Args, "--task-id="+id, "--task-name=compute")
	testworkload.StartCmd(t, cmd)
	s := h.wait(t, id, 1, 5*time.Second)[0]
	assert.Equal(t, "compute", s.TaskName)
	assert.Equal(t, "intensive", s.ProfileName)
	assert.Equal(t, int32(cmd.Process.Pid), s.PID)

	// A discovered task goes away with its process.
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Eventually(t, func() bool { return len(h.m.Tasks()) == 0 }, patience, 10*time.Millisecond)
}

func TestProcessTreeTask(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	script := fmt.Sprintf("%q -test.run=^$ & %q -test.run=^$ & wait", exe, exe)
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "PROPLET_TEST_WORKLOAD=hold", "PROPLET_TEST_WORKLOAD_ARG=64")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the whole tree is one process group
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	spec := pidTask("tree", cmd, 300*time.Millisecond)
	spec.IncludeChildren = true
	h := runMonitor(t, Config{Tasks: []admission.Spec{spec}})
	require.Eventually(t, func() bool {
		got := h.of("tree")
		return len(got) > 0 && got[len(got)-1].RSS >= 128<<20
	}, 10*time.Second, 20*time.Millisecond, "two children holding 64 MiB each count in the task")
	got := h.of("tree")
	assert.GreaterOrEqual(t, got[len(got)-1].Threads, int64(3))
}

func TestProplet(t *testing.T) {
	t.Parallel()
	h := runMonitor(t, Config{PropletInterval: 200 * time.Millisecond, Proplet: admission.Locator{Self: true}})
	s := h.waitProplet(t, 1)[0]
	assert.True(t, s.HasProcess)
	assert.Equal(t, int32(os.Getpid()), s.PID)
	assert.Greater(t, s.RSS, uint64(0))
	assert.Greater(t, s.CPUUser+s.CPUSystem, 0.0)
	require.True(t, s.HasMachineCPU, "the first proplet sample covers a real interval too")
	var sum float64
	for _, v := range s.MachineCPU {
		sum += v
	}
	assert.InDelta(t, 1.0, sum, 0.01)
}

func TestProcTreeWithGarbageIsSkippedAndCounted(t *testing.T) {
	t.Parallel()
	root := fakeProc(t, 4242, "4242 (task) S 1 1 1 0 -1 0 0 0 0 0 100 50 0 0 20 0 1 0 500 1000 10 0 0 0")
	spec := admission.Spec{ID: "fake", ProfileName: "test", Profile: prof(200 * time.Millisecond), Locator: admission.Locator{PID: 4242}}
	h := runMonitor(t, Config{ProcRoot: root, CgroupRoot: t.TempDir(), Tasks: []admission.Spec{spec}})
	s := h.wait(t, "fake", 1, 5*time.Second)[0]
	assert.InDelta(t, 1.5, s.CPUUser+s.CPUSystem, 1e-9)

	// Truncated content: skipped and counted, no panic, no sample.
	require.NoError(t, os.WriteFile(filepath.Join(root, "4242/stat"), []byte("4242 (task) S 1 1"), 0o600))
	require.Eventually(t, func() bool { return h.m.Tasks()[0].Errors > 0 }, patience, 10*time.Millisecond)
	n := len(h.of("fake"))

	// The pid now belongs to a process with another start time: the task ends with a final
	// sample of what it had, and nothing of the new process is reported as the old task.
	require.NoError(t, os.WriteFile(filepath.Join(root, "4242/stat"), []byte("4242 (other) S 1 1 1 0 -1 0 0 0 0 0 900 900 0 0 20 0 1 0 777 1000 10 0 0 0"), 0o600))
	require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateExited }, patience, 10*time.Millisecond)
	got := h.wait(t, "fake", n+1, 5*time.Second) // the final sample is sent after the state changes
	require.Len(t, got, n+1)
	last := got[n]
	assert.True(t, last.Final)
	assert.InDelta(t, 1.5, last.CPUUser+last.CPUSystem, 1e-9, "the old process's totals, not the new one's")
	require.NotNil(t, last.Usage)
	assert.False(t, last.Usage.Exact)
	assert.False(t, last.Usage.HasExitCode || last.Usage.HasExitSignal, "reaped before it was seen ended: how it ended is unknown")
}

// fakeProc writes a minimal procfs tree with one process.
func fakeProc(t *testing.T, pid int, stat string) string {
	root := t.TempDir()
	dir := filepath.Join(root, strconv.Itoa(pid))
	for _, d := range []string{dir, filepath.Join(dir, "fd"), filepath.Join(root, "self")} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	files := map[string]string{
		"uptime":                       "1000.00 500.00\n",
		"meminfo":                      "MemTotal: 1048576 kB\n",
		"stat":                         "cpu  1 0 1 10 0 0 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0 0 0\nbtime 1700000000\n",
		strconv.Itoa(pid) + "/stat":    stat,
		strconv.Itoa(pid) + "/io":      "read_bytes: 10\nwrite_bytes: 20\n",
		strconv.Itoa(pid) + "/cmdline": "task\x00--flag\x00",
		strconv.Itoa(pid) + "/cgroup":  "0::/\n",
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte(content), 0o600))
	}
	return root
}

// TestNetworkOnlyForAnOwnNamespace runs a workload in a network namespace of its own that holds
// a veth pair: datagrams leave one end and arrive at the other, both inside the namespace the
// test made, so nothing reaches any other network. The task's traffic must be reported.
func TestNetworkOnlyForAnOwnNamespace(t *testing.T) {
	t.Parallel()
	if err := exec.Command("unshare", "-n", "true").Run(); err != nil {
		t.Skipf("cannot create a network namespace here (needs CAP_SYS_ADMIN): %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the ip command (iproute2) is needed to set up the namespace's interfaces")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	script := "ip link add v0 type veth peer name v1 && ip link set v1 address 02:00:00:00:00:02 && " +
		"ip link set v0 up && ip link set v1 up && ip addr add 10.200.0.1/24 dev v0 && " +
		"ip neigh add 10.200.0.2 lladdr 02:00:00:00:00:02 dev v0 && " +
		fmt.Sprintf("exec %q -test.run=^$", exe)
	cmd := exec.Command("unshare", "-n", "sh", "-c", script)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "PROPLET_TEST_WORKLOAD=udp", "PROPLET_TEST_WORKLOAD_ARG=64", "PROPLET_TEST_WORKLOAD_TARGET=10.200.0.2:9")
	testworkload.StartCmd(t, cmd)

	h := runMonitor(t, Config{Tasks: []admission.Spec{pidTask("netns", cmd, 300*time.Millisecond)}})
	s := h.wait(t, "netns", 1, 5*time.Second)[0]
	require.NotZero(t, s.Got&process.FieldNetwork, "a task in its own namespace has network metrics")
	assert.GreaterOrEqual(t, s.TxBytes, uint64(64*1024), "64 KiB of datagrams were sent")
	assert.GreaterOrEqual(t, s.RxBytes, uint64(64*1024), "and arrived at the other end of the pair")
}

func TestProfileChangesTakeEffectWithoutRestart(t *testing.T) {
	t.Parallel()
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	p := prof(time.Second)
	p.CollectDiskIO = false
	h := runMonitor(t, Config{Tasks: []admission.Spec{{ID: "t", ProfileName: "slow", Profile: p, Locator: admission.Locator{PID: int32(cmd.Process.Pid)}}}})
	first := h.wait(t, "t", 1, 5*time.Second)[0]
	assert.Zero(t, first.Got&process.FieldDisk)

	fast := prof(200 * time.Millisecond)
	require.True(t, h.m.SetProfile("t", "fast", fast))
	got := h.wait(t, "t", 6, 5*time.Second)
	last := got[len(got)-1]
	assert.Equal(t, "fast", last.ProfileName)
	assert.NotZero(t, last.Got&process.FieldDisk, "a metric enabled by the new profile is read")
	assert.Less(t, last.Time.Sub(got[len(got)-2].Time), time.Second, "the new interval applies")

	off, _ := profile.Builtin("disabled")
	require.True(t, h.m.SetProfile("t", "disabled", off))
	st, ok := h.m.Task("t")
	require.True(t, ok)
	assert.Equal(t, StateDisabled, st.State)
	assert.False(t, h.m.SetProfile("nope", "fast", fast))
}

// A stopped task leaves the registry at once and gets a last sample, marked final, with its
// usage report. Scanning, that sample is taken at once. With process events the report waits
// for the process to end (whoever asked for the stop usually ends it) for stopGrace, so it
// says how the process ended; a process that outlives the grace is reported as it is then.
// Not parallel: the kernel drops process events when many listeners and processes are
// busy at once, and this test asserts exact totals or the count of overflows.
func TestStopTaskTakesALastSample(t *testing.T) {
	for _, mode := range []EventsMode{EventsOff, EventsOn} {
		t.Run(string(mode), func(t *testing.T) {
			if mode == EventsOn && os.Geteuid() != 0 {
				t.Skip("the kernel's process events need root (CAP_NET_ADMIN)")
			}
			for _, kill := range []bool{false, true} {
				h := runMonitor(t, Config{Events: mode}, func(hk *hooks) { hk.stopGrace = 500 * time.Millisecond })
				cmd := testworkload.Start(t, testworkload.Sleep, 0)
				require.NoError(t, h.m.AddTask(pidTask("t", cmd, time.Hour)))
				require.Eventually(t, func() bool { st, _ := h.m.Task("t"); return st.State == StateActive }, patience, 10*time.Millisecond)
				assert.Empty(t, h.of("t"), "an hour-long interval has not sampled yet")
				require.True(t, h.m.StopTask(context.Background(), "t"))
				_, ok := h.m.Task("t")
				assert.False(t, ok, "gone from the registry at once")
				assert.False(t, h.m.StopTask(context.Background(), "t"))
				if kill {
					require.NoError(t, cmd.Process.Kill())
				}
				got := h.wait(t, "t", 1, 5*time.Second)
				assert.True(t, got[0].Final)
				u := got[0].Usage
				require.NotNil(t, u)
				if mode == EventsOn && kill {
					assert.True(t, u.HasExitSignal && u.ExitSignal == 9, "ended within the grace: how it ended")
					assert.True(t, u.Exact, "started after the monitor: every thread accounted")
				} else {
					assert.False(t, u.HasExitCode || u.HasExitSignal, "still running when reported")
					assert.False(t, u.Exact)
				}
			}
		})
	}
}

func TestCollectNow(t *testing.T) {
	t.Parallel()
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	h := runMonitor(t, Config{Tasks: []admission.Spec{pidTask("t", cmd, time.Hour)}})
	require.Eventually(t, func() bool { st, _ := h.m.Task("t"); return st.State == StateActive }, patience, 10*time.Millisecond)
	assert.Equal(t, 1, h.m.CollectAll())
	s := h.wait(t, "t", 1, 5*time.Second)[0]
	assert.True(t, s.HasUtil, "a manual sample also covers a real interval")
}

func TestDiscoveryByEnvironmentVariable(t *testing.T) {
	t.Parallel()
	const id = "650e8400-e29b-41d4-a716-446655440009"
	m, err := procmatch.Compile(procmatch.Spec{Environ: `^PROPLET_TASK_ID=(?P<task_id>` + id + `)$`, ParentPID: int32(os.Getpid())})
	require.NoError(t, err)
	h := runMonitor(t, Config{Rules: []Rule{{Match: m, ProfileName: "test", Profile: prof(200 * time.Millisecond)}}})
	cmd := testworkload.Start(t, testworkload.Sleep, 0, "PROPLET_TASK_ID="+id)
	s := h.wait(t, id, 1, 5*time.Second)[0]
	assert.Equal(t, int32(cmd.Process.Pid), s.PID)
}
