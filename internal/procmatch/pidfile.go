package procmatch

import "bytes"

// MaxPIDFileSize is the most a pid file may hold, in bytes: a pid needs ten digits, and a
// little whitespace is allowed around them. A larger file is not a pid file and is not read.
const MaxPIDFileSize = 64

// ReadPIDFile reads a pid file: a positive decimal pid, surrounding whitespace allowed. A file
// that does not exist (yet) or holds anything else reads as not ok.
//
// The path comes from users (the configuration, the task API, the control plane's proplet
// rule), so it may name anything: it is opened without blocking (a FIFO with no writer, a
// device), only a regular file is read, and at most MaxPIDFileSize+1 bytes of it, into a
// buffer on the stack (/dev/zero, a 1 GB file).
func ReadPIDFile(path string) (int32, bool) {
	var buf [MaxPIDFileSize + 1]byte
	n, ok := readSmallFile(path, buf[:])
	if !ok || n > MaxPIDFileSize {
		return 0, false
	}
	return parsePID(buf[:n])
}

// parsePID parses a positive decimal pid with surrounding whitespace.
func parsePID(b []byte) (int32, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var pid int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		pid = pid*10 + int64(c-'0')
	}
	if pid <= 0 || pid > 1<<31-1 {
		return 0, false
	}
	return int32(pid), true
}
