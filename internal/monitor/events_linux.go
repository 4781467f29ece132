//go:build linux

package monitor

import (
	"context"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procevents"
)

// openKernelEvents opens the kernel's process events connector and exit accounting and
// delivers what they say to m until ctx ends or the source is closed. A socket error at run
// time turns the monitor back to scanning; it never stops the collector.
func openKernelEvents(ctx context.Context, m *Monitor) (EventSource, error) {
	l, err := procevents.Open(procevents.Options{})
	if err != nil {
		return nil, err
	}
	go func() {
		if err := l.Run(ctx, kernelHandler{m}); err != nil && ctx.Err() == nil && m.ev.active() {
			m.eventsFailed(err)
		}
	}()
	return l, nil
}

// kernelHandler hands the listener's callbacks to the monitor. The listener calls them one at
// a time from its goroutines; each returns at once (map updates, a scheduler trigger).
type kernelHandler struct{ m *Monitor }

func (h kernelHandler) Fork(parent, child int) { h.m.processForked(int32(parent), int32(child)) }
func (h kernelHandler) Exec(pid int)           { h.m.processExec(int32(pid)) }
func (h kernelHandler) Lost()                  { h.m.eventsLost() }

func (h kernelHandler) Exit(e procevents.Exit) {
	h.m.processExited(ProcessExit{
		PID: int32(e.PID), StartTicks: e.StartTicks(), Elapsed: e.Elapsed,
		User: e.User, System: e.System, PeakRSS: e.PeakRSS,
		ReadBytes: e.ReadBytes, WriteBytes: e.WriteBytes,
		Status: uint32(e.Status), Threads: e.Threads, Delays: e.Delays, Complete: e.Complete,
	})
}
