package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel send sig to the child if the demo dies without cleaning up.
func dieWithParent(c *exec.Cmd, sig syscall.Signal) {
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: sig}
}
