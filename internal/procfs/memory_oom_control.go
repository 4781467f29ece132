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
	var seen int
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		f := fields{b: l}
		key := f.next()
		if key == nil {
			continue
		}
		var bit int
		switch string(key) {
		case "oom_kill_disable":
			bit = 1
		case "under_oom":
			bit = 2
		case "oom_kill":
			bit = 4
		default:
			continue
		}
		v, ok := f.nextUint()
		if !ok {
			return ErrMalformed
		}
		switch bit {
		case 1:
			c.OOMKillDisable = v != 0
		case 2:
			c.UnderOOM = v != 0
		case 4:
			c.OOMKill = v
		}
		seen |= bit
	}
	if seen&5 != 5 {
		return ErrMalformed
	}
	return nil
}
