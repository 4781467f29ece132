package procfs

// Throttling holds the CPU bandwidth control counters of a cgroup's cpu.stat: how often the
// group used up its CPU quota (cpu.max in v2, cpu.cfs_quota_us in v1) and had to wait for the
// next period. All stay zero while the group has no quota.
type Throttling struct {
	Periods         uint64 // nr_periods: enforcement periods in which the group was runnable
	Throttled       uint64 // nr_throttled: periods in which the group used up its quota
	ThrottledMicros uint64 // throttled_usec (v2), throttled_time / 1,000 (v1, ns): time held back
}

// ParseThrottling parses the throttling counters of a cpu.stat, cgroup v2 ("nr_periods 5\n
// nr_throttled 2\nthrottled_usec 1200\n" among the usage lines) or v1's cpu controller
// ("nr_periods 5\nnr_throttled 2\nthrottled_time 1200000\n"). The v2 file has the counters
// only where the cpu controller is enabled for the group: without them, ErrAbsent.
func ParseThrottling(b []byte, t *Throttling) error {
	*t = Throttling{}
	var periods, throttled, held bool
	err := keyedUints(b, func(key []byte, v uint64) bool {
		switch string(key) {
		case "nr_periods":
			t.Periods, periods = v, true
		case "nr_throttled":
			t.Throttled, throttled = v, true
		case "throttled_usec":
			t.ThrottledMicros, held = v, true
		case "throttled_time":
			t.ThrottledMicros, held = v/1000, true
		default:
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return err
	case !periods && !throttled && !held:
		return ErrAbsent
	case !periods || !throttled || !held:
		return ErrMalformed
	}
	return nil
}
