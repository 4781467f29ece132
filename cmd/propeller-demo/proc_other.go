//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

// ownGroup leaves the child in the demo's process group here: a Ctrl-C reaches it too, and the
// demo still waits for the collector and kills its tasks on the way out.
func ownGroup(*exec.Cmd, syscall.Signal) {}

// foreground leaves the terminal as it is here.
func foreground() (restore func()) { return func() {} }
