package procevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// GroupStats asks the kernel's TASKSTATS for a living thread group's waits
// (TASKSTATS_CMD_GET with TASKSTATS_CMD_ATTR_TGID): the sum over its live threads plus what
// its exited threads left in the group's signal struct, so the figure covers every thread
// and does not go down when one exits. /proc/<pid>/schedstat and stat's field 42 are the
// main thread's alone.
//
// One socket serves every caller. A query is one send and one receive on it, answered by the
// kernel within the send, so a mutex (held for two system calls, a few microseconds) serves
// concurrent samplers better than a pool of sockets would: the requests and replies of one
// socket must not interleave, and more sockets would only spread the same kernel work.
type GroupStats struct {
	mu     sync.Mutex
	fd     int
	family uint16
	seq    uint32
	req    [reqLen]byte
	buf    []byte
}

// A request: nlmsghdr, genlmsghdr, one u32 attribute (the thread group id).
const (
	nlHdrLen   = 16
	genlHdrLen = 4
	reqLen     = nlHdrLen + genlHdrLen + 8
)

// OpenGroupStats opens the socket and resolves the TASKSTATS family. Opening needs no
// privilege; each query needs CAP_NET_ADMIN (a refusal is ErrNotPermitted then).
func OpenGroupStats() (*GroupStats, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, classify("open generic netlink socket", err)
	}
	fam, err := c.GetFamily(unix.TASKSTATS_GENL_NAME)
	_ = c.Close()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("generic netlink family %s: %w", unix.TASKSTATS_GENL_NAME, ErrUnsupported)
		}
		return nil, classify("resolve generic netlink family "+unix.TASKSTATS_GENL_NAME, err)
	}
	// A plain blocking socket, not the runtime's poller: the kernel answers within the send,
	// so the receive does not wait, and two system calls are all a query costs.
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, classify("open generic netlink socket", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return nil, classify("connect generic netlink socket", err)
	}
	// A reply that never comes (it cannot, but a stuck worker would be worse) ends the wait.
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	g := &GroupStats{fd: fd, family: fam.ID, buf: make([]byte, 4096)}
	binary.NativeEndian.PutUint32(g.req[0:], reqLen)
	binary.NativeEndian.PutUint16(g.req[4:], fam.ID)
	binary.NativeEndian.PutUint16(g.req[6:], uint16(netlink.Request))
	g.req[nlHdrLen] = unix.TASKSTATS_CMD_GET
	g.req[nlHdrLen+1] = unix.TASKSTATS_GENL_VERSION
	binary.NativeEndian.PutUint16(g.req[nlHdrLen+genlHdrLen:], 8)
	binary.NativeEndian.PutUint16(g.req[nlHdrLen+genlHdrLen+2:], unix.TASKSTATS_CMD_ATTR_TGID)
	return g, nil
}

// Delays reads the thread group tgid's delay totals into d. CPU (cpu_delay_total, the
// run-queue delay of the scheduler's statistics) is counted whatever kernel.task_delayacct
// says; BlockIO, SwapIn and MemoryReclaim only for threads that started with delay
// accounting on. A group that no longer exists gives an error wrapping unix.ESRCH; a caller
// without CAP_NET_ADMIN one wrapping ErrNotPermitted. It allocates nothing.
func (g *GroupStats) Delays(tgid int, d *Delays) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fd < 0 {
		return fmt.Errorf("taskstats query: %w", os.ErrClosed)
	}
	g.seq++
	binary.NativeEndian.PutUint32(g.req[8:], g.seq)
	binary.NativeEndian.PutUint32(g.req[nlHdrLen+genlHdrLen+4:], uint32(tgid))
	if _, err := unix.Write(g.fd, g.req[:]); err != nil {
		return classify("send taskstats query", err)
	}
	for {
		n, err := unix.Read(g.fd, g.buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return classify("receive taskstats reply", err)
		}
		found, err := g.reply(g.buf[:n], d)
		if found {
			return err
		}
		// A late reply to an earlier query that timed out: skip it.
	}
}

// reply parses one datagram; found is false when it holds no answer to the current query.
func (g *GroupStats) reply(b []byte, d *Delays) (found bool, err error) {
	for len(b) >= nlHdrLen {
		n := int(binary.NativeEndian.Uint32(b))
		if n < nlHdrLen || n > len(b) {
			return false, nil
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		seq := binary.NativeEndian.Uint32(b[8:])
		msg := b[nlHdrLen:n]
		if seq == g.seq {
			switch typ {
			case unix.NLMSG_ERROR:
				if len(msg) < 4 {
					return true, fmt.Errorf("taskstats reply: short error message")
				}
				if errno := -int32(binary.NativeEndian.Uint32(msg)); errno != 0 {
					return true, classify("taskstats query", unix.Errno(errno))
				}
				return true, fmt.Errorf("taskstats reply: acknowledgement without statistics")
			case g.family:
				if len(msg) >= genlHdrLen && groupDelays(msg[genlHdrLen:], d) {
					return true, nil
				}
				return true, fmt.Errorf("taskstats reply: no thread group statistics")
			}
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	return false, nil
}

// groupDelays reads the delays of TASKSTATS_TYPE_AGGR_TGID's statistics.
func groupDelays(b []byte, d *Delays) bool {
	var stats []byte
	attrs(b, func(typ uint16, p []byte) {
		if typ == unix.TASKSTATS_TYPE_AGGR_TGID {
			attrs(p, func(typ uint16, p []byte) {
				if typ == unix.TASKSTATS_TYPE_STATS {
					stats = p
				}
			})
		}
	})
	if int(tsOff.blkioDelay)+8 > len(stats) {
		return false
	}
	var r record
	parseDelays(stats, &r)
	*d = Delays{
		CPU:           time.Duration(r.delays.cpu),
		BlockIO:       time.Duration(r.delays.blkio),
		SwapIn:        time.Duration(r.delays.swapin),
		MemoryReclaim: time.Duration(r.delays.reclaim),
	}
	return true
}

// Close closes the socket; a query after it fails.
func (g *GroupStats) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fd < 0 {
		return nil
	}
	err := unix.Close(g.fd)
	g.fd = -1
	return err
}
