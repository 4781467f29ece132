package monitor

import (
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// What a task waited for (collect_waits): the run-queue and block I/O delay of its processes,
// summed like its CPU time (accum), and the pressure stall and CPU throttling of its cgroup.

// checkWaitsSupport decides, once at start, whether the block I/O delay is read (the kernel's
// delay accounting must be on, or stat's field is 0 whatever the process did), and says what
// the kernel leaves out and how to get it.
func (m *Monitor) checkWaitsSupport() {
	on, err := m.hooks.delayAccounting(m)
	m.src.SetDelayAccounting(on)
	if !on {
		fields := []zap.Field{zap.String("metric", "propeller.task.disk.io.wait.time")}
		if err != nil {
			fields = append(fields, zap.Error(err))
		}
		m.log.Info("Block I/O wait of tasks is omitted: the kernel's delay accounting is off (kernel.task_delayacct, off by default since Linux 5.14). "+
			"Turn it on with `sysctl kernel.task_delayacct=1` (or boot with `delayacct`) and restart the collector", fields...)
	}
	if !m.src.Schedstat() {
		m.log.Info("CPU wait of tasks is omitted: the kernel has no /proc/<pid>/schedstat (built without CONFIG_SCHED_INFO); "+
			"pressure stall of a task's cgroup (propeller.task.pressure.stall.time, resource cpu) is the nearest figure",
			zap.String("metric", "propeller.task.cpu.wait.time"))
	}
}

// ensureWaits opens the task's cgroup waits files the first time a sample wants them: the
// task's cgroup (with the root process for the v1 cpu controller), or the groups its process
// runs in. A task whose process runs in no group of its own (the root group) has none. The
// caller holds t.mu.
func (m *Monitor) ensureWaits(t *task, buf []byte) {
	if t.waitsTried {
		return
	}
	t.waitsTried = true
	var dir string
	var pid int32
	if t.cg != nil {
		dir = t.cg.Dir()
	}
	if t.root != nil {
		pid = t.root.h.ID().PID
	}
	if dir == "" && pid == 0 {
		return
	}
	t.waits = m.src.OpenWaits(dir, pid, buf)
}

// readWaits reads the task's cgroup waits into r. A read that fails leaves them out of this
// sample; it is counted, and logged once per task. The caller holds t.mu.
func (m *Monitor) readWaits(t *task, r *reading, buf []byte) {
	m.ensureWaits(t, buf)
	if t.waits == nil {
		return
	}
	if err := t.waits.Read(&r.waits, buf); err != nil {
		r.waits = process.WaitsReading{}
		t.errors++
		m.tel.SampleError(KindTask)
		if !t.loggedWaits {
			t.loggedWaits = true
			m.log.Warn("The pressure stall or CPU throttling of a task's cgroup cannot be read: left out of its samples while it fails",
				zap.String("task_id", t.spec.ID), zap.Error(err))
		}
	}
}

// impossible counts and logs, once per task and figure, a wait the kernel showed that cannot
// be true (more than the process has lived), which the reading left out. The caller holds t.mu.
func (m *Monitor) impossible(t *task, r *process.Reading) {
	bad := r.Impossible &^ t.loggedImpossible
	if bad == 0 {
		return
	}
	t.loggedImpossible |= bad
	t.errors++
	m.tel.SampleError(KindTask)
	what := "run-queue delay (schedstat)"
	if bad&process.FieldIODelay != 0 {
		what = "block I/O delay (stat's delayacct_blkio_ticks)"
	}
	m.log.Warn("The kernel shows a task's process waited longer than it has lived: that wait is left out of its samples from now on. "+
		"Delay accounting switched on while the system runs gives such figures on some kernels; booting with `delayacct` avoids them",
		zap.String("task_id", t.spec.ID), zap.Int32("pid", t.root.h.ID().PID), zap.String("figure", what))
}

// closeWaits closes the task's cgroup waits files; the next sample that wants them opens them
// again. The caller holds t.mu.
func (t *task) closeWaits() {
	if t.waits != nil {
		t.waits.Close()
		t.waits = nil
	}
	t.waitsTried = false
}

// setWaits puts a reading's waits into the sample: seconds from the kernel's units.
func setWaits(s *Sample, r *reading) {
	if r.got&process.FieldWaits != 0 {
		s.CPUWait, s.HasCPUWait = float64(r.runDelay)/1e9, true
	}
	if r.got&process.FieldIODelay != 0 {
		s.DiskIOWait, s.HasDiskIOWait = float64(r.ioDelay)/procfs.UserHZ, true
	}
	w := &r.waits
	for i := range w.Pressure {
		if w.HasPressure[i] {
			p := &w.Pressure[i]
			s.Pressure[i] = Stall{Some: float64(p.SomeMicros) / 1e6, Full: float64(p.FullMicros) / 1e6, HasSome: true, HasFull: p.HasFull}
		}
	}
	if w.HasThrottling {
		s.HasThrottling = true
		s.ThrottledTime = float64(w.Throttling.ThrottledMicros) / 1e6
		s.ThrottledPeriods, s.Periods = w.Throttling.Throttled, w.Throttling.Periods
	}
}
