//go:build linux

// Package testworkload starts child processes with known resource usage for integration
// tests and benchmarks: a test binary re-executes itself as the child, which causes the usage
// (burn a core, hold memory, write with fsync, open files and threads), reports "ready" on
// stdout, and then waits until it is killed.
//
// A test package that uses it calls MainIfChild first thing in its TestMain.
package testworkload // import "github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/pagetrim"
	"golang.org/x/sys/unix"
)

const envKind = "PROPLET_TEST_WORKLOAD"

// Kinds of workload.
const (
	Sleep = "sleep"         // do nothing
	Burn  = "burn"          // keep one core busy
	Hold  = "hold"          // hold arg MiB resident
	Write = "write"         // write arg MiB to a file in the working directory, fsync, keep running
	Files = "files-threads" // open 100 files and start 8 extra OS threads
	Exit  = "exit"          // report ready, then exit after arg milliseconds
	UDP   = "udp"           // send arg KiB of UDP datagrams to $PROPLET_TEST_WORKLOAD_TARGET
	// Task is a short task with known totals: report ready, touch TaskMemory, burn TaskCPU of
	// CPU, write TaskWrite with fsync, and exit with code arg TaskLife after it started.
	Task = "task"
	// BurnOn keeps its main thread busy (the thread /proc/<pid>/schedstat reports), with every
	// thread of the process pinned to CPU arg: workloads that compete for one CPU.
	BurnOn = "burn-on"
	// Grow joins the cgroup $PROPLET_TEST_WORKLOAD_CGROUP names (when set), pages its
	// executable out, reports ready, waits for a line (or the end) of its standard input, then
	// allocates and touches memory at arg MiB a second, in steps of GrowEvery, without end: in
	// a memory-limited cgroup, the kernel's OOM killer ends it.
	Grow = "grow"
	// BurnThreads keeps BurnThreadsN threads busy, each on an OS thread of its own, with every
	// thread of the process pinned to CPU arg; the main thread sleeps. SIGUSR1 makes one busy
	// thread exit (one per signal): a thread group that loses a thread while it runs.
	BurnThreads = "burn-threads"
)

// BurnThreadsN is how many busy threads a BurnThreads workload runs, each named
// BusyThreadName (its comm).
const (
	BurnThreadsN   = 4
	BusyThreadName = "busy"
)

// GrowEvery is the step of a Grow workload: arg MiB a second is arg/50 MiB every 20 ms.
const GrowEvery = 20 * time.Millisecond

// GrowCgroupEnv names the cgroup directory a Grow workload joins before it reports ready.
const GrowCgroupEnv = envKind + "_CGROUP"

// What a Task workload uses.
const (
	TaskMemory = 200 << 20
	TaskCPU    = 500 * time.Millisecond
	TaskWrite  = 8 << 20
	TaskLife   = 1500 * time.Millisecond
)

func init() {
	if k := os.Getenv(envKind); k == BurnOn || k == BurnThreads {
		// Locked in init, the main goroutine stays on the main thread through main: BurnOn's
		// loop runs there, and no BurnThreads busy thread does (one that ended there would
		// wedge the main thread rather than end it).
		runtime.LockOSThread()
	}
}

// MainIfChild runs the workload and exits if this process was started as a workload child.
// Call it at the top of TestMain.
func MainIfChild() {
	kind := os.Getenv(envKind)
	if kind == "" {
		return
	}
	arg, _ := strconv.Atoi(os.Getenv(envKind + "_ARG"))
	run(kind, arg)
	os.Exit(0)
}

var sink []byte

