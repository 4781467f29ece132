//go:build linux

package process

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// Handle is a process opened for repeated reading: the /proc files a profile needs (stat,
// io, the fd/ directory, schedstat, and net/dev for a task in its own network namespace) are kept open,
// so a sample is a few preads, and a reused pid can never be read through them (the kernel
// answers ESRCH once the process is reaped).
type Handle struct {
	id     ID
	src    *Source
	dir    string // <root>/<pid>
	stat   int
	io     int
	fd     int
	netdev int
	sched  int
	netOwn bool   // the process runs in a network namespace other than the collector's
	tried  Fields // fields whose files Open already tried
	denied Fields
	// transient handles keep nothing open: past the kept-open budget, each read opens, reads
	// and closes the files (by paths made once), and checks the start time for identity.
	transient                bool
	statPath, ioPath, fdPath string
	netPath, schedPath       string
}

// Open opens the process with the given pid for the given fields. If want.Start is not zero,
// a process with another start time is treated as gone (the pid was reused).
func (s *Source) Open(want ID, fields Fields, buf []byte) (*Handle, error) {
	h := &Handle{src: s, dir: filepath.Join(s.root, strconv.Itoa(int(want.PID))), stat: -1, io: -1, fd: -1, netdev: -1, sched: -1}
	h.statPath, h.ioPath, h.fdPath, h.netPath = h.dir+"/stat", h.dir+"/io", h.dir+"/fd", h.dir+"/net/dev"
	h.schedPath = h.dir + "/schedstat"
	if s.keptOpen.Add(1) > s.budget {
		s.keptOpen.Add(-1)
		h.transient = true
	}
	var st procfs.Stat
	if h.transient {
		b, err := s.readFile(h.statPath, buf)
		if err != nil {
			return nil, err
		}
		if err := procfs.ParseStat(b, &st); err != nil {
			return nil, err
		}
	} else {
		fd, err := s.openRO(h.statPath)
		if err != nil {
			s.keptOpen.Add(-1)
			return nil, err
		}
		h.stat = fd
		if _, err := h.readStat(buf, &st); err != nil {
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

// readFile opens, reads and closes a /proc file into buf.
func readFile(path string, buf []byte) ([]byte, error) {
	return (*Source)(nil).readFile(path, buf)
}

// readFile is readFile through the Source's open observer.
func (s *Source) readFile(path string, buf []byte) ([]byte, error) {
	fd, err := s.openRO(path)
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

// openRO opens a /proc file for reading; a missing file (or process) is ErrGone.
func (s *Source) openRO(path string) (int, error) {
	s.note(path)
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
		fd, err := h.src.openRO(filepath.Join(h.dir, name))
		if err != nil {
			if !errors.Is(err, ErrGone) && !retry(f, err) {
				h.denied |= f
			}
			return
		}
		*dst = fd
	}
	open(FieldDisk, "io", &h.io)
	if h.src.schedstat {
		// A kernel without CONFIG_SCHED_INFO has no schedstat: the source knows it, and the
		// run-queue delay is left out rather than tried for every process.
		open(FieldWaits, "schedstat", &h.sched)
	}
	if todo&FieldFDs != 0 && h.src.fdSizeWorks && !h.transient {
		h.src.note(h.fdPath)
		fd, err := unix.Open(h.fdPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
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

// Close closes the kept-open files.
func (h *Handle) Close() {
	if !h.transient && h.stat >= 0 {
		h.src.keptOpen.Add(-1)
	}
	for _, fd := range []*int{&h.stat, &h.io, &h.fd, &h.netdev, &h.sched} {
		if *fd >= 0 {
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
}

func (h *Handle) pread(fd int, buf []byte) ([]byte, error) { return preadProc(fd, buf) }

// readStat reads and parses stat; it returns the content, which stays in buf until the next read.
func (h *Handle) readStat(buf []byte, st *procfs.Stat) ([]byte, error) {
	var b []byte
	var err error
	if h.transient {
		b, err = h.src.readFile(h.statPath, buf)
	} else {
		b, err = h.pread(h.stat, buf)
	}
	if err != nil {
		return nil, err
	}
	return b, procfs.ParseStat(b, st)
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
	b, err := h.readStat(buf, &st)
	if err != nil {
		return err
	}
	if st.StartTime != h.id.Start {
		return ErrGone // not the process this handle was opened for
	}
	var age uint64 // ticks the process has lived, with a second to spare: no wait is longer
	if fields&FieldWaits != 0 {
		age = h.src.ticksSince(st.StartTime) + procfs.UserHZ
		r.GroupThreads, r.AgeTicks = st.NumThreads, age
	}
	if fields&FieldWaits != 0 && h.src.delayAcct {
		// Field 42 of the stat just read: only with delay accounting on is it more than 0.
		if r.IODelayTicks, err = procfs.StatBlkioTicks(b); err != nil {
			return err
		}
		if r.IODelayTicks <= age {
			r.Got |= FieldIODelay
		} else {
			r.IODelayTicks = 0
			r.Impossible |= FieldIODelay
		}
	}
	r.State = st.State
	r.ExitStatus, r.HasExitStatus = st.ExitCode, st.HasExitCode
	if fields&FieldCPU != 0 {
		r.CPUUser, r.CPUSystem = float64(st.UTime)*tick, float64(st.STime)*tick
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
			b, err = h.src.readFile(h.ioPath, buf)
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
	if fields&FieldWaits != 0 && (h.sched >= 0 || (h.transient && h.src.schedstat)) {
		var b []byte
		if h.transient {
			b, err = h.src.readFile(h.schedPath, buf)
		} else {
			b, err = h.pread(h.sched, buf)
		}
		if err != nil {
			return err
		}
		var ss procfs.Schedstat
		if err := procfs.ParseSchedstat(b, &ss); err != nil {
			return err
		}
		if ss.WaitNanos/1e9*procfs.UserHZ <= age {
			r.RunDelay = ss.WaitNanos
			r.Got |= FieldWaits
		} else {
			r.Impossible |= FieldWaits
		}
	}
	if fields&FieldNetwork != 0 && (h.netdev >= 0 || (h.transient && h.netOwn)) {
		var b []byte
		var err error
		if h.transient {
			b, err = h.src.readFile(h.netPath, buf)
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
	h.src.note(h.fdPath)
	fd, err := unix.Open(h.fdPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
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
