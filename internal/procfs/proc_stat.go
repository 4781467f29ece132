package procfs

// CPUTimes holds the aggregate "cpu" line of /proc/stat, in clock ticks.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Total is the sum of all modes (guest time is already counted in user and nice).
func (c CPUTimes) Total() uint64 {
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
}

// ParseProcStat parses the aggregate CPU line ("cpu ") of /proc/stat into c. The per-CPU
// lines and the rest of the file are not read.
func ParseProcStat(b []byte, c *CPUTimes) error {
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		if !hasPrefix(l, "cpu ") {
			continue
		}
		f := fields{b: l[4:]}
		vals := [8]*uint64{&c.User, &c.Nice, &c.System, &c.Idle, &c.IOWait, &c.IRQ, &c.SoftIRQ, &c.Steal}
		for i, p := range vals {
			v, ok := f.nextUint()
			if !ok {
				// Very old kernels stop after idle; the rest stay zero.
				if i >= 4 && len(f.b) == f.pos {
					break
				}
				return ErrMalformed
			}
			*p = v
		}
		return nil
	}
	return ErrMalformed
}