func run(kind string, arg int) {
	ready := func() { fmt.Println("ready") }
	switch kind {
	case Burn:
		runtime.GOMAXPROCS(1)
		ready()
		x := 0
		for {
			x++
		}
	case BurnOn:
		runtime.GOMAXPROCS(1)
		if err := pinThreads(arg); err != nil {
			panic(err)
		}
		ready()
		x := 0
		for {
			x++
		}
	case BurnThreads:
		burnThreads(arg, ready)
	case Hold:
		sink = make([]byte, arg<<20)
		for i := 0; i < len(sink); i += os.Getpagesize() {
			sink[i] = 1
		}
		ready()
	case Write:
		f, err := os.Create("workload.out")
		if err != nil {
			panic(err)
		}
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = byte(i)
		}
		for range arg {
			if _, err := f.Write(chunk); err != nil {
				panic(err)
			}
		}
		if err := f.Sync(); err != nil {
			panic(err)
		}
		ready()
	case Files:
		var files []*os.File
		for i := range 100 {
			f, err := os.Create(filepath.Join(os.TempDir(), fmt.Sprintf("workload-%d-%d", os.Getpid(), i)))
			if err != nil {
				panic(err)
			}
			_ = os.Remove(f.Name())
			files = append(files, f)
		}
		started := make(chan struct{})
		for range 8 {
			go func() {
				runtime.LockOSThread()
				started <- struct{}{}
				select {}
			}()
		}
		for range 8 {
			<-started
		}
		ready()
		runtime.KeepAlive(files)
	case Exit:
		ready()
		time.Sleep(time.Duration(arg) * time.Millisecond)
		return
	case UDP:
		conn, err := net.Dial("udp", os.Getenv(envKind+"_TARGET"))
		if err != nil {
			panic(err)
		}
		payload := make([]byte, 1024)
		for range arg {
			if _, err := conn.Write(payload); err != nil {
				panic(err)
			}
		}
		ready()
	case Task:
		start := time.Now()
		ready()
		sink = make([]byte, TaskMemory)
		for i := 0; i < len(sink); i += os.Getpagesize() {
			sink[i] = 1
		}
		for cpuTime() < TaskCPU {
		}
		f, err := os.Create("workload.out")
		if err != nil {
			panic(err)
		}
		if _, err := f.Write(make([]byte, TaskWrite)); err != nil {
			panic(err)
		}
		if err := f.Sync(); err != nil {
			panic(err)
		}
		time.Sleep(time.Until(start.Add(TaskLife)))
		os.Exit(arg)
	case Grow:
		if dir := os.Getenv(GrowCgroupEnv); dir != "" {
			// The whole process (every thread) moves: cgroup.procs takes a thread group.
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
				panic(err)
			}
		}
		// Its resident set counts the pages of the test binary it touched while starting (about
		// 15 MiB), which the kernel charged to the cgroup that read them first, not to this one:
		// handed back, the resident set is what it allocates, as the memory cgroup charges it.
		if _, err := pagetrim.PageOut(); err != nil {
			panic(err)
		}
		ready()
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		grow(arg)
	case Sleep:
		ready()
	default:
		panic("unknown workload " + kind)
	}
	waitForKill()
}

// burnThreads runs the BurnThreads workload. A goroutine locked to its thread that returns
// without unlocking takes the thread with it: that is how a busy thread exits.
func burnThreads(cpu int, ready func()) {
	runtime.GOMAXPROCS(BurnThreadsN + 1)
	if err := pinThreads(cpu); err != nil {
		panic(err)
	}
	quit := make([]atomic.Bool, BurnThreadsN)
	started := make(chan struct{})
	for i := range BurnThreadsN {
		go func() {
			runtime.LockOSThread()
			// Named, so a test counts the busy threads left (the runtime may start others).
			if err := os.WriteFile("/proc/thread-self/comm", []byte(BusyThreadName), 0); err != nil {
				panic(err)
			}
			started <- struct{}{}
			x := 0
			for !quit[i].Load() {
				x++
			}
		}()
	}
	for range BurnThreadsN {
		<-started
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	ready()
	for i := 0; ; i++ {
		<-sig
		if i < BurnThreadsN {
			quit[i].Store(true)
		}
	}
}

// pinThreads pins every thread of this process to one CPU. Threads started later inherit the
// mask of the thread that starts them, so the whole process stays on it.
func pinThreads(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, d := range tids {
		tid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d to CPU %d: %w", tid, cpu, err)
		}
	}
	return nil
}

