//go:build linux

package process

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	cgroup      cgroupLayout

	statMu sync.Mutex
	statFD int // kept-open /proc/stat for machine CPU
	buf    [4096]byte

	budget   int64        // processes whose files may be kept open; past it, handles are transient
	keptOpen atomic.Int64 // kept-open handles now
}

// descriptorsPerHandle is what a kept-open handle may hold: stat, io, fd/ and net/dev.
const descriptorsPerHandle = 4

// SetKeptOpenBudget sets how many processes may have their files kept open at once; handles
// opened past it are transient (files opened and closed on every read). 0 derives the budget
// from RLIMIT_NOFILE, keeping 256 descriptors for everything else.
func (s *Source) SetKeptOpenBudget(n int) {
	if n <= 0 {
		var lim unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur > 256+descriptorsPerHandle {
			n = int(min(lim.Cur-256, 1<<30) / descriptorsPerHandle)
		} else {
			n = 1
		}
	}
	s.budget = int64(n)
}

// KeptOpenBudget is the current budget.
func (s *Source) KeptOpenBudget() int { return int(s.budget) }

// NewSource returns a Source rooted at procRoot, reading cgroups under cgroupRoot.
func NewSource(procRoot, cgroupRoot string) (*Source, error) {
	s := &Source{root: procRoot, pageSize: uint64(os.Getpagesize()), statFD: -1}
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

// NumCPU is the number of logical CPUs of the host.
func (s *Source) NumCPU() int { return s.numCPU }

// MemTotal is the host's total memory in bytes.
func (s *Source) MemTotal() uint64 { return s.memTotal }

// StartTime converts an ID's start to wall-clock time.
func (s *Source) StartTime(id ID) time.Time {
	return s.bootTime.Add(time.Duration(id.Start) * (time.Second / procfs.UserHZ))
}

// CPUTimes reads the machine-wide CPU times, in seconds per mode.
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
	if _, err := procfs.ParseProcStat(b, &c); err != nil {
		return c, fmt.Errorf("parse %s: %w", filepath.Join(s.root, "stat"), err)
	}
	return c, nil
}

// Handle is a process opened for repeated reading: the /proc files a profile needs (stat,
// io, the fd/ directory, and net/dev for a task in its own network namespace) are kept open, so a sample is a few preads, and a reused pid can never be read through them (the
// kernel answers ESRCH once the process is reaped).
type Handle struct {
	id     ID
	src    *Source
	dir    string // <root>/<pid>
	stat   int
	io     int
	fd     int
	netdev int
	netOwn bool   // the process has a network namespace of its own
	tried  Fields // fields whose files Open already tried
	denied Fields
	// transient handles keep nothing open: past the kept-open budget, each read opens, reads
	// and closes the files (by paths made once), and checks the start time for identity.
	transient                bool
	statPath, ioPath, fdPath string
	netPath                  string
}

// Open opens the process with the given pid for the given fields. If want.Start is not zero,
// a process with another start time is treated as gone (the pid was reused).
func (s *Source) Open(want ID, fields Fields, buf []byte) (*Handle, error) {
	h := &Handle{src: s, dir: filepath.Join(s.root, strconv.Itoa(int(want.PID))), stat: -1, io: -1, fd: -1, netdev: -1}
	h.statPath, h.ioPath, h.fdPath, h.netPath = h.dir+"/stat", h.dir+"/io", h.dir+"/fd", h.dir+"/net/dev"
	if s.keptOpen.Add(1) > s.budget {
		s.keptOpen.Add(-1)
		h.transient = true
	}
	var st procfs.Stat
	if h.transient {
		b, err := readFile(h.statPath, buf)
		if err != nil {
			return nil, err
		}
		if err := procfs.ParseStat(b, &st); err != nil {
			return nil, err
		}
	} else {
		fd, err := openRO(h.statPath)
		if err != nil {
			s.keptOpen.Add(-1)
			return nil, err
		}
		h.stat = fd
		if err := h.readStat(buf, &st); err != nil {
			h.Close()
			return nil, err
		}
	}
	h.id = ID{PID: want.PID, Start: st.StartTime}
	if want.Start != 0 && want.Start != st.StartTime {
		h.Close()
		return nil, ErrGone
	}
	h.Ensure(fields)
	return h, nil
}

// Transient reports whether the handle keeps no files open (it was opened past the budget).
func (h *Handle) Transient() bool { return h.transient }

// readFile opens, reads and closes a /proc file into buf.
func readFile(path string, buf []byte) ([]byte, error) {
	fd, err := openRO(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return preadProc(fd, buf)
}

// preadProc reads a /proc (or cgroup) file from its start into buf. A reaped process answers
// ESRCH (ErrGone); content that fills the whole buffer may be cut, so it is refused.
func preadProc(fd int, buf []byte) ([]byte, error) {
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, ErrGone
		}
		return nil, err
	}
	if n == len(buf) {
		return nil, procfs.ErrMalformed
	}
	return buf[:n], nil
}

