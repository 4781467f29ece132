package monitor

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

type origin uint8

const (
	originStatic     origin = iota // from the configuration
	originDiscovered               // created by a discovery rule; removed when its process exits
	originAPI                      // registered at run time
)

// task is the monitor's state of one task. mu is held while the task is bound, sampled or
// refreshed; the discovery pass only TryLocks it, so a sample stuck in the kernel never stalls
// discovery.
type task struct {
	mu     sync.Mutex
	spec   admission.Spec
	origin origin
	state  State

	root *member
	// rootID is root's process, kept beside the pointer: the discovery pass reads it for
	// every task every pass, and chasing root to its handle cost two cache misses a task
	// (a quarter of the pass's CPU at 10,000 tasks). Valid while root is not nil.
	rootID  process.ID
	members map[int32]*member // descendants, with IncludeChildren
	cg      *process.Cgroup   // with spec.Cgroup
	cgRun   *cgroupRun        // with cg: what its readings keep

	ppid                int32
	exe, cmdline, owner string
	start               time.Time
	memLimit            uint64
	acc                 accum
	prevTime            time.Time
	loggedDenied        process.Fields
	loggedImpossible    process.Fields // waits the kernel showed longer than the process lived, logged
	warnedBind          bool           // warned that the process exists but cannot be opened
	pendingSince        time.Time      // when it last became pending, for PendingTimeout
	registered          bool           // in the registry: its state is counted
	notFoundLogged      time.Time      // when "not found yet" was last logged
	lookupSent          time.Time      // when the last "not found" lookup sample was emitted

	peak    uint64 // the highest RSS seen, or the kernel's high-water mark at exit
	cgLimit uint64 // the cgroup memory limit the task runs under; 0 when none
	lostAt  uint64 // the events source's overflow count when the task was bound
	// memcg is the memory cgroup its process (or the task's cgroup) runs in, and oomBase its
	// OOM kill count when the task was bound; hasOOMBase says the count could be read.
	memcg      process.MemoryCgroup
	oomBase    uint64
	hasOOMBase bool
	// waits are the task's cgroup's waits files (nil when it has no group of its own),
	// waitsTried whether they were looked for since it was bound, loggedWaits whether a failed
	// read of them was logged.
	waits       *process.CgroupWaits
	waitsTried  bool
	loggedWaits bool
	awaiting    bool // its process ended; waiting for the kernel's exit record
	// delaysAtBind is kernel.task_delayacct when its process was bound, with process events
	// on: a process forked while it was off has no block I/O delays to report (delays.go).
	delaysAtBind delaySetting
	// aliveAt is when its process was last read running; notBefore, once a process ended, is
	// the start a re-bind must be later than (owner.go). notBefore is read by discovery
	// without mu.
	aliveAt   time.Time
	notBefore atomic.Uint64
	prevStart atomic.Uint64 // the start of the process it last had
	stopping  bool          // stopped by a request; its report waits for its process to end
	// Guarded by Monitor.ev.mu, not mu: the processes accounted for the task, and the exit
	// records that arrived for it and are not applied yet.
	watched    map[int32]bool
	rootExit   *ProcessExit
	childExits []ProcessExit

	// tried is the discovery pass that last looked for this task's process. Only the
	// discovery pass reads or writes it (one pass at a time), so t.mu does not guard it.
	tried           uint64
	samples, errors uint64
	lastSample      time.Time

	// The memory warning (memwarn.go): mem only while the task has a limit to warn of.
	mem     *memWatch
	memBind memBinding
}

// cgroupRun is what a cgroup task's readings keep (a process task has none): the last reading,
// when the cgroup was bound, the processes the last reading found, and whether any reading
// found one.
type cgroupRun struct {
	prev      process.CgroupReading
	start     time.Time
	procs     int64
	populated bool
}

type member struct {
	h     *process.Handle
	prev  process.Reading
	whole bool // born after the task's previous sample: its first reading counts in full
}

// newSample starts a sample of the task: its identity and profile, and its process's identity
// and uptime when one is bound. The caller holds t.mu.
func (t *task) newSample(now time.Time) Sample {
	s := Sample{
		Kind: KindTask, Time: now,
		TaskID: t.spec.ID, TaskName: t.spec.Name, ProfileName: t.spec.ProfileName, Profile: t.spec.Profile,
	}
	if t.root != nil {
		s.HasProcess = true
		s.PID, s.PPID, s.Executable, s.Owner, s.Cmdline, s.Start = t.root.h.ID().PID, t.ppid, t.exe, t.owner, t.cmdline, t.start
		s.Uptime = now.Sub(t.start).Seconds()
	}
	return s
}

