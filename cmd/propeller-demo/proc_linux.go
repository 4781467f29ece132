package main

import (
	"os/exec"
	"syscall"
)

// ownGroup puts the child in a process group of its own, so the terminal's Ctrl-C reaches the
// demo alone and the demo stops the child in its own order, and makes the kernel send sig to
// the child if the demo dies without cleaning up.
func ownGroup(c *exec.Cmd, sig syscall.Signal) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
}
