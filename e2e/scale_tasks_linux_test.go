//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// The scale runs' tasks: idle processes, as cheap as a process gets (a copy of sleep), named
// so that a discovery rule finds them and nothing else on the host matches.

// scaleExe is the executable name of every scale task, short enough to be the kernel's
// command name too (15 characters at most), so the hostmetrics process scraper's name filter
// and the proplet receiver's executable rule see the same name.
const scaleExe = "proptask"

// scaleTaskID is the task id of the i-th scale task.
func scaleTaskID(i int) string { return fmt.Sprintf("5ca1e000-0000-4000-8000-%012x", i) }

// scaleRule is the discovery rule that finds the scale tasks: argv[0] carries the task id.
const scaleRule = `{ executable: '^` + scaleExe + `$', cmdline: '^` + scaleExe + `-(?P<task_id>[0-9a-f-]{36}) ' }`

// raiseNoFile raises this process's descriptor limit (soft, and hard when it may) towards
// want, which the collector inherits: each sampled task keeps four /proc files open (stat,
// io, fd/, schedstat), within a budget of RLIMIT_NOFILE - 256 descriptors, past which its files
// are opened and closed on every sample. Raising the hard limit takes CAP_SYS_RESOURCE; without it the run goes on
// under the hard limit, which it returns and logs.
func raiseNoFile(t *testing.T, want uint64) uint64 {
	t.Helper()
	var lim unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &lim))
	if lim.Cur >= want {
		return lim.Cur
	}
	if unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: want, Max: max(lim.Max, want)}) == nil {
		return want
	}
	lim.Cur = lim.Max
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lim))
	t.Logf("RLIMIT_NOFILE stops at its hard limit %d (raising it takes CAP_SYS_RESOURCE): the collector keeps %d descriptors open for samples, the files of about %d standard-profile tasks, and opens the others' on every sample",
		lim.Max, process.DefaultKeptOpenDescriptors(lim.Max), process.DefaultKeptOpenDescriptors(lim.Max)/4)
	return lim.Max
}

// keptOpenStats counts the tasks (of pids) whose stat the collector with process id collector
// keeps open: its descriptors that name /proc/<pid>/stat. Each is a task whose files are kept
// open (with a budget of descriptors, at most one task keeps only some of its files).
func keptOpenStats(t *testing.T, collector int, pids []int) int {
	t.Helper()
	want := make(map[string]bool, len(pids))
	for _, pid := range pids {
		want["/proc/"+strconv.Itoa(pid)+"/stat"] = true
	}
	dir := "/proc/" + strconv.Itoa(collector) + "/fd"
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(dir + "/" + e.Name()); err == nil && want[target] {
			n++
		}
	}
	return n
}

// scaleTasks starts n idle processes, each `sleep infinity` copied as scaleExe and exec'd with
// argv[0] scaleExe-<task id>, in one process group of their own: they hold no descriptor of
// this process (no pidfd, no pipe), and the test's end kills the group at once and reaps it.
func scaleTasks(t *testing.T, n int) []int {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	exe := filepath.Join(t.TempDir(), scaleExe)
	copyFile(t, sleep, exe)
	pids := make([]int, 0, n)
	pgid := 0
	t.Cleanup(func() {
		if pgid == 0 {
			return
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		for range pids {
			if _, err := syscall.Wait4(-pgid, nil, 0, nil); err != nil {
				break
			}
		}
	})
	start := time.Now()
	for i := range n {
		attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Setpgid: true, Pgid: pgid, Pdeathsig: syscall.SIGKILL}}
		pid, err := syscall.ForkExec(exe, []string{fmt.Sprintf("%s-%s", scaleExe, scaleTaskID(i)), "infinity"}, attr)
		if err != nil {
			t.Fatalf("started %d of %d scale tasks: %v (pid_max, RLIMIT_NPROC or memory: say which stopped it)", i, n, err)
		}
		if pgid == 0 {
			pgid = pid
		}
		pids = append(pids, pid)
	}
	t.Logf("%d scale tasks started in %s (process group %d)", n, time.Since(start).Round(time.Millisecond), pgid)
	return pids
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, errors.Join(err, out.Close()))
}

// floor is what the kernel alone takes for one task's sample of the standard profile: the reads
// the proplet receiver makes (internal/process/handle_linux.go: a pread of the kept-open stat,
// io and schedstat, an fstat of the kept-open fd/ directory; no net/dev for a task in the
// host's network namespace), or, past the kept-open budget, the same files opened, read and
// closed and a stat of fd/. Made here with no parsing, on one locked thread whose own CPU time
// is measured.
type floor struct {
	// Per task: every task read back to back, passes in a row (tight), and at the collector's
	// pace, one interval's tasks in 100 ms rounds (paced); kept-open files and transient ones.
	keptTight, keptPaced, transientTight, transientPaced time.Duration
}