// counted records that a sample was taken.
func (t *task) counted(now time.Time) {
	t.samples++
	t.lastSample = now
}

func (t *task) closeHandles() {
	t.closeWaits()
	if t.cg != nil {
		t.cg.Close()
		t.cg = nil
	}
	if t.root != nil {
		t.root.h.Close()
		t.root = nil
	}
	for pid, mb := range t.members {
		mb.h.Close()
		delete(t.members, pid)
	}
}

func (t *task) status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Status{
		ID: t.spec.ID, Name: t.spec.Name, Daemon: t.spec.Daemon, ProfileName: t.spec.ProfileName, Profile: t.spec.Profile,
		State: t.state, LastSample: t.lastSample, Samples: t.samples, Errors: t.errors, Origin: t.spec.Origin,
	}
	if t.root != nil {
		s.PID = t.root.h.ID().PID
	}
	return s
}

// accum keeps a task's cumulative counters monotonic. For one process they equal the kernel's
// counters; for a process tree they add up each member's increase, so a member that exits
// does not make the totals go down.
type accum struct {
	cpuUser, cpuSystem float64
	read, write        uint64
	rx, tx             uint64
	runDelay           uint64 // ns waiting for a CPU
	ioDelay            uint64 // clock ticks waiting for block I/O
}

// delta is what one member added since its previous reading.
type delta struct {
	cpu                bool
	cpuUser, cpuSystem float64
}

func (d *delta) merge(o delta) {
	d.cpu = d.cpu || o.cpu
	d.cpuUser += o.cpuUser
	d.cpuSystem += o.cpuSystem
}

// add adds the increase from prev to cur. A counter family that prev lacks (the first
// reading, or a field just enabled) adds cur's whole value when whole is true (the task's own
// process, or a child born since the previous sample) and nothing otherwise (a member that
// existed before it was seen: its past belongs to no sample of this task).
func (a *accum) add(prev, cur *process.Reading, whole bool) delta {
	var d delta
	has := func(f process.Fields) (both, first bool) {
		return prev.Got&cur.Got&f != 0, cur.Got&f != 0 && prev.Got&f == 0 && whole
	}
	if both, first := has(process.FieldCPU); both {
		d.cpu = true
		d.cpuUser = max(cur.CPUUser-prev.CPUUser, 0)
		d.cpuSystem = max(cur.CPUSystem-prev.CPUSystem, 0)
		a.cpuUser += d.cpuUser
		a.cpuSystem += d.cpuSystem
	} else if first {
		a.cpuUser += cur.CPUUser
		a.cpuSystem += cur.CPUSystem
	}
	if both, first := has(process.FieldDisk); both {
		a.read += sub(cur.ReadBytes, prev.ReadBytes)
		a.write += sub(cur.WriteBytes, prev.WriteBytes)
	} else if first {
		a.read += cur.ReadBytes
		a.write += cur.WriteBytes
	}
	if both, first := has(process.FieldNetwork); both {
		a.rx += sub(cur.RxBytes, prev.RxBytes)
		a.tx += sub(cur.TxBytes, prev.TxBytes)
	} else if first {
		a.rx += cur.RxBytes
		a.tx += cur.TxBytes
	}
	if both, first := has(process.FieldWaits); both {
		a.runDelay += delaySince(prev, cur, cur.RunDelay, prev.RunDelay)
	} else if first {
		a.runDelay += cur.RunDelay
	}
	if both, first := has(process.FieldIODelay); both {
		a.ioDelay += delaySince(prev, cur, cur.IODelayTicks, prev.IODelayTicks)
	} else if first {
		a.ioDelay += cur.IODelayTicks
	}
	return d
}

// delaySince is the increase of a wait from prev to cur, two readings whose figures may be the
// main thread's or the thread group's (threads.go). From the main thread's to the group's it
// is the whole increase when prev showed one thread (every other thread was born since);
// otherwise, between figures of different scope, the interval's increase cannot be told and
// none is added: the next interval's is.
func delaySince(prev, cur *process.Reading, c, p uint64) uint64 {
	switch {
	case prev.GroupDelays == cur.GroupDelays:
		return sub(c, p)
	case cur.GroupDelays && prev.GroupThreads <= 1:
		return sub(c, p)
	}
	return 0
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
