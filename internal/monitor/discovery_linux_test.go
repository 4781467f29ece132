//go:build linux

package monitor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// answersWithin calls the API's two reads (GET /tasks is Tasks, GET /tasks/{id} is Task,
// /health counts Tasks) until stop is closed and fails the test if one takes a second.
func answersWithin(t *testing.T, m *Monitor, ids []string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				m.Tasks()
				for _, id := range ids {
					m.Task(id)
				}
			}()
			select {
			case <-done:
			case <-time.After(time.Second):
				t.Error("Tasks or Task did not answer within a second while discovery ran")
				return
			}
			time.Sleep(20 * time.Millisecond) //nolint:forbidigo // the pace of an API client
		}
	}()
	return &wg
}

// hostilePIDFiles returns paths that are not pid files and that a careless read would hang
// on or exhaust memory with: /dev/zero, a 1 GB file, a FIFO without a writer, a directory.
func hostilePIDFiles(t *testing.T) map[string]string {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pid")
	f, err := os.Create(big)
	require.NoError(t, err)
	_, err = f.WriteString("1\n")
	require.NoError(t, err)
	require.NoError(t, f.Truncate(1<<30)) // sparse
	require.NoError(t, f.Close())
	fifo := filepath.Join(dir, "fifo.pid")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	return map[string]string{"zero": "/dev/zero", "big": big, "fifo": fifo, "dir": dir}
}

func TestHostilePIDFilesNeverHoldTheAPI(t *testing.T) {
	files := hostilePIDFiles(t)
	var specs []admission.Spec
	var ids []string
	for name, path := range files {
		specs = append(specs, admission.Spec{ID: name, ProfileName: "test", Profile: prof(time.Second), Locator: admission.Locator{PIDFile: path}})
		rule, err := procmatch.Compile(procmatch.Spec{Cmdline: "anything", ParentPIDFile: path})
		require.NoError(t, err)
		specs = append(specs, admission.Spec{ID: "parent-" + name, ProfileName: "test", Profile: prof(time.Second), Locator: admission.Locator{Match: rule}})
		ids = append(ids, name, "parent-"+name)
	}
	// A task whose pid file is written later: discovery keeps running and finds it.
	goodFile := filepath.Join(t.TempDir(), "good.pid")
	specs = append(specs, admission.Spec{ID: "good", ProfileName: "test", Profile: prof(200 * time.Millisecond), Locator: admission.Locator{PIDFile: goodFile}})

	var before syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &before))
	h := runMonitor(t, Config{
		Tasks: specs, DiscoveryInterval: 50 * time.Millisecond, MaxConcurrency: 2,
		Proplet: admission.Locator{PIDFile: files["fifo"]}, PropletInterval: 100 * time.Millisecond,
	})
	stop := make(chan struct{})
	wg := answersWithin(t, h.m, ids, stop)

	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, os.WriteFile(goodFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600))
	h.wait(t, "good", 2, 5*time.Second)
	h.waitProplet(t, 3)     // the proplet's samples go on (machine metrics only)
	time.Sleep(time.Second) //nolint:forbidigo // twenty more passes over the hostile files
	close(stop)
	wg.Wait()

	for _, id := range ids {
		s, ok := h.m.Task(id)
		require.True(t, ok, id)
		assert.Equal(t, StatePending, s.State, id)
	}
	var after syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &after))
	assert.Less(t, after.Maxrss-before.Maxrss, int64(256<<10), "peak RSS grew by %d KiB: a hostile file was read into memory", after.Maxrss-before.Maxrss)
}

