package procfs

// IO holds the storage counters of /proc/<pid>/io.
type IO struct {
	ReadBytes  uint64 // bytes this process caused to be fetched from the storage layer
	WriteBytes uint64 // bytes this process caused to be sent to the storage layer
}

// ParseIO parses the content of /proc/<pid>/io into io. Both read_bytes and write_bytes must
// be present (they are absent on kernels built without task I/O accounting).
func ParseIO(b []byte, io *IO) error {
	var seen int
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		switch {
		case hasPrefix(l, "read_bytes:"):
			v, ok := parseUint(trimSpace(l[len("read_bytes:"):]))
			if !ok {
				return ErrMalformed
			}
			io.ReadBytes = v
			seen |= 1
		case hasPrefix(l, "write_bytes:"):
			v, ok := parseUint(trimSpace(l[len("write_bytes:"):]))
			if !ok {
				return ErrMalformed
			}
			io.WriteBytes = v
			seen |= 2
		}
	}
	if seen != 3 {
		return ErrMalformed
	}
	return nil
}
