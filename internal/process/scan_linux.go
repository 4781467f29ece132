//go:build linux

package process

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

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

// Describe reads a process's executable name, command line and owner (the real and effective
// uids of its status file). It fails with ErrGone
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
	// The status file's uids, not the owner of the directory: that is root for a process
	// that made itself non-dumpable, whoever started it.
	d.Owner = unknownOwner
	if b, err := readFile(filepath.Join(dir, "status"), buf); err == nil {
		if o, ok := parseStatusUIDs(b); ok {
			d.Owner, d.UID = o, o.Effective
		}
	}
	if again, ok := s.entry(e.ID.PID, buf); !ok || again.ID != e.ID {
		return Details{}, ErrGone
	}
	return d, nil
}
