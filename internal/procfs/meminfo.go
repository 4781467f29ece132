package procfs

// ParseMemTotal returns MemTotal of /proc/meminfo, in bytes.
func ParseMemTotal(b []byte) (uint64, error) {
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		if !hasPrefix(l, "MemTotal:") {
			continue
		}
		f := fields{b: l[len("MemTotal:"):]}
		v, ok := f.nextUint()
		if !ok || v > 1<<54 {
			return 0, ErrMalformed
		}
		unit := f.next()
		if string(unit) != "kB" {
			return 0, ErrMalformed
		}
		return v * 1024, nil
	}
	return 0, ErrMalformed
}
