package process

import (
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
