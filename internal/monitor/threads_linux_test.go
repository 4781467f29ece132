//go:build linux

package monitor

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procevents"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// The CPU wait of a multi-threaded task against what the kernel shows per thread in
// /proc/<pid>/task/*/schedstat, read by the test just before the sample.

// groupStatsReadable reports whether the kernel answers this process's thread group queries.
func groupStatsReadable() bool {
	g, err := procevents.OpenGroupStats()
	if err != nil {
		return false
	}
	defer g.Close()
	var d procevents.Delays
	return g.Delays(os.Getpid(), &d) == nil
}

// needGroupStats skips a test on a machine where the kernel's thread group statistics cannot
// be read (not root, another namespace, no CONFIG_TASKSTATS, no schedstat).
func needGroupStats(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/schedstat"); err != nil {
		t.Skipf("the kernel has no /proc/<pid>/schedstat (CONFIG_SCHED_INFO): %v", err)
	}
	g, err := procevents.OpenGroupStats()
	if err != nil {
		t.Skipf("taskstats: %v", err)
	}
	defer g.Close()
	var d procevents.Delays
	if err := g.Delays(os.Getpid(), &d); err != nil {
		t.Skipf("taskstats query (needs CAP_NET_ADMIN): %v", err)
	}
}

// threadsRunQueueNanos sums the run-queue delay of a process's live threads, and counts them.
func threadsRunQueueNanos(t *testing.T, pid int) (sum uint64, threads int) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, e.Name()))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // the thread exited meanwhile
		}
		require.NoError(t, err)
		var run, wait uint64
		_, err = fmt.Sscan(string(b), &run, &wait)
		require.NoError(t, err)
		sum += wait
		threads++
	}
	return sum, threads
}

// busyThreads counts a BurnThreads workload's busy threads still there.
func busyThreads(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/comm", pid, e.Name()))
		if err == nil && strings.TrimSpace(string(b)) == testworkload.BusyThreadName {
			n++
		}
	}
	return n
}

// TestCPUWaitOfAThreadGroup: a task with four busy threads sharing one CPU with a busy loop
// reports at least the sum of its threads' run-queue delays just before the sample, well above
// its (sleeping) main thread's; when two of its threads exit, the figure does not go down.
func TestCPUWaitOfAThreadGroup(t *testing.T) {
	needGroupStats(t)
	cpu := testworkload.LastCPU(t)
	w := testworkload.Start(t, testworkload.BurnThreads, cpu)
	testworkload.Start(t, testworkload.BurnOn, cpu)
	pid := w.Process.Pid
	require.Eventually(t, func() bool { s, _ := threadsRunQueueNanos(t, pid); return s > 0 },
		10*time.Second, 20*time.Millisecond, "threads sharing one CPU wait for it")

	h := runMonitor(t, Config{Tasks: []admission.Spec{pidTask("w", w, time.Minute)}})
	h.waitActive(t, "w")

	var before, main uint64
	var threads int
	s := h.sampleBetween(t, "w", func() {
		before, threads = threadsRunQueueNanos(t, pid)
		main = runQueueNanos(t, pid)
	}, func() {})
	require.True(t, s.HasCPUWait)
	t.Logf("reported %v s; %d threads' schedstat just before %v s; main thread %v s",
		s.CPUWait, threads, float64(before)/1e9, float64(main)/1e9)
	assert.GreaterOrEqual(t, s.CPUWait, float64(before)/1e9, "no less than the threads' schedstat before the sample")
	others := before - main
	assert.GreaterOrEqual(t, s.CPUWait, float64(main+others/2)/1e9, "well above the main thread's alone")

	// Two busy threads exit: the waits they had stay in the task's counter.
	prev := s.CPUWait
	for i := 1; i <= 2; i++ {
		// One signal at a time: two sent at once may arrive as one.
		require.NoError(t, w.Process.Signal(syscall.SIGUSR1))
		require.Eventually(t, func() bool { return busyThreads(t, pid) == testworkload.BurnThreadsN-i },
			10*time.Second, 20*time.Millisecond, "%d busy threads of %d exit", i, testworkload.BurnThreadsN)
	}
	left, n := threadsRunQueueNanos(t, pid)
	t.Logf("after the exits: %d threads' schedstat sum %v s, against %v s reported before", n, float64(left)/1e9, prev)
	for range 3 {
		s := h.sampleBetween(t, "w", func() {}, func() {})
		require.True(t, s.HasCPUWait)
		assert.GreaterOrEqual(t, s.CPUWait, prev, "the CPU wait does not go down when threads exit")
		prev = s.CPUWait
		time.Sleep(50 * time.Millisecond) //nolint:forbidigo // the remaining threads keep waiting
	}
}

// refusingGroupStats is a TASKSTATS socket the kernel refuses, as without CAP_NET_ADMIN.
type refusingGroupStats struct{ calls int }

func (r *refusingGroupStats) Delays(int, *procevents.Delays) error {
	r.calls++
	return fmt.Errorf("taskstats query: %w (%w)", syscall.EPERM, procevents.ErrNotPermitted)
}
func (*refusingGroupStats) Close() error { return nil }

// TestGroupStatsRefusedFallsBack: when the kernel refuses the query (asked once at start), a
// multi-threaded task's CPU wait is its main thread's, as schedstat shows it around the
// sample; the refusal is counted and logged once naming the fix, and not asked again.
func TestGroupStatsRefusedFallsBack(t *testing.T) {
	if _, err := os.Stat("/proc/self/schedstat"); err != nil {
		t.Skipf("the kernel has no /proc/<pid>/schedstat (CONFIG_SCHED_INFO): %v", err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	w := testworkload.Start(t, testworkload.Files, 0) // 8 extra threads
	pid := w.Process.Pid
	q := &refusingGroupStats{}
	tel := &errorCount{}
	h := runMonitorWith(t, Config{Events: EventsOff, Tasks: []admission.Spec{pidTask("w", w, time.Minute)}}, tel, zap.New(core),
		func(hk *hooks) { hk.openGroupStats = func() (groupQuerier, error) { return q, nil } })
	h.waitActive(t, "w")
	for range 2 {
		var before, after uint64
		s := h.sampleBetween(t, "w", func() { before = runQueueNanos(t, pid) }, func() { after = runQueueNanos(t, pid) })
		require.True(t, s.HasCPUWait)
		assert.GreaterOrEqual(t, s.CPUWait, float64(before)/1e9)
		assert.LessOrEqual(t, s.CPUWait, float64(after)/1e9)
	}
	assert.Equal(t, 1, q.calls, "a refusal turns the queries off")
	assert.Equal(t, 1, logs.FilterMessageSnippet("CAP_NET_ADMIN").Len(), "logged once, naming the fix")
	assert.Positive(t, tel.n, "counted")
}