func openRO(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return -1, ErrGone
		}
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// Ensure opens the files of fields not opened yet (after a profile change). Files that cannot
// be opened for lack of permission are remembered in Denied and not tried again.
func (h *Handle) Ensure(fields Fields) {
	todo := fields &^ h.tried
	h.tried |= todo
	// Out of descriptors is not a property of the process: such a file is tried again at the
	// next sample rather than remembered as denied.
	retry := func(f Fields, err error) bool {
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			h.tried &^= f
			return true
		}
		return false
	}
	open := func(f Fields, name string, dst *int) {
		if todo&f == 0 || h.transient {
			return
		}
		fd, err := openRO(filepath.Join(h.dir, name))
		if err != nil {
			if !errors.Is(err, ErrGone) && !retry(f, err) {
				h.denied |= f
			}
			return
		}
		*dst = fd
	}
	open(FieldDisk, "io", &h.io)
	if todo&FieldFDs != 0 && h.src.fdSizeWorks && !h.transient {
		fd, err := unix.Open(filepath.Join(h.dir, "fd"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			h.fd = fd
		case !retry(FieldFDs, err):
			h.denied |= FieldFDs
		}
	}
	if todo&FieldNetwork != 0 {
		ino, err := nsInode(filepath.Join(h.dir, "ns/net"))
		switch {
		case err != nil:
			h.denied |= FieldNetwork
		case ino != h.src.selfNetNS && h.src.selfNetNS != 0:
			h.netOwn = true
			open(FieldNetwork, "net/dev", &h.netdev)
		}
	}
}

// ID returns the identity of the opened process.
func (h *Handle) ID() ID { return h.id }

// OwnNetworkNamespace reports whether the process runs in a network namespace other than the
// collector's, the only case in which its namespace's traffic is its own.
func (h *Handle) OwnNetworkNamespace() bool { return h.netOwn }

// Close closes the kept-open files.
func (h *Handle) Close() {
	if !h.transient && h.stat >= 0 {
		h.src.keptOpen.Add(-1)
	}
	for _, fd := range []*int{&h.stat, &h.io, &h.fd, &h.netdev} {
		if *fd >= 0 {
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
}

func (h *Handle) pread(fd int, buf []byte) ([]byte, error) { return preadProc(fd, buf) }

func (h *Handle) readStat(buf []byte, st *procfs.Stat) error {
	if h.transient {
		b, err := readFile(h.statPath, buf)
		if err != nil {
			return err
		}
		return procfs.ParseStat(b, st)
	}
	b, err := h.pread(h.stat, buf)
	if err != nil {
		return err
	}
	return procfs.ParseStat(b, st)
}

const tick = 1.0 / procfs.UserHZ

// Read reads the asked fields into r. buf is scratch space (4 KiB is plenty) owned by the
// caller, so a read allocates nothing. It returns ErrGone when the process has been reaped;
// a file that fails to parse makes Read return an error wrapping procfs.ErrMalformed.
func (h *Handle) Read(fields Fields, r *Reading, buf []byte) error {
	*r = Reading{Denied: h.denied & fields}
	// stat is read on every sample, even when neither CPU nor threads are asked for: it
	// proves the process is still ours before any other file is trusted.
	var st procfs.Stat
	if err := h.readStat(buf, &st); err != nil {
		return err
	}
	if st.StartTime != h.id.Start {
		return ErrGone // not the process this handle was opened for
	}
	r.State = st.State
	if fields&FieldCPU != 0 {
		r.CPUUser, r.CPUSystem = float64(st.UTime)*tick, float64(st.STime)*tick
		r.ChildCPUUser, r.ChildCPUSystem = float64(st.CUTime)*tick, float64(st.CSTime)*tick
		r.Got |= FieldCPU
	}
	if fields&FieldThreads != 0 {
		r.Threads = st.NumThreads
		r.Got |= FieldThreads
	}
	if fields&FieldMemory != 0 {
		// stat carries the same vsize and rss the kernel prints in statm (total_vm and
		// get_mm_rss), so memory costs no extra read.
		r.RSS, r.VMS = uint64(max(st.RSSPages, 0))*h.src.pageSize, st.VSize
		r.Got |= FieldMemory
	}
	if fields&FieldDisk != 0 && (h.io >= 0 || (h.transient && h.denied&FieldDisk == 0)) {
		var b []byte
		var err error
		if h.transient {
			b, err = readFile(h.ioPath, buf)
		} else {
			b, err = h.pread(h.io, buf)
		}
		switch {
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			r.Denied |= FieldDisk
		case err != nil:
			return err
		default:
			var io procfs.IO
			if err := procfs.ParseIO(b, &io); err != nil {
				return err
			}
			r.ReadBytes, r.WriteBytes = io.ReadBytes, io.WriteBytes
			r.Got |= FieldDisk
		}
	}
	if fields&FieldFDs != 0 && r.Denied&FieldFDs == 0 {
		n, err := h.countFDs(buf)
		switch {
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			r.Denied |= FieldFDs
		case err != nil:
			return err
		default:
			r.FDs = n
			r.Got |= FieldFDs
		}
	}
	if fields&FieldNetwork != 0 && (h.netdev >= 0 || (h.transient && h.netOwn)) {
		var b []byte
		var err error
		if h.transient {
			b, err = readFile(h.netPath, buf)
		} else {
			b, err = h.pread(h.netdev, buf)
		}
		if err != nil {
			return err
		}
		var nd procfs.NetDev
		if err := procfs.ParseNetDev(b, &nd); err != nil {
			return err
		}
		r.RxBytes, r.TxBytes = nd.RxBytes, nd.TxBytes
		r.Got |= FieldNetwork
	}
	return nil
}

// countFDs counts open descriptors: st_size of the kept-open fd/ directory on Linux 6.2+,
// else a listing of the directory.
func (h *Handle) countFDs(buf []byte) (int64, error) {
	if h.transient && h.src.fdSizeWorks {
		var st unix.Stat_t
		if err := unix.Stat(h.fdPath, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return 0, ErrGone
			}
			return 0, err
		}
		return st.Size, nil
	}
	if h.fd >= 0 {
		var st unix.Stat_t
		if err := unix.Fstat(h.fd, &st); err != nil {
			return 0, err
		}
		return st.Size, nil
	}
	fd, err := unix.Open(h.dir+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, ErrGone
		}
		return 0, err
	}
	defer unix.Close(fd)
	var n int64
	for {
		m, err := unix.Getdents(fd, buf)
		if err != nil {
			return 0, err
		}
		if m <= 0 {
			break
		}
		for off := 0; off < m; {
			reclen := int(uint16(buf[off+16]) | uint16(buf[off+17])<<8)
			name := buf[off+19 : off+reclen]
			if !(name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) {
				n++
			}
			off += reclen
		}
	}
	return n, nil
}

