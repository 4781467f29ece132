package procfs

import "testing"

// The fuzz targets check that no input makes a parser panic, and that a parse that succeeds
// produced values consistent with the input where that can be checked cheaply.

func FuzzParseStat(f *testing.F) {
	f.Add(fixture(f, "stat"))
	f.Add(fixture(f, "stat_odd_comm"))
	f.Add([]byte("1 ()) R 0 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1 0 1 1 1"))
	f.Add([]byte("2 (a\n) b) Z -1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Stat
		if ParseStat(b, &s) == nil && StatComm(b) == nil {
			t.Fatalf("parsed a stat without a command name: %q", b)
		}
	})
}

func FuzzParseIO(f *testing.F) {
	f.Add(fixture(f, "io"))
	f.Fuzz(func(_ *testing.T, b []byte) {
		var io IO
		_ = ParseIO(b, &io)
	})
}

func FuzzParseNetDev(f *testing.F) {
	f.Add(fixture(f, "net_dev"))
	f.Fuzz(func(_ *testing.T, b []byte) {
		var n NetDev
		_ = ParseNetDev(b, &n)
	})
}

func FuzzParseProcStat(f *testing.F) {
	f.Add(fixture(f, "proc_stat"))
	f.Fuzz(func(_ *testing.T, b []byte) {
		var c CPUTimes
		_ = ParseProcStat(b, &c)
		_, _ = ParseMemTotal(b)
		_, _ = ParseUptime(b)
	})
}

func FuzzParseCgroup(f *testing.F) {
	f.Add(fixture(f, "cgroup_v1"))
	f.Add(fixture(f, "cgroup_v2"))
	f.Add([]byte("max\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v2, v1, err := ParseCgroupPaths(b, "memory")
		if err == nil && v2 == nil && v1 == nil {
			t.Fatalf("no error and no path for %q", b)
		}
		_, _, _ = ParseCgroupValue(b)
	})
}

func FuzzParseCgroupV2(f *testing.F) {
	f.Add([]byte("usage_usec 1\nuser_usec 1\nsystem_usec 0\n"))
	f.Add([]byte("8:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n"))
	f.Add([]byte("1\n2\n"))
	f.Fuzz(func(_ *testing.T, b []byte) {
		var c CgroupCPU
		_ = ParseCgroupCPUStat(b, &c)
		_, _, _ = ParseCgroupIOStat(b)
		_ = ParseCgroupProcs(b, func(int32) {})
	})
}
