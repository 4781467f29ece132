// Package monitor is the engine of the proplet receiver: it keeps the registry of tasks,
// finds each task's process, samples every task on its own monitoring profile through one
// scheduler and a bounded pool of workers, samples the proplet itself, and hands plain Sample
// values to the caller. It knows nothing of the Collector.
package monitor // import "github.com/otelcol-propeller/otelcol-propeller/internal/monitor"

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schedule"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
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
	// KeptOpenProcesses bounds the processes whose /proc files stay open between samples; past
	// it, files are opened and closed on every sample. 0 derives it from RLIMIT_NOFILE.
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
	ErrTooManyTasks   = errors.New("too many tasks")
	ErrTooManyPending = errors.New("too many pending tasks")
)

// RefusalReason names why AddTask refused a task, for counting: too_many_tasks,
// too_many_pending, or duplicate (the id is taken).
func RefusalReason(err error) string {
	switch {
	case errors.Is(err, ErrTooManyTasks):
		return "too_many_tasks"
	case errors.Is(err, ErrTooManyPending):
		return "too_many_pending"
	}
	return "duplicate"
}

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
}

const (
	discoveryKey = "\x00discovery"
	execKey      = "\x00exec"
	propletKey   = "\x00proplet"
	taskPrefix   = "task/"
	bufSize      = 4096
)

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

	disc    discovery
	ev      events
	endings map[string]ending // guarded by mu: ends scheduled, by job key
	oom     oomLog
	proplet propletState
	own     ownership // single-process rules: candidates, what was reported (owner.go)
	// passBudget is how long a discovery pass looks for pending tasks' processes: half the
	// discovery interval.
	passBudget time.Duration
}

// New returns a Monitor that sends samples to out. tel may be nil.
func New(cfg Config, log *zap.Logger, tel Telemetry, out chan<- Sample) (*Monitor, error) {
	src, err := process.NewSource(cfg.ProcRoot, cfg.CgroupRoot)
	if err != nil {
		return nil, err
	}
	if tel == nil {
		tel = noTelemetry{}
	}
	src.SetKeptOpenBudget(cfg.KeptOpenProcesses)
	if cfg.DiscoveryInterval <= 0 {
		cfg.DiscoveryInterval = time.Second
	}
	if cfg.MaxTasks <= 0 {
		cfg.MaxTasks = DefaultMaxTasks
	}
	if cfg.MaxPendingTasks <= 0 {
		cfg.MaxPendingTasks = DefaultMaxPendingTasks
	}
	m := &Monitor{cfg: cfg, src: src, log: log, tel: tel, out: out, tasks: map[string]*task{}, endings: map[string]ending{}}
	m.passBudget = cfg.DiscoveryInterval / 2
	m.bufs.New = func() any { b := make([]byte, bufSize); return &b }
	m.sched = schedule.New(max(cfg.MaxConcurrency, 1), m.runJob)
	m.disc.init()
	m.proplet.loc = cfg.Proplet
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
	m.proplet.baseline(m)
	m.sched.Add(discoveryKey, m.cfg.DiscoveryInterval, 0)
	if m.ev.active() {
		m.sched.Add(execKey, time.Hour, time.Hour) // run when an exec triggers it
	}
	if m.cfg.PropletInterval > 0 {
		m.sched.Add(propletKey, m.cfg.PropletInterval, m.cfg.PropletInterval+m.jitter())
	}
	m.sched.Start(ctx)
	return nil
}

// Shutdown stops sampling, waiting for running samples until ctx ends, and closes every
// kept-open file.
func (m *Monitor) Shutdown(ctx context.Context) error {
	err := m.sched.Stop(ctx)
	m.mu.Lock()
	for _, t := range m.tasks {
		if t.mu.TryLock() {
			t.closeHandles()
			t.mu.Unlock()
		}
	}
	m.mu.Unlock()
	m.proplet.close()
	m.oom.close()
	return errors.Join(err, m.stopEvents(), m.src.Close())
}

