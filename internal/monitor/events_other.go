//go:build !linux

package monitor

import "context"

// openKernelEvents is replaced by the Linux implementation once the process events source is
// wired in; until then every platform scans.
func openKernelEvents(context.Context, *Monitor) (EventSource, error) { return nil, errNoEvents }
