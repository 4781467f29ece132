//go:build linux

package monitor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// The waits of a task (collect_waits) against what the kernel recorded for the workload: its
// own schedstat, stat, and its cgroup's cpu.stat and cpu.pressure, read by the test just
// before and just after the sample, under the task's lock.

// waitActive waits until a task is bound and sampled on its interval.
func (h *harness) waitActive(t *testing.T, id string) {
	t.Helper()
	require.Eventually(t, func() bool { st, ok := h.m.Task(id); return ok && st.State == StateActive },
		10*time.Second, 10*time.Millisecond, "task %s never became active", id)
}

// sampleBetween takes one sample of a task as its sample job does, calling before and after
// around the read while holding the task's lock, so no other read of the task falls between.
func (h *harness) sampleBetween(t *testing.T, id string, before, after func()) Sample {
	t.Helper()
	tk, ok := h.m.lookup(id)
	require.True(t, ok, "task %s", id)
	tk.mu.Lock()
	defer tk.mu.Unlock()
	require.Equal(t, StateActive, tk.state)
	bp := h.m.buf()
	defer h.m.putBuf(bp)
	before()
	s, ok := h.m.read(tk, *bp)
	after()
	require.True(t, ok, "task %s: the read gave no sample", id)
	return s
}

// kernelFields reads the whitespace-separated fields of a file, after the line prefix.
func kernelFields(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Fields(string(b))
}

func parseU(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err, s)
	return v
}

// runQueueNanos is the second field of /proc/<pid>/schedstat.
func runQueueNanos(t *testing.T, pid int) uint64 {
	return parseU(t, kernelFields(t, fmt.Sprintf("/proc/%d/schedstat", pid))[1])
}

// keyed reads a "key value" file (cpu.stat) into a map.
func keyed(t *testing.T, path string) map[string]uint64 {
	f := kernelFields(t, path)
	m := map[string]uint64{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = parseU(t, f[i+1])
	}
	return m
}

// someTotal is the total= of the "some" line of a pressure file, in µs.
func someTotal(t *testing.T, path string) uint64 {
	for _, f := range kernelFields(t, path) {
		if v, ok := strings.CutPrefix(f, "total="); ok {
			return parseU(t, v) // the first total= is the some line's
		}
	}
	t.Fatalf("%s: no total=", path)
	return 0
}

// TestCPUWaitIsWhatTheKernelRecorded: a task pinned to one CPU with two busy loops pinned to
// the same CPU waits on the run queue; the wait it reports is what its threads' schedstat
// showed between the test's readings around each sample (a Go process has several threads:
// the thread group's figure, or the main thread's where the kernel's thread group statistics
// cannot be read), and grows from sample to sample.
func TestCPUWaitIsWhatTheKernelRecorded(t *testing.T) {
	if _, err := os.Stat("/proc/self/schedstat"); err != nil {
		t.Skipf("the kernel has no /proc/<pid>/schedstat (CONFIG_SCHED_INFO): %v", err)
	}
	cpu := testworkload.LastCPU(t)
	w := testworkload.Start(t, testworkload.BurnOn, cpu)
	for range 2 {
		testworkload.Start(t, testworkload.BurnOn, cpu)
	}
	pid := w.Process.Pid
	h := runMonitor(t, Config{Tasks: []admission.Spec{pidTask("w", w, time.Minute)}})
	h.waitActive(t, "w")
	read := func() uint64 { return runQueueNanos(t, pid) }
	if groupStatsReadable() {
		read = func() uint64 { s, _ := threadsRunQueueNanos(t, pid); return s }
	}

	var got []float64
	for range 3 {
		var before, after uint64
		s := h.sampleBetween(t, "w", func() { before = read() }, func() { after = read() })
		require.True(t, s.HasCPUWait)
		assert.GreaterOrEqual(t, s.CPUWait, float64(before)/1e9, "no less than schedstat showed before the sample")
		assert.LessOrEqual(t, s.CPUWait, float64(after)/1e9, "no more than schedstat showed after it")
		got = append(got, s.CPUWait)
		time.Sleep(200 * time.Millisecond) //nolint:forbidigo // the competition runs between samples
	}
	assert.Greater(t, got[2], got[0], "competing for one CPU, the task waited: %v", got)
	t.Logf("run-queue delay reported: %v s", got)
}

