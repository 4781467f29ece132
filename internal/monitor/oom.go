package monitor

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/kmsg"
)

// oomLog remembers the processes the kernel log says the OOM killer killed, for the usage
// reports of the tasks they belonged to. It keeps at most oomKeep kills, for oomFor each.
type oomLog struct {
	mu    sync.Mutex
	kills map[int32]time.Time
	f     *kmsg.Follower
}

const (
	oomKeep = 4096
	oomFor  = 10 * time.Minute
)

// startOOMLog follows the kernel log when the collector may read it. Without it, an OOM kill
// is known from the memory cgroup's count.
func (m *Monitor) startOOMLog(ctx context.Context) {
	f, err := m.hooks.openKernelLog()
	if err != nil {
		m.log.Info("Kernel log not readable: an OOM kill is known from the task's memory cgroup only", zap.Error(err))
		return
	}
	m.oom.kills = map[int32]time.Time{}
	m.oom.f = f
	go func() {
		err := f.Run(ctx, func(k kmsg.OOMKill) {
			m.oom.record(int32(k.PID), time.Now())
			m.log.Debug("OOM kill in the kernel log", zap.Int("pid", k.PID), zap.String("command", k.Command), zap.String("cgroup", k.Cgroup))
		})
		if err != nil && ctx.Err() == nil {
			m.log.Info("Kernel log no longer read: an OOM kill is known from the task's memory cgroup only", zap.Error(err))
		}
	}()
}

func (o *oomLog) record(pid int32, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.kills) >= oomKeep {
		for p, at := range o.kills {
			if now.Sub(at) > oomFor || len(o.kills) >= oomKeep {
				delete(o.kills, p)
			}
		}
	}
	o.kills[pid] = now
}

// killed reports whether the kernel log said pid was killed by the OOM killer lately.
func (o *oomLog) killed(pid int32) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.kills[pid]
	return ok && time.Since(at) <= oomFor
}

func (o *oomLog) close() {
	if o.f != nil {
		_ = o.f.Close()
	}
}
