//go:build linux

package monitor

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// The harness of the monitor's tests: a monitor run with its hooks, the samples it sent, and
// the tasks the tests give it.

func TestMain(m *testing.M) {
	delaysWorkloadIfChild()
	testworkload.MainIfChild()
	// The parallel tests mostly wait for processes and timers, not for a CPU: unless -parallel
	// says otherwise, run more of them at once than there are CPUs. The tests that measure
	// shares, durations or this process's descriptors and memory do not run in parallel.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}

// testHooks are the hooks of a monitor under test, changed by mods. Every test also checks the
// state machine: a move it does not allow fails the run.
func testHooks(mods ...func(*hooks)) hooks {
	hk := defaultHooks()
	hk.illegalMove = func(_ *Monitor, t *task, to State) {
		panic(fmt.Sprintf("task %q: state move %s -> %s is not allowed", t.spec.ID, t.state, to))
	}
	for _, mod := range mods {
		mod(&hk)
	}
	return hk
}

type harness struct {
	m       *Monitor
	mu      sync.Mutex
	samples []Sample
}

func runMonitor(t *testing.T, cfg Config, mods ...func(*hooks)) *harness {
	t.Helper()
	return runMonitorWith(t, cfg, nil, zaptest.NewLogger(t), mods...)
}

// runMonitorWith runs a monitor with its telemetry and logger, and its hooks changed by mods.
func runMonitorWith(t *testing.T, cfg Config, tel Telemetry, log *zap.Logger, mods ...func(*hooks)) *harness {
	t.Helper()
	if cfg.ProcRoot == "" {
		cfg.ProcRoot, cfg.CgroupRoot = "/proc", "/sys/fs/cgroup"
	}
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = 2
	}
	if cfg.DiscoveryInterval == 0 {
		cfg.DiscoveryInterval = 200 * time.Millisecond
	}
	out := make(chan Sample, 64)
	m, err := newMonitor(cfg, log, tel, out, testHooks(mods...))
	require.NoError(t, err)
	h := &harness{m: m}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range out {
			h.mu.Lock()
			h.samples = append(h.samples, s)
			h.mu.Unlock()
		}
	}()
	require.NoError(t, m.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Shutdown(ctx))
		close(out)
		<-done
	})
	return h
}

// of returns the measurements of a task (not its lookup samples while pending).
func (h *harness) of(id string) []Sample {
	return h.matching(func(s Sample) bool { return s.Kind == KindTask && s.TaskID == id && !s.Pending })
}

// lookups returns the lookup samples of a task: emitted while it is pending.
func (h *harness) lookups(id string) []Sample {
	return h.matching(func(s Sample) bool { return s.Kind == KindTask && s.TaskID == id && s.Pending })
}

func (h *harness) matching(keep func(Sample) bool) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Sample
	for _, s := range h.samples {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

func (h *harness) proplet() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Sample
	for _, s := range h.samples {
		if s.Kind == KindProplet {
			out = append(out, s)
		}
	}
	return out
}

// wait waits until n samples of a task exist, and returns them.
func (h *harness) wait(t *testing.T, id string, n int, within time.Duration) []Sample {
	t.Helper()
	var got []Sample
	require.Eventually(t, func() bool { got = h.of(id); return len(got) >= n }, within, 10*time.Millisecond, "task %s: want %d samples", id, n)
	return got
}

func prof(interval time.Duration) profile.Profile {
	p, _ := profile.Builtin(profile.Standard)
	p.Interval = interval
	return p
}

func pidTask(id string, cmd *exec.Cmd, interval time.Duration) admission.Spec {
	return admission.Spec{ID: id, Name: id, ProfileName: "test", Profile: prof(interval), Locator: admission.Locator{PID: int32(cmd.Process.Pid)}}
}

func (h *harness) waitProplet(t *testing.T, n int) []Sample {
	var got []Sample
	require.Eventually(t, func() bool { got = h.proplet(); return len(got) >= n }, 10*time.Second, 10*time.Millisecond)
	return got
}

// patience is how long a test waits for what the monitor will do (a discovery pass, a bind,
// a sample): on an idle machine it happens within a pass, but a machine running other work
// may hold a pass back for seconds. Waiting longer costs a passing test nothing.
const patience = 30 * time.Second
