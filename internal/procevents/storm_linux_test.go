package procevents

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkListenerStorm measures the listener's CPU (this process's, as a share of one core)
// for 5 s idle and for 5 s while a separate process starts short processes (/bin/true) at a
// fixed rate (env PROCEVENTS_STORM_RATE, default 1000/s), each watched from its Fork as a
// collector would watch a matching task, with reads coalesced or not. Run with
// -benchtime=1x.
func BenchmarkListenerStorm(b *testing.B) {
	rate := 1000
	if s := os.Getenv("PROCEVENTS_STORM_RATE"); s != "" {
		rate, _ = strconv.Atoi(s)
	}
	for _, c := range []time.Duration{-1, 5 * time.Millisecond, 20 * time.Millisecond} {
		name := "coalesce=" + c.String()
		if c < 0 {
			name = "coalesce=off"
		}
		b.Run(name, func(b *testing.B) { storm(b, rate, Options{Coalesce: c}) })
	}
}

// stormHandler watches the children of one process, as a collector watches matching tasks,
// and does nothing else, so the figures are the listener's.
type stormHandler struct {
	l      *Listener
	parent atomic.Int64
}

func (h *stormHandler) Fork(parent, child int) {
	if int64(parent) == h.parent.Load() {
		h.l.Watch(child)
	}
}
func (h *stormHandler) Exec(int)  {}
func (h *stormHandler) Exit(Exit) {}
func (h *stormHandler) Lost()     {}

func storm(b *testing.B, rate int, opts Options) {
	if os.Geteuid() != 0 {
		b.Skip("process events need root")
	}
	l, err := Open(opts)
	if err != nil {
		b.Skipf("process events unavailable here: %v", err)
	}
	h := &stormHandler{l: l}
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background(), h) }()
	defer func() {
		_ = l.Close()
		<-done
	}()
	const window = 5 * time.Second
	for b.Loop() {
		s0, c0 := l.Stats(), cpuTime()
		time.Sleep(window)
		s1, c1 := l.Stats(), cpuTime()
		idle := float64(c1-c0) / float64(window) * 100
		cmd := command(b, "storm")
		cmd.Env = append(cmd.Env, "PROCEVENTS_STORM_RATE="+strconv.Itoa(rate), "PROCEVENTS_STORM_FOR="+window.String())
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		h.parent.Store(int64(cmd.Process.Pid))
		c2 := cpuTime()
		t2 := time.Now()
		_ = cmd.Wait()
		time.Sleep(100 * time.Millisecond) // the last lingering Exits
		s3, c3, d := l.Stats(), cpuTime(), time.Since(t2)
		msgs := s3.Records - s1.Records + s3.Events - s1.Events
		b.ReportMetric(idle, "%cpu-idle")
		b.ReportMetric(float64(c3-c2)/float64(d)*100, "%cpu-storm")
		b.ReportMetric(float64(s3.Exits-s1.Exits)/d.Seconds(), "exits/s")
		b.ReportMetric(float64(s3.Records-s1.Records)/d.Seconds(), "records/s")
		b.ReportMetric(float64(s3.Events-s1.Events)/d.Seconds(), "events/s")
		b.ReportMetric(float64(c3-c2)/float64(msgs), "cpu-ns/message")
		b.ReportMetric(float64(s3.Lost-s0.Lost), "lost")
	}
}
