package kmsg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Path is the kernel log device.
const Path = "/dev/kmsg"

// A Follower reads the kernel log as it is written and reports OOM kills.
type Follower struct {
	f        *os.File
	buf      []byte
	summary  OOMKill // the last oom-kill summary, for the kill line that follows it
	stopping atomic.Bool

	records, overwritten, kills atomic.Uint64
}

// Stats are a Follower's counters.
type Stats struct {
	Records     uint64 // records read
	Overwritten uint64 // times the kernel overwrote records before they were read (EPIPE)
	Kills       uint64 // OOM kills reported
}

// OpenFollower opens /dev/kmsg at its end: only what the kernel logs from now on is read.
// It fails when the log cannot be read (see the package documentation for the fallback).
func OpenFollower() (*Follower, error) {
	fd, err := unix.Open(Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", Path, err)
	}
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("seek to the end of %s: %w", Path, err)
	}
	// A non-blocking descriptor goes to the runtime's poller: Read parks the goroutine, and
	// Close or a deadline wakes it.
	return &Follower{f: os.NewFile(uintptr(fd), Path), buf: make([]byte, 8192)}, nil
}

// Run reads records until ctx ends or Close is called, and calls fn for each OOM kill, from
// Run's goroutine. It returns nil then, or the read error that stopped it.
func (fl *Follower) Run(ctx context.Context, fn func(OOMKill)) error {
	stop := context.AfterFunc(ctx, func() {
		fl.stopping.Store(true)
		_ = fl.f.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	for {
		n, err := fl.f.Read(fl.buf)
		switch {
		case err == nil:
			fl.record(fl.buf[:n], fn)
		case errors.Is(err, unix.EPIPE):
			// The ring buffer wrapped past the records not yet read; reading resumes at the
			// oldest one left.
			fl.overwritten.Add(1)
		case errors.Is(err, unix.EINVAL):
			// A record longer than the buffer: skipped by the kernel on the next read.
		case fl.stopping.Load() || errors.Is(err, os.ErrClosed):
			return nil
		default:
			return fmt.Errorf("read %s: %w", Path, err)
		}
	}
}

func (fl *Follower) record(b []byte, fn func(OOMKill)) {
	var r Record
	if ParseRecord(b, &r) != nil {
		return
	}
	fl.records.Add(1)
	if r.Priority>>3 != 0 {
		// Facility user and above: written to /dev/kmsg by a process, not by the kernel.
		return
	}
	var k OOMKill
	switch {
	case ParseOOMSummary(r.Message, &k):
		fl.summary = k
	case ParseOOMKill(r.Message, &k):
		if fl.summary.PID == k.PID {
			k.Cgroup, k.TaskCgroup = fl.summary.Cgroup, fl.summary.TaskCgroup
		}
		fl.summary = OOMKill{}
		k.Time = r.Time
		fl.kills.Add(1)
		fn(k)
	}
}

// Stats returns the counters since OpenFollower.
func (fl *Follower) Stats() Stats {
	return Stats{Records: fl.records.Load(), Overwritten: fl.overwritten.Load(), Kills: fl.kills.Load()}
}

// Close closes the log and makes Run return.
func (fl *Follower) Close() error {
	fl.stopping.Store(true)
	return fl.f.Close()
}
