//go:build linux

package process

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// DelayAccounting reports whether the kernel's delay accounting is on now
// (kernel.task_delayacct, Linux 5.14 and later; off by default). A process forked while it is
// off has no delay record of its own: its exit accounting carries no block I/O, swap-in or
// reclaim delays, ever, and none are reported while it is off. The error says the setting
// could not be read (a kernel before 5.14 has no such file).
func (s *Source) DelayAccounting() (bool, error) {
	path := filepath.Join(s.root, "sys/kernel/task_delayacct")
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	on, err := procfs.ParseSwitch(b)
	if err != nil {
		return false, fmt.Errorf("parse %s: %w", path, err)
	}
	return on, nil
}
