package procfs

// fields walks the space-separated tokens of b without allocating.
type fields struct {
	b   []byte
	pos int
}

// next returns the next token, or nil at the end.
func (f *fields) next() []byte {
	for f.pos < len(f.b) && isSpace(f.b[f.pos]) {
		f.pos++
	}
	start := f.pos
	for f.pos < len(f.b) && !isSpace(f.b[f.pos]) {
		f.pos++
	}
	if start == f.pos {
		return nil
	}
	return f.b[start:f.pos]
}

// skip drops n tokens; it reports false when fewer than n remain.
func (f *fields) skip(n int) bool {
	for range n {
		if f.next() == nil {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// parseUint parses a decimal unsigned integer. It rejects empty input, any non-digit and overflow.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseInt parses a decimal integer with an optional leading minus sign.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := parseUint(b)
	if !ok || u > 1<<63 || (!neg && u == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// nextUint parses the next token as an unsigned integer.
func (f *fields) nextUint() (uint64, bool) { return parseUint(f.next()) }

// line returns the line of b that starts at off and the offset of the next one.
func line(b []byte, off int) ([]byte, int) {
	for i := off; i < len(b); i++ {
		if b[i] == '\n' {
			return b[off:i], i + 1
		}
	}
	return b[off:], len(b)
}

// hasPrefix is bytes.HasPrefix for a string prefix, without a conversion.
func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// trimSpace drops the spaces, tabs and newlines around b.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// keyedUints walks a flat keyed file, one "key value" per line (cgroup v2 cpu.stat and
// memory.events, v1 memory.oom_control), calling set with each key and its value; set reports
// whether it took the key. A key taken whose value is not an unsigned integer makes the file
// malformed; a key not taken may hold anything.
func keyedUints(b []byte, set func(key []byte, v uint64) bool) error {
	for off := 0; off < len(b); {
		var l []byte
		l, off = line(b, off)
		f := fields{b: l}
		key := f.next()
		if key == nil {
			continue
		}
		v, ok := f.nextUint()
		if set(key, v) && !ok {
			return ErrMalformed
		}
	}
	return nil
}
