package procevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

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
	draining, catchUp := false, false
	for {
		switch {
		case catchUp:
			// Datagrams wait: one read without a deadline takes the next at once.
			catchUp = false
			setDeadline(time.Time{})
		case !draining:
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
					if readable(r.c) {
						// The deadline passed while datagrams waited unread: a reader kept
						// off the CPUs on a busy machine wakes after a lingering group's
						// deadline, and a read with a past deadline fails before its
						// recvmsg. Timed work waits until what the kernel sent before the
						// deadline is read: a thread's record sitting in the socket is not
						// left out of its group's Exit.
						catchUp = true
					} else if r.timeout != nil {
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

// readable says whether a datagram waits in c's receive queue, without reading it. An error
// says no: the next read reports it.
func readable(c *netlink.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		ready = err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
	})
	return ready
}
