// Package monitor is the engine of the proplet receiver: it keeps the registry of tasks,
// finds each task's process, samples every task on its own monitoring profile through one
// scheduler and a bounded pool of workers, samples the proplet itself, and hands plain Sample
// values to the caller. It knows nothing of the Collector.
package monitor // import "github.com/otelcol-propeller/otelcol-propeller/internal/monitor"

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schedule"
)

// Rule turns matching processes into tasks: the matcher's task_id capture is the task id.
type Rule struct {
	Match           *procmatch.Matcher
	ProfileName     string
	Profile         profile.Profile
	IncludeChildren bool
}

// Config configures a Monitor.
type Config struct {
	ProcRoot, CgroupRoot string
	Tasks                []admission.Spec
	Rules                []Rule
	Proplet              admission.Locator
	PropletInterval      time.Duration // 0: no proplet samples
	DiscoveryInterval    time.Duration
	MaxConcurrency       int
	StartJitter          time.Duration
	// KeptOpenProcesses bounds the descriptors kept open between samples at five a process
	// (a process holding fewer leaves room for more); past it, files are opened and closed on
	// every sample. 0 derives it from RLIMIT_NOFILE: the limit less 256.
	KeptOpenProcesses int
	// MaxTasks bounds the registered tasks, of every origin (the configuration, the task API,
	// the control plane, discovery rules): past it AddTask fails with ErrTooManyTasks and a
	// discovery rule creates no task. 0 means DefaultMaxTasks.
	MaxTasks int
	// MaxPendingTasks bounds the tasks in state pending (registered, their process not found):
	// past it AddTask fails with ErrTooManyPending. 0 means DefaultMaxPendingTasks.
	MaxPendingTasks int
	// Events says how processes are found and accounted: the kernel's process events, /proc
	// scans, or the first when it can be had. "" means EventsAuto.
	Events EventsMode
	// PendingTimeout removes a task registered at run time (the task API, the control plane)
	// that has been pending this long: its process never appeared, or did not come back. Tasks
	// of the configuration never expire. 0 means never.
	PendingTimeout time.Duration
}

// Defaults of the caps on tasks.
const (
	DefaultMaxTasks        = 10_000
	DefaultMaxPendingTasks = 10_000
)

// Errors AddTask wraps when a cap refuses a task; the message names the cap and its
// configuration key.
var (
	ErrTooManyTasks   = admission.ErrTooManyTasks
	ErrTooManyPending = admission.ErrTooManyPending
)

// RefusalReason names why AddTask refused a task, for counting: too_many_tasks,
// too_many_pending, or duplicate (the id is taken).
func RefusalReason(err error) string { return admission.Reason(err) }

// Telemetry receives the monitor's self-observations. Every method must be cheap and safe for
// concurrent use.
type Telemetry interface {
	Sampled(kind Kind)
	SampleError(kind Kind)
	// TaskState counts the registered tasks by state: a task moved from one state to
	// another; "" is outside the registry (registered, or removed).
	TaskState(from, to State)
	// Refused counts a task refused or dropped by the monitor (a cap, an expired pending
	// task, a discovered id admission refuses), by reason.
	Refused(reason string)
	// EventsLost counts an overflow of the kernel's process events.
	EventsLost()
}

type noTelemetry struct{}

func (noTelemetry) Sampled(Kind)           {}
func (noTelemetry) SampleError(Kind)       {}
func (noTelemetry) TaskState(State, State) {}
func (noTelemetry) Refused(string)         {}
func (noTelemetry) EventsLost()            {}

// Status is a snapshot of one task, for inspection.
type Status struct {
	ID, Name    string
	Daemon      bool
	PID         int32
	ProfileName string
	Profile     profile.Profile
	State       State
	LastSample  time.Time
	Samples     uint64
	Errors      uint64
	// Origin is the door the task came through: which door may end it.
	Origin admission.Origin
}

const bufSize = 4096

// Monitor samples tasks and the proplet. Create it with New, then Start and Shutdown.
type Monitor struct {
	cfg   Config
	src   *process.Source
	log   *zap.Logger
	tel   Telemetry
	out   chan<- Sample
	sched *schedule.Scheduler
	bufs  sync.Pool

	mu    sync.Mutex
	tasks map[string]*task
	// pending counts the tasks in state pending. It changes in setState, when a pending task
	// is registered, and when one leaves the registry still pending.
	pending atomic.Int64

	// stopping are the stopped tasks whose end waits for their process (their exit record, or
	// the stop grace), so Shutdown closes what they hold. Guarded by mu.
	stopping map[*task]bool

	disc    *discovery
	pass    passState // guarded by disc.mu
	ev      events
	oom     oomLog
	proplet *proplet
	hooks   hooks
	group   groupWaits // the thread groups' waits (threads.go)
	// delaysUnreadable is set once reading kernel.task_delayacct failed and was logged;
	// delaysImpossible once an impossible delay in an exit record was.
	delaysUnreadable, delaysImpossible atomic.Bool
	// passBudget is how long a discovery pass looks for pending tasks' processes: half the
	// discovery interval.
	passBudget time.Duration
	// activated counts the tasks made active, to spread their first samples (spread).
	activated atomic.Int64
}

// New returns a Monitor that sends samples to out. tel may be nil.
func New(cfg Config, log *zap.Logger, tel Telemetry, out chan<- Sample) (*Monitor, error) {
	return newMonitor(cfg, log, tel, out, defaultHooks())
}

