//go:build linux

package monitor

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// One id stopped and started again, from several goroutines at once, its profile changed all
// along, while its process runs
// and then as it exits: every incarnation that was bound ends exactly once, with one usage
// report, every descriptor it opened is closed, and StopTask says "existed" exactly once per
// task that was added (the task API's DELETE answers 204 from it). The descriptors are counted
// in /proc/self/fd, so this test does not run in parallel with others.
func TestStopStartOneIDEndsEveryIncarnation(t *testing.T) {
	for _, mode := range []EventsMode{EventsOff, EventsOn} {
		t.Run(string(mode), func(t *testing.T) {
			if mode == EventsOn && os.Geteuid() != 0 {
				t.Skip("the kernel's process events need root (CAP_NET_ADMIN)")
			}
			binds := &bindCounter{}
			h := runMonitorWith(t, Config{Events: mode}, binds, zaptest.NewLogger(t), func(hk *hooks) { hk.stopGrace = 300 * time.Millisecond })
			cmd := testworkload.Start(t, testworkload.Sleep, 0)
			baseline := openFDs(t)

			const workers, rounds = 4, 25
			var adds, stops, seq atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range rounds {
						spec := pidTask("t", cmd, time.Hour)
						spec.Name = fmt.Sprintf("incarnation-%d", seq.Add(1))
						if h.m.AddTask(spec) == nil {
							adds.Add(1)
						}
						// Half the rounds stop at once, half once the task is seen bound.
						if (w+r)%2 == 0 {
							waitBound(h.m, spec.Name, time.Second)
						}
						if h.m.StopTask(context.Background(), "t") {
							stops.Add(1)
						}
					}
				}()
			}
			// A profile change (the task API's PUT) on the same id all along.
			done := make(chan struct{})
			changed := make(chan struct{})
			go func() {
				defer close(changed)
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					h.m.SetProfile("t", "changed", prof(time.Duration(1+i%2)*time.Hour))
					runtime.Gosched()
				}
			}()
			wg.Wait()
			close(done)
			<-changed
			for h.m.StopTask(context.Background(), "t") {
				stops.Add(1)
			}
			assert.Equal(t, adds.Load(), stops.Load(), "StopTask reports true once per task added")
			require.NoError(t, cmd.Process.Kill())

			// Every bound incarnation ends (from its exit record, or its last reading after the
			// stop grace), reports once, and closes what it opened.
			reports := func() map[string]int {
				got := map[string]int{}
				for _, s := range h.of("t") {
					if s.Usage != nil {
						got[s.TaskName]++
					}
				}
				return got
			}
			require.Eventually(t, func() bool { return len(reports()) >= int(binds.n.Load()) }, 10*time.Second, 20*time.Millisecond,
				"one report per bound incarnation")
			require.Eventually(t, func() bool { return openFDs(t) <= baseline }, 10*time.Second, 20*time.Millisecond,
				"descriptors back to the %d open before", baseline)
			got := reports()
			for name, n := range got {
				assert.Equal(t, 1, n, "incarnation %s reports once", name)
			}
			assert.Len(t, got, int(binds.n.Load()), "an incarnation reports only if it was bound")
			t.Logf("%d added, %d bound, %d reports, descriptors %d before, %d after", adds.Load(), binds.n.Load(), len(got), baseline, openFDs(t))
		})
	}
}

// bindCounter counts the tasks bound to their process.
type bindCounter struct {
	noTelemetry
	n atomic.Int64
}

func (c *bindCounter) TaskState(from, to State) {
	if from == StatePending && (to == StateActive || to == StateDisabled) {
		c.n.Add(1)
	}
}

// waitBound waits until the registered task named name is bound, it is replaced or stopped,
// or within has passed.
func waitBound(m *Monitor, name string, within time.Duration) {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); {
		st, ok := m.Task("t")
		if !ok || st.Name != name || st.State != StatePending {
			return
		}
		time.Sleep(time.Millisecond) //nolint:forbidigo // polling a state with a deadline
	}
}

// A stopped task whose end waits for its process (process events, a long stop grace) still
// reports when the collector shuts down, and closes what it opened.
func TestShutdownEndsStoppedTasks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the kernel's process events need root (CAP_NET_ADMIN)")
	}
	t.Parallel()
	out := make(chan Sample, 16)
	m, err := newMonitor(Config{ProcRoot: "/proc", CgroupRoot: "/sys/fs/cgroup", Events: EventsOn, DiscoveryInterval: 100 * time.Millisecond},
		zaptest.NewLogger(t), nil, out, testHooks(func(hk *hooks) { hk.stopGrace = time.Hour }))
	require.NoError(t, err)
	require.NoError(t, m.Start(context.Background()))
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, m.AddTask(pidTask("t", cmd, time.Hour)))
	require.Eventually(t, func() bool { st, _ := m.Task("t"); return st.State == StateActive }, patience, 10*time.Millisecond)
	require.True(t, m.StopTask(context.Background(), "t"))
	require.NoError(t, m.Shutdown(context.Background()))
	var final *Sample
	for len(out) > 0 {
		s := <-out
		if s.Kind == KindTask && s.Final {
			final = &s
		}
	}
	require.NotNil(t, final, "the stopped task's final sample")
	require.NotNil(t, final.Usage)
	assert.False(t, final.Usage.HasExitCode || final.Usage.HasExitSignal, "still running when reported")
	m.mu.Lock()
	defer m.mu.Unlock()
	assert.Empty(t, m.stopping)
}

// EndTask decides whether a door may end a task on the task it stops, under its lock: a door
// that looked the id up first and stopped it by id after could end a task another door
// registered under that id in between (the task API's DELETE answered 204 for the manager's
// task).
func TestEndTaskChecksTheOwnerOfTheTaskItStops(t *testing.T) {
	t.Parallel()
	h := runMonitor(t, Config{})
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	spec := pidTask("t", cmd, time.Hour)
	spec.Origin = admission.OriginManager
	require.NoError(t, h.m.AddTask(spec))

	stopped, err := h.m.EndTask(context.Background(), "t", admission.OriginTaskAPI)
	assert.False(t, stopped)
	var owner *admission.OwnerError
	require.ErrorAs(t, err, &owner)
	assert.Equal(t, admission.OwnerError{ID: "t", Door: admission.OriginTaskAPI, Owner: admission.OriginManager}, *owner)
	_, registered := h.m.Task("t")
	assert.True(t, registered, "the manager's task keeps running")

	stopped, err = h.m.EndTask(context.Background(), "t", admission.OriginManager)
	assert.True(t, stopped)
	require.NoError(t, err)
	stopped, err = h.m.EndTask(context.Background(), "t", admission.OriginManager)
	assert.False(t, stopped, "gone: nothing to end")
	require.NoError(t, err)
}