// TestThrottlingIsTheV1CgroupsCPUStat: a busy task in a v1 cpu group with a quota of 10 ms per
// 100 ms reports the group's throttling as its cpu.stat shows it around the sample.
func TestThrottlingIsTheV1CgroupsCPUStat(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to make a cgroup v1 cpu group")
	}
	const base = "/sys/fs/cgroup/cpu"
	if _, err := os.Stat(filepath.Join(base, "cpu.cfs_quota_us")); err != nil {
		t.Skipf("no cgroup v1 cpu controller at %s: %v", base, err)
	}
	dir := filepath.Join(base, fmt.Sprintf("otelcol-propeller-throttle-%d", os.Getpid()))
	require.NoError(t, os.Mkdir(dir, 0o755))
	t.Cleanup(func() { removeGroup(t, dir) }) // after the workload is killed: cleanups run last first
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("100000"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte("10000"), 0o600))
	w := testworkload.Start(t, testworkload.Burn, 0)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(w.Process.Pid)), 0o600))
	stat := filepath.Join(dir, "cpu.stat")
	// Throttled for a millisecond at least (the reading keeps µs): on a busy machine the
	// workload gets so little CPU that its first throttled periods can last under a µs.
	require.Eventually(t, func() bool {
		k := keyed(t, stat)
		return k["nr_throttled"] > 0 && k["throttled_time"] >= uint64(time.Millisecond)
	}, 30*time.Second, 20*time.Millisecond, "a busy process over its quota is throttled")

	h := runMonitor(t, Config{Tasks: []admission.Spec{pidTask("w", w, time.Minute)}})
	h.waitActive(t, "w")
	var before, after map[string]uint64
	s := h.sampleBetween(t, "w", func() { before = keyed(t, stat) }, func() { after = keyed(t, stat) })
	require.True(t, s.HasThrottling, "the v1 cpu group found from /proc/<pid>/cgroup")
	between := func(name string, got float64, key string, scale float64) {
		assert.GreaterOrEqual(t, got, float64(before[key])/scale, "%s: no less than cpu.stat's %s before", name, key)
		assert.LessOrEqual(t, got, float64(after[key])/scale, "%s: no more than cpu.stat's %s after", name, key)
	}
	between("periods", float64(s.Periods), "nr_periods", 1)
	between("throttled periods", float64(s.ThrottledPeriods), "nr_throttled", 1)
	// v1 counts ns; the reading keeps µs.
	assert.GreaterOrEqual(t, s.ThrottledTime, float64(before["throttled_time"]/1000)/1e6)
	assert.LessOrEqual(t, s.ThrottledTime, float64(after["throttled_time"])/1e9)
	assert.Positive(t, s.ThrottledPeriods)
	assert.Positive(t, s.ThrottledTime)
	assert.False(t, s.Pressure[process.PressureCPU].HasSome, "the workload's v2 group is the root: no pressure")
}

// TestPressureIsTheCgroupsPSI: a task whose cgroup v2 group competes for one CPU reports the
// group's cpu pressure as its cpu.pressure shows it around the sample, as a cgroup task and as
// a process task in that group.
func TestPressureIsTheCgroupsPSI(t *testing.T) {
	src, err := process.NewSource("/proc", "/sys/fs/cgroup")
	require.NoError(t, err)
	root := src.CgroupV2Root()
	_ = src.Close()
	if root == "" {
		t.Skip("no cgroup v2 hierarchy on this machine")
	}
	dir := filepath.Join(root, fmt.Sprintf("otelcol-propeller-psi-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup under %s (needs root and a writable cgroup2 mount): %v", root, err)
	}
	t.Cleanup(func() { removeGroup(t, dir) })
	psi := filepath.Join(dir, "cpu.pressure")
	if _, err := os.Stat(psi); err != nil {
		t.Skipf("no pressure stall information in %s (a kernel without PSI, or booted with psi=0): %v", dir, err)
	}
	cpu := testworkload.LastCPU(t)
	w := testworkload.Start(t, testworkload.BurnOn, cpu)
	testworkload.Start(t, testworkload.BurnOn, cpu) // outside the group, on the same CPU
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(w.Process.Pid)), 0o600))
	require.Eventually(t, func() bool { return someTotal(t, psi) > 0 }, 10*time.Second, 20*time.Millisecond,
		"a group that competes for its CPU stalls")

	p := prof(time.Minute)
	h := runMonitor(t, Config{Tasks: []admission.Spec{
		{ID: "cg", ProfileName: "test", Profile: p, Cgroup: dir},
		pidTask("proc", w, time.Minute),
	}})
	for _, id := range []string{"cg", "proc"} {
		h.waitActive(t, id)
		var before, after uint64
		s := h.sampleBetween(t, id, func() { before = someTotal(t, psi) }, func() { after = someTotal(t, psi) })
		stall := s.Pressure[process.PressureCPU]
		require.True(t, stall.HasSome, "%s: cpu pressure of %s", id, dir)
		assert.GreaterOrEqual(t, stall.Some, float64(before)/1e6, "%s: no less than cpu.pressure's some total before", id)
		assert.LessOrEqual(t, stall.Some, float64(after)/1e6, "%s: no more than after", id)
		assert.Positive(t, stall.Some, id)
		t.Logf("%s: cpu pressure some %v s, full %v (has full %v)", id, stall.Some, stall.Full, stall.HasFull)
	}
}

