//go:build linux

package process

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// cgroupLayout says where the memory controller's files are: a cgroup v2 hierarchy that has
// the memory controller (v2Root), else a v1 memory hierarchy (v1Root), else nowhere.
type cgroupLayout struct {
	v2Root  string
	v1Root  string
	v2Mount string // the unified hierarchy, with or without the memory controller
	v1CPU   string // the v1 cpu controller's hierarchy (hybrid and v1 hosts), for throttling
}

func detectCgroupLayout(root string) cgroupLayout {
	l := detectMemoryLayout(root)
	l.v2Mount = v2Mount(root)
	// cpu is a link to cpu,cpuacct where the two controllers share a hierarchy; the v1 cpu
	// controller is known by its bandwidth files.
	if _, err := os.Stat(filepath.Join(root, "cpu", "cpu.cfs_period_us")); err == nil {
		l.v1CPU = filepath.Join(root, "cpu")
	}
	return l
}

func detectMemoryLayout(root string) cgroupLayout {
	hasMemory := func(dir string) bool {
		var buf [maxCgroupFile]byte
		b, err := readCgroupFile(filepath.Join(dir, "cgroup.controllers"), buf[:])
		return err == nil && containsWord(string(b), "memory")
	}
	switch {
	case hasMemory(root):
		return cgroupLayout{v2Root: root}
	case dirExists(filepath.Join(root, "memory")):
		return cgroupLayout{v1Root: filepath.Join(root, "memory")}
	case hasMemory(filepath.Join(root, "unified")):
		return cgroupLayout{v2Root: filepath.Join(root, "unified")}
	}
	return cgroupLayout{}
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// MemoryCgroup is a process's memory cgroup directory, remembered so its OOM kill count can be
// read after the process is gone. Root is the hierarchy's mount it lies under ("" when not
// known: Limit then reads Dir's own limit only).
type MemoryCgroup struct {
	Dir  string
	V2   bool
	Root string
}

// maxProcCgroup bounds what is read of /proc/<pid>/cgroup: a line per hierarchy (a dozen on a
// v1 host), each with a path a delegated user may make long.
const maxProcCgroup = 16 << 10

// procCgroup reads /proc/<pid>/cgroup, bounded by maxProcCgroup.
func (s *Source) procCgroup(pid int32) ([]byte, error) {
	return s.readFile(filepath.Join(s.root, strconv.Itoa(int(pid)), "cgroup"), make([]byte, maxProcCgroup))
}

// MemoryCgroupOf returns the memory cgroup a process runs in.
func (s *Source) MemoryCgroupOf(pid int32) (MemoryCgroup, bool) {
	b, err := s.procCgroup(pid)
	if err != nil {
		return MemoryCgroup{}, false
	}
	v2, v1, err := procfs.ParseCgroupPaths(b, "memory")
	switch {
	case err != nil:
	case s.cgroup.v2Root != "" && v2 != nil:
		return MemoryCgroup{Dir: filepath.Join(s.cgroup.v2Root, filepath.Clean("/"+string(v2))), V2: true, Root: s.cgroup.v2Root}, true
	case s.cgroup.v1Root != "" && v1 != nil:
		return MemoryCgroup{Dir: filepath.Join(s.cgroup.v1Root, filepath.Clean("/"+string(v1))), Root: s.cgroup.v1Root}, true
	}
	return MemoryCgroup{}, false
}

// OOMKills reads how many processes the OOM killer has killed in the cgroup: memory.events'
// oom_kill (v2, the cgroup and its descendants) or memory.oom_control's (v1, Linux 4.13+).
func (c MemoryCgroup) OOMKills() (uint64, bool) {
	if c.Dir == "" {
		return 0, false
	}
	var buf [maxCgroupFile]byte
	if c.V2 {
		b, err := readCgroupFile(filepath.Join(c.Dir, "memory.events"), buf[:])
		var e procfs.MemoryEvents
		if err != nil || procfs.ParseMemoryEvents(b, &e) != nil {
			return 0, false
		}
		return e.OOMKill, true
	}
	b, err := readCgroupFile(filepath.Join(c.Dir, "memory.oom_control"), buf[:])
	var oc procfs.MemoryOOMControl
	if err != nil || procfs.ParseMemoryOOMControl(b, &oc) != nil {
		return 0, false
	}
	return oc.OOMKill, true
}

// Limit reads the memory limit that applies to the cgroup: the smallest of its own and its
// ancestors' up to Root (memory.max, or v1's memory.limit_in_bytes). limited is false when
// none is set ("max", or v1's no-limit value). Each level is one open and read through
// readCgroupFile. A level without the file (a v2 root, a cgroup whose parent does not delegate
// the memory controller) is skipped; ErrGone when no level has one (the cgroup was removed),
// and any other failure, such as a file that is not regular, is returned: the result is then
// not to be used.
func (c MemoryCgroup) Limit() (limit uint64, limited bool, err error) {
	if c.Dir == "" {
		return 0, false, ErrGone
	}
	file := "memory.limit_in_bytes"
	if c.V2 {
		file = "memory.max"
	}
	found := false
	for d := c.Dir; ; d = filepath.Dir(d) {
		v, ok, err := readCgroupValue(filepath.Join(d, file))
		switch {
		case errors.Is(err, ErrGone):
		case err != nil:
			return 0, false, err
		default:
			found = true
			if ok && (!limited || v < limit) {
				limit, limited = v, true
			}
		}
		if c.Root == "" || d == c.Root || len(d) <= len(c.Root) {
			break
		}
	}
	if !found {
		return 0, false, ErrGone
	}
	return limit, limited, nil
}

// CgroupMemory returns the memory usage of the process's memory cgroup, and the limit that
// applies to it: the smallest limit of the cgroup and its ancestors. ok values say which of
// the two are known (none outside a cgroup hierarchy, no limit when unlimited).
func (s *Source) CgroupMemory(pid int32) (usage uint64, usageOK bool, limit uint64, limitOK bool) {
	b, err := s.procCgroup(pid)
	if err != nil {
		return 0, false, 0, false
	}
	v2, v1, err := procfs.ParseCgroupPaths(b, "memory")
	if err != nil {
		return 0, false, 0, false
	}
	var base, rel, usageFile, limitFile string
	switch {
	case s.cgroup.v2Root != "" && v2 != nil:
		base, rel, usageFile, limitFile = s.cgroup.v2Root, string(v2), "memory.current", "memory.max"
	case s.cgroup.v1Root != "" && v1 != nil:
		base, rel, usageFile, limitFile = s.cgroup.v1Root, string(v1), "memory.usage_in_bytes", "memory.limit_in_bytes"
	default:
		return 0, false, 0, false
	}
	dir := filepath.Join(base, filepath.Clean("/"+rel))
	if v, ok, _ := readCgroupValue(filepath.Join(dir, usageFile)); ok {
		usage, usageOK = v, true
	}
	for d := dir; ; d = filepath.Dir(d) {
		if v, limited, err := readCgroupValue(filepath.Join(d, limitFile)); err == nil && limited && (!limitOK || v < limit) {
			limit, limitOK = v, true
		}
		if d == base || len(d) <= len(base) {
			break
		}
	}
	return usage, usageOK, limit, limitOK
}

func readCgroupValue(path string) (uint64, bool, error) {
	var buf [64]byte // a decimal uint64 or "max"
	b, err := readCgroupFile(path, buf[:])
	if err != nil {
		return 0, false, err
	}
	return procfs.ParseCgroupValue(b)
}
