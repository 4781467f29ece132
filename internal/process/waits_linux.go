//go:build linux

package process

import (
	"errors"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// The files of CgroupWaits, in order: the three pressure files, then the cpu.stat with the
// throttling counters.
const (
	throttleFile = NumPressure
	numWaitFiles = NumPressure + 1
)

var pressureFiles = [NumPressure]string{"cpu.pressure", "memory.pressure", "io.pressure"}

// CgroupWaits are the files of a task's cgroup that say what its processes waited for, kept
// open: pressure stall information (cgroup v2 cpu.pressure, memory.pressure, io.pressure, where
// the kernel has PSI) and CPU bandwidth throttling (the cpu.stat of the v2 group when the cpu
// controller is enabled there, else of the process's group in the v1 cpu controller). A file
// that does not exist leaves its figures out: no zeros are made up. Each file kept open takes
// a place in the Source's kept-open budget like a process's; one refused a place is opened,
// read and closed on every read.
type CgroupWaits struct {
	src  *Source
	fd   [numWaitFiles]int    // -1: not open (read by path, or not there)
	path [numWaitFiles]string // "": not there
}

// OpenWaits opens the waits files of a task's cgroups. v2Dir is a cgroup task's directory
// (resolved, as Cgroup.Dir gives it); "" takes the v2 group the process pid runs in. pid, when
// not 0, also gives the v1 cpu controller's group for throttling where the v2 group has no
// cpu controller. The root group of either hierarchy is the whole machine, not the task's, and
// is left out. It returns nil when there is no file to read: the task has no cgroup of its own.
func (s *Source) OpenWaits(v2Dir string, pid int32, buf []byte) *CgroupWaits {
	w := &CgroupWaits{src: s, fd: [numWaitFiles]int{-1, -1, -1, -1}}
	var v1 string
	if pid > 0 {
		if b, err := s.procCgroup(pid); err == nil {
			if v2p, v1p, err := procfs.ParseCgroupPaths(b, "cpu"); err == nil {
				if v2Dir == "" && s.cgroup.v2Mount != "" && v2p != nil && string(v2p) != "/" {
					v2Dir = filepath.Join(s.cgroup.v2Mount, filepath.Clean("/"+string(v2p)))
				}
				if s.cgroup.v1CPU != "" && v1p != nil && string(v1p) != "/" {
					v1 = filepath.Join(s.cgroup.v1CPU, filepath.Clean("/"+string(v1p)))
				}
			}
		}
	}
	if v2Dir != "" {
		for i, name := range pressureFiles {
			w.try(i, filepath.Join(v2Dir, name), nil, buf)
		}
		w.try(throttleFile, filepath.Join(v2Dir, "cpu.stat"), hasThrottling, buf)
	}
	if w.path[throttleFile] == "" && v1 != "" {
		w.try(throttleFile, filepath.Join(v1, "cpu.stat"), hasThrottling, buf)
	}
	if w.path == [numWaitFiles]string{} {
		return nil
	}
	return w
}

// hasThrottling says whether a cpu.stat has the throttling counters: a v2 group without the
// cpu controller has only the usage lines.
func hasThrottling(b []byte) bool {
	var t procfs.Throttling
	return procfs.ParseThrottling(b, &t) == nil
}

// try opens one file into slot i; with check, only when its content passes it. The file is
// kept open when the budget has room, else read by path from then on.
func (w *CgroupWaits) try(i int, path string, check func([]byte) bool, buf []byte) {
	fd, err := w.src.openCgroupFile(path)
	if err != nil {
		return
	}
	if check != nil {
		if b, err := preadProc(fd, buf); err != nil || !check(b) {
			_ = unix.Close(fd)
			return
		}
	}
	w.path[i] = path
	if !w.src.reserve() {
		_ = unix.Close(fd)
		return
	}
	w.fd[i] = fd
}

// Close closes the kept-open files and gives their places in the budget back.
func (w *CgroupWaits) Close() {
	for i, fd := range w.fd {
		if fd >= 0 {
			_ = unix.Close(fd)
			w.fd[i] = -1
			w.src.release()
		}
	}
}

// Read reads the waits into r. A group that was removed (or a file the kernel stopped
// serving: PSI switched off for the group, cgroup.pressure 0) leaves its figures out; content
// the kernel would not write is an error.
func (w *CgroupWaits) Read(r *WaitsReading, buf []byte) error {
	*r = WaitsReading{}
	for i := range w.fd {
		b, ok, err := w.read(i, buf)
		switch {
		case err != nil:
			return &fs.PathError{Op: "read", Path: w.path[i], Err: err}
		case !ok:
			continue
		case i == throttleFile:
			err = procfs.ParseThrottling(b, &r.Throttling)
			r.HasThrottling = err == nil
		default:
			err = procfs.ParsePressure(b, &r.Pressure[i])
			r.HasPressure[i] = err == nil
		}
		if err != nil {
			return &fs.PathError{Op: "parse", Path: w.path[i], Err: err}
		}
	}
	return nil
}

// read reads one file; ok is false for a file that is not there or no longer served. A
// removed group's file is forgotten.
func (w *CgroupWaits) read(i int, buf []byte) (b []byte, ok bool, err error) {
	switch {
	case w.path[i] == "":
		return nil, false, nil
	case w.fd[i] < 0:
		fd, oerr := w.src.openCgroupFile(w.path[i])
		if oerr != nil {
			err = oerr
			break
		}
		b, err = preadProc(fd, buf)
		_ = unix.Close(fd)
	default:
		b, err = preadProc(w.fd[i], buf)
	}
	switch {
	case err == nil:
		return b, true, nil
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENOENT), errors.Is(err, ErrGone):
		if w.fd[i] >= 0 {
			_ = unix.Close(w.fd[i])
			w.fd[i] = -1
			w.src.release()
		}
		w.path[i] = ""
		return nil, false, nil
	case errors.Is(err, unix.EOPNOTSUPP):
		return nil, false, nil
	}
	return nil, false, err
}
