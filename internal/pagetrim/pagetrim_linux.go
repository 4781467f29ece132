package pagetrim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PageOut advises MADV_RANDOM and MADV_PAGEOUT over every read-only private mapping of the running executable
// (identified by device and inode, so a binary replaced on disk by an upgrade is still found).
// Its writable data is left alone: written pages are anonymous memory, which paging out would
// only push to swap. Pages that another process also maps (two collectors from one file) are
// skipped by the kernel.
func PageOut() (Result, error) {
	var res Result
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return res, fmt.Errorf("stat /proc/self/exe: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return res, err
	}
	regions, err := executableRegions(maps, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	if err != nil {
		return res, err
	}
	if res.Before, err = rssFile(); err != nil {
		return res, err
	}
	for _, r := range regions {
		// MADV_RANDOM first: a page faulted back in is then read alone, not with the 128 KiB
		// of read-ahead around it, and the kernel's fault-around maps only neighbours that are
		// still cached, so what comes back is the pages in use (8 MiB rather than 14 of the
		// edge build with 100 tasks, BENCHMARKS.md).
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_RANDOM); errno != 0 {
			return res, fmt.Errorf("madvise(MADV_RANDOM) %#x-%#x: %w", r.start, r.end, errno)
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_PAGEOUT)
		if errno == unix.EINVAL {
			return res, ErrUnsupported
		}
		if errno != 0 {
			return res, fmt.Errorf("madvise(MADV_PAGEOUT) %#x-%#x: %w", r.start, r.end, errno)
		}
		res.Mappings++
		res.Mapped += uint64(r.end - r.start)
	}
	res.After, err = rssFile()
	return res, err
}

type region struct{ start, end uintptr }

// executableRegions returns the read-only private mappings of the file with the given device
// and inode, from the text of /proc/<pid>/maps:
//
//	00400000-00d5e000 r-xp 00000000 fd:01 1837393    /usr/bin/otelcol-propeller-edge
func executableRegions(maps []byte, major, minor uint32, ino uint64) ([]region, error) {
	var out []region
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 5 {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		if n, err := strconv.ParseUint(string(f[4]), 10, 64); err != nil || n != ino {
			continue
		}
		maj, min, ok := bytes.Cut(f[3], []byte(":"))
		if !ok {
			continue
		}
		if v, err := strconv.ParseUint(string(maj), 16, 32); err != nil || uint32(v) != major {
			continue
		}
		if v, err := strconv.ParseUint(string(min), 16, 32); err != nil || uint32(v) != minor {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			return nil, fmt.Errorf("maps: bad range %q", f[0])
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err := errors.Join(err1, err2); err != nil || end <= start {
			return nil, fmt.Errorf("maps: bad range %q", f[0])
		}
		out = append(out, region{uintptr(start), uintptr(end)})
	}
	return out, sc.Err()
}

// rssFile reads RssFile of /proc/self/status, in bytes.
func rssFile() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("RssFile:")); ok {
			kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("status: RssFile %q: %w", bytes.TrimSpace(v), err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("status: no RssFile line")
}
