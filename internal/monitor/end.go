package monitor

import (
	"context"
	"errors"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procevents"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// The end of a task's process, and its usage report, in one place. With the kernel's process
// events, the exit record (events.go: processExited) gives the totals and the exit status
// (exact); a sample that finds the process ended first waits for that record (awaitRecord) up
// to exitGrace, and a stopped task waits up to stopGrace. Without events, the zombie's last
// reading, or the previous reading when the process was already reaped, gives them (not
// exact). Either way the task's final sample carries its usage report.
//
// Each incarnation (a task object and the process it was bound to) has its own end job: a
// task stopped and registered again under the same id, both watching one process, gets two
// ends, each run once, each closing what its incarnation opened.

// Usage is the report of an ended task: what it used over its whole life and how it ended. It
// rides on the task's final Sample.
type Usage struct {
	Start, End         time.Time
	CPUUser, CPUSystem float64 // seconds over the task's life, children included with include_children
	// PeakMemory is the highest resident set size: the kernel's high-water mark of the task's
	// process (of any of its processes, with include_children) when its exit was accounted,
	// else the highest RSS a sample saw.
	PeakMemory            uint64
	MemoryLimit           uint64 // the cgroup memory limit the task ran under; 0 when none is known
	ReadBytes, WriteBytes uint64
	HasNetwork            bool // the task had a network namespace of its own
	RxBytes, TxBytes      uint64
	// Exactly one of HasExitCode and HasExitSignal is set when the end is known.
	ExitCode, ExitSignal       int
	HasExitCode, HasExitSignal bool
	OOMKilled                  bool
	// The delays are how long the task's processes waited, in seconds, by cause: runnable
	// but waiting for a CPU, for synchronous block I/O, for swap-in, in direct memory reclaim.
	// They come from the kernel's delay accounting in the exit records, summed as the CPU
	// times are; each is set (its Has flag) only where the kernel provided it (delays.go).
	CPUDelay, BlockIODelay, SwapInDelay, MemoryReclaimDelay             float64
	HasCPUDelay, HasBlockIODelay, HasSwapInDelay, HasMemoryReclaimDelay bool
	// Exact says the totals come from the kernel's exit accounting (or, for a cgroup task, from
	// the cgroup once its last process left), not from the last sample.
	Exact bool
}

// Duration is how long the task ran.
func (u *Usage) Duration() time.Duration { return u.End.Sub(u.Start) }

// setStatus records how a process ended from its wait status.
func (u *Usage) setStatus(status uint32) {
	if sig := int(status & 0x7f); sig != 0 {
		u.ExitSignal, u.HasExitSignal = sig, true
		return
	}
	u.ExitCode, u.HasExitCode = int(status>>8&0xff), true
}

// ProcessExit is the kernel's exit accounting of one ended process (all its threads), as the
// process events source reports it.
type ProcessExit struct {
	PID int32
	// StartTicks is when the process started, in the clock ticks /proc/<pid>/stat counts
	// since boot, reckoned back from its elapsed time (so up to startSlack late); 0 when
	// unknown. With the pid it tells the process this record is of.
	StartTicks            uint64
	Elapsed               time.Duration // from its start to its exit
	User, System          time.Duration
	PeakRSS               uint64
	ReadBytes, WriteBytes uint64
	Status                uint32 // wait status
	Threads               int    // the thread records summed
	Delays                procevents.Delays
	// Complete is false when the totals may be short: records were lost, or the process
	// started before the source opened.
	Complete bool
}

// startSlack is how late an exit record's start time may be: the time the record waited in
// the socket before it was read.
const startSlack = time.Second

// of reports whether the record is of process id: the same pid, and the same start time within
// a clock tick and startSlack.
func (x *ProcessExit) of(id process.ID) bool {
	if x.PID != id.PID {
		return false
	}
	if x.StartTicks == 0 || id.Start == 0 {
		return true // one of the two start times is unknown
	}
	tick := uint64(time.Second / procfs.UserHZ)
	return id.Start <= x.StartTicks+1 && x.StartTicks <= id.Start+1+uint64(startSlack)/tick
}

// reading turns an exit record into a process reading with the counters it carries.
func (x *ProcessExit) reading() process.Reading {
	return process.Reading{
		Got:     process.FieldCPU | process.FieldDisk,
		State:   'X',
		CPUUser: x.User.Seconds(), CPUSystem: x.System.Seconds(),
		ReadBytes: x.ReadBytes, WriteBytes: x.WriteBytes,
		ExitStatus: x.Status, HasExitStatus: true,
	}
}

// awaitRecord is called when a sample finds a task's process ended (a zombie, or gone). With
// process events it stops the task's samples and lets the exit record end the task, or a
// last reading after exitGrace; it reports whether it did. The caller holds t.mu.
func (m *Monitor) awaitRecord(t *task) bool {
	if !m.ev.active() || t.root == nil || t.cg != nil {
		return false
	}
	if !t.awaiting {
		t.awaiting = true
		m.sched.Remove(sampleJob{m, t})
		m.scheduleEnd(t, t.root.h.ID(), m.hooks.exitGrace)
	}
	return true
}

// endJob ends one incarnation of a task: the task object (a task stopped and registered
// again under the same id is another object) and the process it was bound to. The exit
// record arrived, or the grace for it ran out. Ends run on the scheduler's workers, so
// Shutdown waits for them like for samples.
type endJob struct {
	m  *Monitor
	t  *task
	id process.ID
}

// scheduleEnd ends task t's process id after delay (0: now). A second call for the same
// incarnation moves its end to the new delay; another incarnation's end is another job.
func (m *Monitor) scheduleEnd(t *task, id process.ID, delay time.Duration) {
	m.sched.After(endJob{m, t, id}, delay)
}

// Run ends the task, if still bound to that process, and emits its final sample.
func (j endJob) Run(ctx context.Context) {
	j.t.mu.Lock()
	s, emit := j.m.endNow(j.t, j.id)
	j.t.mu.Unlock()
	if emit {
		j.m.emit(ctx, s)
	}
}

// endNow builds the final sample and usage report of a task's process id and ends its
// sampling. The caller holds t.mu.
func (m *Monitor) endNow(t *task, id process.ID) (Sample, bool) {
	if t.root == nil || t.root.h.ID() != id {
		return Sample{}, false // ended already, or bound to another process since
	}
	switch {
	case t.state == StateActive, t.state == StateDisabled:
	case t.state == StateStopped && t.stopping:
	default:
		return Sample{}, false
	}
	m.ev.mu.Lock()
	x, children := t.rootExit, t.childExits
	t.rootExit, t.childExits = nil, nil
	m.ev.mu.Unlock()

	now := time.Now()
	end := now
	exact := x != nil && x.Complete && t.lostAt == m.ev.lost.Load()
	var status *uint32
	fields := fieldsOf(t.spec.Profile)
	var r reading
	var d delta
	var delays procevents.Delays // of the exit records
	var badDelays delayFlags
	if x != nil {
		m.checkDelays(t, x, &delays, &badDelays)
		cur := x.reading()
		d = t.acc.add(&t.root.prev, &cur, true)
		t.peak = max(t.peak, x.PeakRSS)
		if !t.start.IsZero() {
			end = t.start.Add(x.Elapsed)
		}
		status = &x.Status
	} else {
		bp := m.buf()
		var cur process.Reading
		err := t.root.h.Read(fields, &cur, *bp)
		m.putBuf(bp)
		if err == nil {
			m.threadGroupWaits(t, t.root.h.ID().PID, &t.root.prev, &cur)
			d = t.acc.add(&t.root.prev, &cur, true)
			t.root.prev = cur
			if cur.Exited() && cur.HasExitStatus {
				status = &cur.ExitStatus
			}
			if !cur.Exited() {
				// Stopped, and still running after its grace: its memory now is its last.
				r.got |= cur.Got & (process.FieldMemory | process.FieldThreads | process.FieldFDs)
				r.rss, r.vms, r.threads, r.fds, r.memLimit = cur.RSS, cur.VMS, cur.Threads, cur.FDs, t.memLimit
				t.peak = max(t.peak, cur.RSS)
			}
		}
	}
	for i := range children {
		cx := &children[i]
		cur := cx.reading()
		if mb, ok := t.members[cx.PID]; ok {
			d.merge(t.acc.add(&mb.prev, &cur, mb.whole))
			mb.h.Close()
			delete(t.members, cx.PID)
		} else {
			d.merge(t.acc.add(&process.Reading{}, &cur, true)) // born and ended between samples
		}
		t.peak = max(t.peak, cx.PeakRSS)
		m.checkDelays(t, cx, &delays, &badDelays)
		exact = exact && cx.Complete
	}
	// The cumulative counters the task had, or the exit record brought; network only for a
	// task whose samples had it (a network namespace of its own).
	have := t.root.prev.Got
	if x != nil {
		have |= process.FieldCPU | process.FieldDisk
	}
	r.got |= fields & have & (process.FieldCPU | process.FieldDisk | process.FieldNetwork)
	// The delays are the last read: an exit record does not carry them.
	if fields&process.FieldWaits != 0 {
		r.got |= have & (process.FieldWaits | process.FieldIODelay)
	}
	r.runDelay, r.ioDelay = t.acc.runDelay, t.acc.ioDelay
	r.cpuUser, r.cpuSystem = t.acc.cpuUser, t.acc.cpuSystem
	r.dUser, r.dSystem, r.hasDelta = d.cpuUser, d.cpuSystem, d.cpu
	r.read, r.write, r.rx, r.tx = t.acc.read, t.acc.write, t.acc.rx, t.acc.tx
	if !end.After(t.prevTime) {
		end = now
	}
	s := m.sample(t, end, &r)
	s.Final = true
	s.Usage = m.usage(t, end, status, exact)
	if s.Usage != nil && x != nil {
		s.Usage.setDelays(delays, badDelays, t.delaysAtBind, m.delaySetting())
	}
	emit := t.state != StateDisabled
	if t.state == StateStopped {
		m.unwatchAll(t)
		t.closeHandles()
		m.mu.Lock()
		delete(m.stopping, t)
		m.mu.Unlock()
	} else {
		m.finish(t)
	}
	return s, emit
}

// endFromReading makes s the final sample of a task whose process ended when process events
// are off (or the record cannot be waited for), with the usage report from what was read: the
// zombie's reading cur when there is one (its wait status), else the previous reading. The
// caller holds t.mu and calls finish after.
func (m *Monitor) endFromReading(t *task, s *Sample, cur *process.Reading, now time.Time) {
	var status *uint32
	if cur != nil && cur.HasExitStatus {
		status = &cur.ExitStatus
	}
	s.Final = true
	s.Usage = m.usage(t, now, status, false)
}

// endCgroup is the final sample of a cgroup task whose cgroup is gone, from its last reading.
// The totals are exact when that reading found the cgroup empty after processes had run in
// it: nothing could add to them after. The caller holds t.mu.
func (m *Monitor) endCgroup(t *task, now time.Time) Sample {
	s := t.newSample(now)
	fields := fieldsOf(t.spec.Profile)
	run := t.cgRun
	if run == nil { // not reached: bindCgroup made it
		run = &cgroupRun{}
	}
	p := &run.prev
	if p.HasCPU && fields&process.FieldCPU != 0 {
		s.Got |= process.FieldCPU
		s.CPUUser, s.CPUSystem = p.CPUUser, p.CPUSystem
	}
	if p.HasIO && fields&process.FieldDisk != 0 {
		s.Got |= process.FieldDisk
		s.ReadBytes, s.WriteBytes = p.ReadBytes, p.WriteBytes
	}
	s.Final = true
	if t.spec.Profile.Enabled {
		u := &Usage{
			Start: run.start, End: now, PeakMemory: t.peak, MemoryLimit: t.cgLimit,
			CPUUser: p.CPUUser, CPUSystem: p.CPUSystem, ReadBytes: p.ReadBytes, WriteBytes: p.WriteBytes,
			Exact: run.populated && run.procs == 0,
		}
		u.OOMKilled = m.oomKilled(t, u)
		s.Usage = u
	}
	return s
}

// usage is the report of a task that ends now. The caller holds t.mu.
func (m *Monitor) usage(t *task, end time.Time, status *uint32, exact bool) *Usage {
	if !t.spec.Profile.Enabled {
		return nil
	}
	u := &Usage{
		Start: t.start, End: end,
		CPUUser: t.acc.cpuUser, CPUSystem: t.acc.cpuSystem,
		PeakMemory: t.peak,
		ReadBytes:  t.acc.read, WriteBytes: t.acc.write,
		Exact: exact,
	}
	if u.Start.IsZero() || u.Start.After(end) {
		u.Start = end
	}
	if t.cgLimit > 0 {
		u.MemoryLimit = t.cgLimit
	}
	if t.root != nil && t.root.prev.Got&process.FieldNetwork != 0 {
		u.HasNetwork, u.RxBytes, u.TxBytes = true, t.acc.rx, t.acc.tx
	}
	if status != nil {
		u.setStatus(*status)
	}
	u.OOMKilled = m.oomKilled(t, u)
	return u
}

// oomKilled reports whether the kernel's OOM killer ended the task: the kernel log named its
// process, or it was killed by SIGKILL while the OOM kill count of its memory cgroup rose (a
// cgroup task: the count of its own cgroup rose at all).
func (m *Monitor) oomKilled(t *task, u *Usage) bool {
	if t.root != nil && m.oom.killed(t.root.h.ID().PID) {
		return true
	}
	if !t.hasOOMBase {
		return false
	}
	n, ok := t.memcg.OOMKills()
	if !ok || n <= t.oomBase {
		return false
	}
	return t.cg != nil || (u.HasExitSignal && u.ExitSignal == int(syscall.SIGKILL))
}

// finish ends sampling of a task's current process. The caller holds t.mu.
func (m *Monitor) finish(t *task) {
	m.sched.Remove(sampleJob{m, t})
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

// goneOrExited reports whether a read error or reading says a task's process ended.
func goneOrExited(err error, r *process.Reading) bool {
	return errors.Is(err, process.ErrGone) || (err == nil && r.Exited())
}
