package monitor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// TestTaskNotFoundIsVisible: a pending task emits lookup samples on its interval, is logged
// once it has been pending for a while with what it looks for, and its state is counted; once
// its process appears, measurements follow and the lookups stop.
func TestTaskNotFoundIsVisible(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	tel := newCountingTelemetry()
	pidFile := filepath.Join(t.TempDir(), "task.pid")
	m, err := procmatch.Compile(procmatch.Spec{Cmdline: "never-there", ParentPIDFile: "/run/proplet.pid"})
	require.NoError(t, err)
	h := runMonitorWith(t, Config{Tasks: []admission.Spec{
		{ID: "late", ProfileName: "test", Profile: prof(200 * time.Millisecond), Locator: admission.Locator{PIDFile: pidFile}},
		{ID: "rule", ProfileName: "test", Profile: prof(time.Hour), Locator: admission.Locator{Match: m}},
	}}, tel, zap.New(core), func(hk *hooks) { hk.notFoundAfter = 300 * time.Millisecond })

	require.Eventually(t, func() bool { return len(h.lookups("late")) >= 3 }, patience, 10*time.Millisecond, "lookups on the task's interval")
	l := h.lookups("late")[0]
	assert.True(t, l.Pending)
	assert.False(t, l.HasProcess)
	assert.Equal(t, "test", l.ProfileName)
	assert.Len(t, h.lookups("rule"), 1, "an hour-long interval: one lookup so far")
	assert.Equal(t, map[State]int{StatePending: 2}, tel.states())

	require.Eventually(t, func() bool { return logs.FilterMessage("Task not found yet").Len() == 2 }, patience, 10*time.Millisecond)
	byTask := map[string]string{}
	for _, e := range logs.FilterMessage("Task not found yet").All() {
		byTask[e.ContextMap()["task_id"].(string)] = e.ContextMap()["looking_for"].(string)
	}
	assert.Contains(t, byTask["late"], "the process whose pid is in "+pidFile+" (stat ")
	assert.Contains(t, byTask["late"], "no such file or directory")
	assert.Equal(t, `a process matching cmdline=~"never-there" parent_pid_file=/run/proplet.pid`, byTask["rule"])

	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600))
	h.wait(t, "late", 2, 5*time.Second)
	n := len(h.lookups("late"))
	h.wait(t, "late", 4, 5*time.Second)
	assert.Len(t, h.lookups("late"), n, "no lookup once found")
	assert.Equal(t, map[State]int{StatePending: 1, StateActive: 1}, tel.states())
	assert.Equal(t, 2, logs.FilterMessage("Task not found yet").Len(), "logged once per task, not per pass")

	require.True(t, h.m.StopTask(context.Background(), "late"))
	require.True(t, h.m.StopTask(context.Background(), "rule"))
	assert.Empty(t, tel.states(), "stopped tasks leave the count")
}

// TestPropletNotFoundSaysWhere: the proplet's not-found line names the pid file it reads.
func TestPropletNotFoundSaysWhere(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	pidFile := filepath.Join(t.TempDir(), "proplet.pid")
	runMonitorWith(t, Config{PropletInterval: time.Hour, Proplet: admission.Locator{PIDFile: pidFile}}, nil, zap.New(core))
	require.Eventually(t, func() bool { return logs.FilterMessageSnippet("Proplet process not found yet").Len() == 1 }, patience, 10*time.Millisecond)
	entry := logs.FilterMessageSnippet("Proplet process not found yet").All()[0]
	assert.Contains(t, entry.ContextMap()["looking_for"], pidFile)
}
