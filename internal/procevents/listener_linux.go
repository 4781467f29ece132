package procevents

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The proc connector's constants (linux/connector.h, linux/cn_proc.h), which x/sys does not
// carry.
const (
	cnIdxProc          = 1
	cnValProc          = 1
	procCnMcastListen  = 1
	procCnMcastIgnore  = 2
	procEventFork      = 0x00000001
	procEventExec      = 0x00000002
	cnMsgLen           = 20 // struct cn_msg: id.idx, id.val, seq, ack, len, flags
	procEventHeaderLen = 16 // struct proc_event: what, cpu, timestamp_ns
)

// The inode numbers of the initial namespaces (PROC_PID_INIT_INO, PROC_USER_INIT_INO in
// linux/proc_ns.h): fixed, so a process can tell it is in them from /proc/self/ns alone.
const (
	initPIDNSInode  = 0xEFFFFFFC
	initUserNSInode = 0xEFFFFFFD
)

const (
	defaultReceiveBuffer = 4 << 20
	defaultLinger        = 50 * time.Millisecond
	defaultCoalesce      = 20 * time.Millisecond
	// recentSlots and recentFor bound the memory of groups that ended unwatched: 1,024 ends
	// (about 200 KiB), each kept at most 2 s. Pids are allocated in increasing order and wrap
	// at pid_max (4,194,304 by default on 64-bit), so the same pid ending twice within 2 s
	// does not happen on a real host; the caller checks the start time anyway.
	recentSlots = 1024
	recentFor   = 2 * time.Second
	// messageBuffer is the buffer each socket reads a datagram into: one connector event is
	// under 100 bytes, one taskstats record under 1 KiB.
	messageBuffer = 16 << 10
)

// A Listener reads the process connector and the taskstats exit records.
type Listener struct {
	cn       *netlink.Conn // NETLINK_CONNECTOR, group CN_IDX_PROC
	tsRaw    *netlink.Conn // NETLINK_GENERIC, under ts
	ts       *genetlink.Conn
	family   uint16
	cpus     string // the cpumask registered: the possible CPUs, "0-N"
	linger   time.Duration
	coalesce time.Duration

	openBoot time.Duration // CLOCK_BOOTTIME when Open began
	openMono time.Time     // time.Now then, for bootAt

	mu       sync.Mutex
	watched  map[uint32]*group // groups whose records are summed
	closing  map[uint32]*group // groups past their last record, lingering for late threads
	queue    []lingering       // closing groups in deadline order (one linger for all)
	ready    []uint32          // closing groups to deliver at once (Exits that ended before Watch)
	lastLoss time.Duration     // CLOCK_BOOTTIME of the last taskstats overflow
	// recent holds the last record of groups that ended unwatched, by tgid modulo its size,
	// for a Watch that comes just after the end (a process that lived a millisecond ends
	// before the caller has seen its exec).
	recent [recentSlots]recentEnd

	hmu sync.Mutex // serialises Handler calls

	running  atomic.Bool
	stopping atomic.Bool
	stopCh   chan struct{} // closed by stop
	closed   atomic.Bool
	closeMu  sync.Mutex
	done     chan struct{} // closed when Run returns

	events, records, dropped, exits, lost atomic.Uint64
}

// group sums the records of one watched thread group.
type group struct {
	user, system, rb, wb, cwb, peak uint64 // µs, µs, bytes, bytes, bytes, KiB
	delays                          delays
	threads                         int
	uncorrelated                    bool // the kernel's records do not name their group
	leaderEtime                     uint64
	leaderComm                      [32]byte
	haveLeader                      bool
	last                            record // the AGROUP record
	wall                            time.Time
	boot                            time.Duration
}

type recentEnd struct {
	tgid uint32
	r    record
	wall time.Time // when the record was read
}

type lingering struct {
	tgid     uint32
	deadline time.Time
}

