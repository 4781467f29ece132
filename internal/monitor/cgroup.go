package monitor

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// bindCgroup binds a pending cgroup task once its cgroup exists (and its process, when it has
// a locator too). The caller holds t.mu.
func (m *Monitor) bindCgroup(t *task, bound map[process.ID]bool) {
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
	if t.spec.Locator != (Locator{}) {
		e, ok := m.resolve(t.spec.Locator, bound)
		if !ok {
			cg.Close()
			return // the process is not there yet; look again next pass
		}
		if err := m.bind(t, e, buf); err != nil {
			cg.Close()
			return
		}
	} else {
		t.state = StateActive
		if !t.spec.Profile.Enabled {
			t.state = StateDisabled
		} else {
			iv := t.spec.Profile.Interval
			m.sched.Add(taskPrefix+t.spec.ID, iv, iv+m.jitter())
		}
	}
	t.cg, t.cgPrev, t.prevTime = cg, base, time.Now()
	m.log.Debug("Task bound to cgroup", zap.String("task_id", t.spec.ID), zap.String("cgroup", cg.Dir()))
}

// readCgroup takes one sample of a cgroup task. The caller holds t.mu.
func (m *Monitor) readCgroup(t *task, buf []byte) (Sample, bool) {
	p := t.spec.Profile
	fields := fieldsOf(p)
	now := time.Now()
	var cur process.CgroupReading
	if err := t.cg.Read(&cur, buf); err != nil {
		m.readFailed(t, err)
		return Sample{}, false
	}
	if t.root != nil {
		var r process.Reading
		if err := t.root.h.Read(0, &r, buf); err != nil || r.Exited() {
			// The process that identified the task is gone; the cgroup still measures the rest.
			t.root.h.Close()
			t.root = nil
		}
	}
	s := t.newSample(now)
	dt := now.Sub(t.prevTime).Seconds()
	if cur.HasCPU && fields&process.FieldCPU != 0 {
		s.Got |= process.FieldCPU
		s.CPUUser, s.CPUSystem = cur.CPUUser, cur.CPUSystem
		if t.cgPrev.HasCPU && dt > 0 {
			n := float64(m.src.NumCPU())
			s.UtilUser = max(cur.CPUUser-t.cgPrev.CPUUser, 0) / dt / n
			s.UtilSystem = max(cur.CPUSystem-t.cgPrev.CPUSystem, 0) / dt / n
			s.HasUtil = true
		}
	}
	if cur.HasMemory && fields&process.FieldMemory != 0 {
		s.Got |= process.FieldMemory
		s.RSS = cur.Memory
		limit := m.src.MemTotal()
		if cur.HasLimit && cur.Limit < limit {
			limit = cur.Limit
		}
		if limit > 0 {
			s.MemUtil = float64(cur.Memory) / float64(limit)
		}
		s.MemoryPeak, s.HasMemoryPeak = cur.Peak, cur.HasPeak
	}
	if cur.HasIO && fields&process.FieldDisk != 0 {
		s.Got |= process.FieldDisk
		s.ReadBytes, s.WriteBytes = cur.ReadBytes, cur.WriteBytes
	}
	var procs, threads, fds int64
	_ = t.cg.Procs(buf[:len(buf)/2], func(pid int32) {
		procs++
		if th, fd, ok := m.src.ThreadsAndFDs(pid, buf[len(buf)/2:]); ok {
			threads += th
			fds += fd
		}
	})
	s.Processes, s.HasProcesses = procs, true
	if cur.HasPids {
		s.Processes = cur.Pids
	}
	if fields&process.FieldThreads != 0 {
		s.Got |= process.FieldThreads
		s.Threads = threads
	}
	if fields&process.FieldFDs != 0 {
		s.Got |= process.FieldFDs
		s.FDs = fds
	}
	t.cgPrev, t.prevTime = cur, now
	t.counted(now)
	return s, true
}
