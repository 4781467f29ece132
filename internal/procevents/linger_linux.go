package procevents

import "time"

type lingering struct {
	tgid     uint32
	deadline time.Time
}

// flush delivers the Exits of groups that ended before Watch, and the lingering Exits whose
// deadline passed (all of them for a zero now).
func (l *Listener) flush(h Handler, now time.Time) {
	for {
		l.mu.Lock()
		var tgid uint32
		switch {
		case len(l.ready) > 0:
			tgid = l.ready[0]
			l.ready = l.ready[1:]
		case len(l.queue) > 0 && (now.IsZero() || !l.queue[0].deadline.After(now)):
			tgid = l.queue[0].tgid
			l.queue = l.queue[1:]
		default:
			l.mu.Unlock()
			return
		}
		g := l.closing[tgid]
		if g == nil {
			l.mu.Unlock()
			continue
		}
		delete(l.closing, tgid)
		e := l.exit(tgid, g)
		l.mu.Unlock()
		l.deliver(h, e)
	}
}

func (l *Listener) deliver(h Handler, e Exit) {
	l.exits.Add(1)
	l.hmu.Lock()
	h.Exit(e)
	l.hmu.Unlock()
}