// Scan calls fn for every process of the table. Processes that vanish during the scan are
// skipped.
func (s *Source) Scan(buf []byte, fn func(Entry)) error {
	d, err := os.Open(s.root)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.root, err)
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(512)
		for _, name := range names {
			if name[0] < '1' || name[0] > '9' {
				continue
			}
			pid, perr := strconv.Atoi(name)
			if perr != nil {
				continue
			}
			e, ok := s.entry(int32(pid), buf)
			if ok {
				fn(e)
			}
		}
		if err != nil {
			break
		}
	}
	return nil
}

func (s *Source) entry(pid int32, buf []byte) (Entry, bool) {
	b, err := readFile(s.root+"/"+strconv.Itoa(int(pid))+"/stat", buf)
	if err != nil {
		return Entry{}, false
	}
	var st procfs.Stat
	if procfs.ParseStat(b, &st) != nil {
		return Entry{}, false
	}
	return Entry{ID: ID{PID: pid, Start: st.StartTime}, PPID: st.PPID, Comm: string(procfs.StatComm(b))}, true
}

// Lookup returns the table entry of one pid.
func (s *Source) Lookup(pid int32, buf []byte) (Entry, bool) { return s.entry(pid, buf) }

// Environ reads a process's environment entries ("KEY=value"). It fails with ErrGone if the pid
// no longer belongs to e.
func (s *Source) Environ(e Entry, buf []byte) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(s.root, strconv.Itoa(int(e.ID.PID)), "environ"))
	if err != nil {
		return nil, err
	}
	if again, ok := s.entry(e.ID.PID, buf); !ok || again.ID != e.ID {
		return nil, ErrGone
	}
	var out []string
	for _, kv := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		if len(kv) > 0 {
			out = append(out, string(kv))
		}
	}
	return out, nil
}

// Describe reads a process's executable name, command line and owner. It fails with ErrGone
// if the pid no longer belongs to e.
func (s *Source) Describe(e Entry, buf []byte) (Details, error) {
	dir := filepath.Join(s.root, strconv.Itoa(int(e.ID.PID)))
	d := Details{Executable: e.Comm, UID: -1}
	if target, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		d.Executable = filepath.Base(strings.TrimSuffix(target, " (deleted)"))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		b = bytes.TrimRight(b, "\x00")
		d.Cmdline = string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
	}
	var st unix.Stat_t
	if unix.Stat(dir, &st) == nil {
		d.UID = int64(st.Uid)
	}
	if again, ok := s.entry(e.ID.PID, buf); !ok || again.ID != e.ID {
		return Details{}, ErrGone
	}
	return d, nil
}
