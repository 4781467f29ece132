package procfs

import "bytes"

// Pressure holds a pressure stall information file: /proc/pressure/{cpu,memory,io} for the
// host, <cgroup>/{cpu,memory,io}.pressure for a cgroup v2 group (Linux 4.20 and later, when
// the kernel runs with PSI on). "some" is the time in which at least one task of the group
// was stalled on the resource, "full" the time in which all its non-idle tasks were at once.
// Only the totals are kept: the kernel's running averages (avg10, avg60, avg300) are derived
// from them and a consumer computes its own rates.
type Pressure struct {
	SomeMicros uint64 // "some" line, total=: stalled time, in µs
	FullMicros uint64 // "full" line, total=: fully stalled time, in µs
	// HasFull says whether the file has a "full" line: cpu.pressure has one only since
	// Linux 5.13 (and at the host level it is always zero).
	HasFull bool
}

// ParsePressure parses a pressure file ("some avg10=0.00 avg60=0.00 avg300=0.00 total=61200\n
// full avg10=0.00 avg60=0.00 avg300=0.00 total=986\n"). The "some" line must be present;
// unknown lines and keys are skipped, so that a later kernel's additions parse.
func ParsePressure(b []byte, p *Pressure) error {
	*p = Pressure{}
	var some bool
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		f := fields{b: l}
		var total *uint64
		switch string(f.next()) {
		case "some":
			total, some = &p.SomeMicros, true
		case "full":
			total, p.HasFull = &p.FullMicros, true
		default:
			continue
		}
		var found bool
		for tok := f.next(); tok != nil; tok = f.next() {
			if v, ok := bytes.CutPrefix(tok, []byte("total=")); ok {
				if *total, found = parseUint(v); !found {
					return ErrMalformed
				}
			}
		}
		if !found {
			return ErrMalformed
		}
	}
	if !some {
		return ErrMalformed
	}
	return nil
}
