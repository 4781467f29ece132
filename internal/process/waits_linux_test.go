//go:build linux

package process

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// schedstatWait is the run-queue delay the kernel shows for a process, in ns.
func schedstatWait(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	require.NoError(t, err)
	f := strings.Fields(string(b))
	require.Len(t, f, 3, "%q", b)
	v, err := strconv.ParseUint(f[1], 10, 64)
	require.NoError(t, err)
	return v
}

// statField42 is delayacct_blkio_ticks as the kernel shows it for a process.
func statField42(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	v, err := strconv.ParseUint(f[42-3], 10, 64)
	require.NoError(t, err)
	return v
}

// TestWaitsReadWhatTheKernelShows: the run-queue delay read is the one schedstat shows between
// the test's readings before and after, kept-open and read by path; the block I/O delay is read
// only when the source is told delay accounting is on, and is then stat's field 42.
func TestWaitsReadWhatTheKernelShows(t *testing.T) {
	s := newSource(t)
	if !s.Schedstat() {
		t.Skip("the kernel has no /proc/<pid>/schedstat (CONFIG_SCHED_INFO)")
	}
	cmd := testworkload.Start(t, testworkload.Burn, 0)
	pid := cmd.Process.Pid
	buf := make([]byte, 4096)
	for _, byPath := range []bool{false, true} {
		t.Run(fmt.Sprintf("byPath=%v", byPath), func(t *testing.T) {
			if byPath {
				defer noRoom(s)()
			}
			h, err := s.Open(ID{PID: int32(pid)}, AllFields, buf)
			require.NoError(t, err)
			defer h.Close()
			require.Equal(t, byPath, h.held() == 0, "files kept open: %d", h.held())
			var r Reading
			for range 3 {
				before := schedstatWait(t, pid)
				require.NoError(t, h.Read(AllFields, &r, buf))
				after := schedstatWait(t, pid)
				require.NotZero(t, r.Got&FieldWaits)
				assert.GreaterOrEqual(t, r.RunDelay, before)
				assert.LessOrEqual(t, r.RunDelay, after)
				assert.Zero(t, r.Got&FieldIODelay, "delay accounting not known to be on: no block I/O delay")
			}
			s.SetDelayAccounting(true)
			defer s.SetDelayAccounting(false)
			before := statField42(t, pid)
			require.NoError(t, h.Read(FieldWaits, &r, buf))
			after := statField42(t, pid)
			assert.Equal(t, FieldWaits|FieldIODelay, r.Got)
			assert.GreaterOrEqual(t, r.IODelayTicks, before)
			assert.LessOrEqual(t, r.IODelayTicks, after)
		})
	}
}

// TestWaitsOffOpensNoSchedstat: without FieldWaits no schedstat is opened, kept-open or
// read by path; with it, a kept-open handle opens it once for all its reads.
func TestWaitsOffOpensNoSchedstat(t *testing.T) {
	s := newSource(t)
	if !s.Schedstat() {
		t.Skip("the kernel has no /proc/<pid>/schedstat (CONFIG_SCHED_INFO)")
	}
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	var opened []string
	s.SetOpenObserver(func(p string) { opened = append(opened, p) })
	schedstat := func() int {
		n := 0
		for _, p := range opened {
			if strings.HasSuffix(p, "/schedstat") {
				n++
			}
		}
		return n
	}
	buf := make([]byte, 4096)
	off := AllFields &^ FieldWaits
	read := func(fields Fields) {
		h, err := s.Open(ID{PID: int32(cmd.Process.Pid)}, fields, buf)
		require.NoError(t, err)
		defer h.Close()
		var r Reading
		for range 3 {
			require.NoError(t, h.Read(fields, &r, buf))
		}
		assert.Equal(t, fields&FieldWaits, r.Got&FieldWaits)
	}
	read(off)
	assert.Zero(t, schedstat(), "kept-open, waits off: %v", opened)
	require.NotEmpty(t, opened, "the observer sees the handle's files")

	restore := noRoom(s)
	read(off)
	assert.Zero(t, schedstat(), "read by path, waits off: %v", opened)
	restore()

	read(AllFields)
	assert.Equal(t, 1, schedstat(), "kept-open, waits on: opened once for three reads")
}

