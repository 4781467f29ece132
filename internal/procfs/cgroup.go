package procfs

import "bytes"

// ParseCgroupPaths parses a /proc/<pid>/cgroup content. It returns the path in the unified
// (v2) hierarchy ("0::/path"), and the path in the v1 hierarchy that carries v1Controller (for
// example "memory"); either is nil when absent. Hybrid hosts have both, and the v2 one is then
// often "/" with no controllers, so the caller decides which to use by what is mounted.
func ParseCgroupPaths(b []byte, v1Controller string) (v2, v1 []byte, err error) {
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		if len(l) == 0 {
			continue
		}
		c1 := bytes.IndexByte(l, ':')
		if c1 < 0 {
			return nil, nil, ErrMalformed
		}
		c2 := bytes.IndexByte(l[c1+1:], ':')
		if c2 < 0 {
			return nil, nil, ErrMalformed
		}
		c2 += c1 + 1
		id, ctrls, p := l[:c1], l[c1+1:c2], l[c2+1:]
		if len(p) == 0 || p[0] != '/' {
			return nil, nil, ErrMalformed
		}
		if string(id) == "0" && len(ctrls) == 0 {
			v2 = p
			continue
		}
		for rest := ctrls; len(rest) > 0; {
			c := rest
			if i := bytes.IndexByte(rest, ','); i >= 0 {
				c, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			if string(c) == v1Controller {
				v1 = p
			}
		}
	}
	if v2 == nil && v1 == nil {
		return nil, nil, ErrMalformed
	}
	return v2, v1, nil
}

// ParseCgroupValue parses a single-value cgroup file such as memory.current or memory.max.
// "max" reads as unlimited (limited false), and so does a v1 limit of 2^62 bytes or more
// (v1 reports "no limit" as the largest page-aligned int64).
func ParseCgroupValue(b []byte) (v uint64, limited bool, err error) {
	t := trimSpace(b)
	if string(t) == "max" {
		return 0, false, nil
	}
	v, ok := parseUint(t)
	if !ok {
		return 0, false, ErrMalformed
	}
	if v >= 1<<62 {
		return 0, false, nil
	}
	return v, true, nil
}

// CgroupCPU holds the usage fields of a cgroup v2 cpu.stat, in microseconds. They count every
// process that ever ran in the cgroup, including those that exited.
type CgroupCPU struct {
	UsageUsec  uint64
	UserUsec   uint64
	SystemUsec uint64
}

// ParseCgroupCPUStat parses a cgroup v2 cpu.stat.
func ParseCgroupCPUStat(b []byte, c *CgroupCPU) error {
	var seen int
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		f := fields{b: l}
		key := f.next()
		v, ok := f.nextUint()
		var bit int
		var dst *uint64
		switch string(key) {
		case "usage_usec":
			bit, dst = 1, &c.UsageUsec
		case "user_usec":
			bit, dst = 2, &c.UserUsec
		case "system_usec":
			bit, dst = 4, &c.SystemUsec
		default:
			continue
		}
		if !ok {
			return ErrMalformed
		}
		*dst = v
		seen |= bit
	}
	if seen != 7 {
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