// mix is the floor of a run whose kept share of tasks has kept-open files.
func (f floor) mix(kept float64) (tight, paced float64) {
	return kept*float64(f.keptTight) + (1-kept)*float64(f.transientTight), kept*float64(f.keptPaced) + (1-kept)*float64(f.transientPaced)
}

func (f floor) String() string {
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return fmt.Sprintf("kept-open files %.2f µs a task tight, %.2f µs paced; opened on every read %.2f µs tight, %.2f µs paced",
		us(f.keptTight), us(f.keptPaced), us(f.transientTight), us(f.transientPaced))
}

// kernelFloor measures the floor over pids: passes tight passes, then pacedIntervals intervals
// paced as the collector paces them (the median of each kind); kept-open over as many tasks as
// the descriptor limit leaves room for.
func kernelFloor(t *testing.T, pids []int, limit uint64, passes int, interval time.Duration) floor {
	t.Helper()
	type files struct{ stat, io, sched, fd int }
	open := make([]files, 0, len(pids))
	defer func() {
		for _, f := range open {
			_, _, _, _ = unix.Close(f.stat), unix.Close(f.io), unix.Close(f.sched), unix.Close(f.fd)
		}
	}()
	for _, pid := range pids[:min(len(pids), max(0, int(limit)-1024)/4)] {
		dir := fmt.Sprintf("/proc/%d/", pid)
		var f files
		var err error
		f.stat, err = unix.Open(dir+"stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		f.io, err = unix.Open(dir+"io", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		f.sched, err = unix.Open(dir+"schedstat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		f.fd, err = unix.Open(dir+"fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		open = append(open, f)
	}
	paths := make([]string, len(pids))
	for i, pid := range pids {
		paths[i] = fmt.Sprintf("/proc/%d/", pid)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 4096)
	var st unix.Stat_t
	check := func(err error) {
		if err != nil {
			t.Fatalf("kernel floor: %v", err)
		}
	}
	kept := func(i int) {
		f := open[i]
		_, err1 := unix.Pread(f.stat, buf, 0)
		_, err2 := unix.Pread(f.io, buf, 0)
		_, err3 := unix.Pread(f.sched, buf, 0)
		check(errors.Join(err1, err2, err3, unix.Fstat(f.fd, &st)))
	}
	readFile := func(path string) error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		_, err = unix.Pread(fd, buf, 0)
		return errors.Join(err, unix.Close(fd))
	}
	transient := func(i int) {
		check(errors.Join(readFile(paths[i]+"stat"), readFile(paths[i]+"io"), readFile(paths[i]+"schedstat"), unix.Stat(paths[i]+"fd", &st)))
	}
	tight := func(n int, read func(int)) time.Duration {
		if n == 0 {
			return 0
		}
		c0 := threadCPU(t)
		for range passes {
			for i := range n {
				read(i)
			}
		}
		return (threadCPU(t) - c0) / time.Duration(passes*n)
	}
	paced := func(n int, read func(int)) time.Duration {
		if n == 0 {
			return 0
		}
		rounds := int(interval / (100 * time.Millisecond))
		per := (n + rounds - 1) / rounds
		next := time.Now()
		c0 := threadCPU(t)
		for r := range rounds {
			for i := r * per; i < min((r+1)*per, n); i++ {
				read(i)
			}
			next = next.Add(100 * time.Millisecond)
			time.Sleep(time.Until(next)) //nolint:forbidigo // the collector's pace is what is reproduced
		}
		return (threadCPU(t) - c0) / time.Duration(n)
	}
	// One paced interval is one read of each task: noisy on a machine doing other work. Three,
	// the two kinds alternated, and the median of each.
	var keptPaced, transientPaced []time.Duration
	for range pacedIntervals {
		keptPaced = append(keptPaced, paced(len(open), kept))
		transientPaced = append(transientPaced, paced(len(pids), transient))
	}
	return floor{
		keptTight: tight(len(open), kept), keptPaced: median(keptPaced),
		transientTight: tight(len(pids), transient), transientPaced: median(transientPaced),
	}
}

// pacedIntervals is how many intervals the paced floor is measured over.
const pacedIntervals = 3

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// threadCPU is the CPU time of the calling OS thread.
func threadCPU(t *testing.T) time.Duration {
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts))
	return time.Duration(ts.Nano())
}
