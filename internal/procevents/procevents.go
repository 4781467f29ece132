// Package procevents listens to what the Linux kernel says about processes as it happens: the
// process events connector (netlink NETLINK_CONNECTOR, group CN_IDX_PROC: fork and exec of
// every process on the host) and the TASKSTATS exit accounting (generic netlink: one record per
// exiting thread, with its CPU times, peak RSS, storage I/O, elapsed time and exit status).
//
// A Listener passes every fork of a new thread group and every exec to a Handler, and sums the
// exit records of the thread groups it is told to Watch into one Exit per group. Records of
// groups nobody watches are dropped in constant time without allocating. Both sockets need
// root (CAP_NET_ADMIN) in the initial PID and user namespaces; Open says which of those is
// missing with an error the caller tests with errors.Is.
//
// On other operating systems Open returns an error wrapping errors.ErrUnsupported.
//
// What the kernel sends (observed on Linux 6.18, taskstats version 16):
//   - One TASKSTATS_CMD_NEW message per exiting thread, sent from the CPU it exits on, with
//     that thread's own CPU times, I/O and etime; hiwater_rss is the whole mm's, the same in
//     every record of a group. ac_tgid (version 12+) names the group in every record.
//   - The thread that ends the group gets AGROUP (0x20) in ac_flag; it is not always the
//     leader (a Go process's os.Exit runs on any thread). When the group ever had more than
//     one thread, that record also carries TASKSTATS_TYPE_AGGR_TGID, whose stats hold only
//     delay accounting (no CPU, RSS or I/O): the totals are the sum of the thread records.
//     The other threads' records may reach the socket after it, so such an Exit lingers.
//   - Threads stopped by exit_group get AXSIG (0x10) and the group's exit code, so every
//     record of a group has the same wait status: code << 8 for exit(code), the signal for a
//     kill (9 for SIGKILL, with 0x80 when it dumped core).
//   - ac_tgetime (version 12+) is the group's wall time, ac_etime the thread's; ac_btime64 is
//     whole seconds only, so Start is reckoned from the microsecond elapsed time instead.
//   - The connector's exit event carries the same status; the listener does not need it and
//     asks the kernel (6.6+) for fork and exec events only.
package procevents // import "github.com/otelcol-propeller/otelcol-propeller/internal/procevents"

import (
	"errors"
	"time"
)

// Errors of Open, for errors.Is. Each names a reason the caller can log in one line and fall
// back to scanning /proc.
var (
	// ErrNotPermitted: the process may not open the sockets (not root, or no CAP_NET_ADMIN).
	ErrNotPermitted = errors.New("process events need CAP_NET_ADMIN (root)")
	// ErrNotInitialNamespace: the process is not in the initial PID or user namespace, where
	// the kernel sends nothing to a listener (it would open, and then never hear an event).
	ErrNotInitialNamespace = errors.New("process events are only delivered in the initial PID and user namespaces")
	// ErrUnsupported is errors.ErrUnsupported: not Linux, or a kernel without the proc
	// connector or the TASKSTATS family (or a network namespace other than the initial one,
	// where the connector does not exist).
	ErrUnsupported = errors.ErrUnsupported
)

// UserHZ is the unit of /proc/<pid>/stat's start time (field 22), which Exit.StartTicks
// matches.
const UserHZ = 100

// Status is a raw wait status as the kernel reports it: the exit code shifted left by 8 for a
// process that exited, or the terminating signal (with 0x80 when it dumped core).
type Status uint32

// Exited reports whether the process exited normally (exit or return from main).
func (s Status) Exited() bool { return s&0x7f == 0 }

// ExitCode is the exit code of a process that exited, or -1.
func (s Status) ExitCode() int {
	if !s.Exited() {
		return -1
	}
	return int(s>>8) & 0xff
}

// Signaled reports whether a signal terminated the process.
func (s Status) Signaled() bool { return s&0x7f != 0 && s&0x7f != 0x7f }

// Signal is the signal that terminated the process, or -1.
func (s Status) Signal() int {
	if !s.Signaled() {
		return -1
	}
	return int(s & 0x7f)
}

// CoreDumped reports whether the terminating signal dumped core.
func (s Status) CoreDumped() bool { return s.Signaled() && s&0x80 != 0 }

