//go:build !linux

package process

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/mem"
	gp "github.com/shirou/gopsutil/v4/process"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// Source reads processes through gopsutil. It is the portable fallback: correct, not fast.
type Source struct {
	numCPU   int
	memTotal uint64
}

// NewSource returns a Source; the roots are meaningful on Linux only.
func NewSource(_, _ string) (*Source, error) {
	s := &Source{numCPU: runtime.NumCPU()}
	if vm, err := mem.VirtualMemory(); err == nil {
		s.memTotal = vm.Total
	}
	return s, nil
}

// Close releases nothing on this platform.
func (*Source) Close() error { return nil }

// NumCPU is the number of logical CPUs of the host.
func (s *Source) NumCPU() int { return s.numCPU }

// MemTotal is the host's total memory in bytes.
func (s *Source) MemTotal() uint64 { return s.memTotal }

// StartTime converts an ID's start (milliseconds since the epoch here) to wall-clock time.
func (*Source) StartTime(id ID) time.Time { return time.UnixMilli(int64(id.Start)) }

// CPUTimes reads the machine-wide CPU times, in clock ticks as on Linux.
func (*Source) CPUTimes() (procfs.CPUTimes, error) {
	ts, err := cpu.Times(false)
	if err != nil || len(ts) == 0 {
		return procfs.CPUTimes{}, errors.Join(errors.New("read machine CPU times"), err)
	}
	t := ts[0]
	ticks := func(s float64) uint64 { return uint64(s * procfs.UserHZ) }
	return procfs.CPUTimes{
		User: ticks(t.User), Nice: ticks(t.Nice), System: ticks(t.System), Idle: ticks(t.Idle),
		IOWait: ticks(t.Iowait), IRQ: ticks(t.Irq), SoftIRQ: ticks(t.Softirq), Steal: ticks(t.Steal),
	}, nil
}

// CgroupMemory is Linux-only.
func (*Source) CgroupMemory(int32) (uint64, bool, uint64, bool) { return 0, false, 0, false }

// Handle is a process opened for repeated reading.
type Handle struct {
	id ID
	p  *gp.Process
}

// Open opens the process with the given pid. If want.Start is not zero, a process with
// another start time is treated as gone (the pid was reused).
func (s *Source) Open(want ID, fields Fields, _ []byte) (*Handle, error) {
	p, err := gp.NewProcess(want.PID)
	if err != nil {
		return nil, ErrGone
	}
	ct, err := p.CreateTime()
	if err != nil {
		return nil, ErrGone
	}
	id := ID{PID: want.PID, Start: uint64(ct)}
	if want.Start != 0 && want.Start != id.Start {
		return nil, ErrGone
	}
	return &Handle{id: id, p: p}, nil
}

// Ensure has nothing to open on this platform.
func (*Handle) Ensure(Fields) {}

// ID returns the identity of the opened process.
func (h *Handle) ID() ID { return h.id }

// OwnNetworkNamespace is always false outside Linux: network bytes are never attributed.
func (*Handle) OwnNetworkNamespace() bool { return false }

// Close releases the handle.
func (*Handle) Close() {}

// Read reads the asked fields into r.
func (h *Handle) Read(fields Fields, r *Reading, _ []byte) error {
	ctx := context.Background()
	*r = Reading{}
	if ok, err := h.p.IsRunningWithContext(ctx); err != nil || !ok {
		return ErrGone
	}
	if fields&FieldCPU != 0 {
		if t, err := h.p.TimesWithContext(ctx); err == nil {
			r.CPUUser, r.CPUSystem = t.User, t.System
			r.Got |= FieldCPU
		}
	}
	if fields&FieldMemory != 0 {
		if m, err := h.p.MemoryInfoWithContext(ctx); err == nil {
			r.RSS, r.VMS = m.RSS, m.VMS
			r.Got |= FieldMemory
		}
	}
	if fields&FieldDisk != 0 {
		if io, err := h.p.IOCountersWithContext(ctx); err == nil {
			r.ReadBytes, r.WriteBytes = io.ReadBytes, io.WriteBytes
			r.Got |= FieldDisk
		} else {
			r.Denied |= FieldDisk
		}
	}
	if fields&FieldThreads != 0 {
		if n, err := h.p.NumThreadsWithContext(ctx); err == nil {
			r.Threads = int64(n)
			r.Got |= FieldThreads
		}
	}
	if fields&FieldFDs != 0 {
		if n, err := h.p.NumFDsWithContext(ctx); err == nil {
			r.FDs = int64(n)
			r.Got |= FieldFDs
		} else {
			r.Denied |= FieldFDs
		}
	}
	return nil
}

