package procfs

// MemoryEvents holds a cgroup v2 memory.events: how often the cgroup hit each memory
// boundary. The counts cover the cgroup and its descendants (memory.events.local is the
// cgroup's own), and only ever grow.
type MemoryEvents struct {
	Low          uint64 // low: reclaimed below memory.low
	High         uint64 // high: throttled over memory.high
	Max          uint64 // max: reached memory.max
	OOM          uint64 // oom: allocations failed at memory.max
	OOMKill      uint64 // oom_kill: processes the OOM killer killed in the cgroup
	OOMGroupKill uint64 // oom_group_kill: the cgroup killed as a whole (memory.oom.group); 0 before Linux 5.17
}

// ParseMemoryEvents parses a cgroup v2 memory.events ("low 0\nhigh 0\nmax 12\noom 1\n
// oom_kill 1\n..."). oom_kill must be present; keys it does not know are skipped.
func ParseMemoryEvents(b []byte, e *MemoryEvents) error {
	*e = MemoryEvents{}
	var seen bool
	err := keyedUints(b, func(key []byte, v uint64) bool {
		switch string(key) {
		case "low":
			e.Low = v
		case "high":
			e.High = v
		case "max":
			e.Max = v
		case "oom":
			e.OOM = v
		case "oom_kill":
			e.OOMKill, seen = v, true
		case "oom_group_kill":
			e.OOMGroupKill = v
		default:
			return false
		}
		return true
	})
	if err != nil || !seen {
		return ErrMalformed
	}
	return nil
}