// AddTask registers an admitted task at run time. Its process is looked for on every
// discovery pass until it appears, or until PendingTimeout. Past MaxTasks registered tasks, or
// MaxPendingTasks pending ones, it fails with an error wrapping ErrTooManyTasks or
// ErrTooManyPending; the caller counts and logs the refusal.
func (m *Monitor) AddTask(spec admission.Spec) error {
	if err := m.register(spec, originAPI); err != nil {
		return err
	}
	m.sched.Trigger(discoveryKey)
	return nil
}

// Collect samples a task now, outside its cadence. It reports whether the task is sampled.
func (m *Monitor) Collect(id string) bool { return m.sched.Trigger(taskPrefix + id) }

// Tasks returns a snapshot of every registered task, sorted by id.
func (m *Monitor) Tasks() []Status {
	m.mu.Lock()
	ts := make([]*task, 0, len(m.tasks))
	for _, t := range m.tasks {
		ts = append(ts, t)
	}
	m.mu.Unlock()
	out := make([]Status, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.status())
	}
	slices.SortFunc(out, func(a, b Status) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// register adds a task of the configuration or the task API to the registry, within the caps.
func (m *Monitor) register(spec admission.Spec, o origin) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tasks[spec.ID]; ok {
		return fmt.Errorf("task %s is already registered", admission.Quote(spec.ID))
	}
	state := StatePending
	if spec.Locator.InProcess {
		state = StateInProcess
	}
	if n := len(m.tasks); n >= m.cfg.MaxTasks {
		return fmt.Errorf("task %s refused: %w: %d are registered, the most max_tasks (%d) allows", admission.Quote(spec.ID), ErrTooManyTasks, n, m.cfg.MaxTasks)
	}
	if n := m.pending.Load(); state == StatePending && n >= int64(m.cfg.MaxPendingTasks) {
		return fmt.Errorf("task %s refused: %w: %d are waiting for their process, the most max_pending_tasks (%d) allows", admission.Quote(spec.ID), ErrTooManyPending, n, m.cfg.MaxPendingTasks)
	}
	m.addLocked(&task{spec: spec, origin: o, state: state})
	return nil
}

// unregister removes a task from the registry, if it is still there. The caller holds t.mu
// (not m.mu).
func (m *Monitor) unregister(t *task) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !t.registered || m.tasks[t.spec.ID] != t {
		return
	}
	delete(m.tasks, t.spec.ID)
	t.registered = false
	m.tel.TaskState(t.state, "")
}

// addLocked adds a task to the registry. The caller holds m.mu and has checked the caps.
func (m *Monitor) addLocked(t *task) {
	if t.state == StatePending {
		m.pending.Add(1)
		t.pendingSince = time.Now()
	}
	m.tasks[t.spec.ID] = t
	t.registered = true
	m.tel.TaskState("", t.state)
}

func (m *Monitor) jitter() time.Duration {
	if m.cfg.StartJitter <= 0 {
		return 0
	}
	return rand.N(m.cfg.StartJitter)
}

func (m *Monitor) buf() *[]byte     { return m.bufs.Get().(*[]byte) }
func (m *Monitor) putBuf(b *[]byte) { m.bufs.Put(b) }

func (m *Monitor) runJob(ctx context.Context, key string) {
	switch key {
	case discoveryKey:
		m.discover(ctx)
	case propletKey:
		m.sampleProplet(ctx)
	case execKey:
		m.discoverExec(ctx)
	default:
		if strings.HasPrefix(key, endPrefix) {
			m.runEnd(ctx, key)
			return
		}
		m.mu.Lock()
		t := m.tasks[key[len(taskPrefix):]]
		m.mu.Unlock()
		if t != nil {
			m.sampleTask(ctx, t)
		}
	}
}

func (m *Monitor) emit(ctx context.Context, s Sample) {
	select {
	case m.out <- s:
		m.tel.Sampled(s.Kind)
	case <-ctx.Done():
	}
}

