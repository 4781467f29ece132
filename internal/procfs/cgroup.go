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
