//go:build linux

package process

import "golang.org/x/sys/unix"

// unix_close closes the kept-open fd/ directory so countFDs takes its listing fallback.
func unix_close(h *Handle) error {
	err := unix.Close(h.fds[fileFD])
	h.fds[fileFD] = -1
	h.src.release()
	return err
}

// held is how many of the handle's files are kept open.
func (h *Handle) held() int {
	n := 0
	for _, fd := range h.fds {
		if fd >= 0 {
			n++
		}
	}
	return n
}

// noRoom leaves the kept-open budget no room for another descriptor; the returned function
// restores the default budget.
func noRoom(s *Source) (restore func()) {
	s.budget = s.keptFDs.Load()
	return func() { s.SetKeptOpenBudget(0) }
}
