package procfs

import "bytes"

// CgroupCPU holds the usage fields of a cgroup v2 cpu.stat, in microseconds. They count every
// process that ever ran in the cgroup, including those that exited.
type CgroupCPU struct {
	UserUsec   uint64 // user_usec: CPU time in user mode
	SystemUsec uint64 // system_usec: CPU time in kernel mode
}

// ParseCgroupCPUStat parses a cgroup v2 cpu.stat.
func ParseCgroupCPUStat(b []byte, c *CgroupCPU) error {
	var user, system bool
	err := keyedUints(b, func(key []byte, v uint64) bool {
		switch string(key) {
		case "user_usec":
			c.UserUsec, user = v, true
		case "system_usec":
			c.SystemUsec, system = v, true
		default:
			return false
		}
		return true
	})
	if err != nil || !user || !system {
		return ErrMalformed
	}
	return nil
}

// ParseCgroupIOStat sums rbytes and wbytes over the devices of a cgroup v2 io.stat
// ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per line). An empty file (no I/O yet)
// is zero.
func ParseCgroupIOStat(b []byte) (read, write uint64, err error) {
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		f := fields{b: l}
		if f.next() == nil {
			continue
		}
		for tok := f.next(); tok != nil; tok = f.next() {
			eq := bytes.IndexByte(tok, '=')
			if eq < 0 {
				return 0, 0, ErrMalformed
			}
			v, ok := parseUint(tok[eq+1:])
			if !ok {
				return 0, 0, ErrMalformed
			}
			switch string(tok[:eq]) {
			case "rbytes":
				read += v
			case "wbytes":
				write += v
			}
		}
	}
	return read, write, nil
}

// ParseCgroupProcs calls fn for every pid of a cgroup.procs content.
func ParseCgroupProcs(b []byte, fn func(pid int32)) error {
	f := fields{b: b}
	for tok := f.next(); tok != nil; tok = f.next() {
		v, ok := parseUint(tok)
		if !ok || v == 0 || v > 1<<31-1 {
			return ErrMalformed
		}
		fn(int32(v))
	}
	return nil
}
