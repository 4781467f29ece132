package procevents

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
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