// Open opens and subscribes both sockets. The errors it returns wrap ErrNotPermitted,
// ErrNotInitialNamespace or ErrUnsupported when one of those is the reason.
func Open(opts Options) (*Listener, error) {
	if err := checkNamespaces(); err != nil {
		return nil, err
	}
	buf := opts.ReceiveBuffer
	if buf <= 0 {
		buf = defaultReceiveBuffer
	}
	l := &Listener{
		linger:   opts.Linger,
		openBoot: bootNow(),
		openMono: time.Now(),
		watched:  make(map[uint32]*group),
		closing:  make(map[uint32]*group),
		cpus:     possibleCPUs(),
		done:     make(chan struct{}),
		stopCh:   make(chan struct{}),
		coalesce: opts.Coalesce,
	}
	if l.linger <= 0 {
		l.linger = defaultLinger
	}
	if l.coalesce == 0 {
		l.coalesce = defaultCoalesce
	}
	if err := l.openTaskstats(buf); err != nil {
		return nil, err
	}
	if err := l.openConnector(buf); err != nil {
		l.deregister()
		_ = l.ts.Close()
		return nil, err
	}
	return l, nil
}

func (l *Listener) openTaskstats(buf int) error {
	c, err := netlink.Dial(unix.NETLINK_GENERIC, &netlink.Config{MessageBufferSize: messageBuffer})
	if err != nil {
		return classify("open generic netlink socket", err)
	}
	l.tsRaw, l.ts = c, genetlink.NewConn(c)
	fam, err := l.ts.GetFamily(unix.TASKSTATS_GENL_NAME)
	if err != nil {
		_ = l.ts.Close()
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("generic netlink family %s: %w", unix.TASKSTATS_GENL_NAME, ErrUnsupported)
		}
		return classify("resolve generic netlink family "+unix.TASKSTATS_GENL_NAME, err)
	}
	l.family = fam.ID
	setReceiveBuffer(c, buf)
	// Register before any record can be missed, and ask for an acknowledgement so a refusal
	// (no CAP_NET_ADMIN, another namespace) is an error here rather than silence later.
	if _, err := l.ts.Execute(l.cpumaskMessage(unix.TASKSTATS_CMD_ATTR_REGISTER_CPUMASK), l.family,
		netlink.Request|netlink.Acknowledge); err != nil {
		_ = l.ts.Close()
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("register taskstats listener for CPUs %s: %w (%w)", l.cpus, err, ErrNotInitialNamespace)
		}
		return classify("register taskstats listener for CPUs "+l.cpus, err)
	}
	return nil
}

func (l *Listener) cpumaskMessage(attr uint16) genetlink.Message {
	ae := netlink.NewAttributeEncoder()
	ae.String(attr, l.cpus)
	data, _ := ae.Encode()
	return genetlink.Message{
		Header: genetlink.Header{Command: unix.TASKSTATS_CMD_GET, Version: unix.TASKSTATS_GENL_VERSION},
		Data:   data,
	}
}

func (l *Listener) openConnector(buf int) error {
	c, err := netlink.Dial(unix.NETLINK_CONNECTOR, &netlink.Config{MessageBufferSize: messageBuffer})
	if err != nil {
		return classify("open process connector socket", err)
	}
	if err := c.JoinGroup(cnIdxProc); err != nil {
		_ = c.Close()
		return classify("join process connector group", err)
	}
	setReceiveBuffer(c, buf)
	l.cn = c
	if err := l.sendConnector(procCnMcastListen, connectorFilter()); err != nil {
		_ = c.Close()
		return classify("subscribe to process events", err)
	}
	return nil
}

// sendConnector sends PROC_CN_MCAST_LISTEN or _IGNORE. The kernel keeps a count of listeners
// and builds events only while it is positive, so Close says IGNORE. With filter, the message
// is a struct proc_input naming the events wanted (fork and exec), and the kernel drops the
// others (exit, comm, uid, ...) before they reach the socket: a third fewer messages in a
// storm of short processes.
func (l *Listener) sendConnector(op uint32, filter bool) error {
	n := 4
	if filter {
		n = 8
	}
	b := make([]byte, cnMsgLen+n)
	binary.NativeEndian.PutUint32(b[0:], cnIdxProc)
	binary.NativeEndian.PutUint32(b[4:], cnValProc)
	binary.NativeEndian.PutUint16(b[16:], uint16(n))
	binary.NativeEndian.PutUint32(b[cnMsgLen:], op)
	if filter {
		binary.NativeEndian.PutUint32(b[cnMsgLen+4:], procEventFork|procEventExec)
	}
	_, err := l.cn.Send(netlink.Message{Header: netlink.Header{Type: netlink.Done}, Data: b})
	return err
}

