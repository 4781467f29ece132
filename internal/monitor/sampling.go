package monitor

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Sampling one task: binding it to its process and taking the baseline, each sample on its
// interval, and the step shared by process and cgroup tasks that turns a reading into a Sample.

// sampleJob samples one task on its profile's interval. It names the task object, not its
// id: a task stopped and registered again under the same id is another job.
type sampleJob struct {
	m *Monitor
	t *task
}

func (j sampleJob) Run(ctx context.Context) { j.m.sampleTask(ctx, j.t) }

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
	m.threadGroupWaits(t, e.ID.PID, &process.Reading{}, &root.prev)
	t.root, t.rootID, t.members = root, h.ID(), nil
	t.closeWaits()
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
	t.loggedDenied, t.loggedImpossible = 0, 0
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
	m.watchMemory(t, &s)
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
	m.threadGroupWaits(t, t.root.h.ID().PID, &t.root.prev, &cur)
	m.impossible(t, &cur)

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
		m.threadGroupWaits(t, pid, &mb.prev, &mr)
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
	r.runDelay, r.ioDelay = t.acc.runDelay, t.acc.ioDelay
	if fields&process.FieldWaits != 0 {
		m.readWaits(t, &r, buf)
	}

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
	runDelay           uint64 // ns, cumulative, monotonic; with FieldWaits in got
	ioDelay            uint64 // clock ticks, cumulative, monotonic; with FieldIODelay in got
	waits              process.WaitsReading
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
	setWaits(&s, r)
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
	set(p.CollectWaits, process.FieldWaits)
	return f
}

// utilization is the share of all CPUs a CPU-time increase took over a wall time: the
// contract's CPU percent (a share of one core) over the number of CPUs.
func utilization(cpuSeconds, wallSeconds, cpus float64) float64 {
	return schema.CPUPercent(cpuSeconds, wallSeconds) / 100 / cpus
}
