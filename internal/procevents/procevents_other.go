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