// connectorFilter reports whether the kernel takes a struct proc_input with an event filter
// (Linux 6.6 and later). An older kernel ignores a message of that length without a word,
// and would send nothing, so the plain 4-byte operation is sent to it.
func connectorFilter() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	major, minor, ok := kernelVersion(unix.ByteSliceToString(u.Release[:]))
	return ok && (major > 6 || major == 6 && minor >= 6)
}

// kernelVersion reads "6.18.44-fc" as 6, 18.
func kernelVersion(release string) (major, minor int, ok bool) {
	a, rest, _ := strings.Cut(release, ".")
	b, _, _ := strings.Cut(rest, ".")
	if i := strings.IndexFunc(b, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		b = b[:i]
	}
	var err1, err2 error
	major, err1 = strconv.Atoi(a)
	minor, err2 = strconv.Atoi(b)
	return major, minor, err1 == nil && err2 == nil
}

// setReceiveBuffer sets SO_RCVBUFFORCE, which root may set past net.core.rmem_max, and falls
// back to SO_RCVBUF (capped at rmem_max).
func setReceiveBuffer(c *netlink.Conn, n int) {
	if rc, err := c.SyscallConn(); err == nil {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		}); err == nil && serr == nil {
			return
		}
	}
	_ = c.SetReadBuffer(n)
}

// classify wraps err with the sentinel that names its cause.
func classify(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%s: %w (%w)", what, err, ErrNotPermitted)
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT), errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%s: %w (%w)", what, err, ErrUnsupported)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// checkNamespaces refuses a PID or user namespace other than the initial one: the kernel
// reports events and records relative to the initial namespaces and sends none to a listener
// elsewhere (the connector ignores its subscription without an error). When /proc/self/ns
// cannot be read, the kernel's own refusal at registration still says so.
func checkNamespaces() error {
	for _, ns := range []struct {
		name  string
		inode uint64
	}{{"pid", initPIDNSInode}, {"user", initUserNSInode}} {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/ns/"+ns.name, &st); err != nil {
			continue
		}
		if st.Ino != ns.inode {
			return fmt.Errorf("%s namespace %d: %w", ns.name, st.Ino, ErrNotInitialNamespace)
		}
	}
	return nil
}

// possibleCPUs is the kernel's list of possible CPUs ("0-3"), so CPUs brought online later are
// covered too.
func possibleCPUs() string {
	if b, err := os.ReadFile("/sys/devices/system/cpu/possible"); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s
		}
	}
	var set unix.CPUSet
	n := 0
	if unix.SchedGetaffinity(0, &set) == nil {
		for i := range len(set) * 64 {
			if set.IsSet(i) {
				n = i + 1
			}
		}
	}
	if n <= 1 {
		return "0"
	}
	return "0-" + strconv.Itoa(n-1)
}

// bootAt is t on the boot clock, reckoned from Open's reading with Go's monotonic clock:
// a clock_gettime(CLOCK_BOOTTIME) is a system call (x/sys has no vDSO path), dear on a
// virtual machine, while time.Now is not. The two clocks differ by the time the host was
// suspended since Open.
func (l *Listener) bootAt(t time.Time) time.Duration {
	return l.openBoot + t.Sub(l.openMono)
}

func bootNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
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
	g.last, g.wall, g.boot = re.r, re.wall, l.bootAt(re.wall)
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

// Stats returns the counters since Open.
func (l *Listener) Stats() Stats {
	return Stats{
		Events:           l.events.Load(),
		Records:          l.records.Load(),
		DroppedUnwatched: l.dropped.Load(),
		Exits:            l.exits.Load(),
		Lost:             l.lost.Load(),
	}
}

