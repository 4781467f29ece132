//go:build linux

package process

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// maxCgroupFile bounds what is read of one cgroup file. The kernel's are a few hundred bytes
// (io.stat grows by a line per device, cgroup.procs by a line per process; those are read into
// the caller's larger buffer), so a cgroup directory that is not one, whose memory.events leads
// to /dev/zero, costs a fixed buffer instead of growing until memory runs out.
const maxCgroupFile = 1024

// ErrNotCgroupFile is returned for a cgroup file that is not a regular file: a FIFO, a device,
// a socket or a symbolic link, which no cgroup filesystem holds. It is refused before any read,
// so a FIFO cannot block the reader and a device cannot feed it without end.
var ErrNotCgroupFile = errors.New("not a regular file, as every cgroup file is")

// openCgroupFile opens a file of a cgroup directory for reading. The open never blocks (a FIFO
// without a writer opens at once with O_NONBLOCK), never follows a symbolic link as the last
// element (O_NOFOLLOW), and anything but a regular file is closed again and refused.
func openCgroupFile(path string) (int, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case errors.Is(err, unix.ENOENT):
		return -1, ErrGone
	case errors.Is(err, unix.ELOOP):
		return -1, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("a symbolic link: %w", ErrNotCgroupFile)}
	case err != nil:
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return -1, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		_ = unix.Close(fd)
		return -1, &fs.PathError{Op: "open", Path: path, Err: ErrNotCgroupFile}
	}
	return fd, nil
}

// openCgroupFile is openCgroupFile through the Source's open observer.
func (s *Source) openCgroupFile(path string) (int, error) {
	s.note(path)
	return openCgroupFile(path)
}

// readCgroupFile reads a cgroup file whole into buf, through openCgroupFile. Content that
// fills buf is refused (procfs.ErrMalformed), not cut.
func readCgroupFile(path string, buf []byte) ([]byte, error) {
	fd, err := openCgroupFile(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b, err := preadProc(fd, buf)
	if err != nil && !errors.Is(err, ErrGone) {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	return b, err
}