// removeGroup removes a test's cgroup once its processes are gone.
func removeGroup(t *testing.T, dir string) {
	var err error
	for range 100 {
		if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // the killed workload leaves the group
	}
	t.Errorf("remove test cgroup %s: %v", dir, err)
}

// TestDelayAccountingOffOmitsBlockIOWait: with delay accounting off (told by the hook, not the
// machine's sysctl) no block I/O wait is reported, and the notice is logged once.
func TestDelayAccountingOffOmitsBlockIOWait(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	w := testworkload.Start(t, testworkload.Sleep, 0)
	h := runMonitorWith(t, Config{Tasks: []admission.Spec{pidTask("w", w, 200*time.Millisecond)}}, nil, zap.New(core),
		func(hk *hooks) { hk.delayAccounting = func(*Monitor) (bool, error) { return false, nil } })
	for _, s := range h.wait(t, "w", 3, 10*time.Second) {
		assert.False(t, s.HasDiskIOWait, "delay accounting off: no block I/O wait, not a 0")
		assert.Zero(t, s.Got&process.FieldIODelay)
	}
	notices := logs.FilterMessageSnippet("Block I/O wait of tasks is omitted").All()
	require.Len(t, notices, 1, "logged once, at start")
	assert.Equal(t, zapcore.InfoLevel, notices[0].Level)
	assert.Contains(t, notices[0].Message, "sysctl kernel.task_delayacct=1")
	assert.Contains(t, notices[0].Message, "delayacct")
}

// TestDelayAccountingOnReadsBlockIOWait turns the kernel's delay accounting on (root only;
// restored after), runs a workload that writes with fsync, and checks the block I/O wait the
// task reports is its threads' field 42 of stat summed (a Go process has several: the thread
// group's figure, from TASKSTATS).
func TestDelayAccountingOnReadsBlockIOWait(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to turn kernel.task_delayacct on")
	}
	testworkload.SetDelayAccounting(t, true)
	core, logs := observer.New(zapcore.InfoLevel)
	w := testworkload.Start(t, testworkload.Write, 32)
	pid := w.Process.Pid
	h := runMonitorWith(t, Config{Tasks: []admission.Spec{pidTask("w", w, time.Minute)}}, nil, zap.New(core))
	h.waitActive(t, "w")
	group := groupStatsReadable()
	stats := []string{fmt.Sprintf("/proc/%d/stat", pid)}
	if group {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		require.NoError(t, err)
		stats = stats[:0]
		for _, e := range ents {
			stats = append(stats, fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name()))
		}
	}
	// field42 is the delayacct_blkio_ticks of the process (its threads summed with TASKSTATS)
	// and the ticks it has lived.
	field42 := func() (ticks, age uint64) {
		up, err := strconv.ParseFloat(kernelFields(t, "/proc/uptime")[0], 64)
		require.NoError(t, err)
		for _, path := range stats {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			ticks += parseU(t, f[42-3])
			age = uint64(up*procfs.UserHZ) - parseU(t, f[22-3])
		}
		return ticks, age
	}
	var before, after, age uint64
	s := h.sampleBetween(t, "w", func() { before, _ = field42() }, func() { after, age = field42() })
	assert.Empty(t, logs.FilterMessageSnippet("Block I/O wait of tasks is omitted").All())
	if before > (age+procfs.UserHZ)*uint64(len(stats)) {
		// What some kernels show once delay accounting is switched on at run time: the time
		// since boot added to a thread's delay. It cannot be true, and is left out, said once.
		assert.False(t, s.HasDiskIOWait, "an impossible %d ticks for a process %d ticks old is left out", before, age)
		assert.Len(t, logs.FilterMessageSnippet("waited longer than it has lived").All(), 1)
		t.Logf("the kernel showed %d ticks of block I/O wait for a process %d ticks old: left out", before, age)
		return
	}
	require.True(t, s.HasDiskIOWait, "delay accounting on: the field is read")
	assert.GreaterOrEqual(t, s.DiskIOWait, float64(before)/procfs.UserHZ)
	assert.LessOrEqual(t, s.DiskIOWait, float64(after)/procfs.UserHZ)
	t.Logf("block I/O wait of a 32 MiB write and fsync (thread group's: %v): %v s", group, s.DiskIOWait)
}

