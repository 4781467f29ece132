//go:build linux

package monitor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// TestCgroupTaskFromFixtures reads a cgroup directory made of fixture files.
func TestCgroupTaskFromFixtures(t *testing.T) {
	t.Parallel()
	// A task's cgroup must lie under the cgroup v2 mount: the fixture root is one.
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory io pids\n"), 0o600))
	dir := filepath.Join(root, "task")
	require.NoError(t, os.Mkdir(dir, 0o755))
	self := os.Getpid()
	for name, content := range map[string]string{
		"cpu.stat":       "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n",
		"memory.current": "268435456\n",
		"memory.peak":    "536870912\n",
		"memory.max":     "1073741824\n",
		"io.stat":        "8:0 rbytes=4096 wbytes=67108864 rios=1 wios=16 dbytes=0 dios=0\n",
		"pids.current":   "3\n",
		"cgroup.procs":   strconv.Itoa(self) + "\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	h := runMonitor(t, Config{ProcRoot: "/proc", CgroupRoot: root, Tasks: []admission.Spec{{ID: "cg", ProfileName: "test", Profile: prof(200 * time.Millisecond), Cgroup: dir}}})
	s := h.wait(t, "cg", 1, 5*time.Second)[0]
	assert.InDelta(t, 2.0, s.CPUUser, 1e-9)
	assert.InDelta(t, 1.0, s.CPUSystem, 1e-9)
	assert.Equal(t, uint64(256<<20), s.RSS)
	assert.InDelta(t, 0.25, s.MemUtil, 1e-9, "memory.current over memory.max")
	assert.True(t, s.HasMemoryPeak)
	assert.Equal(t, uint64(512<<20), s.MemoryPeak)
	assert.Equal(t, uint64(4096), s.ReadBytes)
	assert.Equal(t, uint64(64<<20), s.WriteBytes)
	assert.Equal(t, int64(3), s.Processes, "pids.current")
	assert.GreaterOrEqual(t, s.Threads, int64(1), "threads of the processes in cgroup.procs")
	assert.False(t, s.HasProcess, "a cgroup-only task has no process identity")
}

// TestCgroupTaskReal creates a real cgroup v2 directory, runs a busy process in it and lets it
// exit: the cgroup's CPU time keeps what the exited process used.
func TestCgroupTaskReal(t *testing.T) {
	t.Parallel()
	src, err := process.NewSource("/proc", "/sys/fs/cgroup")
	require.NoError(t, err)
	root := src.CgroupV2Root()
	_ = src.Close()
	if root == "" {
		t.Skip("no cgroup v2 hierarchy on this machine; the fixture test covers the files")
	}
	dir := filepath.Join(root, fmt.Sprintf("otelcol-propeller-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup under %s (needs root and a writable cgroup2 mount): %v", root, err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })

	burn := testworkload.Command(t, testworkload.Burn, 0)
	testworkload.StartCmd(t, burn)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(burn.Process.Pid)), 0o600); err != nil {
		t.Skipf("cannot move a process into %s: %v", dir, err)
	}
	// What it used before it was in the cgroup is not the cgroup's.
	before := statCPU(t, burn.Process.Pid)

	h := runMonitor(t, Config{Tasks: []admission.Spec{{ID: "cg", ProfileName: "test", Profile: prof(500 * time.Millisecond), Cgroup: dir}}})
	got := h.wait(t, "cg", 2, 10*time.Second)
	s := got[len(got)-1]
	require.True(t, s.HasUtil)
	// The busy process is measured through the cgroup: how much of a core it gets is the
	// machine's to decide, so its CPU time is checked against the process's own below.
	assert.Positive(t, s.UtilUser+s.UtilSystem, "a busy process in the cgroup")
	assert.Equal(t, int64(1), s.Processes)
	assert.GreaterOrEqual(t, s.Threads, int64(1))

	used := s.CPUUser + s.CPUSystem
	require.NoError(t, burn.Process.Kill())
	_ = burn.Wait()
	ru := burn.ProcessState.SysUsage().(*syscall.Rusage)
	own := time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
	n := len(h.of("cg"))
	got = h.wait(t, "cg", n+1, 10*time.Second)
	after := got[len(got)-1]
	assert.Equal(t, int64(0), after.Processes)
	total := after.CPUUser + after.CPUSystem
	assert.GreaterOrEqual(t, total, used, "CPU time of the exited process stays in the cgroup's count")
	// The cgroup's count is the process's own CPU time (its rusage) less what it used before
	// it was moved in (read in clock ticks just after: up to a tick or two more).
	tick := 1 / float64(procfs.UserHZ)
	assert.LessOrEqual(t, total, own+tick, "the cgroup counts no more than its one process used")
	assert.GreaterOrEqual(t, total, own-before-2*tick, "the cgroup counts what its process used in it")

	require.NoError(t, os.Remove(dir))
	require.Eventually(t, func() bool { st, _ := h.m.Task("cg"); return st.State == StateExited }, patience, 10*time.Millisecond,
		"a removed cgroup ends the task")
}

// statCPU is the CPU time a process has used, user and system, from /proc/<pid>/stat.
func statCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err := strconv.ParseUint(f[11], 10, 64)
	require.NoError(t, err)
	stime, err := strconv.ParseUint(f[12], 10, 64)
	require.NoError(t, err)
	return float64(utime+stime) / float64(procfs.UserHZ)
}