// bind attaches a task to a process incarnation and takes its baseline. The caller holds t.mu.
func (m *Monitor) bind(t *task, e process.Entry, buf []byte) error {
	fields := fieldsOf(t.spec.Profile)
	h, err := m.src.Open(e.ID, fields, buf)
	if err != nil {
		return err
	}
	d, err := m.src.Describe(e, buf)
	if err != nil {
		h.Close()
		return err
	}
	root := &member{h: h}
	if err := h.Read(fields, &root.prev, buf); err != nil {
		h.Close()
		return err
	}
	t.root, t.members = root, nil
	t.ppid = e.PPID
	t.exe, t.cmdline, t.owner = d.Executable, d.Cmdline, process.OwnerName(d.UID)
	t.start = m.src.StartTime(h.ID())
	_, _, limit, ok := m.src.CgroupMemory(e.ID.PID)
	t.memLimit = m.memLimit(limit, ok)
	t.cgLimit = 0
	if ok && limit > 0 && limit == t.memLimit {
		t.cgLimit = limit
	}
	t.acc = accum{}
	t.acc.add(&process.Reading{}, &root.prev, true)
	t.peak = root.prev.RSS
	t.memcg, _ = m.src.MemoryCgroupOf(e.ID.PID)
	t.oomBase, t.hasOOMBase = t.memcg.OOMKills()
	t.loggedDenied = 0
	t.prevTime = time.Now()
	t.aliveAt = t.prevTime
	t.awaiting, t.lostAt = false, m.ev.lost.Load()
	m.watch(t, e.ID, true)
	m.activate(t)
	m.log.Debug("Task bound to process", zap.String("task_id", t.spec.ID), zap.Int32("pid", e.ID.PID), zap.String("executable", t.exe))
	return nil
}

// memLimit is the memory available to a task: the machine's, or its cgroup's limit when that
// is lower.
func (m *Monitor) memLimit(cgroupLimit uint64, ok bool) uint64 {
	total := m.src.MemTotal()
	if ok && cgroupLimit > 0 && (total == 0 || cgroupLimit < total) {
		return cgroupLimit
	}
	return total
}

// finish ends sampling of a task's current process. The caller holds t.mu.
func (m *Monitor) finish(t *task) {
	m.sched.Remove(taskPrefix + t.spec.ID)
	m.unwatchAll(t)
	m.rebindAfter(t)
	t.closeHandles()
	switch {
	case t.origin == originDiscovered:
		m.setState(t, StateExited)
		m.unregister(t)
	case t.spec.Locator.Rebinds():
		m.setState(t, StatePending)
	default:
		m.setState(t, StateExited)
	}
	m.log.Debug("Task process exited", zap.String("task_id", t.spec.ID), zap.String("state", string(t.state)))
}

func (m *Monitor) sampleTask(ctx context.Context, t *task) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != StateActive {
		return
	}
	bp := m.buf()
	defer m.putBuf(bp)
	s, ok := m.read(t, *bp)
	if !ok {
		return
	}
	m.emit(ctx, s)
}

// read takes one sample of a bound task, from its process (tree) or its cgroup. The caller
// holds t.mu. It returns false when nothing is to be emitted (the process is gone, or the read
// failed and was counted).
func (m *Monitor) read(t *task, buf []byte) (Sample, bool) {
	if t.cg != nil {
		return m.readCgroup(t, buf)
	}
	fields := fieldsOf(t.spec.Profile)
	t.root.h.Ensure(fields)
	now := time.Now()
	var cur process.Reading
	if err := t.root.h.Read(fields, &cur, buf); err != nil {
		return m.readFailed(t, err, now)
	}
	if cur.Exited() && m.awaitRecord(t) {
		return Sample{}, false
	}
	if !cur.Exited() {
		t.aliveAt = now
	}
	if denied := cur.Denied &^ t.loggedDenied; denied != 0 {
		t.loggedDenied |= denied
		t.errors++
		m.tel.SampleError(KindTask)
		m.log.Debug("Some metrics of a task cannot be read: permission denied", zap.String("task_id", t.spec.ID), zap.Int32("pid", t.root.h.ID().PID), zap.Uint8("fields", uint8(denied)))
	}

	d := t.acc.add(&t.root.prev, &cur, true)
	r := reading{got: cur.Got, rss: cur.RSS, vms: cur.VMS, threads: cur.Threads, fds: cur.FDs, memLimit: t.memLimit}
	t.root.prev = cur
	for pid, mb := range t.members {
		mb.h.Ensure(fields)
		var mr process.Reading
		if err := mb.h.Read(fields, &mr, buf); err != nil {
			mb.h.Close()
			delete(t.members, pid)
			continue
		}
		d.merge(t.acc.add(&mb.prev, &mr, mb.whole))
		mb.prev, mb.whole = mr, false
		if mr.Exited() {
			mb.h.Close()
			delete(t.members, pid)
		}
		r.rss, r.vms, r.threads, r.fds = r.rss+mr.RSS, r.vms+mr.VMS, r.threads+mr.Threads, r.fds+mr.FDs
	}
	r.cpuUser, r.cpuSystem = t.acc.cpuUser, t.acc.cpuSystem
	r.dUser, r.dSystem, r.hasDelta = d.cpuUser, d.cpuSystem, d.cpu
	r.read, r.write, r.rx, r.tx = t.acc.read, t.acc.write, t.acc.rx, t.acc.tx

	t.peak = max(t.peak, r.rss)
	s := m.sample(t, now, &r)
	if cur.Exited() {
		m.endFromReading(t, &s, &cur, now)
		m.finish(t)
	}
	return s, true
}

