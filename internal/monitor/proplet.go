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

// propletSource is what the proplet's sampler reads of the host: its process and the machine's
// CPU times.
type propletSource interface {
	Open(id process.ID, fields process.Fields, buf []byte) (*process.Handle, error)
	Describe(e process.Entry, buf []byte) (process.Details, error)
	StartTime(id process.ID) time.Time
	CPUTimes() (procfs.CPUTimes, error)
	CgroupMemory(pid int32) (usage uint64, usageOK bool, limit uint64, limitOK bool)
}

// proplet samples the proplet process and the machine. The discovery pass finds the proplet
// process (locate, through discovery's resolve); the proplet job samples it; mu orders the
// two.
type proplet struct {
	src propletSource
	log *zap.Logger
	tel Telemetry
	loc admission.Locator

	mu       sync.Mutex
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

func newProplet(src propletSource, loc admission.Locator, log *zap.Logger, tel Telemetry) *proplet {
	return &proplet{src: src, loc: loc, log: log, tel: tel}
}

// propletJob samples the proplet and the machine on proplet.interval.
type propletJob struct{ m *Monitor }

func (j propletJob) Run(ctx context.Context) {
	bp := j.m.buf()
	s := j.m.proplet.sample(*bp)
	j.m.putBuf(bp)
	j.m.emit(ctx, s)
}

// baseline reads the machine's CPU times, so the first sample covers a real interval.
func (p *proplet) baseline() {
	if c, err := p.src.CPUTimes(); err == nil {
		p.prevCPU, p.hasPrev = c, true
	}
}

func (p *proplet) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

func (p *proplet) closeLocked() {
	if p.h != nil {
		p.h.Close()
		p.h = nil
	}
}

// wanted reports whether the discovery pass must scan to find the proplet: its rule is a
// match rule and its process is not found.
func (p *proplet) wanted() bool {
	if p.loc.Match == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.h == nil
}

// locate finds the proplet process. It runs in the discovery pass, which owns the table and is
// the only one to set p.h: the pid file is read before p.mu is taken, so a slow one never
// holds up the proplet's sample.
func (p *proplet) locate(d *discovery) {
	if p.loc.IsZero() {
		return
	}
	p.mu.Lock()
	found := p.h != nil
	p.mu.Unlock()
	if found {
		return
	}
	e, ok := d.resolve(p.loc, nil, seeker{proplet: true})
	if !ok {
		p.mu.Lock()
		first := !p.notFound
		p.notFound = true
		p.mu.Unlock()
		if first {
			p.log.Info("Proplet process not found yet; sending machine metrics only until it appears",
				zap.String("looking_for", lookingFor(admission.Spec{Locator: p.loc})))
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.h != nil {
		return
	}
	h, err := p.src.Open(e.ID, propletFields, d.buf)
	if err != nil {
		return
	}
	p.h, p.notFound, p.ppid, p.start = h, false, e.PPID, p.src.StartTime(e.ID)
	p.exe = e.Comm
	if det, err := p.src.Describe(e, d.buf); err == nil {
		p.exe, p.owner = det.Executable, process.OwnerName(det.UID)
	}
}

// sample reads the proplet process, when found, and the machine's CPU modes since the
// previous sample.
func (p *proplet) sample(buf []byte) Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	s := Sample{Kind: KindProplet, Time: now}
	if p.h != nil {
		var r process.Reading
		err := p.h.Read(propletFields, &r, buf)
		switch {
		case errors.Is(err, process.ErrGone) || (err == nil && r.Exited()):
			p.log.Info("Proplet process exited", zap.Int32("pid", p.h.ID().PID))
			p.closeLocked()
		case err != nil:
			p.tel.SampleError(KindProplet)
			p.log.Debug("Proplet sample failed", zap.Error(err))
		default:
			s.HasProcess = true
			s.PID, s.PPID, s.Executable, s.Owner, s.Start = p.h.ID().PID, p.ppid, p.exe, p.owner, p.start
			s.Got = r.Got
			s.CPUUser, s.CPUSystem = r.CPUUser, r.CPUSystem
			s.RSS, s.VMS, s.Threads, s.FDs = r.RSS, r.VMS, r.Threads, r.FDs
			s.Uptime = now.Sub(p.start).Seconds()
			s.CgroupUsage, s.HasCgroupUsage, s.CgroupLimit, s.HasCgroupLimit = p.src.CgroupMemory(s.PID)
		}
	}
	if c, err := p.src.CPUTimes(); err == nil {
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
		p.tel.SampleError(KindProplet)
	}
	return s
}
