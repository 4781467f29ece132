package procfs

// CPUTimes holds the aggregate "cpu" line of /proc/stat, in clock ticks.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Total is the sum of all modes (guest time is already counted in user and nice).
func (c CPUTimes) Total() uint64 {
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
}

// ParseProcStat parses the content of /proc/stat: the aggregate CPU line and btime, the boot
// time in seconds since the epoch.
func ParseProcStat(b []byte, c *CPUTimes) (btime uint64, err error) {
	var seen int
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		switch {
		case hasPrefix(l, "cpu "):
			f := fields{b: l[4:]}
			vals := [8]*uint64{&c.User, &c.Nice, &c.System, &c.Idle, &c.IOWait, &c.IRQ, &c.SoftIRQ, &c.Steal}
			for i, p := range vals {
				v, ok := f.nextUint()
				if !ok {
					// Very old kernels stop after idle; the rest stay zero.
					if i >= 4 && len(f.b) == f.pos {
						break
					}
					return 0, ErrMalformed
				}
				*p = v
			}
			seen |= 1
		case hasPrefix(l, "btime "):
			v, ok := parseUint(trimSpace(l[6:]))
			if !ok {
				return 0, ErrMalformed
			}
			btime = v
			seen |= 2
		}
	}
	if seen&1 == 0 {
		return 0, ErrMalformed
	}
	return btime, nil
}
