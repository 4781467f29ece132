package procevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The inode numbers of the initial namespaces (PROC_PID_INIT_INO, PROC_USER_INIT_INO in
// linux/proc_ns.h): fixed, so a process can tell it is in them from /proc/self/ns alone.
const (
	initPIDNSInode  = 0xEFFFFFFC
	initUserNSInode = 0xEFFFFFFD
)

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

// deregister removes the listener from the kernel's per-CPU lists. The kernel would drop it
// on its first failed send after the socket closes; saying so spares it that send.
func (l *Listener) deregister() {
	_, _ = l.ts.Send(l.cpumaskMessage(unix.TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK), l.family, netlink.Request)
}
