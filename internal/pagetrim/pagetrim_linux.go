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

// PageOut advises MADV_RANDOM, MADV_PAGEOUT and MADV_DONTNEED over every read-only private
// mapping of the running executable. Its writable data is left alone: written pages are anonymous memory,
// which paging out would only push to swap. Pages that another process also maps (two
// collectors from one file) are skipped by the kernel.
func PageOut() (Result, error) {
	var res Result
	exe, err := executable()
	if err != nil {
		return res, err
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return res, err
	}
	regions, err := executableRegions(smaps, exe)
	if err != nil {
		return res, err
	}
	if len(regions) == 0 {
		return res, fmt.Errorf("no read-only mapping of the executable (%s, device %d:%d, inode %d) in /proc/self/smaps",
			exe.path, exe.major, exe.minor, exe.ino)
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
		// EINVAL: Linux before 5.4 has no MADV_PAGEOUT; MADV_DONTNEED and the cache drop
		// below do the same work there.
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_PAGEOUT)
		if errno != 0 && errno != unix.EINVAL {
			return res, fmt.Errorf("madvise(MADV_PAGEOUT) %#x-%#x: %w", r.start, r.end, errno)
		}
		// MADV_PAGEOUT leaves file pages alone unless the process owns the file or may write
		// it (a side channel otherwise): a service user running a root-owned binary gets
		// nothing from it. MADV_DONTNEED then takes the pages out of the process all the same
		// (they stay in the page cache, unmapped, which the kernel reclaims first); the next
		// touch reads them from the file, which is safe only where no page was ever written:
		// a mapping holding anonymous (copied-on-write) pages is left as it is.
		if r.anon == 0 {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_DONTNEED); errno != 0 {
				return res, fmt.Errorf("madvise(MADV_DONTNEED) %#x-%#x: %w", r.start, r.end, errno)
			}
		}
		res.Mappings++
		res.Mapped += uint64(r.end - r.start)
	}
	// What MADV_PAGEOUT did not drop from the page cache (pages of a file this process may not
	// write), POSIX_FADV_DONTNEED does for any reader: the kernel drops the file's clean pages
	// that no process maps. Otherwise the kernel's fault-around would map them again beside
	// each page that comes back: 14 MiB rather than 8 of the edge build with 100 tasks.
	if err := dropCache(); err != nil {
		return res, err
	}
	res.After, err = rssFile()
	return res, err
}

func dropCache() error {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise(POSIX_FADV_DONTNEED) %s: %w", f.Name(), err)
	}
	return nil
}

type region struct {
	start, end uintptr
	anon       uint64 // the mapping's anonymous (written, copied-on-write) kB
}

// file identifies the executable as /proc/<pid>/maps names it: by device and inode (which
// survive the file being replaced on disk by an upgrade), or by path, for filesystems such as
// overlayfs (containers) whose maps entries carry the device and inode of the underlying file
// rather than those stat reports.
type file struct {
	major, minor uint32
	ino          uint64
	path         string
}

func executable() (file, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return file{}, fmt.Errorf("stat /proc/self/exe: %w", err)
	}
	path, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return file{}, err
	}
	return file{major: unix.Major(st.Dev), minor: unix.Minor(st.Dev), ino: st.Ino, path: path}, nil
}

// executableRegions returns the read-only private mappings of exe, from the text of
// /proc/<pid>/smaps: a header line per mapping, as in /proc/<pid>/maps,
//
//	00400000-00d5e000 r-xp 00000000 fd:01 1837393    /usr/bin/otelcol-propeller-edge
//
// then its counters, one a line (Anonymous: is the one read).
func executableRegions(smaps []byte, exe file) ([]region, error) {
	var out []region
	in := false // the counters that follow belong to a mapping of exe
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Bytes()
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("Anonymous:")); ok {
			if in {
				kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("smaps: Anonymous %q: %w", bytes.TrimSpace(v), err)
				}
				out[len(out)-1].anon = kb
			}
			continue
		}
		if !bytes.Contains(f[0], []byte("-")) || len(f) < 5 {
			continue // another counter
		}
		in = false
		if len(f) < 6 {
			continue // anonymous
		}
		perms := f[1]
		if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		// the path is the rest of the line after the inode: it may hold spaces
		path := string(bytes.TrimSpace(line[bytes.Index(line, f[5]):]))
		if !sameFile(f[3], f[4], path, exe) {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			return nil, fmt.Errorf("smaps: bad range %q", f[0])
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err := errors.Join(err1, err2); err != nil || end <= start {
			return nil, fmt.Errorf("smaps: bad range %q", f[0])
		}
		out = append(out, region{start: uintptr(start), end: uintptr(end)})
		in = true
	}
	return out, sc.Err()
}

func sameFile(dev, inode []byte, path string, exe file) bool {
	if path == exe.path {
		return true
	}
	if n, err := strconv.ParseUint(string(inode), 10, 64); err != nil || n != exe.ino {
		return false
	}
	maj, min, ok := bytes.Cut(dev, []byte(":"))
	if !ok {
		return false
	}
	vmaj, err1 := strconv.ParseUint(string(maj), 16, 32)
	vmin, err2 := strconv.ParseUint(string(min), 16, 32)
	return err1 == nil && err2 == nil && uint32(vmaj) == exe.major && uint32(vmin) == exe.minor
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
