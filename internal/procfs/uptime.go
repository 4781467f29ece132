package procfs

// ParseUptime returns the first field of /proc/uptime, in hundredths of a second.
func ParseUptime(b []byte) (uint64, error) {
	f := fields{b: b}
	tok := f.next()
	dot := -1
	for i, c := range tok {
		if c == '.' {
			dot = i
			break
		}
	}
	if dot < 0 || len(tok)-dot-1 != 2 {
		return 0, ErrMalformed
	}
	secs, ok1 := parseUint(tok[:dot])
	cents, ok2 := parseUint(tok[dot+1:])
	if !ok1 || !ok2 || secs > 1<<50 {
		return 0, ErrMalformed
	}
	return secs*100 + cents, nil
}
