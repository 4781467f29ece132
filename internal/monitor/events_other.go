//go:build !linux

package monitor

import (
	"context"
	"errors"
)

// openKernelEvents: the kernel's process events are Linux's; elsewhere the monitor scans.
func openKernelEvents(context.Context, *Monitor) (EventSource, error) {
	return nil, errors.New("kernel process events are not available on this operating system")
}
