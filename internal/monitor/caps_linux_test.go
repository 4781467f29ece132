//go:build linux

package monitor

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// countingTelemetry records what the monitor reports about itself.
type countingTelemetry struct {
	mu      sync.Mutex
	tasks   int
	byState map[State]int
	refused map[string]int
	lost    int
}

func newCountingTelemetry() *countingTelemetry {
	return &countingTelemetry{refused: map[string]int{}, byState: map[State]int{}}
}

func (*countingTelemetry) Sampled(Kind)     {}
func (*countingTelemetry) SampleError(Kind) {}
func (c *countingTelemetry) TaskState(from, to State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if from == "" {
		c.tasks++
	} else {
		c.byState[from]--
	}
	if to == "" {
		c.tasks--
	} else {
		c.byState[to]++
	}
}

// states returns the counts by state, without the zeros.
func (c *countingTelemetry) states() map[State]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[State]int{}
	for s, n := range c.byState {
		if n != 0 {
			out[s] = n
		}
	}
	return out
}

func (c *countingTelemetry) Refused(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refused[reason]++
}

func (c *countingTelemetry) EventsLost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost++
}

func (c *countingTelemetry) lostCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

func (c *countingTelemetry) refusedFor(reason string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused[reason]
}

func (c *countingTelemetry) registered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tasks
}

// observed returns a logger that writes to the test log and keeps every entry for assertions.
func observed(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core)), logs
}

// waitingSpec is a task whose process is never found: its pid file is never written.
func waitingSpec(t *testing.T, id string) admission.Spec {
	return admission.Spec{ID: id, ProfileName: "test", Profile: prof(time.Second), Locator: admission.Locator{PIDFile: filepath.Join(t.TempDir(), id+".pid")}}
}

func TestAddTaskPastTheCaps(t *testing.T) {
	t.Parallel()
	tel := newCountingTelemetry()
	h := runMonitorWith(t, Config{
		MaxTasks: 4, MaxPendingTasks: 2,
		Tasks: []admission.Spec{waitingSpec(t, "static")},
	}, tel, zaptest.NewLogger(t))
	m := h.m

	require.NoError(t, m.AddTask(waitingSpec(t, "a")))
	err := m.AddTask(waitingSpec(t, "b"))
	require.ErrorIs(t, err, ErrTooManyPending)
	assert.NotErrorIs(t, err, ErrTooManyTasks)
	assert.ErrorContains(t, err, "max_pending_tasks (2)")

	// A task that is never pending (it runs inside the proplet) counts only towards max_tasks.
	inProcess := admission.Spec{ID: "c", ProfileName: "test", Profile: prof(time.Second), Locator: admission.Locator{InProcess: true}}
	require.NoError(t, m.AddTask(inProcess))

	// Stopping a pending task makes room for another.
	require.True(t, m.StopTask(context.Background(), "a"))
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, m.AddTask(pidTask("d", cmd, time.Second)))

	require.Error(t, m.AddTask(inProcess), "an id registered twice")
	require.NoError(t, m.AddTask(admission.Spec{ID: "c2", Locator: admission.Locator{InProcess: true}}))

	// Four tasks: the next is refused by max_tasks, pending or not.
	err = m.AddTask(admission.Spec{ID: "e", Locator: admission.Locator{InProcess: true}})
	require.ErrorIs(t, err, ErrTooManyTasks)
	assert.ErrorContains(t, err, "max_tasks (4)")
	assert.ErrorContains(t, err, `"e"`)

	// Once d's process is bound, d is no longer pending: a pending task fits again, after
	// another task leaves.
	require.Eventually(t, func() bool { s, _ := m.Task("d"); return s.State == StateActive }, patience, 10*time.Millisecond)
	require.True(t, m.StopTask(context.Background(), "c"))
	require.NoError(t, m.AddTask(waitingSpec(t, "f")))
	assert.Equal(t, int64(2), m.pending.Load(), "static and f")

	assert.Empty(t, tel.refused, "the door that called AddTask counts its refusals, not the monitor")
	assert.Equal(t, len(m.Tasks()), tel.registered())
}

func TestConfigurationPastMaxTasks(t *testing.T) {
	t.Parallel()
	_, err := New(Config{
		ProcRoot: "/proc", CgroupRoot: "/sys/fs/cgroup", MaxTasks: 2,
		Tasks: []admission.Spec{waitingSpec(t, "a"), waitingSpec(t, "b"), waitingSpec(t, "c")},
	}, zaptest.NewLogger(t), nil, make(chan Sample))
	require.ErrorIs(t, err, ErrTooManyTasks)
}

func TestDefaultCaps(t *testing.T) {
	t.Parallel()
	m, err := New(Config{ProcRoot: "/proc", CgroupRoot: "/sys/fs/cgroup"}, zaptest.NewLogger(t), nil, make(chan Sample))
	require.NoError(t, err)
	assert.Equal(t, 10_000, m.cfg.MaxTasks)
	assert.Equal(t, 10_000, m.cfg.MaxPendingTasks)
	assert.Zero(t, m.cfg.PendingTimeout, "pending tasks do not expire unless configured to")
}