// Scan calls fn for every process of the table.
func (*Source) Scan(_ []byte, fn func(Entry)) error {
	pids, err := gp.Pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if e, ok := lookup(pid); ok {
			fn(e)
		}
	}
	return nil
}

// Lookup returns the table entry of one pid.
func (*Source) Lookup(pid int32, _ []byte) (Entry, bool) { return lookup(pid) }

func lookup(pid int32) (Entry, bool) {
	p, err := gp.NewProcess(pid)
	if err != nil {
		return Entry{}, false
	}
	ct, err := p.CreateTime()
	if err != nil {
		return Entry{}, false
	}
	ppid, _ := p.Ppid()
	name, _ := p.Name()
	return Entry{ID: ID{PID: pid, Start: uint64(ct)}, PPID: ppid, Comm: name}, true
}

// Describe reads a process's executable name, command line and owner.
func (*Source) Describe(e Entry, _ []byte) (Details, error) {
	p, err := gp.NewProcess(e.ID.PID)
	if err != nil {
		return Details{}, ErrGone
	}
	d := Details{Executable: e.Comm, UID: -1}
	if exe, err := p.Exe(); err == nil && exe != "" {
		d.Executable = filepath.Base(exe)
	}
	d.Cmdline, _ = p.Cmdline()
	if uids, err := p.Uids(); err == nil && len(uids) > 0 {
		d.UID = int64(uids[0])
	}
	if again, ok := lookup(e.ID.PID); !ok || again.ID != e.ID {
		return Details{}, ErrGone
	}
	return d, nil
}

// Cgroup is Linux-only.
type Cgroup struct{}

// CgroupReading is Linux-only.
type CgroupReading struct {
	HasCPU, HasMemory, HasPeak, HasLimit, HasIO, HasPids bool
	CPUUser, CPUSystem                                   float64
	Memory, Peak, Limit                                  uint64
	ReadBytes, WriteBytes                                uint64
	Pids                                                 int64
}

// CgroupV2Root is Linux-only.
func (*Source) CgroupV2Root() string { return "" }

// OpenCgroup is Linux-only.
func (*Source) OpenCgroup(string) (*Cgroup, error) {
	return nil, errors.New("cgroup tasks are supported on Linux only")
}

// Dir is Linux-only.
func (*Cgroup) Dir() string { return "" }

// Close is Linux-only.
func (*Cgroup) Close() {}

// Read is Linux-only.
func (*Cgroup) Read(*CgroupReading, []byte) error { return ErrGone }

// Procs is Linux-only.
func (*Cgroup) Procs([]byte, func(int32)) error { return nil }

// ThreadsAndFDs reads one process's thread and descriptor counts.
func (*Source) ThreadsAndFDs(pid int32, _ []byte) (int64, int64, bool) {
	p, err := gp.NewProcess(pid)
	if err != nil {
		return 0, 0, false
	}
	t, _ := p.NumThreads()
	f, _ := p.NumFDs()
	return int64(t), int64(f), true
}

// Environ reads a process's environment entries.
func (*Source) Environ(e Entry, _ []byte) ([]string, error) {
	p, err := gp.NewProcess(e.ID.PID)
	if err != nil {
		return nil, ErrGone
	}
	return p.Environ()
}

// SetKeptOpenBudget has no effect here: gopsutil keeps nothing open between reads.
func (*Source) SetKeptOpenBudget(int) {}
