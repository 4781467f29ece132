package monitor

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// bindCgroup binds a pending cgroup task once its cgroup exists. A task with a locator too
// comes here once its process e was found (withProcess). The caller holds t.mu.
func (m *Monitor) bindCgroup(t *task, e process.Entry, withProcess bool) {
	cg, err := m.src.OpenCgroup(t.spec.Cgroup)
	if err != nil {
		if !errors.Is(err, process.ErrGone) {
			m.log.Debug("Cannot open task cgroup", zap.String("task_id", t.spec.ID), zap.Error(err))
		}
		return
	}
	buf := m.disc.buf
	var base process.CgroupReading
	if err := cg.Read(&base, buf); err != nil {
		cg.Close()
		return
	}
	if !withProcess {
		m.activate(t)
	} else if err := m.bind(t, e, buf); err != nil {
		cg.Close()
		return
	}
	t.closeWaits() // the cgroup's, not only its process's
	t.cg, t.prevTime = cg, time.Now()
	t.cgRun = &cgroupRun{prev: base, start: t.prevTime}
	t.memcg = process.MemoryCgroup{Dir: cg.Dir(), V2: true}
	t.oomBase, t.hasOOMBase = t.memcg.OOMKills()
	m.log.Debug("Task bound to cgroup", zap.String("task_id", t.spec.ID), zap.String("cgroup", cg.Dir()))
}

// readCgroup takes one sample of a cgroup task. The caller holds t.mu.
func (m *Monitor) readCgroup(t *task, buf []byte) (Sample, bool) {
	fields := fieldsOf(t.spec.Profile)
	now := time.Now()
	var cur process.CgroupReading
	if err := t.cg.Read(&cur, buf); err != nil {
		return m.readFailed(t, err, now)
	}
	if t.root != nil {
		var r process.Reading
		if err := t.root.h.Read(0, &r, buf); err != nil || r.Exited() {
			// The process that identified the task is gone; the cgroup still measures the rest.
			t.root.h.Close()
			t.root = nil
		}
	}
	var r reading
	if cur.HasCPU && fields&process.FieldCPU != 0 {
		r.got |= process.FieldCPU
		r.cpuUser, r.cpuSystem = cur.CPUUser, cur.CPUSystem
		if prev := &t.cgRun.prev; prev.HasCPU {
			r.dUser = max(cur.CPUUser-prev.CPUUser, 0)
			r.dSystem = max(cur.CPUSystem-prev.CPUSystem, 0)
			r.hasDelta = true
		}
	}
	if cur.HasMemory && fields&process.FieldMemory != 0 {
		r.got |= process.FieldMemory
		r.rss = cur.Memory
		r.memLimit = m.memLimit(cur.Limit, cur.HasLimit)
	}
	if cur.HasIO && fields&process.FieldDisk != 0 {
		r.got |= process.FieldDisk
		r.read, r.write = cur.ReadBytes, cur.WriteBytes
	}
	var procs int64
	_ = t.cg.Procs(buf[:len(buf)/2], func(pid int32) {
		procs++
		if th, fd, ok := m.src.ThreadsAndFDs(pid, buf[len(buf)/2:]); ok {
			r.threads += th
			r.fds += fd
		}
	})
	r.got |= fields & (process.FieldThreads | process.FieldFDs)
	if fields&process.FieldWaits != 0 {
		m.readWaits(t, &r, buf)
	}
	if cur.HasPids {
		procs = cur.Pids
	}
	run := t.cgRun
	run.prev, run.procs = cur, procs
	run.populated = run.populated || procs > 0
	t.peak = max(t.peak, r.rss)
	if cur.HasPeak {
		t.peak = max(t.peak, cur.Peak)
	}
	if cur.HasLimit && cur.Limit > 0 && r.memLimit == cur.Limit {
		t.cgLimit = cur.Limit
	}
	s := m.sample(t, now, &r)
	if r.got&process.FieldMemory != 0 {
		s.MemoryPeak, s.HasMemoryPeak = cur.Peak, cur.HasPeak
	}
	s.Processes, s.HasProcesses = procs, true
	return s, true
}
