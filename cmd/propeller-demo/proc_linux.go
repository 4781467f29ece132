package main

import (
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// ownGroup puts the child in a process group of its own, so the terminal's Ctrl-C reaches the
// demo alone and the demo stops the child in its own order, and makes the kernel send sig to
// the child if the demo dies without cleaning up.
func ownGroup(c *exec.Cmd, sig syscall.Signal) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
}

// foreground gives the demo the terminal, as a shell gives it to a job: the demo moves to a
// process group of its own and makes it the terminal's foreground group, so a Ctrl-C reaches
// the demo and not the program that started it. Under make that matters: make, sent the
// Ctrl-C too, would exit 130 after the demo stopped everything and exited 0. It returns what
// gives the terminal back. Without a terminal on stdin it changes nothing.
func foreground() (restore func()) {
	nothing := func() {}
	prev, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil {
		return nothing
	}
	own := syscall.Getpgrp()
	if err := syscall.Setpgid(0, 0); err != nil {
		return nothing
	}
	// A process outside the foreground group may take the terminal only with SIGTTOU ignored.
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, syscall.Getpgrp()); err != nil {
		// Back where the terminal's Ctrl-C reaches us.
		_ = syscall.Setpgid(0, own)
		return nothing
	}
	return func() {
		signal.Ignore(syscall.SIGTTOU)
		defer signal.Reset(syscall.SIGTTOU)
		_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, prev)
	}
}
