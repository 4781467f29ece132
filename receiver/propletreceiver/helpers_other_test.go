//go:build !linux

package propletreceiver

func setupTestMain() {}
