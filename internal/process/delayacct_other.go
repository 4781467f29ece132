//go:build !linux

package process

import "errors"

// DelayAccounting is the kernel's delay accounting, which only Linux has.
func (*Source) DelayAccounting() (bool, error) {
	return false, errors.New("delay accounting is a Linux feature")
}
