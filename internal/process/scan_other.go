//go:build !linux

package process

import (
	"path/filepath"

	gp "github.com/shirou/gopsutil/v4/process"
)

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
	d.Owner = unknownOwner
	if uids, err := p.Uids(); err == nil && len(uids) >= 2 {
		d.Owner = Owner{Real: int64(uids[0]), Effective: int64(uids[1])}
		d.UID = d.Owner.Effective
	}
	if again, ok := lookup(e.ID.PID); !ok || again.ID != e.ID {
		return Details{}, ErrGone
	}
	return d, nil
}

// Environ reads a process's environment entries.
func (*Source) Environ(e Entry, _ []byte) ([]string, error) {
	p, err := gp.NewProcess(e.ID.PID)
	if err != nil {
		return nil, ErrGone
	}
	return p.Environ()
}
