//go:build linux

package monitor

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

func TestScannedTasksAreBoundInTheOrderTheirProcessesStarted(t *testing.T) {
	t.Parallel()
	// Processes a rule matches that run before the monitor starts are found by its first
	// scan of the table, which the monitor keeps as a map: they are bound, and so scheduled,
	// in the order they started, whatever the map's order.
	const tasks = 12
	ids := make([]string, tasks)
	started := make([]int32, tasks)
	for i := range tasks {
		ids[i] = fmt.Sprintf("6f1e0000-0000-4000-8000-%012d", i)
		cmd := testworkload.Command(t, testworkload.Sleep, 0)
		cmd.Args = append(cmd.Args, "--order-task="+ids[i])
		testworkload.StartCmd(t, cmd)
		started[i] = int32(cmd.Process.Pid)
	}
	m, err := procmatch.Compile(procmatch.Spec{
		Cmdline:   `--order-task=(?P<task_id>6f1e0000-0000-4000-8000-[0-9]{12})`, // this test's processes only
		ParentPID: int32(os.Getpid()),
	})
	require.NoError(t, err)
	p, _ := profile.Builtin("standard")
	core, logs := observer.New(zapcore.DebugLevel)
	runMonitorWith(t, Config{Rules: []Rule{{Match: m, ProfileName: "standard", Profile: p}}}, nil, zap.New(core))

	var bound []int32
	require.Eventually(t, func() bool {
		bound = bound[:0]
		for _, e := range logs.FilterMessage("Task bound to process").All() {
			bound = append(bound, int32(e.ContextMap()["pid"].(int32)))
		}
		return len(bound) == tasks
	}, patience, 10*time.Millisecond)

	// The order the kernel started them in: start time, then process id.
	type proc struct {
		pid   int32
		start uint64
	}
	var want []proc
	for _, pid := range started {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		require.NoError(t, err)
		var st procfs.Stat
		require.NoError(t, procfs.ParseStat(b, &st))
		want = append(want, proc{pid, st.StartTime})
	}
	slices.SortFunc(want, func(a, b proc) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.pid, b.pid)) })
	wantPIDs := make([]int32, 0, tasks)
	for _, w := range want {
		wantPIDs = append(wantPIDs, w.pid)
	}
	assert.Equal(t, wantPIDs, bound)
}