// Run reads both sockets, each in its own goroutine, and calls h until ctx ends or Close is
// called; then it returns nil, after delivering the Exits still lingering. Fork, Exec and the
// connector's Lost come from one goroutine, Exit and the taskstats Lost from the other; h's
// methods are never called concurrently. A socket error other than an overflow ends Run with
// that error (the caller falls back to scanning). Run may be called once.
func (l *Listener) Run(ctx context.Context, h Handler) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("procevents: Run called twice")
	}
	defer close(l.done)
	if l.closed.Load() {
		return nil
	}
	errs := make(chan error, 2)
	go func() { errs <- l.readConnector(h) }()
	go func() { errs <- l.readTaskstats(h) }()
	var first error
	for range 2 {
		select {
		case err := <-errs:
			if err != nil && first == nil {
				first = err
			}
			l.stop()
		case <-ctx.Done():
			l.stop()
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
	}
	l.flush(h, time.Time{})
	return first
}

// stop makes both readers return: the flag first, then a deadline in the past, which the
// readers never overwrite once the flag is set (they set their deadline, then check it).
func (l *Listener) stop() {
	if l.stopping.Swap(true) {
		return
	}
	close(l.stopCh)
	past := time.Unix(1, 0)
	_ = l.cn.SetReadDeadline(past)
	_ = l.tsRaw.SetReadDeadline(past)
}

// ended reports whether a receive error means the reader should return quietly.
func (l *Listener) ended(err error) bool {
	return l.stopping.Load() || l.closed.Load() || errors.Is(err, os.ErrClosed)
}

// reader is one socket's read loop.
type reader struct {
	c    *netlink.Conn
	what string
	// deadline is when a blocking read must return for timed work (lingering Exits), or zero.
	deadline func() time.Time
	message  func(netlink.Message)
	overflow func()
	// timeout runs when a blocking read reached its deadline, and after each batch.
	timeout func()
}

// read reads datagrams until the listener stops. Each datagram is one message, and a read
// that parks the goroutine until the next one costs a wake-up per message (tens of
// microseconds of scheduling and a second recvmsg), which dominates the cost of a storm. So
// after a blocking read returns, the reader pauses for Coalesce and then drains the socket
// without parking: under load there is one wake-up per pause, not per message; an isolated
// message is still read at once.
func (l *Listener) read(r reader) error {
	var set time.Time
	setDeadline := func(t time.Time) {
		if !t.Equal(set) {
			set = t
			_ = r.c.SetReadDeadline(t)
		}
	}
	draining := false
	for {
		if !draining {
			setDeadline(r.deadline())
		}
		if l.stopping.Load() {
			return nil
		}
		got := false
		for m, err := range r.c.ReceiveIter() {
			if err != nil {
				switch {
				case errors.Is(err, unix.ENOBUFS):
					r.overflow()
				case errors.Is(err, os.ErrDeadlineExceeded) && !l.stopping.Load():
					draining = false
					// Watch may have set a deadline of its own to wake this reader.
					set = time.Unix(2, 0)
					if r.timeout != nil {
						r.timeout()
					}
				case l.ended(err):
					return nil
				default:
					return fmt.Errorf("receive %s: %w", r.what, err)
				}
				break
			}
			got = true
			r.message(m)
		}
		if got && !draining && l.coalesce > 0 {
			select {
			case <-time.After(l.coalesce):
			case <-l.stopCh:
				return nil
			}
			// Drain what came meanwhile: queued datagrams are read without parking, and the
			// drain ends at a deadline set once (not a past one, which fails before the
			// recvmsg; not one per message, each of which would wake the poller).
			draining = true
			setDeadline(time.Now().Add(time.Millisecond))
		}
	}
}

func (l *Listener) readConnector(h Handler) error {
	return l.read(reader{
		c:        l.cn,
		what:     "process events",
		deadline: func() time.Time { return time.Time{} },
		message:  func(m netlink.Message) { l.connectorMessage(m.Data, h) },
		overflow: func() { l.overflow(h, false) },
	})
}