// reading is one read of a task, from its process (tree) or from its cgroup, before it becomes
// a Sample. Everything the two kinds of task share from here on happens once, in sample.
type reading struct {
	got                process.Fields
	cpuUser, cpuSystem float64 // cumulative seconds, monotonic
	dUser, dSystem     float64 // increase since the previous sample
	hasDelta           bool    // dUser and dSystem cover the whole time since the previous sample
	rss, vms           uint64
	memLimit           uint64 // memory available to the task; 0 when unknown
	read, write        uint64 // cumulative, monotonic
	rx, tx             uint64 // cumulative, monotonic
	threads, fds       int64
}

// sample turns a reading into the task's Sample (utilisation over the time since the previous
// sample) and counts it. The caller holds t.mu.
func (m *Monitor) sample(t *task, now time.Time, r *reading) Sample {
	s := t.newSample(now)
	s.Got = r.got
	if r.got&process.FieldCPU != 0 {
		s.CPUUser, s.CPUSystem = r.cpuUser, r.cpuSystem
		if dt := now.Sub(t.prevTime).Seconds(); r.hasDelta && dt > 0 {
			cpus := float64(m.src.NumCPU())
			s.UtilUser = utilization(r.dUser, dt, cpus)
			s.UtilSystem = utilization(r.dSystem, dt, cpus)
			s.HasUtil = true
		}
	}
	if r.got&process.FieldMemory != 0 {
		s.RSS, s.VMS = r.rss, r.vms
		if r.memLimit > 0 {
			s.MemUtil = float64(r.rss) / float64(r.memLimit)
		}
	}
	if r.got&process.FieldDisk != 0 {
		s.ReadBytes, s.WriteBytes = r.read, r.write
	}
	if r.got&process.FieldNetwork != 0 {
		s.RxBytes, s.TxBytes = r.rx, r.tx
	}
	s.Threads, s.FDs = r.threads, r.fds
	t.prevTime = now
	t.counted(now)
	return s
}

// readFailed handles a task read that failed. A process (or cgroup) that is gone ends the
// task's sampling with a final sample from what was read last, carrying the usage report
// (with process events, the exit record gives it instead); anything else skips this sample
// and is counted. The caller holds t.mu.
func (m *Monitor) readFailed(t *task, err error, now time.Time) (Sample, bool) {
	if !errors.Is(err, process.ErrGone) {
		t.errors++
		m.tel.SampleError(KindTask)
		m.log.Debug("Task sample skipped", zap.String("task_id", t.spec.ID), zap.Error(err))
		return Sample{}, false
	}
	if m.awaitRecord(t) {
		return Sample{}, false
	}
	if t.cg == nil {
		return m.endNow(t, t.root.h.ID()) // from the previous reading: the process is gone
	}
	s := m.endCgroup(t, now)
	emit := t.state == StateActive
	t.counted(now)
	m.finish(t)
	return s, emit
}

