package procevents

import (
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestPastDeadlineReadsWhatWaits: datagrams waiting in the socket when the read deadline has
// already passed (a reader the scheduler kept off the CPUs past a lingering group's deadline)
// are all read before the deadline's work runs: a thread's record sitting in the socket is
// not left out of its group's Exit. A read with a past deadline fails before its recvmsg, so
// before, the work ran first, with nothing read. NETLINK_USERSOCK carries the datagrams, from
// a socket of the test's to the reader's.
func TestPastDeadlineReadsWhatWaits(t *testing.T) {
	recv, err := netlink.Dial(unix.NETLINK_USERSOCK, nil)
	if err != nil {
		t.Skipf("no NETLINK_USERSOCK socket here: %v", err)
	}
	defer recv.Close()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_USERSOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const sent = 5
	for i := range sent {
		b, err := (&netlink.Message{Header: netlink.Header{Length: 16 + 4, Type: netlink.HeaderType(0x10 + i)}, Data: []byte{byte(i), 0, 0, 0}}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: recv.PID()}); err != nil {
			t.Fatal(err)
		}
	}

	l := &Listener{coalesce: -1, stopCh: make(chan struct{})}
	var read []int
	readAtDeadline := -1
	err = l.read(reader{
		c:        recv,
		what:     "test datagrams",
		deadline: func() time.Time { return time.Unix(1, 0) }, // long past
		message:  func(m netlink.Message) { read = append(read, int(m.Data[0])) },
		overflow: func() { t.Error("overflow") },
		timeout: func() {
			readAtDeadline = len(read)
			l.stopping.Store(true)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if readAtDeadline != sent {
		t.Errorf("the deadline's work ran with %d of the %d waiting datagrams read, want all", readAtDeadline, sent)
	}
	for i, v := range read {
		if v != i {
			t.Fatalf("read %v, want 0..%d in order", read, sent-1)
		}
	}
}
