//go:build linux

package e2e

import (
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestReadOrderFloor measures what the order of the reads costs the kernel: SCALE_TASKS
// (10,000) processes' sample reads in process id order against the same reads shuffled, each
// on a quiet thread (the kernel floor's conditions) and busy, as inside a collector (two
// threads sharing each round, as two sampling workers do, and 64 KiB of other memory touched
// between tasks, as a sample's parsing and OTLP do). Kept-open files for as many as the
// descriptor limit leaves room for, the rest by path; each paced as the collector paces one
// 10 s interval, in 100 ms rounds; one warm-up pass, then three measured. Processes started one
// after another have their kernel data side by side; the scheduler keeps that order in its
// rounds. Run with PROPLET_SCALE_HOST=1 (root).
func TestReadOrderFloor(t *testing.T) {
	if os.Getenv("PROPLET_SCALE_HOST") == "" {
		t.Skip("set PROPLET_SCALE_HOST=1 to run the read-order measurement")
	}
	n := envInt(t, "SCALE_TASKS", 10000)
	limit := raiseNoFile(t, uint64(4*n+4096))
	pids := scaleTasks(t, n)
	slices.Sort(pids)
	r := newOrderReader(t, pids, min(n, max(0, int(limit)-1024)/4))

	type condition struct {
		name     string
		shuffled bool
		threads  int
		between  int // bytes of other memory touched between two tasks
	}
	conditions := []condition{
		{"pid order, quiet", false, 1, 0},
		{"shuffled, quiet", true, 1, 0},
		{"pid order, busy", false, 2, 64 << 10},
		{"shuffled, busy", true, 2, 64 << 10},
	}
	for pass := range 4 {
		for _, c := range conditions {
			kept := r.paced(order(r.kept, c.shuffled), r.readKept, c.threads, c.between)
			byPath := r.paced(order(n, c.shuffled), r.readByPath, c.threads, c.between)
			if pass > 0 { // the warm-up touched every process's kernel data once
				t.Logf("pass %d, %-17s kept open %6.2f µs a task, by path %6.2f µs", pass, c.name, micros(kept), micros(byPath))
			}
		}
	}
	require.NoError(t, r.err())
}

// orderReader reads the processes' sample files: kept open for the first kept, by path for all.
type orderReader struct {
	kept  int
	open  [][4]int // stat, io, schedstat, fd/
	dirs  []string
	other []byte // memory touched between tasks

	mu    sync.Mutex
	first error
}

func newOrderReader(t *testing.T, pids []int, kept int) *orderReader {
	t.Helper()
	r := &orderReader{kept: kept, other: make([]byte, 1<<20)}
	for _, pid := range pids {
		r.dirs = append(r.dirs, "/proc/"+strconv.Itoa(pid)+"/")
	}
	t.Cleanup(func() {
		for _, f := range r.open {
			for _, fd := range f {
				_ = unix.Close(fd)
			}
		}
	})
	for _, dir := range r.dirs[:kept] {
		var f [4]int
		for i, name := range []string{"stat", "io", "schedstat", "fd"} {
			fd, err := unix.Open(dir+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			require.NoError(t, err)
			f[i] = fd
		}
		r.open = append(r.open, f)
	}
	return r
}

func (r *orderReader) note(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first == nil {
		r.first = err
	}
}

func (r *orderReader) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

func (r *orderReader) readKept(i int, buf []byte, st *unix.Stat_t) {
	f := r.open[i]
	_, err1 := unix.Pread(f[0], buf, 0)
	_, err2 := unix.Pread(f[1], buf, 0)
	_, err3 := unix.Pread(f[2], buf, 0)
	r.note(errors.Join(err1, err2, err3, unix.Fstat(f[3], st)))
}

func (r *orderReader) readByPath(i int, buf []byte, st *unix.Stat_t) {
	read := func(path string) error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		_, err = unix.Pread(fd, buf, 0)
		return errors.Join(err, unix.Close(fd))
	}
	dir := r.dirs[i]
	r.note(errors.Join(read(dir+"stat"), read(dir+"io"), read(dir+"schedstat"), unix.Stat(dir+"fd", st)))
}

// paced reads the tasks of order in 100 rounds 100 ms apart, each round's tasks dealt to
// threads locked threads in turn, between bytes of other memory touched after each task, and
// returns the reads' CPU a task (the threads' own clocks).
func (r *orderReader) paced(order []int, read func(int, []byte, *unix.Stat_t), threads, between int) time.Duration {
	const rounds = 100
	per := (len(order) + rounds - 1) / rounds
	var total time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make([]chan int, threads)
	for w := range threads {
		start[w] = make(chan int)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			buf := make([]byte, 4096)
			var st unix.Stat_t
			var mine time.Duration
			for round := range start[w] {
				c0 := threadClock()
				for k := round*per + w; k < min((round+1)*per, len(order)); k += threads {
					read(order[k], buf, &st)
					for j := 0; j < between; j += 64 { // one write a cache line
						r.other[(k*between+j)%len(r.other)]++
					}
				}
				mine += threadClock() - c0
				wg.Done()
			}
			mu.Lock()
			total += mine
			mu.Unlock()
			wg.Done()
		}()
	}
	next := time.Now()
	for round := range rounds {
		wg.Add(threads)
		for w := range threads {
			start[w] <- round
		}
		wg.Wait()
		next = next.Add(100 * time.Millisecond)
		time.Sleep(time.Until(next)) //nolint:forbidigo // the collector's pace is what is reproduced
	}
	wg.Add(threads)
	for w := range threads {
		close(start[w])
	}
	wg.Wait()
	return total / time.Duration(max(len(order), 1))
}

// order is 0..n-1, shuffled or not.
func order(n int, shuffled bool) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	if shuffled {
		rand.Shuffle(n, func(i, j int) { o[i], o[j] = o[j], o[i] })
	}
	return o
}

// threadClock is the calling OS thread's CPU time.
func threadClock() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

func micros(d time.Duration) float64 { return d.Seconds() * 1e6 }
