package procfs

// Schedstat holds /proc/<pid>/schedstat (or /proc/<pid>/task/<tid>/schedstat): what the
// scheduler recorded of one thread's time on and off a CPU. The kernel keeps these figures
// whenever it is built with CONFIG_SCHED_INFO, whatever kernel.sched_schedstats says (that
// switch governs the far costlier per-entity statistics). Read for a process, they are its
// main thread's (the thread group leader's), not a sum over its threads: the kernel prints
// the task the path names, and /proc/<pid> names the leader.
type Schedstat struct {
	RunNanos   uint64 // time spent running on a CPU, in ns
	WaitNanos  uint64 // time spent runnable on a run queue, waiting for a CPU, in ns
	Timeslices uint64 // number of times the process was given a CPU
}

// ParseSchedstat parses a schedstat ("7819184 71441026 4\n").
func ParseSchedstat(b []byte, s *Schedstat) error {
	f := fields{b: b}
	var ok1, ok2, ok3 bool
	s.RunNanos, ok1 = f.nextUint()
	s.WaitNanos, ok2 = f.nextUint()
	s.Timeslices, ok3 = f.nextUint()
	if !ok1 || !ok2 || !ok3 || f.next() != nil {
		return ErrMalformed
	}
	return nil
}
