//go:build !linux

package process

import (
	"context"

	gp "github.com/shirou/gopsutil/v4/process"
)

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
