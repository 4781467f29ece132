package procfs

// MemoryOOMControl holds a cgroup v1 memory.oom_control (the memory controller of hybrid and
// legacy hosts).
type MemoryOOMControl struct {
	OOMKillDisable bool   // oom_kill_disable: the OOM killer is off, tasks wait at the limit instead
	UnderOOM       bool   // under_oom: the cgroup is at its limit now, with the killer off
	OOMKill        uint64 // oom_kill: processes the OOM killer killed in the cgroup (Linux 4.13 and later)
}

// ParseMemoryOOMControl parses a cgroup v1 memory.oom_control ("oom_kill_disable 0\n
// under_oom 0\noom_kill 0\n"). A kernel before 4.13 has no oom_kill line, so the count cannot
// be known: that is ErrMalformed, like a missing oom_kill_disable.
func ParseMemoryOOMControl(b []byte, c *MemoryOOMControl) error {
	*c = MemoryOOMControl{}
	var seenDisable, seenKill bool
	err := keyedUints(b, func(key []byte, v uint64) bool {
		switch string(key) {
		case "oom_kill_disable":
			c.OOMKillDisable, seenDisable = v != 0, true
		case "under_oom":
			c.UnderOOM = v != 0
		case "oom_kill":
			c.OOMKill, seenKill = v, true
		default:
			return false
		}
		return true
	})
	if err != nil || !seenDisable || !seenKill {
		return ErrMalformed
	}
	return nil
}
