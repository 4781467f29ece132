package procevents

import "time"

// group sums the records of one watched thread group.
type group struct {
	user, system, rb, wb, cwb, peak uint64 // µs, µs, bytes, bytes, bytes, KiB
	run                             uint64 // ns of CPU the scheduler ran the threads
	unrun                           bool   // a record without it
	delays                          delays
	threads                         int
	uncorrelated                    bool // the kernel's records do not name their group
	leaderEtime                     uint64
	leaderComm                      [32]byte
	haveLeader                      bool
	// last is the AGROUP record, once it came: a watched group holds only its sums until then
	// (a host may watch thousands of groups for hours; the record is 200 bytes).
	last *record
	wall time.Time
	boot time.Duration
}

type recentEnd struct {
	tgid uint32
	r    record
	wall time.Time // when the record was read
}

// Watch asks for the Exit of thread group pid: its thread records are summed from now on and
// delivered as one Exit when the group ends. When the group ended shortly before Watch (up to
// 2 s), its Exit is delivered at once from its last record, complete if it had one thread.
// Watching a group already watched does nothing. It takes constant time and is safe for
// concurrent use, from a Handler method too. A watched group whose last record the kernel
// dropped (see Handler.Lost) stays watched until Unwatch: the caller's resync, finding the
// process gone from /proc, calls it.
func (l *Listener) Watch(pid int) {
	if pid <= 0 || pid > 1<<31-1 {
		return
	}
	tgid := uint32(pid)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.watched[tgid] != nil || l.closing[tgid] != nil {
		return
	}
	re := &l.recent[tgid%recentSlots]
	if re.tgid != tgid || time.Since(re.wall) > recentFor {
		l.watched[tgid] = &group{}
		return
	}
	g := &group{}
	l.sum(g, tgid, &re.r)
	// The other threads' records, if any, were dropped.
	g.uncorrelated = g.uncorrelated || re.r.aggrTGID != 0
	last := re.r
	g.last, g.wall, g.boot = &last, re.wall, l.bootAt(re.wall)
	*re = recentEnd{}
	l.closing[tgid] = g
	l.ready = append(l.ready, tgid)
	if l.tsRaw != nil {
		// Wake the taskstats reader, which delivers it.
		_ = l.tsRaw.SetReadDeadline(time.Now())
	}
}

// Unwatch forgets thread group pid: no Exit will be delivered for it.
func (l *Listener) Unwatch(pid int) {
	if pid <= 0 || pid > 1<<31-1 {
		return
	}
	l.mu.Lock()
	delete(l.watched, uint32(pid))
	delete(l.closing, uint32(pid))
	l.mu.Unlock()
}

// add sums a record into its group. It returns the group's Exit when the record ends a group
// that cannot have records still on their way (it only ever had one thread).
func (l *Listener) add(r *record) (Exit, bool) {
	tgid, _ := r.group()
	l.mu.Lock()
	g := l.closing[tgid]
	if g == nil {
		g = l.watched[tgid]
	}
	if g == nil {
		if r.flag&acGroup != 0 {
			re := &l.recent[tgid%recentSlots]
			re.tgid, re.r, re.wall = tgid, *r, time.Now()
		}
		l.mu.Unlock()
		l.dropped.Add(1)
		return Exit{}, false
	}
	l.sum(g, tgid, r)
	if r.flag&acGroup == 0 {
		l.mu.Unlock()
		return Exit{}, false
	}
	last := *r
	g.last, g.wall = &last, time.Now()
	g.boot = l.bootAt(g.wall)
	if r.aggrTGID == 0 {
		delete(l.watched, tgid)
		e := l.exit(tgid, g)
		l.mu.Unlock()
		return e, true
	}
	// A group of several threads: the others' records may still come (each thread sends its
	// own as it passes through exit, on its CPU, and the last to leave is not always the last
	// to send).
	delete(l.watched, tgid)
	l.closing[tgid] = g
	l.queue = append(l.queue, lingering{tgid: tgid, deadline: g.wall.Add(l.linger)})
	l.mu.Unlock()
	return Exit{}, false
}

// sum adds one thread record to its group.
func (l *Listener) sum(g *group, tgid uint32, r *record) {
	g.user += r.utime
	g.system += r.stime
	g.run += r.run
	g.unrun = g.unrun || (r.run == 0 && r.utime+r.stime > 0)
	g.rb += r.rb
	g.wb += r.wb
	g.cwb += r.cwb
	g.delays.add(r.delays)
	g.peak = max(g.peak, r.hiwater)
	g.threads++
	if _, known := r.group(); !known || !r.hasTGID {
		g.uncorrelated = true
	}
	if r.pid == tgid {
		g.haveLeader, g.leaderEtime, g.leaderComm = true, r.etime, r.comm
	}
}

// exit builds the Exit of a group whose last record arrived. l.mu is held.
func (l *Listener) exit(tgid uint32, g *group) Exit {
	last := g.last
	if last == nil { // not reached: a group is ended by its AGROUP record
		last = &record{}
	}
	elapsed := last.etime
	switch {
	case last.hasTGE && last.tgetime != 0:
		elapsed = last.tgetime
	case g.haveLeader:
		elapsed = g.leaderEtime
	}
	user, system := g.cpu()
	comm := &last.comm
	if g.haveLeader {
		comm = &g.leaderComm
	}
	e := Exit{
		PID:                 int(tgid),
		ParentPID:           int(last.ppid),
		Command:             commString(comm),
		Status:              Status(last.exitcode),
		Elapsed:             time.Duration(elapsed) * time.Microsecond,
		User:                user,
		System:              system,
		PeakRSS:             g.peak << 10,
		ReadBytes:           g.rb,
		WriteBytes:          g.wb,
		CancelledWriteBytes: g.cwb,
		Threads:             g.threads,
		Delays: Delays{
			CPU:           time.Duration(g.delays.cpu),
			BlockIO:       time.Duration(g.delays.blkio),
			SwapIn:        time.Duration(g.delays.swapin),
			MemoryReclaim: time.Duration(g.delays.reclaim),
		},
	}
	e.Start = g.wall.Add(-e.Elapsed)
	e.StartBoot = g.boot - e.Elapsed
	e.Complete = !g.uncorrelated && e.StartBoot > l.openBoot && e.StartBoot > l.lastLoss
	return e
}

// cpu is the group's user and system time. ac_utime and ac_stime count the scheduler ticks
// that found a thread running, in user or kernel mode: a thread that runs in slices shorter
// than a tick, or is preempted before ticks, on a busy machine, is counted short (a third
// short was measured at four busy loops on two cores). The records also carry the time the
// scheduler really ran each thread (cpu_run_virtual_total): that is the total, split between
// user and system in the ticks' proportion, as the kernel splits it for /proc/<pid>/stat and
// getrusage. Without it (a record that lacks the field), the ticks.
func (g *group) cpu() (user, system time.Duration) {
	user, system = time.Duration(g.user)*time.Microsecond, time.Duration(g.system)*time.Microsecond
	if g.run == 0 || g.unrun {
		return user, system
	}
	total := time.Duration(g.run)
	switch {
	case user+system == 0:
		return total, 0
	case system == 0:
		return total, 0
	case user == 0:
		return 0, total
	}
	system = time.Duration(float64(total) * float64(system) / float64(user+system))
	return total - system, system
}
