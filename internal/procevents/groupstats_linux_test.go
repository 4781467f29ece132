package procevents

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A thread group's waits from TASKSTATS against what the kernel shows per thread in
// /proc/self/task/*/schedstat, read by the test just before the query.

func init() {
	// The main goroutine keeps the main thread, so no busy thread of busyThreads runs there:
	// a locked goroutine that ends on the main thread wedges it instead of ending it, and the
	// main thread's figure must stay the idle one's.
	runtime.LockOSThread()
}

func openGroupStats(tb testing.TB) *GroupStats {
	tb.Helper()
	g, err := OpenGroupStats()
	if err != nil {
		tb.Skipf("taskstats: %v", err)
	}
	tb.Cleanup(func() { _ = g.Close() })
	var d Delays
	if err := g.Delays(os.Getpid(), &d); errors.Is(err, ErrNotPermitted) {
		tb.Skipf("taskstats queries need CAP_NET_ADMIN: %v", err)
	}
	return g
}

// runDelay is the second field of a schedstat file, in ns; ok is false when the file is gone.
func runDelay(tb testing.TB, path string) (uint64, bool) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return 0, false
	}
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		tb.Fatalf("%s: %q", path, b)
	}
	v, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return v, true
}

// threadsRunDelay sums the run delay of the process's live threads.
func threadsRunDelay(tb testing.TB) (sum uint64, threads int) {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		if v, ok := runDelay(tb, "/proc/self/task/"+e.Name()+"/schedstat"); ok {
			sum += v
			threads++
		}
	}
	return sum, threads
}

// busyThreads starts n goroutines, each locked to an OS thread of its own pinned to cpu and
// kept busy, so they wait for each other on that CPU's run queue. stop(i) ends the i-th,
// whose thread exits with it (a locked goroutine that returns takes its thread along); it
// returns the thread's id.
func busyThreads(tb testing.TB, n, cpu int) (tids []int, stop func(i int)) {
	tb.Helper()
	quit := make([]atomic.Bool, n)
	done := make([]chan struct{}, n)
	tids = make([]int, n)
	ids := make(chan [2]int, n)
	for i := range n {
		done[i] = make(chan struct{})
		go func() {
			defer close(done[i])
			runtime.LockOSThread()
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				panic(err)
			}
			ids <- [2]int{i, unix.Gettid()}
			x := 0
			for !quit[i].Load() {
				x++
			}
		}()
	}
	for range n {
		id := <-ids
		tids[id[0]] = id[1]
	}
	stop = func(i int) {
		quit[i].Store(true)
		<-done[i]
	}
	tb.Cleanup(func() {
		for i := range n {
			if !quit[i].Load() {
				stop(i)
			}
		}
	})
	return tids, stop
}

func lastCPU(tb testing.TB) int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		tb.Fatal(err)
	}
	last := 0
	for c := range 1024 {
		if set.IsSet(c) {
			last = c
		}
	}
	return last
}

// TestGroupDelays: four busy threads sharing one CPU wait for it; the group's CPU delay is at
// least the sum of every thread's schedstat read just before, well above the main thread's,
// and it does not go down when two of the threads exit.
func TestGroupDelays(t *testing.T) {
	if _, err := os.Stat("/proc/self/schedstat"); err != nil {
		t.Skipf("no schedstat (CONFIG_SCHED_INFO): %v", err)
	}
	g := openGroupStats(t)
	tids, stop := busyThreads(t, 4, lastCPU(t))
	time.Sleep(300 * time.Millisecond) //nolint:forbidigo // the threads compete meanwhile

	pid := os.Getpid()
	before, n := threadsRunDelay(t)
	var d Delays
	if err := g.Delays(pid, &d); err != nil {
		t.Fatal(err)
	}
	main, _ := runDelay(t, "/proc/self/schedstat")
	var busy uint64
	for _, tid := range tids {
		v, _ := runDelay(t, fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
		busy += v
	}
	t.Logf("group CPU delay %v; %d threads' schedstat before %v; main thread %v; busy threads %v",
		d.CPU, n, time.Duration(before), time.Duration(main), time.Duration(busy))
	if uint64(d.CPU) < before {
		t.Errorf("group CPU delay %d ns < the threads' schedstat sum just before, %d ns", d.CPU, before)
	}
	if busy == 0 {
		t.Skip("the busy threads never waited (a CPU to themselves?): nothing more to compare")
	}
	// The main thread sleeps in the test; the busy threads' waits are the kernel's own figures.
	if uint64(d.CPU) < main+busy/2 {
		t.Errorf("group CPU delay %d ns is not well above the main thread's %d ns (busy threads %d ns)", d.CPU, main, busy)
	}

	// Two threads exit: their waits stay in the group's figure.
	prev := d.CPU
	stop(0)
	stop(1)
	for _, tid := range tids[:2] {
		for wait := 0; ; wait++ {
			if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); errors.Is(err, os.ErrNotExist) {
				break
			}
			if wait == 2000 {
				t.Fatalf("thread %d still there 10 s after its goroutine ended", tid)
			}
			time.Sleep(5 * time.Millisecond) //nolint:forbidigo // until the kernel reaped the thread
		}
	}
	for range 5 {
		if err := g.Delays(pid, &d); err != nil {
			t.Fatal(err)
		}
		if d.CPU < prev {
			t.Fatalf("group CPU delay went down from %v to %v after two threads exited", prev, d.CPU)
		}
		prev = d.CPU
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // the remaining threads keep waiting
	}
}

// TestGroupDelaysGone: a process that does not exist is ESRCH, and the socket still answers.
func TestGroupDelaysGone(t *testing.T) {
	g := openGroupStats(t)
	var d Delays
	// The highest pid the kernel hands out is pid_max - 1.
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	top, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	err = g.Delays(top, &d)
	if !errors.Is(err, unix.ESRCH) {
		t.Fatalf("query of pid %d: %v, want ESRCH", top, err)
	}
	if err := g.Delays(os.Getpid(), &d); err != nil {
		t.Fatalf("query after a refused one: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Delays(os.Getpid(), &d); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("query after Close: %v", err)
	}
}

// BenchmarkGroupDelays: one TASKSTATS query of a thread group (this test process, several
// threads) next to one pread of a kept-open /proc/self/schedstat, the main thread's figure.
func BenchmarkGroupDelays(b *testing.B) {
	b.Run("taskstats-tgid", func(b *testing.B) {
		g := openGroupStats(b)
		pid := os.Getpid()
		var d Delays
		b.ReportAllocs()
		for b.Loop() {
			if err := g.Delays(pid, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("schedstat-pread", func(b *testing.B) {
		fd, err := unix.Open("/proc/self/schedstat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Skip(err)
		}
		defer unix.Close(fd)
		buf := make([]byte, 4096)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := unix.Pread(fd, buf, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