// cgroupFixture makes a cgroup v2 root in a temp directory, with one group holding files.
func cgroupFixture(t *testing.T, files map[string]string) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory io\n"), 0o600))
	dir = filepath.Join(root, "task")
	require.NoError(t, os.Mkdir(dir, 0o755))
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	return root, dir
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "procfs", "testdata", name))
	require.NoError(t, err)
	return string(b)
}

// TestCgroupWaitsFromFixtures reads a group's pressure and throttling files; a file the group
// does not have leaves its figures out.
func TestCgroupWaitsFromFixtures(t *testing.T) {
	root, dir := cgroupFixture(t, map[string]string{
		"cpu.pressure":    "some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=750000\n",
		"memory.pressure": fixture(t, "memory_pressure"),
		"cpu.stat":        fixture(t, "cpu_stat_v2_quota"),
	})
	s, err := NewSource("/proc", root)
	require.NoError(t, err)
	defer s.Close()
	buf := make([]byte, 4096)
	w := s.OpenWaits(dir, 0, buf)
	require.NotNil(t, w)
	defer w.Close()
	var r WaitsReading
	require.NoError(t, w.Read(&r, buf))
	assert.Equal(t, [NumPressure]bool{true, true, false}, r.HasPressure, "no io.pressure: io left out")
	assert.Equal(t, procfs.Pressure{SomeMicros: 2500000, FullMicros: 750000, HasFull: true}, r.Pressure[PressureCPU])
	assert.Equal(t, procfs.Pressure{SomeMicros: 61200, FullMicros: 986, HasFull: true}, r.Pressure[PressureMemory])
	assert.True(t, r.HasThrottling)
	assert.Equal(t, procfs.Throttling{Periods: 120, Throttled: 37, ThrottledMicros: 2211000}, r.Throttling)

	// A v2 group without the cpu controller has no throttling counters: left out.
	root, dir = cgroupFixture(t, map[string]string{"cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\n"})
	s2, err := NewSource("/proc", root)
	require.NoError(t, err)
	defer s2.Close()
	assert.Nil(t, s2.OpenWaits(dir, 0, buf), "nothing to read: no waits at all")
}

// TestCgroupWaitsPastTheBudgetAreReadByPath: each kept-open waits file takes a place in the
// budget; past it a task's cgroup waits keep nothing open and open, read and close their files
// on every read, with the same figures; a file gone since is left out. Close gives the places
// back.
func TestCgroupWaitsPastTheBudgetAreReadByPath(t *testing.T) {
	root, dir := cgroupFixture(t, map[string]string{
		"cpu.pressure": fixture(t, "memory_pressure"),
		"io.pressure":  fixture(t, "memory_pressure"),
		"cpu.stat":     fixture(t, "cpu_stat_v2_quota"),
	})
	s, err := NewSource("/proc", root)
	require.NoError(t, err)
	defer s.Close()
	buf := make([]byte, 4096)
	kept := s.OpenWaits(dir, 0, buf)
	require.NotNil(t, kept)
	assert.Equal(t, int64(3), s.keptFDs.Load(), "three files, three places")
	kept.Close()
	assert.Zero(t, s.keptFDs.Load(), "Close gives the places back")

	defer noRoom(s)()
	var opened []string
	s.SetOpenObserver(func(p string) { opened = append(opened, p) })
	w := s.OpenWaits(dir, 0, buf)
	require.NotNil(t, w)
	defer w.Close()
	assert.Equal(t, [numWaitFiles]int{-1, -1, -1, -1}, w.fd, "nothing kept open")
	opened = nil
	var r WaitsReading
	require.NoError(t, w.Read(&r, buf))
	assert.Len(t, opened, 3, "each file opened for the read: %v", opened)
	assert.Equal(t, [NumPressure]bool{true, false, true}, r.HasPressure)
	assert.Equal(t, uint64(61200), r.Pressure[PressureIO].SomeMicros)
	assert.Equal(t, uint64(37), r.Throttling.Throttled)

	require.NoError(t, os.Remove(filepath.Join(dir, "io.pressure")))
	require.NoError(t, w.Read(&r, buf))
	assert.Equal(t, [NumPressure]bool{true, false, false}, r.HasPressure, "a file gone since: left out, not an error")
	assert.Empty(t, w.path[PressureIO], "and not tried again")
}

