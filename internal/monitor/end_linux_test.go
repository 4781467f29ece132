//go:build linux

package monitor

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
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

// testTaskEnds checks the end of tasks as the monitor reports it in one mode: a short task's
// totals and exit code, a task killed by a signal, and twenty tasks that live 0.2 s each.
// exact says whether the totals must come from the kernel's accounting.
func testTaskEnds(t *testing.T, mode EventsMode, exact bool) {
	t.Run("a task shorter than its interval gets its report", func(t *testing.T) {
		cmd := testworkload.Start(t, testworkload.Task, 3)
		started := time.Now()
		h := runMonitor(t, Config{Events: mode, Tasks: []admission.Spec{pidTask("short", cmd, 10*time.Second)}})
		u := h.waitReport(t, "short", 10*time.Second)
		t.Logf("report: %+v (observed %s after start)", *u, time.Since(started))

		assert.GreaterOrEqual(t, u.PeakMemory, uint64(testworkload.TaskMemory), "peak RSS")
		assert.GreaterOrEqual(t, u.CPUUser+u.CPUSystem, 0.4, "CPU seconds")
		assert.GreaterOrEqual(t, u.WriteBytes, uint64(testworkload.TaskWrite), "bytes written with fsync")
		assert.True(t, u.HasExitCode)
		assert.Equal(t, 3, u.ExitCode)
		assert.False(t, u.HasExitSignal)
		assert.InDelta(t, testworkload.TaskLife.Seconds(), u.Duration().Seconds(), 0.3, "duration")
		assert.Equal(t, exact, u.Exact)
		assert.False(t, u.OOMKilled)

		final := h.of("short")
		assert.True(t, final[len(final)-1].Final, "the report rides on the final sample")
	})

	t.Run("a task killed by a signal", func(t *testing.T) {
		cmd := testworkload.Start(t, testworkload.Sleep, 0)
		h := runMonitor(t, Config{Events: mode, Tasks: []admission.Spec{pidTask("killed", cmd, 10*time.Second)}})
		require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateActive }, 5*time.Second, 10*time.Millisecond)
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
		}, 15*time.Second, 20*time.Millisecond, "twenty reports, one each")
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
