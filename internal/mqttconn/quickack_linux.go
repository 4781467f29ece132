package mqttconn

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// quickAck asks the kernel to acknowledge received data at once instead of delaying the ACK.
// Brokers that leave Nagle's algorithm on (Mosquitto's default) hold back the PUBACKs of the
// end of a batch until our ACK arrives; a delayed ACK then stalls every batch by up to 40 ms.
// The kernel clears the flag again on its own, so it is set after every read.
func quickAck(c net.Conn) func() {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return func() {}
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return func() {}
	}
	set := func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, unix.TCP_QUICKACK, 1) }
	return func() { _ = raw.Control(set) }
}
