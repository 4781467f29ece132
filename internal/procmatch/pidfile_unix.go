//go:build unix

package procmatch

import "syscall"

// readSmallFile reads a regular file into buf and returns how many bytes it read, at most
// len(buf). It never blocks on what is not a regular file: the open is non-blocking (a FIFO
// without a writer opens at once), and anything but a regular file is refused after fstat,
// before any read. A file that says it is larger than buf is refused without reading.
func readSmallFile(path string, buf []byte) (int, bool) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return 0, false
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil || uint32(st.Mode)&syscall.S_IFMT != syscall.S_IFREG || st.Size > int64(len(buf)) {
		return 0, false
	}
	// A regular file may still say size 0 and hold more (procfs, sysfs): the read stops when
	// buf is full, and the caller refuses a full buffer.
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, false
		case m == 0:
			return n, true
		}
		n += m
	}
	return n, true
}
