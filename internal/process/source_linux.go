//go:build linux

package process

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// Source reads processes from a procfs mount (/proc, or /hostfs/proc in a container) and
// cgroup files from a cgroupfs mount.
type Source struct {
	root        string
	pageSize    uint64
	bootTime    time.Time // precise to 10 ms: now minus /proc/uptime at start
	numCPU      int
	memTotal    uint64
	selfNetNS   uint64 // inode of the collector's network namespace
	fdSizeWorks bool   // st_size of /proc/<pid>/fd is the fd count (Linux 6.2+)
	schedstat   bool   // the kernel has /proc/<pid>/schedstat (CONFIG_SCHED_INFO)
	delayAcct   bool   // the kernel's delay accounting is on: stat's block I/O delay is read
	cgroup      cgroupLayout
	opened      func(path string) // tests: told of every file opened for a sample

	statMu sync.Mutex
	statFD int // kept-open /proc/stat for machine CPU
	buf    [4096]byte

	budget     int64        // descriptors that may be kept open for samples; past it files are read by path
	keptFDs    atomic.Int64 // descriptors kept open for samples now
	budgetFull atomic.Bool  // a descriptor was refused since the last SetKeptOpenBudget
	onFull     func(budget int64)
}

// descriptorsPerHandle is what a kept-open process may hold at most: stat, io, fd/, schedstat
// and net/dev (four with the standard profile, net/dev only for a process in a network
// namespace of its own). max_kept_open_processes counts processes at this many descriptors.
const descriptorsPerHandle = 5

// SetKeptOpenBudget sets the kept-open budget for n processes at their most descriptors each:
// n × 5 descriptors, shared by every kept-open file (a process's, and a task's cgroup waits').
// A process holding fewer leaves room for more. A file refused a place is opened, read and
// closed on every read instead. 0 derives the budget from RLIMIT_NOFILE
// (DefaultKeptOpenDescriptors).
func (s *Source) SetKeptOpenBudget(n int) {
	if n > 0 {
		s.budget = int64(min(n, 1<<30/descriptorsPerHandle)) * descriptorsPerHandle
	} else {
		var lim unix.Rlimit
		s.budget = descriptorsPerHandle
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
			s.budget = DefaultKeptOpenDescriptors(lim.Cur)
		}
	}
	s.budgetFull.Store(false)
}

// DefaultKeptOpenDescriptors is the kept-open budget under a descriptor limit
// (RLIMIT_NOFILE): all but 256 descriptors, kept for everything else the collector opens; at
// least one process's worth.
func DefaultKeptOpenDescriptors(limit uint64) int64 {
	if limit <= 256+descriptorsPerHandle {
		return descriptorsPerHandle
	}
	return int64(min(limit-256, 1<<30))
}

// SetBudgetObserver has fn told, once, when the kept-open budget first refuses a descriptor
// (from then on some files are opened on every read); nil for none.
func (s *Source) SetBudgetObserver(fn func(budget int64)) { s.onFull = fn }

// KeptOpen returns the descriptors kept open for samples now, and the budget.
func (s *Source) KeptOpen() (held, budget int64) { return s.keptFDs.Load(), s.budget }

// reserve takes a place in the kept-open budget for one descriptor; false when there is none.
func (s *Source) reserve() bool {
	if s.keptFDs.Add(1) <= s.budget {
		return true
	}
	s.keptFDs.Add(-1)
	if s.budgetFull.CompareAndSwap(false, true) && s.onFull != nil {
		s.onFull(s.budget)
	}
	return false
}

// release gives back a kept-open descriptor's place.
func (s *Source) release() { s.keptFDs.Add(-1) }

