//go:build linux

package process

import (
	"errors"
	"io/fs"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// Handle is a process opened for repeated reading: the /proc files a profile needs (stat,
// io, the fd/ directory, schedstat, and net/dev for a task in its own network namespace) are kept open,
// so a sample is a few preads, and a reused pid can never be read through them (the kernel
// answers ESRCH once the process is reaped). A file refused a place in the Source's kept-open
// budget is opened, read and closed on every read instead, by its path; through such a stat the
// start time proves the process is still the one opened.
type Handle struct {
	id     ID
	src    *Source
	dir    string            // <root>/<pid>
	fds    [numProcFiles]int // kept-open descriptors; -1: not open (read by path, or not read)
	netOwn bool              // the process runs in a network namespace other than the collector's
	tried  Fields            // fields whose files Ensure already tried
	denied Fields
	byPath Fields // fields whose files the budget had no room for: read by path
}

// The files a Handle reads, by slot.
const (
	fileStat = iota
	fileIO
	fileFD // the fd/ directory
	fileSched
	fileNetDev
	numProcFiles
)

var procFiles = [numProcFiles]string{"/stat", "/io", "/fd", "/schedstat", "/net/dev"}

// path is the path of one of the process's files.
func (h *Handle) path(file int) string { return h.dir + procFiles[file] }

// Open opens the process with the given pid for the given fields. If want.Start is not zero,
// a process with another start time is treated as gone (the pid was reused).
func (s *Source) Open(want ID, fields Fields, buf []byte) (*Handle, error) {
	h := &Handle{src: s, dir: s.root + "/" + strconv.Itoa(int(want.PID)), fds: [numProcFiles]int{-1, -1, -1, -1, -1}}
	if s.reserve() {
		fd, err := s.openRO(h.path(fileStat))
		if err != nil {
			s.release()
			return nil, err
		}
		h.fds[fileStat] = fd
	}
	var st procfs.Stat
	if _, err := h.readStat(buf, &st); err != nil {
		h.Close()
		return nil, err
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
	return s.open(path, unix.O_RDONLY|unix.O_CLOEXEC)
}

func (s *Source) open(path string, flags int) (int, error) {
	s.note(path)
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return -1, ErrGone
		}
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// Ensure opens the files of fields not opened yet (after a profile change), each in a place
// of the kept-open budget; a file the budget has no room for is read by path. Files that
// cannot be opened for lack of permission are remembered in Denied and not tried again.
func (h *Handle) Ensure(fields Fields) {
	todo := fields &^ h.tried
	h.tried |= todo
	open := func(f Fields, file, flags int) {
		if todo&f == 0 {
			return
		}
		if !h.src.reserve() {
			h.byPath |= f
			return
		}
		fd, err := h.src.open(h.path(file), flags)
		switch {
		case err == nil:
			h.fds[file] = fd
			return
		case errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE):
			// Out of descriptors is not a property of the process: the file is tried
			// again at the next sample rather than remembered as denied.
			h.tried &^= f
		case !errors.Is(err, ErrGone):
			h.denied |= f
		}
		h.src.release()
	}
	open(FieldDisk, fileIO, unix.O_RDONLY|unix.O_CLOEXEC)
	if h.src.schedstat {
		// A kernel without CONFIG_SCHED_INFO has no schedstat: the source knows it, and the
		// run-queue delay is left out rather than tried for every process.
		open(FieldWaits, fileSched, unix.O_RDONLY|unix.O_CLOEXEC)
	}
	if h.src.fdSizeWorks {
		// Before Linux 6.2 the directory is listed on every read: nothing is kept open.
		open(FieldFDs, fileFD, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	}
	if todo&FieldNetwork != 0 {
		ino, err := nsInode(h.dir + "/ns/net")
		switch {
		case err != nil:
			h.denied |= FieldNetwork
		case ino != h.src.selfNetNS && h.src.selfNetNS != 0:
			h.netOwn = true
			open(FieldNetwork, fileNetDev, unix.O_RDONLY|unix.O_CLOEXEC)
		}
	}
}

// ID returns the identity of the opened process.
func (h *Handle) ID() ID { return h.id }

// Close closes the kept-open files and gives their places in the budget back.
func (h *Handle) Close() {
	for i, fd := range h.fds {
		if fd >= 0 {
			_ = unix.Close(fd)
			h.fds[i] = -1
			h.src.release()
		}
	}
}

// read reads one of the process's files: through its kept-open descriptor, else by path.
func (h *Handle) read(file int, buf []byte) ([]byte, error) {
	if fd := h.fds[file]; fd >= 0 {
		return preadProc(fd, buf)
	}
	return h.src.readFile(h.path(file), buf)
}

// readStat reads and parses stat; it returns the content, which stays in buf until the next read.
func (h *Handle) readStat(buf []byte, st *procfs.Stat) ([]byte, error) {
	b, err := h.read(fileStat, buf)
	if err != nil {
		return nil, err
	}
	return b, procfs.ParseStat(b, st)
}

// has says whether a field's file is read: kept open, or read by path for want of room.
func (h *Handle) has(f Fields, file int) bool {
	return h.fds[file] >= 0 || h.byPath&f != 0
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
	if fields&FieldDisk != 0 && h.has(FieldDisk, fileIO) && h.denied&FieldDisk == 0 {
		b, err := h.read(fileIO, buf)
		switch {
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			h.denied |= FieldDisk // not tried again
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
			h.denied |= FieldFDs // not tried again
			r.Denied |= FieldFDs
		case err != nil:
			return err
		default:
			r.FDs = n
			r.Got |= FieldFDs
		}
	}
	if fields&FieldWaits != 0 && h.has(FieldWaits, fileSched) {
		b, err := h.read(fileSched, buf)
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
	if fields&FieldNetwork != 0 && h.has(FieldNetwork, fileNetDev) {
		b, err := h.read(fileNetDev, buf)
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

// countFDs counts open descriptors: st_size of the fd/ directory on Linux 6.2+ (kept open,
// else stat'ed by path), else a listing of the directory.
func (h *Handle) countFDs(buf []byte) (int64, error) {
	var st unix.Stat_t
	switch {
	case h.fds[fileFD] >= 0:
		if err := unix.Fstat(h.fds[fileFD], &st); err != nil {
			return 0, err
		}
		return st.Size, nil
	case h.src.fdSizeWorks:
		path := h.path(fileFD)
		h.src.note(path)
		if err := unix.Stat(path, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return 0, ErrGone
			}
			return 0, err
		}
		return st.Size, nil
	}
	fd, err := h.src.open(h.path(fileFD), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
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