// LastCPU is the highest-numbered CPU this process may run on: the one CPU competing
// workloads (BurnOn) share.
func LastCPU(tb testing.TB) int {
	tb.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		tb.Fatalf("read this process's CPU affinity: %v", err)
	}
	last := -1
	for c := range 1024 {
		if set.IsSet(c) {
			last = c
		}
	}
	if last < 0 {
		tb.Fatal("this process may run on no CPU")
	}
	return last
}

// grown holds what a Grow workload allocated, so that none of it is freed.
var grown [][]byte

// grow allocates and touches rate MiB a second without end. The target follows the clock, so
// a step that runs late catches up: the rate is steady whatever the scheduler grants.
func grow(rate int) {
	page := os.Getpagesize()
	start := time.Now()
	total := 0
	for {
		time.Sleep(GrowEvery)
		target := int(time.Since(start).Seconds() * float64(rate<<20))
		if n := target - total; n >= page {
			b := make([]byte, n)
			for i := 0; i < len(b); i += page {
				b[i] = 1
			}
			grown = append(grown, b)
			total += n
		}
	}
}

// waitForKill blocks until the process is killed. It sleeps on a timer rather than in an
// empty select: a process whose goroutines all wait on channels is a deadlock to the runtime,
// which kills it (without cgo there is no thread the runtime cannot see), while one that
// waits on a timer is not.
func waitForKill() {
	for {
		time.Sleep(time.Hour)
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPUTime is the CPU a process has used so far, user and system, as the kernel counts it in
// /proc/<pid>/stat (in clock ticks of 10 ms): what a workload really got, whatever share of
// the machine that was, for tests to compare what they measured with.
func CPUTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("read the CPU time of process %d: %v", pid, err)
	}
	// The command name, in parentheses, may hold spaces: the fields count from after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		tb.Fatalf("read the CPU time of process %d: %d fields in %q", pid, len(f), b)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("read the CPU time of process %d: %q", pid, b)
	}
	return time.Duration(utime+stime) * (time.Second / clockTicks)
}

// clockTicks is the kernel's USER_HZ, the unit of the CPU times in /proc: 100 on every
// architecture Linux runs on today.
const clockTicks = 100

// Start starts a workload child of the current test binary and waits until it is ready. The
// child is killed and reaped when the test ends. dir is its working directory ("" for the
// test's temporary directory).
func Start(tb testing.TB, kind string, arg int, env ...string) *exec.Cmd {
	tb.Helper()
	return StartCmd(tb, Command(tb, kind, arg, env...))
}

// StartCmd starts a command made by Command (possibly with arguments appended, which the
// child ignores) and waits until it is ready. It is killed and reaped when the test ends.
func StartCmd(tb testing.TB, cmd *exec.Cmd) *exec.Cmd {
	tb.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		tb.Fatalf("workload %q did not get ready: %q %v", strings.Join(cmd.Args, " "), line, err)
	}
	return cmd
}

// Command returns the command that runs a workload, not started, for callers that manage the
// child themselves (for example to let it exit while a test watches).
func Command(tb testing.TB, kind string, arg int, env ...string) *exec.Cmd {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, envKind+"_ARG="+strconv.Itoa(arg), envKind+"="+kind)
	cmd.Dir = tb.TempDir()
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Sleepers starts n `sleep` processes (single-threaded, the cheapest real processes there
// are), for measurements across many processes. They are killed when the test ends, or when
// the test binary dies.
func Sleepers(tb testing.TB, n int) []*exec.Cmd {
	tb.Helper()
	cmds := make([]*exec.Cmd, 0, n)
	tb.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	for range n {
		c := exec.Command("sleep", "3600")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			tb.Fatalf("start sleep: %v", err)
		}
		cmds = append(cmds, c)
	}
	return cmds
}
