package process

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

// The resources of pressure stall information, in the order of WaitsReading.Pressure.
const (
	PressureCPU = iota
	PressureMemory
	PressureIO
	NumPressure
)

// WaitsReading is one read of CgroupWaits. The totals are cumulative, as the kernel keeps them.
type WaitsReading struct {
	Pressure      [NumPressure]procfs.Pressure
	HasPressure   [NumPressure]bool
	Throttling    procfs.Throttling
	HasThrottling bool
}

// DelayAccounting reads kernel.task_delayacct under procRoot (sys/kernel/task_delayacct): 1 is
// on. It is off by default since Linux 5.14; a kernel without the file (older, or built without
// CONFIG_TASK_DELAY_ACCT) answers an error, and the block I/O delay is then not read either.
func DelayAccounting(procRoot string) (bool, error) {
	path := filepath.Join(procRoot, "sys/kernel/task_delayacct")
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	switch string(bytes.TrimSpace(b)) {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%s: %q is neither 0 nor 1", path, bytes.TrimSpace(b))
}