func newMonitor(cfg Config, log *zap.Logger, tel Telemetry, out chan<- Sample, hk hooks) (*Monitor, error) {
	src, err := process.NewSource(cfg.ProcRoot, cfg.CgroupRoot)
	if err != nil {
		return nil, err
	}
	if tel == nil {
		tel = noTelemetry{}
	}
	src.SetKeptOpenBudget(cfg.KeptOpenProcesses)
	src.SetBudgetObserver(func(budget int64) {
		log.Warn("The kept-open budget is full: the /proc and cgroup files of further tasks are opened, read and closed on every sample, which costs about twice the CPU of a kept-open read. To keep them open, raise the collector's descriptor limit (systemd LimitNOFILE=, ulimit -n; the budget is the limit less 256) or max_kept_open_processes.",
			zap.Int64("budget_descriptors", budget))
	})
	src.SetOpenObserver(hk.opened)
	if cfg.DiscoveryInterval <= 0 {
		cfg.DiscoveryInterval = time.Second
	}
	if cfg.MaxTasks <= 0 {
		cfg.MaxTasks = DefaultMaxTasks
	}
	if cfg.MaxPendingTasks <= 0 {
		cfg.MaxPendingTasks = DefaultMaxPendingTasks
	}
	m := &Monitor{cfg: cfg, src: src, log: log, tel: tel, out: out, tasks: map[string]*task{}, stopping: map[*task]bool{}, hooks: hk}
	m.checkWaitsSupport()
	m.passBudget = cfg.DiscoveryInterval / 2
	m.bufs.New = func() any { b := make([]byte, bufSize); return &b }
	m.sched = schedule.New(max(cfg.MaxConcurrency, 1))
	m.disc = newDiscovery(src, hk.readPIDFile, int32(os.Getpid()))
	m.proplet = newProplet(src, cfg.Proplet, log, tel)
	m.disc.own.log, m.disc.own.tel, m.disc.own.boundProplet = log, tel, m.proplet.boundID
	for _, spec := range cfg.Tasks {
		if err := m.register(spec, originStatic); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Source exposes the process source (for host facts such as the CPU count).
func (m *Monitor) Source() *process.Source { return m.src }

// Start starts sampling. The first discovery pass, which binds the tasks whose processes
// exist now (taking their baselines), runs at once on a worker, not in the caller: a pid file
// on a hung mount must not hold up the collector's start.
func (m *Monitor) Start(ctx context.Context) error {
	if err := m.startEvents(ctx); err != nil {
		return err
	}
	m.startOOMLog(ctx)
	m.openGroup()
	m.proplet.baseline()
	m.sched.Add(discoveryJob{m}, m.cfg.DiscoveryInterval, 0)
	if m.cfg.PropletInterval > 0 {
		m.sched.Add(propletJob{m}, m.cfg.PropletInterval, m.cfg.PropletInterval+m.jitter())
	}
	m.sched.Start(ctx)
	return nil
}

// Shutdown stops sampling, waiting for running samples until ctx ends, and closes every
// kept-open file.
func (m *Monitor) Shutdown(ctx context.Context) error {
	err := m.sched.Stop(ctx)
	m.mu.Lock()
	stopping := make([]*task, 0, len(m.stopping))
	for t := range m.stopping {
		stopping = append(stopping, t)
	}
	held := make([]*task, 0, len(m.tasks))
	for _, t := range m.tasks {
		held = append(held, t)
	}
	m.mu.Unlock()
	// A stopped task whose end waits for its process ends now, from a last reading: its report
	// is sent (the caller still reads samples) and what it opened is closed.
	for _, t := range stopping {
		if !t.mu.TryLock() {
			held = append(held, t)
			continue
		}
		var s Sample
		var emit bool
		if t.root != nil {
			s, emit = m.endNow(t, t.root.h.ID())
		}
		t.closeHandles()
		t.mu.Unlock()
		if emit {
			m.emit(ctx, s)
		}
	}
	for _, t := range held {
		if t.mu.TryLock() {
			t.closeHandles()
			t.mu.Unlock()
		}
	}
	m.proplet.close()
	m.oom.close()
	m.closeGroup()
	return errors.Join(err, m.stopEvents(), m.src.Close())
}

// spreadBlock is how many tasks made active one after another share a round of the start
// window. A discovery pass binds the processes it finds in the order they started, and the
// scheduler runs a round's samples in the order they were scheduled, so a round reads runs of
// consecutive processes, whose kernel data lies side by side: at 10,000 tasks, reading them
// scattered costs the kernel 1.1-1.4 times as much (BENCHMARKS.md, *Ten thousand tasks on one
// host*). Sixteen keeps the rounds evenly filled from a few dozen tasks up.
const spreadBlock = 16

// spread is the offset of a newly active task's first sample within the start window
// (StartJitter): tasks take the window's rounds in turn, spreadBlock at a time.
func (m *Monitor) spread() time.Duration {
	rounds := int64(m.cfg.StartJitter / schedule.Granularity)
	if rounds <= 1 {
		return 0
	}
	k := m.activated.Add(1) - 1
	return time.Duration(k/spreadBlock%rounds) * schedule.Granularity
}

func (m *Monitor) jitter() time.Duration {
	if m.cfg.StartJitter <= 0 {
		return 0
	}
	return rand.N(m.cfg.StartJitter)
}

func (m *Monitor) buf() *[]byte     { return m.bufs.Get().(*[]byte) }
func (m *Monitor) putBuf(b *[]byte) { m.bufs.Put(b) }

func (m *Monitor) emit(ctx context.Context, s Sample) {
	select {
	case m.out <- s:
		m.tel.Sampled(s.Kind)
	case <-ctx.Done():
	}
}