// NewSource returns a Source rooted at procRoot, reading cgroups under cgroupRoot.
func NewSource(procRoot, cgroupRoot string) (*Source, error) {
	s := &Source{root: filepath.Clean(procRoot), pageSize: uint64(os.Getpagesize()), statFD: -1}
	s.SetKeptOpenBudget(0)
	up, err := os.ReadFile(filepath.Join(procRoot, "uptime"))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(procRoot, "uptime"), err)
	}
	cs, err := procfs.ParseUptime(up)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(procRoot, "uptime"), err)
	}
	s.bootTime = time.Now().Add(-time.Duration(cs) * 10 * time.Millisecond)

	mi, err := os.ReadFile(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(procRoot, "meminfo"), err)
	}
	if s.memTotal, err = procfs.ParseMemTotal(mi); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(procRoot, "meminfo"), err)
	}

	s.numCPU = countCPUs(filepath.Join(procRoot, "stat"))

	// The collector's own namespace is the one of /proc/self in the collector's mount
	// namespace, whatever procRoot is.
	for _, p := range []string{"/proc/self/ns/net", filepath.Join(procRoot, "self/ns/net")} {
		if ino, err := nsInode(p); err == nil {
			s.selfNetNS = ino
			break
		}
	}

	var st unix.Stat_t
	if unix.Stat(filepath.Join(procRoot, "self/fd"), &st) == nil && st.Size > 0 {
		s.fdSizeWorks = true
	}
	for _, p := range []string{"/proc/self/schedstat", filepath.Join(procRoot, "self/schedstat")} {
		if unix.Access(p, unix.R_OK) == nil {
			s.schedstat = true
			break
		}
	}
	s.cgroup = detectCgroupLayout(cgroupRoot)
	if fd, err := unix.Open(filepath.Join(procRoot, "stat"), unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		s.statFD = fd
	}
	return s, nil
}

// Close releases the descriptors the Source keeps open.
func (s *Source) Close() error {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	if s.statFD >= 0 {
		_ = unix.Close(s.statFD)
		s.statFD = -1
	}
	return nil
}

func countCPUs(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 1
	}
	n := 0
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(l) > 3 && string(l[:3]) == "cpu" && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// Schedstat reports whether the kernel has /proc/<pid>/schedstat (CONFIG_SCHED_INFO), from
// which FieldWaits reads the run-queue delay.
func (s *Source) Schedstat() bool { return s.schedstat }

// SetDelayAccounting says whether the kernel's delay accounting is on (DelayAccounting): only
// then does a FieldWaits read take the block I/O delay from stat (FieldIODelay). With it off the
// kernel leaves that field 0, which is no measurement.
func (s *Source) SetDelayAccounting(on bool) { s.delayAcct = on }

// SetOpenObserver has fn told the path of every file the Source opens for a task's samples
// (a process's files, its cgroups' files), before it is opened; nil for none. Tests count
// opens with it.
func (s *Source) SetOpenObserver(fn func(path string)) { s.opened = fn }

func (s *Source) note(path string) {
	if s != nil && s.opened != nil {
		s.opened(path)
	}
}

// NumCPU is the number of logical CPUs of the host.
func (s *Source) NumCPU() int { return s.numCPU }

// MemTotal is the host's total memory in bytes.
func (s *Source) MemTotal() uint64 { return s.memTotal }

// StartTime converts an ID's start to wall-clock time.
func (s *Source) StartTime(id ID) time.Time {
	return s.bootTime.Add(time.Duration(id.Start) * (time.Second / procfs.UserHZ))
}

// ticksSince is the clock ticks from an ID's start to now.
func (s *Source) ticksSince(start uint64) uint64 {
	now := s.TicksAt(time.Now())
	return now - min(start, now)
}

// TicksAt converts a wall-clock time to an ID's start: the start of a process started then.
func (s *Source) TicksAt(t time.Time) uint64 {
	d := t.Sub(s.bootTime)
	if d <= 0 {
		return 0
	}
	return uint64(d / (time.Second / procfs.UserHZ))
}

// CPUTimes reads the machine-wide CPU times, in clock ticks per mode.
func (s *Source) CPUTimes() (procfs.CPUTimes, error) {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	var c procfs.CPUTimes
	if s.statFD < 0 {
		return c, fmt.Errorf("open %s: not available", filepath.Join(s.root, "stat"))
	}
	n, err := unix.Pread(s.statFD, s.buf[:], 0)
	if err != nil {
		return c, fmt.Errorf("read %s: %w", filepath.Join(s.root, "stat"), err)
	}
	// Only the first line matters; a host with many CPUs may not fit the buffer.
	b := s.buf[:n]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	}
	if err := procfs.ParseProcStat(b, &c); err != nil {
		return c, fmt.Errorf("parse %s: %w", filepath.Join(s.root, "stat"), err)
	}
	return c, nil
}
