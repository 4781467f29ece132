package monitor

import (
	"context"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/kmsg"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// hooks are the monitor's waits and its ways out to the system. New uses defaultHooks; a
// test builds its monitor with its own (shorter waits, a pid file that hangs, a failing
// kernel log), so tests that change them still run in parallel.
type hooks struct {
	// exitGrace is how long a task whose process a sample found ended (a zombie, or gone)
	// waits for the kernel's exit record before it ends from a last reading; stopGrace how
	// long a stopped task's process has to end before its report is made from a last reading;
	// childGrace how long a process tree task's end waits for the records of descendants
	// still watched when its own process's record arrives.
	exitGrace, stopGrace, childGrace time.Duration
	// reconcileEvery is how often a discovery pass scans the whole process table when process
	// events keep the table current: it repairs anything the events missed.
	reconcileEvery time.Duration
	// notFoundAfter is how long a task is pending before the log says it is not found, and
	// notFoundEvery how often that line is repeated while it stays pending.
	notFoundAfter, notFoundEvery time.Duration

	// readPIDFile reads pid files for the discovery pass.
	readPIDFile func(path string) (int32, bool)
	// openEvents opens the kernel's process events for m and delivers them until ctx ends.
	openEvents func(ctx context.Context, m *Monitor) (EventSource, error)
	// openKernelLog opens the kernel log, for OOM kills.
	openKernelLog func() (*kmsg.Follower, error)
	// delayAccounting reads whether the kernel's delay accounting is on (delays.go).
	delayAccounting func(m *Monitor) (bool, error)
	// openGroupStats opens the kernel's thread group statistics (threads.go).
	openGroupStats func() (groupQuerier, error)
	// illegalMove is called for a move the state machine does not allow.
	illegalMove func(m *Monitor, t *task, to State)
	// opened, when set, is told every file the monitor's source opens for a task's samples.
	opened func(path string)
}

func defaultHooks() hooks {
	return hooks{
		exitGrace:      2 * time.Second,
		stopGrace:      5 * time.Second,
		childGrace:     200 * time.Millisecond,
		reconcileEvery: 30 * time.Second,
		notFoundAfter:  30 * time.Second,
		notFoundEvery:  10 * time.Minute,
		readPIDFile:    procmatch.ReadPIDFile,
		openEvents:     openKernelEvents,
		openKernelLog:  kmsg.OpenFollower,
		illegalMove:    logIllegalMove,
		openGroupStats: openGroupStats,

		delayAccounting: readDelayAccounting,
	}
}
