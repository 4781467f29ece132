//go:build !linux

package procevents

import (
	"context"
	"fmt"
	"runtime"
)

// A Listener is only available on Linux.
type Listener struct{}

// Open returns an error wrapping ErrUnsupported: the process connector and taskstats are
// Linux's.
func Open(Options) (*Listener, error) {
	return nil, fmt.Errorf("process events on %s: %w", runtime.GOOS, ErrUnsupported)
}

// Watch does nothing.
func (*Listener) Watch(int) {}

// Unwatch does nothing.
func (*Listener) Unwatch(int) {}

// Run returns ErrUnsupported.
func (*Listener) Run(context.Context, Handler) error { return ErrUnsupported }

// Stats returns zeros.
func (*Listener) Stats() Stats { return Stats{} }

// Close does nothing.
func (*Listener) Close() error { return nil }

// GroupStats is only available on Linux.
type GroupStats struct{}

// OpenGroupStats returns an error wrapping ErrUnsupported: TASKSTATS is Linux's.
func OpenGroupStats() (*GroupStats, error) {
	return nil, fmt.Errorf("taskstats on %s: %w", runtime.GOOS, ErrUnsupported)
}

// Delays returns ErrUnsupported.
func (*GroupStats) Delays(int, *Delays) error { return ErrUnsupported }

// Close does nothing.
func (*GroupStats) Close() error { return nil }
