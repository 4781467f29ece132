//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has no equivalent here; the demo kills its children on the way out.
func dieWithParent(*exec.Cmd, syscall.Signal) {}
