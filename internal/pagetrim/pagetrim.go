// Package pagetrim hands back to the kernel the resident pages of the running executable's
// read-only mappings: its machine code and read-only data.
//
// A Go program's resident set counts every page of its executable that was ever touched and
// not yet reclaimed. The Collector touches most of its file while starting (every package's
// init, the configuration's decoding through reflection, each component's construction), and
// Linux maps up to 64 KiB of cached file around each page fault, so a collector that samples
// a hundred tasks keeps 23-24 MiB of its 30 MB binary resident, of which it uses about half
// once it runs (BENCHMARKS.md, "Architectures and the edge build"). Once start-up is over,
// MADV_PAGEOUT on those mappings drops the pages from the process and, where no other process
// maps them and they are clean, from the page cache; the kernel does that for a file's pages
// only when the process owns the file or may write it, so MADV_DONTNEED and
// POSIX_FADV_DONTNEED do the same for a service user running a root-owned binary. The pages
// still in use come back on their next touch, read from the file one page at a time
// (MADV_RANDOM). Pages another process maps, and dirty pages (a binary written moments ago,
// not yet on disk), are only unmapped.
package pagetrim // import "github.com/otelcol-propeller/otelcol-propeller/internal/pagetrim"

import "errors"

// ErrUnsupported is returned outside Linux.
var ErrUnsupported = errors.New("paging the executable out is supported on Linux only")

// Result is what one PageOut did.
type Result struct {
	// Mappings is the number of the executable's read-only mappings advised.
	Mappings int
	// Mapped is their total length in bytes.
	Mapped uint64
	// Before and After are the process's resident file-backed memory (RssFile) in bytes, read
	// just before and just after.
	Before, After uint64
}
