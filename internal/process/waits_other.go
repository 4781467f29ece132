//go:build !linux

package process

// CgroupWaits is Linux-only.
type CgroupWaits struct{}

// OpenWaits is Linux-only: there are no cgroups elsewhere.
func (*Source) OpenWaits(string, int32, []byte) *CgroupWaits { return nil }

// Close is Linux-only.
func (*CgroupWaits) Close() {}

// Read is Linux-only.
func (*CgroupWaits) Read(r *WaitsReading, _ []byte) error {
	*r = WaitsReading{}
	return nil
}

// Schedstat is Linux-only.
func (*Source) Schedstat() bool { return false }

// SetDelayAccounting is Linux-only: the block I/O delay is read from /proc.
func (*Source) SetDelayAccounting(bool) {}

// SetOpenObserver is Linux-only: gopsutil opens the files here.
func (*Source) SetOpenObserver(func(string)) {}