// Exit is what the kernel's exit accounting says of one ended thread group (a process): the
// totals of the thread records the listener summed. The kernel sends one record per exiting
// thread, each with that thread's own CPU times and I/O; the record of the thread that ended
// the group carries the AGROUP flag and the exit status.
type Exit struct {
	PID       int // thread group id
	ParentPID int // the parent's thread group id
	Command   string
	Status    Status

	// Start is when the group began, to the microsecond: the wall clock when its last record
	// was read, less Elapsed. It is late by the time the record spent in the socket (well
	// under a millisecond when the listener keeps up).
	Start time.Time
	// StartBoot is Start on the boot clock (CLOCK_BOOTTIME), the clock of /proc/<pid>/stat's
	// start time: see StartTicks and SameStart.
	StartBoot time.Duration
	// Elapsed is the group's wall time (ac_tgetime of the last record, or ac_etime of the
	// leader's record on kernels before taskstats version 12), microsecond precision.
	Elapsed time.Duration

	// User and System are the group's CPU time, summed over its threads: the time the
	// scheduler ran them (cpu_run_virtual_total), split in the proportion of the tick-sampled
	// ac_utime and ac_stime, as /proc/<pid>/stat and getrusage split it; the ticks themselves
	// when the kernel's records lack the run time.
	User, System time.Duration
	PeakRSS      uint64 // bytes: the largest hiwater_rss of the records
	// Storage I/O, summed over the threads (read_bytes, write_bytes, cancelled_write_bytes).
	ReadBytes, WriteBytes, CancelledWriteBytes uint64

	Threads int // how many thread records were summed
	// Delays is what the kernel's delay accounting recorded of the group's waits, summed over
	// its threads. All zero when delay accounting was off as the threads started
	// (kernel.task_delayacct, off by default since Linux 5.14): the record cannot tell that
	// from no wait at all, so the caller decides from the setting whether to report them.
	Delays Delays
	// Complete is false when the sums may be short: the group started before the listener
	// opened, records were lost (socket overflow) while it lived, or the kernel's records do
	// not name their thread group (taskstats before version 12), so only the last thread's
	// record is known to be the group's.
	Complete bool
}

// Delays are the times a thread group spent waiting, by cause, as delay accounting counts them.
type Delays struct {
	CPU           time.Duration // runnable, waiting for a CPU (cpu_delay_total)
	BlockIO       time.Duration // waiting for synchronous block I/O (blkio_delay_total)
	SwapIn        time.Duration // waiting for pages to be swapped in (swapin_delay_total)
	MemoryReclaim time.Duration // in direct memory reclaim (freepages_delay_total)
}

// StartTicks is StartBoot in clock ticks (UserHZ), the unit of /proc/<pid>/stat's start time.
func (e *Exit) StartTicks() uint64 { return uint64(e.StartBoot / (time.Second / UserHZ)) }

// SameStart reports whether ticks, a start time read from /proc/<pid>/stat, is this group's:
// the process identity is pid and start time. The record does not carry the start time
// itself, so StartBoot is reckoned back from the elapsed time and may be late by the time
// the record waited in the socket; slack bounds that.
func (e *Exit) SameStart(ticks uint64, slack time.Duration) bool {
	start := time.Duration(ticks) * (time.Second / UserHZ)
	return start <= e.StartBoot+time.Second/UserHZ && e.StartBoot <= start+time.Second/UserHZ+slack
}

// Handler receives what the listener hears. Its methods are never called concurrently (the
// listener serialises them), but they are called from the listener's goroutines: a handler
// that blocks holds up both sockets, and the kernel drops what does not fit in their buffers.
type Handler interface {
	// Fork: a new thread group (not a thread): child forked by parent (thread group ids).
	Fork(parent, child int)
	// Exec: a thread group called exec.
	Exec(pid int)
	// Exit: a watched thread group ended (see Listener.Watch). It is delivered once, when the
	// group's last thread record arrives.
	Exit(e Exit)
	// Lost: the kernel dropped events or records because a socket's buffer was full
	// (ENOBUFS). The caller must resync from /proc: a fork or exec was missed, or a watched
	// group's Exit may never come.
	Lost()
}

// Options tune a Listener.
type Options struct {
	// ReceiveBuffer is each socket's receive buffer in bytes; 0 means 4 MiB. It bounds the
	// burst the listener absorbs while its goroutines are not scheduled. As root the buffer
	// is set past net.core.rmem_max.
	ReceiveBuffer int
	// Linger is how long an Exit of a multi-threaded group waits after the group's last
	// record for records of its other threads, which the kernel may send after it (threads
	// exit on several CPUs at once); 0 means 50 ms. Single-threaded groups are delivered at
	// once.
	Linger time.Duration
	// Coalesce is how long a reader waits, after a message woke it, before it reads what
	// followed in one go; 0 means 20 ms, negative means never (one wake-up per message). Under
	// a storm of processes it halves the listener's CPU (BENCHMARKS.md); it delays a message
	// that follows another by at most this much, and a message after a quiet spell not at all.
	Coalesce time.Duration
}

// Stats are the listener's counters since Open.
type Stats struct {
	Events           uint64 // process connector messages read
	Records          uint64 // taskstats records (one per exiting thread) read
	DroppedUnwatched uint64 // taskstats records of groups nobody watched, dropped
	Exits            uint64 // Exits delivered
	Lost             uint64 // overflows (ENOBUFS) on either socket
}
