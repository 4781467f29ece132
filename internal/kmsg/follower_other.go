//go:build !linux

package kmsg

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// A Follower is only available on Linux.
type Follower struct{}

// Stats are a Follower's counters.
type Stats struct {
	Records, Overwritten, Kills uint64
}

// OpenFollower returns an error wrapping errors.ErrUnsupported.
func OpenFollower() (*Follower, error) {
	return nil, fmt.Errorf("kernel log on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// Run returns errors.ErrUnsupported.
func (*Follower) Run(context.Context, func(OOMKill)) error { return errors.ErrUnsupported }

// Stats returns zeros.
func (*Follower) Stats() Stats { return Stats{} }

// Close does nothing.
func (*Follower) Close() error { return nil }