func TestPendingTasksExpire(t *testing.T) {
	t.Parallel()
	tel := newCountingTelemetry()
	log, logs := observed(t)
	const timeout = 300 * time.Millisecond
	h := runMonitorWith(t, Config{
		PendingTimeout: timeout, MaxPendingTasks: 2, DiscoveryInterval: 100 * time.Millisecond,
		Tasks: []admission.Spec{waitingSpec(t, "static")},
	}, tel, log)
	m := h.m

	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, m.AddTask(pidTask("found", cmd, time.Second)))
	require.Eventually(t, func() bool { s, _ := m.Task("found"); return s.State == StateActive }, patience, 10*time.Millisecond)
	added := time.Now()
	require.NoError(t, m.AddTask(waitingSpec(t, "api")))
	require.ErrorIs(t, m.AddTask(waitingSpec(t, "refused")), ErrTooManyPending)

	require.Eventually(t, func() bool { _, ok := m.Task("api"); return !ok }, patience, 10*time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(added), timeout, "not before pending_timeout")
	// The expiry is counted and logged once, after the task left the registry.
	require.Eventually(t, func() bool { return logs.FilterMessageSnippet("pending_timeout").Len() > 0 }, patience, 10*time.Millisecond)
	assert.Equal(t, 1, tel.refusedFor("pending_expired"))
	lines := logs.FilterMessageSnippet("pending_timeout")
	require.Equal(t, 1, lines.Len())
	assert.Equal(t, zapcore.InfoLevel, lines.All()[0].Level)
	assert.Equal(t, int64(1), lines.All()[0].ContextMap()["tasks"])

	// The configuration's task has been pending longer, and stays; a bound task stays.
	s, ok := m.Task("static")
	require.True(t, ok, "a task of the configuration never expires")
	assert.Equal(t, StatePending, s.State)
	s, ok = m.Task("found")
	require.True(t, ok)
	assert.Equal(t, StateActive, s.State)

	// The expired task left through the state machine: its pending slot is free again.
	require.NoError(t, m.AddTask(waitingSpec(t, "refused")))
	assert.Equal(t, len(m.Tasks()), tel.registered())
}

func TestDiscoveryRulePastMaxTasks(t *testing.T) {
	t.Parallel()
	const id = "750e8400-e29b-41d4-a716-446655440003"
	tel := newCountingTelemetry()
	log, logs := observed(t)
	rule, err := procmatch.Compile(procmatch.Spec{Cmdline: `--task-id=(?P<task_id>` + id + `)`, ParentPID: int32(os.Getpid())})
	require.NoError(t, err)
	h := runMonitorWith(t, Config{
		MaxTasks: 1, DiscoveryInterval: 50 * time.Millisecond,
		Tasks: []admission.Spec{waitingSpec(t, "static")},
		Rules: []Rule{{Match: rule, ProfileName: "test", Profile: prof(200 * time.Millisecond)}},
	}, tel, log)

	cmd := testworkload.Command(t, testworkload.Sleep, 0)
	cmd.Args = append(cmd.Args, "--task-id="+id)
	testworkload.StartCmd(t, cmd)
	require.Eventually(t, func() bool { return tel.refusedFor("too_many_tasks") > 0 }, patience, 10*time.Millisecond)
	// Several passes see the same process: counted and logged once.
	time.Sleep(300 * time.Millisecond) //nolint:forbidigo // asserting that nothing more happens needs a wait
	assert.Equal(t, 1, tel.refusedFor("too_many_tasks"))
	assert.Equal(t, 1, logs.FilterMessageSnippet("max_tasks").Len())
	_, created := h.m.Task(id)
	assert.False(t, created)

	// Once there is room, the process becomes a task.
	require.True(t, h.m.StopTask(context.Background(), "static"))
	s := h.wait(t, id, 1, 5*time.Second)[0]
	assert.Equal(t, int32(cmd.Process.Pid), s.PID)
	assert.Equal(t, 1, tel.registered())
}

// TestKeptOpenBudgetFullIsLogged: max_kept_open_processes bounds descriptors, five a process;
// when it has no room left the tasks past it are still sampled (their files read by path) with
// every field, and the collector says once why those reads cost more and what raises the budget.
func TestKeptOpenBudgetFullIsLogged(t *testing.T) {
	t.Parallel()
	log, logs := observed(t)
	var tasks []admission.Spec
	for _, id := range []string{"a", "b", "c"} {
		tasks = append(tasks, pidTask(id, testworkload.Start(t, testworkload.Sleep, 0), time.Second))
	}
	h := runMonitorWith(t, Config{KeptOpenProcesses: 1, Tasks: tasks}, nil, log)
	var got []process.Fields
	for _, id := range []string{"a", "b", "c"} {
		s := h.wait(t, id, 2, 30*time.Second)
		got = append(got, s[len(s)-1].Got)
	}
	assert.Equal(t, got[0], got[1], "a task whose files are read by path has every field")
	assert.Equal(t, got[0], got[2])
	full := logs.FilterMessageSnippet("kept-open budget is full").All()
	require.Len(t, full, 1, "logged once")
	assert.Equal(t, zapcore.WarnLevel, full[0].Level)
	assert.Equal(t, int64(5), full[0].ContextMap()["budget_descriptors"])
	assert.Contains(t, full[0].Message, "LimitNOFILE")
}