// TestWaitsOffOpensNothing: with collect_waits off no waits file is opened (schedstat, the
// pressure files, a second cpu.stat) and the samples carry no wait; with it on, the same tasks
// open each once and carry every figure the files have.
func TestWaitsOffOpensNothing(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory io pids\n"), 0o600))
	dir := filepath.Join(root, "task")
	require.NoError(t, os.Mkdir(dir, 0o755))
	inGroup := testworkload.Start(t, testworkload.Sleep, 0)
	alone := testworkload.Start(t, testworkload.Sleep, 0)
	quota, err := os.ReadFile(filepath.Join("..", "procfs", "testdata", "cpu_stat_v2_quota"))
	require.NoError(t, err)
	for name, content := range map[string]string{
		"cpu.stat":        string(quota),
		"memory.current":  "268435456\n",
		"cgroup.procs":    strconv.Itoa(inGroup.Process.Pid) + "\n",
		"cpu.pressure":    "some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=125000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=62500\n",
		"io.pressure":     "some avg10=0.00 avg60=0.00 avg300=0.00 total=250000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=187500\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	for _, waits := range []bool{false, true} {
		t.Run(fmt.Sprintf("collect_waits=%v", waits), func(t *testing.T) {
			var mu sync.Mutex
			var opened []string
			p := prof(200 * time.Millisecond)
			p.CollectWaits = waits
			h := runMonitor(t, Config{ProcRoot: "/proc", CgroupRoot: root, Tasks: []admission.Spec{
				{ID: "cg", ProfileName: "test", Profile: p, Cgroup: dir, Locator: admission.Locator{PID: int32(inGroup.Process.Pid)}},
				{ID: "proc", ProfileName: "test", Profile: p, Locator: admission.Locator{PID: int32(alone.Process.Pid)}},
			}}, func(hk *hooks) {
				hk.opened = func(path string) { mu.Lock(); opened = append(opened, path); mu.Unlock() }
			})
			cg := h.wait(t, "cg", 3, 10*time.Second)
			pr := h.wait(t, "proc", 3, 10*time.Second)
			mu.Lock()
			count := func(suffix string) int {
				n := 0
				for _, p := range opened {
					if strings.HasSuffix(p, suffix) {
						n++
					}
				}
				return n
			}
			schedstat, pressure, cpuStat := count("/schedstat"), count(".pressure"), count("/cpu.stat")
			mu.Unlock()
			last := cg[len(cg)-1]
			if !waits {
				assert.Zero(t, schedstat, "schedstat opened: %v", opened)
				assert.Zero(t, pressure, "pressure files opened: %v", opened)
				assert.Equal(t, 1, cpuStat, "cpu.stat opened for usage only: %v", opened)
				for _, s := range append(cg, pr...) {
					assert.False(t, s.HasCPUWait || s.HasDiskIOWait || s.HasThrottling, "%s: no waits", s.TaskID)
					assert.Equal(t, [process.NumPressure]Stall{}, s.Pressure, "%s: no pressure", s.TaskID)
				}
				return
			}
			assert.Equal(t, 2, schedstat, "each task's process's schedstat, once, kept open: %v", opened)
			assert.Equal(t, 3, pressure, "the group's three pressure files, once: %v", opened)
			assert.Equal(t, 2, cpuStat, "cpu.stat for usage, and for throttling: %v", opened)
			assert.Equal(t, Stall{Some: 2.5, Full: 0, HasSome: true, HasFull: true}, last.Pressure[process.PressureCPU])
			assert.Equal(t, Stall{Some: 0.125, Full: 0.0625, HasSome: true, HasFull: true}, last.Pressure[process.PressureMemory])
			assert.Equal(t, Stall{Some: 0.25, Full: 0.1875, HasSome: true, HasFull: true}, last.Pressure[process.PressureIO])
			assert.True(t, last.HasThrottling)
			assert.Equal(t, uint64(120), last.Periods)
			assert.Equal(t, uint64(37), last.ThrottledPeriods)
			assert.InDelta(t, 2.211, last.ThrottledTime, 1e-9)
			assert.False(t, last.HasCPUWait, "a cgroup task's run-queue delay is its cpu pressure, not a process sum")
			for _, s := range pr {
				assert.True(t, s.HasCPUWait, "the process task's run-queue delay")
				assert.False(t, s.HasThrottling, "a process in the root group has no cgroup waits")
			}
		})
	}
}
