//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// Cgroup is a cgroup v2 directory opened for repeated reading: a task that runs in a cgroup of
// its own is measured from the cgroup's files, which count every process that ran in it,
// including children and processes that already exited, at constant cost.
type Cgroup struct {
	dir                                      string
	cpu, current, peak, max, io, pids, procs int
}

// CgroupReading is one read of a cgroup's counters.
type CgroupReading struct {
	HasCPU, HasMemory, HasPeak, HasLimit, HasIO, HasPids bool
	CPUUser, CPUSystem                                   float64 // seconds, cumulative
	Memory, Peak, Limit                                  uint64  // bytes; Limit only when memory.max is not "max"
	ReadBytes, WriteBytes                                uint64  // cumulative
	Pids                                                 int64   // processes (and threads) in the cgroup
}

// CgroupV2Root returns the mount of the unified (v2) hierarchy, "" when there is none: the
// cgroup root itself on a v2 host, its unified/ directory on a hybrid host.
func (s *Source) CgroupV2Root() string { return s.cgroup.v2Mount }

func v2Mount(root string) string {
	for _, dir := range []string{root, filepath.Join(root, "unified")} {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.controllers")); err == nil {
			return dir
		}
	}
	return ""
}

// OpenCgroup opens a cgroup v2 directory, absolute or relative to the v2 root. It returns
// ErrGone when the directory does not exist (yet). A directory that does not lie under the v2
// root once its links are resolved (ErrOutsideCgroupRoot), or whose counter files are not
// regular files (ErrNotCgroupFile), is refused: it is not a cgroup, and reading a FIFO would
// block discovery, a link to /dev/zero would feed it without end.
func (s *Source) OpenCgroup(path string) (*Cgroup, error) {
	dir, err := ResolveCgroup(s.cgroup.v2Mount, path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrGone
		}
		return nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	c := &Cgroup{dir: dir}
	files := []struct {
		name string
		fd   *int
	}{{"cpu.stat", &c.cpu}, {"memory.current", &c.current}, {"memory.peak", &c.peak},
		{"memory.max", &c.max}, {"io.stat", &c.io}, {"pids.current", &c.pids}, {"cgroup.procs", &c.procs}}
	for _, f := range files {
		*f.fd = -1
	}
	for _, f := range files {
		fd, err := s.openCgroupFile(filepath.Join(dir, f.name))
		if errors.Is(err, ErrNotCgroupFile) {
			c.Close()
			return nil, fmt.Errorf("cgroup %s: %w", dir, err)
		}
		if err == nil {
			*f.fd = fd
		}
	}
	return c, nil
}

// Dir is the cgroup's directory.
func (c *Cgroup) Dir() string { return c.dir }

// Close closes the kept-open files.
func (c *Cgroup) Close() {
	for _, fd := range []*int{&c.cpu, &c.current, &c.peak, &c.max, &c.io, &c.pids, &c.procs} {
		if *fd >= 0 {
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
}

func (c *Cgroup) pread(fd int, buf []byte) ([]byte, error) {
	b, err := preadProc(fd, buf)
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		return nil, ErrGone // the cgroup was removed
	}
	return b, err
}

// Read reads the cgroup's counters. Files a host lacks (a controller that is not enabled) are
// left out. It returns ErrGone once the cgroup has been removed.
func (c *Cgroup) Read(r *CgroupReading, buf []byte) error {
	*r = CgroupReading{}
	if c.procs >= 0 {
		if _, err := c.pread(c.procs, buf); err != nil {
			return err
		}
	}
	if c.cpu >= 0 {
		b, err := c.pread(c.cpu, buf)
		if err != nil {
			return err
		}
		var cs procfs.CgroupCPU
		if err := procfs.ParseCgroupCPUStat(b, &cs); err != nil {
			return err
		}
		r.CPUUser, r.CPUSystem, r.HasCPU = float64(cs.UserUsec)/1e6, float64(cs.SystemUsec)/1e6, true
	}
	value := func(fd int) (uint64, bool, error) {
		if fd < 0 {
			return 0, false, nil
		}
		b, err := c.pread(fd, buf)
		if err != nil {
			return 0, false, err
		}
		v, limited, err := procfs.ParseCgroupValue(b)
		return v, limited, err
	}
	var err error
	if r.Memory, r.HasMemory, err = value(c.current); err != nil {
		return err
	}
	if r.Peak, r.HasPeak, err = value(c.peak); err != nil {
		return err
	}
	if r.Limit, r.HasLimit, err = value(c.max); err != nil {
		return err
	}
	if c.io >= 0 {
		b, err := c.pread(c.io, buf)
		if err != nil {
			return err
		}
		if r.ReadBytes, r.WriteBytes, err = procfs.ParseCgroupIOStat(b); err != nil {
			return err
		}
		r.HasIO = true
	}
	var pids uint64
	var ok bool
	if pids, ok, err = value(c.pids); err != nil {
		return err
	}
	r.Pids, r.HasPids = int64(pids), ok
	return nil
}

// Procs calls fn for every process in the cgroup (cgroup.procs).
func (c *Cgroup) Procs(buf []byte, fn func(pid int32)) error {
	if c.procs < 0 {
		return nil
	}
	b, err := c.pread(c.procs, buf)
	if err != nil {
		return err
	}
	return procfs.ParseCgroupProcs(b, fn)
}

// ThreadsAndFDs reads one process's thread and open-descriptor counts (open, read, close: for
// the processes of a cgroup, which come and go).
func (s *Source) ThreadsAndFDs(pid int32, buf []byte) (threads, fds int64, ok bool) {
	dir := s.root + "/" + strconv.Itoa(int(pid))
	b, err := s.readFile(dir+"/stat", buf)
	if err != nil {
		return 0, 0, false
	}
	var st procfs.Stat
	if procfs.ParseStat(b, &st) != nil {
		return 0, 0, false
	}
	var fst unix.Stat_t
	if s.fdSizeWorks && unix.Stat(dir+"/fd", &fst) == nil {
		fds = fst.Size
	}
	return st.NumThreads, fds, true
}
