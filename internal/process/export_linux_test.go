//go:build linux

package process

import "golang.org/x/sys/unix"

// unix_close closes the kept-open fd/ directory so countFDs takes its listing fallback.
func unix_close(h *Handle) error {
	err := unix.Close(h.fd)
	h.fd = -1
	return err
}