// TestCgroupWaitsRefuseWhatIsNoCgroupFile: a pressure file that is a FIFO or a link to
// /dev/zero is not opened (no read blocks, none runs without end); the others are read.
func TestCgroupWaitsRefuseWhatIsNoCgroupFile(t *testing.T) {
	root, dir := cgroupFixture(t, map[string]string{"memory.pressure": fixture(t, "memory_pressure")})
	require.NoError(t, unix.Mkfifo(filepath.Join(dir, "cpu.pressure"), 0o600))
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "io.pressure")))
	require.NoError(t, unix.Mkfifo(filepath.Join(dir, "cpu.stat"), 0o600))
	s, err := NewSource("/proc", root)
	require.NoError(t, err)
	defer s.Close()
	buf := make([]byte, 4096)
	done := make(chan *CgroupWaits, 1)
	go func() { done <- s.OpenWaits(dir, 0, buf) }()
	var w *CgroupWaits
	select {
	case w = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("OpenWaits blocked on a FIFO")
	}
	require.NotNil(t, w)
	defer w.Close()
	var r WaitsReading
	require.NoError(t, w.Read(&r, buf))
	assert.Equal(t, [NumPressure]bool{false, true, false}, r.HasPressure)
	assert.False(t, r.HasThrottling)
}

// TestProcessInTheRootGroupHasNoWaits: the root group of either hierarchy is the machine, not
// a task's: a process that runs there has no cgroup waits.
func TestProcessInTheRootGroupHasNoWaits(t *testing.T) {
	b, err := os.ReadFile("/proc/self/cgroup")
	require.NoError(t, err)
	v2, v1, err := procfs.ParseCgroupPaths(b, "cpu")
	require.NoError(t, err)
	if (v2 != nil && string(v2) != "/") || (v1 != nil && string(v1) != "/") {
		t.Skipf("this test process runs in a group of its own (%s)", bytes.TrimSpace(b))
	}
	s := newSource(t)
	assert.Nil(t, s.OpenWaits("", int32(os.Getpid()), make([]byte, 4096)))
}

// TestImpossibleWaitsAreLeftOut: a wait longer than the process has lived (what some kernels
// show once delay accounting is switched on at run time) is left out and flagged, from a proc
// root whose files say so.
func TestImpossibleWaitsAreLeftOut(t *testing.T) {
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	pid := cmd.Process.Pid
	root := t.TempDir()
	for _, name := range []string{"uptime", "meminfo", "stat"} {
		b, err := os.ReadFile(filepath.Join("/proc", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(root, name), b, 0o600))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "self"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "self", "schedstat"), []byte("1 2 3\n"), 0o600))
	dir := filepath.Join(root, strconv.Itoa(pid))
	require.NoError(t, os.Mkdir(dir, 0o755))
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	end := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[end+1:]))
	var up float64
	_, err = fmt.Sscanf(fixtureOf(t, "/proc/uptime"), "%f", &up)
	require.NoError(t, err)
	const hour = 3600 * procfs.UserHZ
	write := func(blkio, waitNanos uint64) {
		f[42-3] = strconv.FormatUint(blkio, 10)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(string(b[:end+1])+" "+strings.Join(f, " ")+"\n"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "schedstat"), []byte(fmt.Sprintf("100 %d 4\n", waitNanos)), 0o600))
	}
	write(7, 5e6)
	s, err := NewSource(root, "/sys/fs/cgroup")
	require.NoError(t, err)
	defer s.Close()
	s.SetDelayAccounting(true)
	buf := make([]byte, 4096)
	h, err := s.Open(ID{PID: int32(pid)}, FieldWaits, buf)
	require.NoError(t, err)
	defer h.Close()
	var r Reading
	require.NoError(t, h.Read(FieldWaits, &r, buf))
	assert.Equal(t, FieldWaits|FieldIODelay, r.Got, "waits within the process's life")
	assert.Equal(t, uint64(7), r.IODelayTicks)
	assert.Equal(t, uint64(5e6), r.RunDelay)

	write(uint64(up*procfs.UserHZ)+hour, uint64(up+3600)*1e9)
	require.NoError(t, h.Read(FieldWaits, &r, buf))
	assert.Zero(t, r.Got&(FieldWaits|FieldIODelay), "longer than the process has lived: left out")
	assert.Equal(t, FieldWaits|FieldIODelay, r.Impossible)
	assert.Zero(t, r.IODelayTicks)
	assert.Zero(t, r.RunDelay)
}

func fixtureOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
