package procfs

import "bytes"

// Stat holds the fields of /proc/<pid>/stat this project uses. Field numbers are those of
// proc(5).
type Stat struct {
	State      byte   // (3) R, S, D, Z, T, t, X, I ...
	PPID       int32  // (4) parent process id
	UTime      uint64 // (14) user-mode CPU time, in clock ticks
	STime      uint64 // (15) kernel-mode CPU time, in clock ticks
	CUTime     uint64 // (16) user time of waited-for children, in clock ticks
	CSTime     uint64 // (17) system time of waited-for children, in clock ticks
	NumThreads int64  // (20) number of threads
	StartTime  uint64 // (22) start time after boot, in clock ticks
	VSize      uint64 // (23) virtual memory size, in bytes
	RSSPages   int64  // (24) resident set size, in pages
}

// ParseStat parses the content of /proc/<pid>/stat into s. The command name (field 2) may
// contain spaces, parentheses and newlines, so parsing starts after the last ')'.
func ParseStat(b []byte, s *Stat) error {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || bytes.IndexByte(b[:end], '(') < 0 {
		return ErrMalformed
	}
	f := fields{b: b[end+1:]}
	state := f.next()
	if len(state) != 1 {
		return ErrMalformed
	}
	s.State = state[0]
	ppid, ok := parseInt(f.next())
	if !ok || ppid < 0 || ppid > 1<<31-1 {
		return ErrMalformed
	}
	s.PPID = int32(ppid)
	// pgrp, session, tty_nr, tpgid, flags, minflt, cminflt, majflt, cmajflt (5-13)
	if !f.skip(9) {
		return ErrMalformed
	}
	var ok1, ok2, ok3, ok4 bool
	s.UTime, ok1 = f.nextUint()
	s.STime, ok2 = f.nextUint()
	s.CUTime, ok3 = parseUintSigned(f.next())
	s.CSTime, ok4 = parseUintSigned(f.next())
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return ErrMalformed
	}
	// priority, nice (18-19)
	if !f.skip(2) {
		return ErrMalformed
	}
	if s.NumThreads, ok = parseInt(f.next()); !ok {
		return ErrMalformed
	}
	// itrealvalue (21)
	if !f.skip(1) {
		return ErrMalformed
	}
	if s.StartTime, ok = f.nextUint(); !ok {
		return ErrMalformed
	}
	if s.VSize, ok = f.nextUint(); !ok {
		return ErrMalformed
	}
	if s.RSSPages, ok = parseInt(f.next()); !ok {
		return ErrMalformed
	}
	return nil
}

// parseUintSigned reads cutime/cstime, which proc(5) declares signed (%ld) but which are never
// negative in practice; a negative value reads as 0.
func parseUintSigned(b []byte) (uint64, bool) {
	v, ok := parseInt(b)
	if !ok {
		return 0, false
	}
	if v < 0 {
		return 0, true
	}
	return uint64(v), true
}

// StatComm returns the command name (field 2) of a /proc/<pid>/stat content: the bytes
// between the first '(' and the last ')'. It returns nil when b is malformed.
func StatComm(b []byte) []byte {
	start := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if start < 0 || end < start {
		return nil
	}
	return b[start+1 : end]
}
