package monitor

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procevents"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// The waits of a multi-threaded process. /proc/<pid>/schedstat and stat's block I/O delay are
// the main thread's alone, and summing /proc/<pid>/task/*/schedstat would go down when a
// thread exits. The kernel's TASKSTATS answers for the thread group: its live threads plus
// what its exited threads left behind, so a process that shows more than one thread takes
// its waits from there. A single-threaded process keeps the one read of schedstat (cheaper).

// groupQuerier is procevents.GroupStats, or a test's stand-in.
type groupQuerier interface {
	Delays(tgid int, d *procevents.Delays) error
	Close() error
}

func openGroupStats() (groupQuerier, error) {
	g, err := procevents.OpenGroupStats()
	if err != nil {
		return nil, err
	}
	return g, nil
}

// groupWaits is the monitor's one TASKSTATS socket, opened at start (a descriptor for the
// monitor's life, not one per sample), shared by the sampling workers (it serialises them).
type groupWaits struct {
	mu sync.Mutex
	q  groupQuerier // nil: not open
	// off is set once the queries cannot work (no socket, no CAP_NET_ADMIN, another
	// namespace, not this collector's /proc): every process's waits are its main thread's.
	off atomic.Bool
	// loggedFailed is set once a query failed for one process and was logged.
	loggedFailed atomic.Bool
}

// openGroup opens the socket and asks it once, for the collector itself, so a refusal is
// logged at start rather than at the first multi-threaded task.
func (m *Monitor) openGroup() {
	g := &m.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.q != nil || g.off.Load() {
		return
	}
	if !ownProc(m.cfg.ProcRoot) {
		// TASKSTATS names processes by this collector's PID namespace, which another /proc's
		// process ids may not be.
		g.off.Store(true)
		m.log.Info("CPU and block I/O wait of multi-threaded tasks are their main thread's: the process root is not this collector's /proc, "+
			"whose process ids the kernel's thread group statistics would need",
			zap.String("proc_root", m.cfg.ProcRoot))
		return
	}
	q, err := m.hooks.openGroupStats()
	if err == nil {
		var d procevents.Delays
		if err = q.Delays(os.Getpid(), &d); err != nil {
			_ = q.Close()
		}
	}
	if err != nil {
		m.groupRefused(err)
		return
	}
	g.q = q
}

// groupQuerier returns the socket, or nil when it is not open.
func (m *Monitor) groupQuerier() groupQuerier {
	g := &m.group
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.q
}

// ownProc reports whether root is this process's own /proc.
func ownProc(root string) bool {
	return root == "" || filepath.Clean(root) == "/proc"
}

// threadGroupWaits replaces the waits a process's reading took from its main thread with its
// thread group's, when the process shows more than one thread or its previous reading was
// already the group's (a group stays one: its exited threads' waits are only there). A failed
// query leaves the main thread's figures, counted and logged. The caller holds t.mu.
func (m *Monitor) threadGroupWaits(t *task, pid int32, prev, cur *process.Reading) {
	if cur.GroupThreads <= 1 && !prev.GroupDelays || m.group.off.Load() {
		return
	}
	q := m.groupQuerier()
	if q == nil {
		return
	}
	var d procevents.Delays
	if err := q.Delays(int(pid), &d); err != nil {
		m.groupQueryFailed(t, pid, err)
		return
	}
	if m.src.Schedstat() {
		// Without the scheduler's statistics (CONFIG_SCHED_INFO) the kernel counts no run
		// delay, and a 0 would say the task never waited.
		cur.Impossible &^= process.FieldWaits
		cur.RunDelay, cur.Got = uint64(d.CPU), cur.Got|process.FieldWaits
	}
	if cur.Got&process.FieldIODelay != 0 {
		// Clock ticks, stat's unit: the sum stays monotonic as the nanoseconds are.
		cur.IODelayTicks = uint64(d.BlockIO / (time.Second / procfs.UserHZ))
		if cur.IODelayTicks > cur.AgeTicks*uint64(max(cur.GroupThreads, 1)) {
			// More than every thread alive waiting all its life: a thread's delay with the
			// uptime added, as some kernels show once delay accounting is switched on at run
			// time. Left out like the main thread's would be (impossible, below).
			cur.IODelayTicks = 0
			cur.Got &^= process.FieldIODelay
			cur.Impossible |= process.FieldIODelay
		}
	}
	cur.GroupDelays = true
}

// groupQueryFailed counts a failed query; one the kernel will refuse every time turns the
// queries off.
func (m *Monitor) groupQueryFailed(t *task, pid int32, err error) {
	t.errors++
	if errors.Is(err, procevents.ErrNotPermitted) || errors.Is(err, procevents.ErrUnsupported) || errors.Is(err, procevents.ErrNotInitialNamespace) {
		m.groupRefused(err)
		return
	}
	m.tel.SampleError(KindTask)
	if !m.group.loggedFailed.Swap(true) {
		m.log.Info("A multi-threaded task's thread group statistics could not be read (the process ended between reads, or the kernel refused): "+
			"that sample's CPU and block I/O wait are its main thread's. Logged once; later failures are counted in the sample errors",
			zap.String("task_id", t.spec.ID), zap.Int32("pid", pid), zap.Error(err))
	}
}

// groupRefused turns the queries off for good, counts it once as a failed read of the tasks'
// waits, and says why and how to fix it.
func (m *Monitor) groupRefused(err error) {
	if m.group.off.Swap(true) {
		return
	}
	m.tel.SampleError(KindTask)
	m.log.Warn("CPU and block I/O wait of multi-threaded tasks are their main thread's only: the kernel's thread group statistics (TASKSTATS) cannot be read. "+
		"Run the collector as root or with CAP_NET_ADMIN, in the initial PID and user namespaces, on a kernel with CONFIG_TASKSTATS",
		zap.Strings("metrics", []string{"propeller.task.cpu.wait.time", "propeller.task.disk.io.wait.time"}), zap.Error(err))
}

// closeGroup closes the socket at shutdown.
func (m *Monitor) closeGroup() {
	g := &m.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.q != nil {
		_ = g.q.Close()
		g.q = nil
	}
	g.off.Store(true)
}