// fieldsOf maps a profile's collect flags to the counters read.
func fieldsOf(p profile.Profile) process.Fields {
	var f process.Fields
	set := func(on bool, x process.Fields) {
		if on {
			f |= x
		}
	}
	set(p.CollectCPU, process.FieldCPU)
	set(p.CollectMemory, process.FieldMemory)
	set(p.CollectDiskIO, process.FieldDisk)
	set(p.CollectNetworkIO, process.FieldNetwork)
	set(p.CollectThreads, process.FieldThreads)
	set(p.CollectFileDescriptors, process.FieldFDs)
	return f
}

func selfEntry(src *process.Source, buf []byte) (process.Entry, bool) {
	return src.Lookup(int32(os.Getpid()), buf)
}

// lookup returns a registered task.
func (m *Monitor) lookup(id string) (*task, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tasks[id]
	return t, ok
}

// Task returns the status of one task.
func (m *Monitor) Task(id string) (Status, bool) {
	t, ok := m.lookup(id)
	if !ok {
		return Status{}, false
	}
	return t.status(), true
}

// CollectAll samples every sampled task now, outside its cadence. It returns how many.
func (m *Monitor) CollectAll() int {
	m.mu.Lock()
	ids := make([]string, 0, len(m.tasks))
	for id := range m.tasks {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	n := 0
	for _, id := range ids {
		if m.Collect(id) {
			n++
		}
	}
	return n
}

// SetProfile changes a task's monitoring profile. It takes effect on the task's next sample:
// the interval moves to one new interval after the previous sample, files of newly enabled
// metrics are opened then, and a profile with enabled: false stops sampling (and true starts
// it again). It reports whether the task exists.
func (m *Monitor) SetProfile(id, name string, p profile.Profile) bool {
	t, ok := m.lookup(id)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spec.ProfileName, t.spec.Profile = name, p
	key := taskPrefix + id
	switch {
	case t.state == StateActive && !p.Enabled:
		m.sched.Remove(key)
		m.setState(t, StateDisabled)
	case t.state == StateDisabled && p.Enabled:
		m.setState(t, StateActive)
		m.sched.Add(key, p.Interval, p.Interval)
	case t.state == StateActive:
		m.sched.SetInterval(key, p.Interval)
	}
	return true
}

// StopTask ends a task's monitoring after a last sample, marked final, when its process can
// still be read, and removes it from the registry. It reports whether the task existed.
func (m *Monitor) StopTask(ctx context.Context, id string) bool {
	m.mu.Lock()
	t, ok := m.tasks[id]
	m.mu.Unlock()
	if !ok {
		return false
	}
	t.mu.Lock()
	var last Sample
	var emit bool
	if (t.state == StateActive || t.state == StateDisabled) && m.ev.active() && t.root != nil && t.cg == nil {
		// The process is usually ended by whoever asked for the stop: its exit record gives
		// the final sample and the report, or a last reading after stopGrace.
		m.sched.Remove(taskPrefix + id)
		m.setState(t, StateStopped)
		m.unregister(t)
		t.stopping = true
		m.scheduleEnd(t, t.root.h.ID(), stopGrace)
		t.mu.Unlock()
		return true
	}
	if t.state == StateActive || t.state == StateDisabled {
		bp := m.buf()
		last, emit = m.read(t, *bp)
		m.putBuf(bp)
		if emit && last.Usage == nil {
			m.endFromReading(t, &last, nil, last.Time)
		}
		last.Final = true
	}
	m.sched.Remove(taskPrefix + id)
	t.closeHandles()
	m.setState(t, StateStopped)
	m.unregister(t)
	t.mu.Unlock()
	if emit {
		m.emit(ctx, last)
	}
	return true
}

// utilization is the share of all CPUs a CPU-time increase took over a wall time: the
// contract's CPU percent (a share of one core) over the number of CPUs.
func utilization(cpuSeconds, wallSeconds, cpus float64) float64 {
	return schema.CPUPercent(cpuSeconds, wallSeconds) / 100 / cpus
}
