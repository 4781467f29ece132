package monitor

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// propletState samples the proplet process and the machine. The discovery pass finds the
// proplet process; the proplet job samples it; mu orders the two.
type propletState struct {
	mu       sync.Mutex
	loc      admission.Locator
	h        *process.Handle
	start    time.Time
	exe      string
	owner    string
	ppid     int32
	prevCPU  procfs.CPUTimes
	hasPrev  bool
	notFound bool // logged that the proplet process cannot be found
}

const propletFields = process.FieldCPU | process.FieldMemory | process.FieldThreads | process.FieldFDs

func (p *propletState) baseline(m *Monitor) {
	if c, err := m.src.CPUTimes(); err == nil {
		p.prevCPU, p.hasPrev = c, true
	}
}

func (p *propletState) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

func (p *propletState) closeLocked() {
	if p.h != nil {
		p.h.Close()
		p.h = nil
	}
}

func (p *propletState) missing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.h == nil
}

// locate finds the proplet process. It runs in the discovery pass, which owns the scan and
// is the only one to set p.h: the pid file is read before p.mu is taken, so a slow one never
// holds up the proplet's sample.
func (p *propletState) locate(m *Monitor, buf []byte) {
	if p.loc.IsZero() || !p.missing() {
		return
	}
	e, ok := m.locateProplet(p.loc)
	if !ok {
		p.mu.Lock()
		first := !p.notFound
		p.notFound = true
		p.mu.Unlock()
		if first {
			m.log.Info("Proplet process not found yet; sending machine metrics only until it appears",
				zap.String("looking_for", lookingFor(admission.Spec{Locator: p.loc})))
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.h != nil {
		return
	}
	h, err := m.src.Open(e.ID, propletFields, buf)
	if err != nil {
		return
	}
	p.h, p.notFound, p.ppid, p.start = h, false, e.PPID, m.src.StartTime(e.ID)
	p.exe = e.Comm
	if d, err := m.src.Describe(e, buf); err == nil {
		p.exe, p.owner = d.Executable, process.OwnerName(d.UID)
	}
}

func (m *Monitor) sampleProplet(ctx context.Context) {
	p := &m.proplet
	bp := m.buf()
	defer m.putBuf(bp)
	buf := *bp
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	s := Sample{Kind: KindProplet, Time: now}
	if p.h != nil {
		var r process.Reading
		err := p.h.Read(propletFields, &r, buf)
		switch {
		case errors.Is(err, process.ErrGone) || (err == nil && r.Exited()):
			m.log.Info("Proplet process exited", zap.Int32("pid", p.h.ID().PID))
			p.closeLocked()
		case err != nil:
			m.tel.SampleError(KindProplet)
			m.log.Debug("Proplet sample failed", zap.Error(err))
		default:
			s.HasProcess = true
			s.PID, s.PPID, s.Executable, s.Owner, s.Start = p.h.ID().PID, p.ppid, p.exe, p.owner, p.start
			s.Got = r.Got
			s.CPUUser, s.CPUSystem = r.CPUUser, r.CPUSystem
			s.RSS, s.VMS, s.Threads, s.FDs = r.RSS, r.VMS, r.Threads, r.FDs
			s.Uptime = now.Sub(p.start).Seconds()
			s.CgroupUsage, s.HasCgroupUsage, s.CgroupLimit, s.HasCgroupLimit = m.src.CgroupMemory(s.PID)
		}
	}
	if c, err := m.src.CPUTimes(); err == nil {
		if p.hasPrev && c.Total() > p.prevCPU.Total() {
			total := float64(c.Total() - p.prevCPU.Total())
			share := func(cur, prev uint64) float64 { return float64(sub(cur, prev)) / total }
			s.MachineCPU = [numModes]float64{
				ModeUser:      share(c.User, p.prevCPU.User),
				ModeNice:      share(c.Nice, p.prevCPU.Nice),
				ModeSystem:    share(c.System, p.prevCPU.System),
				ModeIdle:      share(c.Idle, p.prevCPU.Idle),
				ModeIOWait:    share(c.IOWait, p.prevCPU.IOWait),
				ModeInterrupt: share(c.IRQ+c.SoftIRQ, p.prevCPU.IRQ+p.prevCPU.SoftIRQ),
				ModeSteal:     share(c.Steal, p.prevCPU.Steal),
			}
			s.HasMachineCPU = true
		}
		p.prevCPU, p.hasPrev = c, true
	} else {
		m.tel.SampleError(KindProplet)
	}
	m.emit(ctx, s)
}
