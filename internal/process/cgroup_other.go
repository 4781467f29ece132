//go:build !linux

package process

import (
	"errors"

	gp "github.com/shirou/gopsutil/v4/process"
)

// MemoryCgroup is Linux-only.
type MemoryCgroup struct {
	Dir  string
	V2   bool
	Root string
}

// MemoryCgroupOf is Linux-only.
func (*Source) MemoryCgroupOf(int32) (MemoryCgroup, bool) { return MemoryCgroup{}, false }

// OOMKills is Linux-only.
func (MemoryCgroup) OOMKills() (uint64, bool) { return 0, false }

// Limit is Linux-only.
func (MemoryCgroup) Limit() (uint64, bool, error) { return 0, false, ErrGone }

// CgroupMemory is Linux-only.
func (*Source) CgroupMemory(int32) (uint64, bool, uint64, bool) { return 0, false, 0, false }

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
