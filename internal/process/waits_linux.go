//go:build linux

package process

import (
	"errors"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

var pressureFiles = [NumPressure]string{"cpu.pressure", "memory.pressure", "io.pressure"}

// CgroupWaits are the files of a task's cgroup that say what its processes waited for, kept
// open: pressure stall information (cgroup v2 cpu.pressure, memory.pressure, io.pressure, where
// the kernel has PSI) and CPU bandwidth throttling (the cpu.stat of the v2 group when the cpu
// controller is enabled there, else of the process's group in the v1 cpu controller). A file
// that does not exist leaves its figures out: no zeros are made up.
type CgroupWaits struct {
	pressure [NumPressure]int
	throttle int
	// v2Dir is the v2 group, cpuDir the group whose cpu.stat gives throttling.
	v2Dir, cpuDir string
}

// OpenWaits opens the waits files of a task's cgroups. v2Dir is a cgroup task's directory
// (resolved, as Cgroup.Dir gives it); "" takes the v2 group the process pid runs in. pid, when
// not 0, also gives the v1 cpu controller's group for throttling where the v2 group has no
// cpu controller. The root group of either hierarchy is the whole machine, not the task's, and
// is left out. It returns nil when no file could be opened: the task has no cgroup of its own.
func (s *Source) OpenWaits(v2Dir string, pid int32, buf []byte) *CgroupWaits {
	w := &CgroupWaits{throttle: -1, v2Dir: v2Dir}
	for i := range w.pressure {
		w.pressure[i] = -1
	}
	var v1 string
	if pid > 0 {
		if b, err := s.procCgroup(pid); err == nil {
			if v2p, v1p, err := procfs.ParseCgroupPaths(b, "cpu"); err == nil {
				if v2Dir == "" && s.cgroup.v2Mount != "" && v2p != nil && string(v2p) != "/" {
					w.v2Dir = filepath.Join(s.cgroup.v2Mount, filepath.Clean("/"+string(v2p)))
				}
				if s.cgroup.v1CPU != "" && v1p != nil && string(v1p) != "/" {
					v1 = filepath.Join(s.cgroup.v1CPU, filepath.Clean("/"+string(v1p)))
				}
			}
		}
	}
	if w.v2Dir != "" {
		for i, name := range pressureFiles {
			if fd, err := s.openCgroupFile(filepath.Join(w.v2Dir, name)); err == nil {
				w.pressure[i] = fd
			}
		}
		w.openThrottle(s, w.v2Dir, buf)
	}
	if w.throttle < 0 && v1 != "" {
		w.openThrottle(s, v1, buf)
	}
	if w.throttle < 0 && w.pressure == [NumPressure]int{-1, -1, -1} {
		return nil
	}
	return w
}

// openThrottle keeps dir's cpu.stat open when it has the throttling counters: a v2 group
// without the cpu controller has only the usage lines.
func (w *CgroupWaits) openThrottle(s *Source, dir string, buf []byte) {
	fd, err := s.openCgroupFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return
	}
	var t procfs.Throttling
	if b, err := preadProc(fd, buf); err != nil || procfs.ParseThrottling(b, &t) != nil {
		_ = unix.Close(fd)
		return
	}
	w.throttle, w.cpuDir = fd, dir
}

// Close closes the kept-open files.
func (w *CgroupWaits) Close() {
	for _, fd := range [...]*int{&w.pressure[PressureCPU], &w.pressure[PressureMemory], &w.pressure[PressureIO], &w.throttle} {
		if *fd >= 0 {
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
}

// Read reads the waits into r. A group that was removed (or a file the kernel stopped
// serving: PSI switched off for the group, cgroup.pressure 0) leaves its figures out; content
// the kernel would not write is an error.
func (w *CgroupWaits) Read(r *WaitsReading, buf []byte) error {
	*r = WaitsReading{}
	for i, fd := range w.pressure {
		b, ok, err := w.pread(&w.pressure[i], fd, buf)
		if err != nil || !ok {
			if err != nil {
				return &fs.PathError{Op: "read", Path: filepath.Join(w.v2Dir, pressureFiles[i]), Err: err}
			}
			continue
		}
		if err := procfs.ParsePressure(b, &r.Pressure[i]); err != nil {
			return &fs.PathError{Op: "parse", Path: filepath.Join(w.v2Dir, pressureFiles[i]), Err: err}
		}
		r.HasPressure[i] = true
	}
	b, ok, err := w.pread(&w.throttle, w.throttle, buf)
	switch {
	case err != nil:
		return &fs.PathError{Op: "read", Path: filepath.Join(w.cpuDir, "cpu.stat"), Err: err}
	case ok:
		if err := procfs.ParseThrottling(b, &r.Throttling); err != nil {
			return &fs.PathError{Op: "parse", Path: filepath.Join(w.cpuDir, "cpu.stat"), Err: err}
		}
		r.HasThrottling = true
	}
	return nil
}

// pread reads one kept-open file; ok is false for a file that is not open or no longer
// served. A removed group's file is closed (*slot set to -1).
func (w *CgroupWaits) pread(slot *int, fd int, buf []byte) (b []byte, ok bool, err error) {
	if fd < 0 {
		return nil, false, nil
	}
	b, err = preadProc(fd, buf)
	switch {
	case err == nil:
		return b, true, nil
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENOENT), errors.Is(err, ErrGone):
		_ = unix.Close(fd)
		*slot = -1
		return nil, false, nil
	case errors.Is(err, unix.EOPNOTSUPP):
		return nil, false, nil
	}
	return nil, false, err
}
