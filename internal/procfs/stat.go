package procfs

import "bytes"

// Stat holds the fields of /proc/<pid>/stat this project uses. Field numbers are those of
// proc(5).
type Stat struct {
	State      byte   // (3) R, S, D, Z, T, t, X, I ...
	PPID       int32  // (4) parent process id
	UTime      uint64 // (14) user-mode CPU time, in clock ticks
	STime      uint64 // (15) kernel-mode CPU time, in clock ticks
	NumThreads int64  // (20) number of threads
	StartTime  uint64 // (22) start time after boot, in clock ticks
	VSize      uint64 // (23) virtual memory size, in bytes
	RSSPages   int64  // (24) resident set size, in pages
	// ExitCode is the wait status (52) of a process that has exited (State Z or X): the exit
	// code shifted left by 8, or the terminating signal. It is parsed only for such a process,
	// and HasExitCode says whether the kernel printed it (Linux 3.5 and later).
	ExitCode    uint32
	HasExitCode bool
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
	var ok1, ok2 bool
	s.UTime, ok1 = f.nextUint()
	s.STime, ok2 = f.nextUint()
	if !ok1 || !ok2 {
		return ErrMalformed
	}
	// cutime, cstime, priority, nice (16-19)
	if !f.skip(4) {
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
	s.ExitCode, s.HasExitCode = 0, false
	if s.State == 'Z' || s.State == 'X' {
		// rsslim through env_end (25-51): only an exited process pays for the walk.
		if f.skip(27) {
			if c, ok := f.nextUint(); ok && c <= 1<<32-1 {
				s.ExitCode, s.HasExitCode = uint32(c), true
			}
		}
	}
	return nil
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

// StatBlkioTicks returns field 42 of a /proc/<pid>/stat content, delayacct_blkio_ticks: the
// time the process waited for block I/O, in clock ticks. The kernel counts it only while
// delay accounting is on (kernel.task_delayacct, off by default since Linux 5.14); otherwise
// it stays 0. It is a walk of its own so that the sample path pays for it only when asked.
func StatBlkioTicks(b []byte) (uint64, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, ErrMalformed
	}
	f := fields{b: b[end+1:]}
	// state (3) through guest_time... : 39 fields from 3 to 41.
	if !f.skip(39) {
		return 0, ErrMalformed
	}
	v, ok := f.nextUint()
	if !ok {
		return 0, ErrMalformed
	}
	return v, nil
}