// connectorMessage handles one struct cn_msg holding a struct proc_event.
func (l *Listener) connectorMessage(b []byte, h Handler) {
	if len(b) < cnMsgLen+procEventHeaderLen ||
		binary.NativeEndian.Uint32(b) != cnIdxProc || binary.NativeEndian.Uint32(b[4:]) != cnValProc {
		return
	}
	l.events.Add(1)
	ev := b[cnMsgLen:]
	data := ev[procEventHeaderLen:]
	switch binary.NativeEndian.Uint32(ev) {
	case procEventFork:
		if len(data) < 16 {
			return
		}
		// parent_pid, parent_tgid, child_pid, child_tgid: a child whose pid is not its tgid
		// is a new thread.
		parent := binary.NativeEndian.Uint32(data[4:])
		child, childTGID := binary.NativeEndian.Uint32(data[8:]), binary.NativeEndian.Uint32(data[12:])
		if child != childTGID {
			return
		}
		l.hmu.Lock()
		h.Fork(int(parent), int(child))
		l.hmu.Unlock()
	case procEventExec:
		if len(data) < 8 {
			return
		}
		l.hmu.Lock()
		h.Exec(int(binary.NativeEndian.Uint32(data[4:])))
		l.hmu.Unlock()
	}
}

func (l *Listener) readTaskstats(h Handler) error {
	return l.read(reader{
		c:    l.tsRaw,
		what: "taskstats records",
		deadline: func() time.Time {
			l.mu.Lock()
			defer l.mu.Unlock()
			switch {
			case len(l.ready) > 0:
				return time.Now()
			case len(l.queue) > 0:
				return l.queue[0].deadline
			}
			return time.Time{}
		},
		message: func(m netlink.Message) {
			if m.Header.Type == netlink.HeaderType(l.family) {
				l.taskstatsMessage(m.Data, h)
			}
		},
		overflow: func() { l.overflow(h, true) },
		timeout:  func() { l.flush(h, time.Now()) },
	})
}

// overflow counts a socket overflow and tells the handler. An overflow of the taskstats socket
// may have dropped records of any group alive now: their Exits are marked incomplete.
func (l *Listener) overflow(h Handler, taskstats bool) {
	l.lost.Add(1)
	if taskstats {
		now := l.bootAt(time.Now())
		l.mu.Lock()
		l.lastLoss = now
		l.mu.Unlock()
	}
	l.hmu.Lock()
	h.Lost()
	l.hmu.Unlock()
}

// taskstatsMessage handles one generic netlink message of the TASKSTATS family.
func (l *Listener) taskstatsMessage(b []byte, h Handler) {
	var gm genetlink.Message
	if gm.UnmarshalBinary(b) != nil || gm.Header.Command != unix.TASKSTATS_CMD_NEW {
		return
	}
	var r record
	if !parseRecord(gm.Data, &r) {
		return
	}
	l.records.Add(1)
	if e, ok := l.add(&r); ok {
		l.deliver(h, e)
	}
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
	g.last, g.wall = *r, time.Now()
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

// exit builds the Exit of a group whose last record arrived. l.mu is held.
func (l *Listener) exit(tgid uint32, g *group) Exit {
	last := &g.last
	elapsed := last.etime
	switch {
	case last.hasTGE && last.tgetime != 0:
		elapsed = last.tgetime
	case g.haveLeader:
		elapsed = g.leaderEtime
	}
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
		User:                time.Duration(g.user) * time.Microsecond,
		System:              time.Duration(g.system) * time.Microsecond,
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

// Close deregisters from both kernel interfaces, closes the sockets and makes Run return; it
// waits for Run, so it must not be called from a Handler method.
func (l *Listener) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed.Swap(true) {
		return nil
	}
	_ = l.sendConnector(procCnMcastIgnore, connectorFilter())
	l.deregister()
	if l.running.Load() {
		l.stop()
	}
	err := errors.Join(l.cn.Close(), l.ts.Close())
	if l.running.Load() {
		<-l.done
	}
	return err
}

// deregister removes the listener from the kernel's per-CPU lists. The kernel would drop it
// on its first failed send after the socket closes; saying so spares it that send.
func (l *Listener) deregister() {
	_, _ = l.ts.Send(l.cpumaskMessage(unix.TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK), l.family, netlink.Request)
}