// A pid file on a hung mount blocks in the kernel: the discovery pass waits on it, but holds
// no lock the API needs, and the task whose file it is can still be read and stopped.
func TestHungPIDFileHoldsNoLock(t *testing.T) {
	t.Parallel()
	hung := filepath.Join(t.TempDir(), "hung.pid")
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	hangs := func(hk *hooks) {
		read := hk.readPIDFile
		hk.readPIDFile = func(path string) (int32, bool) {
			if path == hung {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-release
				return 0, false
			}
			return read(path)
		}
	}

	rule, err := procmatch.Compile(procmatch.Spec{Cmdline: "anything", ParentPIDFile: hung})
	require.NoError(t, err)
	h := runMonitor(t, Config{Tasks: []admission.Spec{
		{ID: "hung", ProfileName: "test", Profile: prof(time.Second), Locator: admission.Locator{PIDFile: hung}},
		{ID: "rule", ProfileName: "test", Profile: prof(time.Second), Locator: admission.Locator{Match: rule}},
	}}, hangs)
	t.Cleanup(func() { close(release) }) // before Shutdown, which waits for the pass
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the discovery pass never read the pid file")
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		assert.Len(t, h.m.Tasks(), 2)
		s, ok := h.m.Task("hung")
		assert.True(t, ok)
		assert.Equal(t, StatePending, s.State)
		assert.True(t, h.m.SetProfile("rule", "fast", prof(200*time.Millisecond)))
		assert.NoError(t, h.m.AddTask(admission.Spec{ID: "new", Locator: admission.Locator{InProcess: true}}))
		assert.True(t, h.m.StopTask(t.Context(), "hung"))
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("the API waited for a pid file read")
	}
}

// With a pass that has time for one task only, every pending task is still looked for in
// turn: a pass starts with the tasks looked for least recently.
func TestPendingTasksDoNotStarve(t *testing.T) {
	t.Parallel()
	const waiting = 20
	m, err := newMonitor(Config{ProcRoot: "/proc", CgroupRoot: "/sys/fs/cgroup"}, zaptest.NewLogger(t), nil, drained(t), testHooks())
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(t.Context()) })
	for i := range waiting {
		require.NoError(t, m.AddTask(waitingSpec(t, "w"+strconv.Itoa(i))))
	}
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	require.NoError(t, m.AddTask(pidTask("found", cmd, time.Second)))
	m.passBudget = time.Nanosecond

	for range waiting + 1 {
		m.discover(context.Background())
	}
	s, _ := m.Task("found")
	assert.Equal(t, StateActive, s.State, "found within %d passes", waiting+1)
	// Each pass looked for one task, each a different one: every task once.
	tried := map[uint64]string{}
	for _, tk := range m.tasks {
		require.NotZero(t, tk.tried, "%s was never looked for", tk.spec.ID)
		assert.Empty(t, tried[tk.tried], "%s and %s looked for in pass %d", tried[tk.tried], tk.spec.ID, tk.tried)
		tried[tk.tried] = tk.spec.ID
	}
	assert.Len(t, tried, waiting+1)
}

// The scenario of the flood: 10,000 tasks started through the control plane wait for their
// process (the rule cmdline '<id>', children of the proplet through its pid file) on a host
// with a few hundred processes; a process the proplet starts for one of them is bound to that
// task. What a pass costs with 10,000 pending tasks is BenchmarkDiscoveryPassTenThousandPending's.
func TestTenThousandPendingTasks(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("10,000 tasks")
	}
	const pending = 10_000
	p := startProplet(t)
	testworkload.Sleepers(t, 300)
	h := runMonitor(t, Config{DiscoveryInterval: time.Second})
	for i := range pending {
		require.NoError(t, h.m.AddTask(startedTask(t, taskID(i), p.pidFile)))
	}

	id := taskID(4321)
	started := time.Now()
	p.start(t, "--task-id="+id)
	require.Eventually(t, func() bool { s, _ := h.m.Task(id); return s.State == StateActive }, 10*time.Second, 10*time.Millisecond,
		"a process started for one of %d pending tasks is bound", pending)
	t.Logf("bound after %v", time.Since(started).Round(time.Millisecond))
	s, _ := h.m.Task(id)
	e, ok := h.m.src.Lookup(s.PID, make([]byte, bufSize))
	require.True(t, ok)
	assert.Equal(t, int32(p.pid), e.PPID, "the proplet's child")
}

// drained returns a sample channel that a goroutine empties until the test ends, for tests
// that run discovery passes themselves: a pass emits lookup samples of pending tasks.
func drained(tb testing.TB) chan Sample {
	out := make(chan Sample, 16)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-out:
			case <-done:
				return
			}
		}
	}()
	tb.Cleanup(func() { close(done) })
	return out
}
