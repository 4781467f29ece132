// Package process reads the counters of individual processes: a portable view (identity,
// one reading of a process's counters, a scan of the process table) with a Linux fast path
// that keeps /proc files open and parses them in place, and a gopsutil fallback for other
// operating systems.
package process // import "github.com/otelcol-propeller/otelcol-propeller/internal/process"

import (
	"errors"
	"os/user"
	"strconv"
	"sync"
)

// ErrGone is returned when the process has exited and been reaped, or its pid now belongs to
// another process.
var ErrGone = errors.New("process is gone")

// ID identifies one process incarnation. A pid alone is not enough: pids are reused, so the
// start time is part of the identity.
type ID struct {
	PID   int32
	Start uint64 // start time: clock ticks after boot on Linux, milliseconds since the epoch elsewhere
}

// Fields selects the counters a Read fetches. A field that is not asked for is not read at all.
type Fields uint8

// The counters of a process, grouped by the file they come from on Linux.
const (
	FieldCPU     Fields = 1 << iota // CPU times (stat)
	FieldMemory                     // resident and virtual size (stat)
	FieldDisk                       // storage bytes (io)
	FieldNetwork                    // namespace network bytes (net/dev), only for a network namespace of its own
	FieldThreads                    // thread count (stat)
	FieldFDs                        // open file descriptors (fd/)
	FieldWaits                      // run-queue delay (schedstat); with delay accounting, block I/O delay (stat)
	// FieldIODelay is set in Reading.Got only: the block I/O delay of stat, read with
	// FieldWaits when the kernel's delay accounting is on (Source.SetDelayAccounting).
	FieldIODelay

	AllFields = FieldCPU | FieldMemory | FieldDisk | FieldNetwork | FieldThreads | FieldFDs | FieldWaits
)

// Reading is one read of a process's counters. Got says which fields hold values; Denied says
// which could not be read because the collector lacks permission (for example another user's
// io file); those are not retried on every sample.
type Reading struct {
	Got    Fields
	Denied Fields
	// Impossible says which figures the kernel showed but cannot be true, and are left out:
	// more wait than the process has lived (delay accounting on some kernels adds the time
	// since boot to a thread's block I/O delay).
	Impossible Fields
	State      byte // Linux process state: 'Z' is a zombie, exited but not yet reaped

	CPUUser, CPUSystem    float64 // seconds of CPU in user and kernel mode
	RSS, VMS              uint64  // bytes
	ReadBytes, WriteBytes uint64  // storage bytes
	RxBytes, TxBytes      uint64  // network bytes of the process's own network namespace
	Threads               int64
	FDs                   int64
	// RunDelay is the time the process (as read, its main thread: see procfs.Schedstat) was runnable
	// but waiting for a CPU, in ns (FieldWaits); IODelayTicks the time it waited for
	// synchronous block I/O, in clock ticks (FieldIODelay). Both cumulative.
	RunDelay     uint64
	IODelayTicks uint64
	// GroupThreads is the process's thread count (stat's num_threads), read with FieldWaits:
	// with more than one thread, RunDelay and IODelayTicks as read are the main thread's
	// alone, and the caller may replace them with the whole thread group's.
	GroupThreads int64
	// AgeTicks is how long the process has lived, in clock ticks with a second to spare, read
	// with FieldWaits: no wait of one thread is longer.
	AgeTicks uint64
	// GroupDelays says that RunDelay and IODelayTicks are the whole thread group's, live and
	// exited threads (the caller's TASKSTATS query), not the main thread's.
	GroupDelays bool
	// ExitStatus is the wait status of an exited process (Exited), as the kernel prints it:
	// the exit code shifted left by 8, or the terminating signal. HasExitStatus says it is known.
	ExitStatus    uint32
	HasExitStatus bool
}

// Exited reports whether the reading is of a process that has exited but can still be read
// (a zombie): it is the process's last reading.
func (r *Reading) Exited() bool { return r.State == 'Z' || r.State == 'X' }

// Entry is one process of a scan of the process table.
type Entry struct {
	ID   ID
	PPID int32
	Comm string // kernel command name, at most 15 bytes on Linux
}

// Details are the slower-to-read descriptive fields of a process, read once per process.
type Details struct {
	Executable string // base name of the executable (falls back to Comm when it cannot be read)
	Cmdline    string // arguments joined by spaces
	UID        int64  // effective uid, -1 when unknown: the owner shown in samples
	// Owner is the real and effective uids, for rules that decide whom a process belongs to.
	Owner Owner
}

var owners sync.Map // uid (int64) -> string

// OwnerName returns the user name of uid, or the uid in decimal when it has no name. Results
// are cached; user databases rarely change while a collector runs.
func OwnerName(uid int64) string {
	if uid < 0 {
		return ""
	}
	if v, ok := owners.Load(uid); ok {
		return v.(string)
	}
	name := strconv.FormatInt(uid, 10)
	if u, err := user.LookupId(name); err == nil && u.Username != "" {
		name = u.Username
	}
	owners.Store(uid, name)
	return name
}
