//go:build linux

package propletreceiver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

// TestScale measures the whole receiver on 1,000 real processes (SCALE_TASKS) sampled every
// second: the collector's CPU share (sampling and building pdata, handed to a counting
// consumer) and its heap per task. It first measures sampling alone (the monitor, its samples
// discarded), so the log tells the two shares apart, and last the floor under both: the same
// reads and the same OTLP tree at the same pace, and nothing else. It runs with `make scale`
// (PROPLET_SCALE_TEST=1), since it takes about a minute.
func TestScale(t *testing.T) {
	if os.Getenv("PROPLET_SCALE_TEST") == "" {
		t.Skip("set PROPLET_SCALE_TEST=1 (make scale) to run the 1,000-process measurement")
	}
	n := 1000
	if v := os.Getenv("SCALE_TASKS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "SCALE_TASKS: a number of processes")
	}
	cmds := testworkload.Sleepers(t, n)

	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	cfg.Profiles = map[string]profile.Overrides{"every-second": {Interval: ptr(time.Second)}}
	cfg.StartJitter = time.Second // spread the thousand tasks over the second
	for i, c := range cmds {
		cfg.Tasks = append(cfg.Tasks, TaskConfig{ID: "task-" + strconv.Itoa(i), ProcessLocator: ProcessLocator{PID: int32(c.Process.Pid)}, Profile: "every-second"})
	}

	t.Run("sampling-alone", func(t *testing.T) {
		mc, _, err := cfg.monitorConfig(zap.NewNop())
		require.NoError(t, err)
		out := make(chan monitor.Sample, 256)
		mon, err := monitor.New(mc, zap.NewNop(), nil, out)
		require.NoError(t, err)
		var samples atomic.Int64
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for range out {
				samples.Add(1)
			}
		}()
		require.NoError(t, mon.Start(context.Background()))
		require.Eventually(t, func() bool { return samples.Load() >= int64(3*n) }, 30*time.Second, 100*time.Millisecond)
		m := measureWindow(t, samples.Load, ".sampling")
		require.NoError(t, mon.Shutdown(context.Background()))
		close(out)
		<-drained
		t.Logf("sampling alone: tasks=%d %s", n, m)
		assert.InDelta(t, float64(n), m.perSecond, 0.1*float64(n), "every task sampled once a second")
	})

	t.Run("receiver", func(t *testing.T) {
		sink := &countingConsumer{}
		heapBefore := heapInUse()
		rcv, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
		require.NoError(t, err)
		require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
		defer func() { require.NoError(t, rcv.Shutdown(context.Background())) }()

		// Warm up, then measure the heap (every task bound, its resource cached, the
		// receiver's buffers in use) and a steady window.
		require.Eventually(t, func() bool { return sink.DataPointCount() >= 3*n*10 }, 30*time.Second, 100*time.Millisecond)
		perTask := float64(heapInUse()-heapBefore) / float64(n)
		m := measureWindow(t, sink.resources.Load, "") // a resource a sample
		t.Logf("receiver (sampling and pdata): tasks=%d %s, heap per task=%.0f B (%.2f KiB)", n, m, perTask, perTask/1024)
		assert.InDelta(t, float64(n), m.perSecond, 0.1*float64(n), "every task sampled once a second")
		assert.LessOrEqual(t, perTask, 4096.0, "at most 4 KiB per task besides history")
	})

	t.Run("floor", func(t *testing.T) {
		m, reads := measureFloor(t, cmds, true)
		t.Logf("floor (the same reads and OTLP tree at the same pace, nothing else): tasks=%d %s; the reads %.2f µs a sample",
			n, m, reads.Seconds()*1e6)
		assert.InDelta(t, float64(n), m.perSecond, 0.1*float64(n), "every task read once a second")
		alone, readsAlone := measureFloor(t, cmds, false)
		t.Logf("the reads alone at the same pace: tasks=%d %s; the reads %.2f µs a sample; with the tree between them %.2fx",
			n, alone, readsAlone.Seconds()*1e6, reads.Seconds()/readsAlone.Seconds())
	})
}

// measureFloor measures what no receiver of these processes' standard-profile samples can do
// with less, in a Go process: every second, in rounds of a tenth of the tasks every 100 ms (the
// receiver's scheduling grid), max_concurrency's workers each read their share of the round
// through kept-open files (stat, io and schedstat pread, fd/ fstat'ed: the system calls of a
// sample, with no parsing) and, with tree, copy the OTLP tree of one sample (made once by
// record) into a batch per worker, handed to a consumer that drops it. Besides the process's
// CPU it returns the reads' own CPU a sample: each task's four system calls timed by its
// thread's CPU clock, less the clock's own cost.
func measureFloor(t *testing.T, cmds []*exec.Cmd, tree bool) (window, time.Duration) {
	r := benchReceiver()
	s := benchSample()
	r.record(&s)
	ref := r.mb.Emit().ResourceMetrics().At(0)

	type files struct{ stat, io, sched, fd int }
	open := func(path string, flags int) int {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		t.Cleanup(func() { _ = unix.Close(fd) })
		return fd
	}
	procs := make([]files, len(cmds))
	for i, c := range cmds {
		dir := "/proc/" + strconv.Itoa(c.Process.Pid)
		procs[i] = files{open(dir+"/stat", unix.O_RDONLY), open(dir+"/io", unix.O_RDONLY),
			open(dir+"/schedstat", unix.O_RDONLY), open(dir+"/fd", unix.O_RDONLY|unix.O_DIRECTORY)}
	}
	workers := min(4, runtime.NumCPU()) // max_concurrency's default
	bufs := make([][]byte, workers)
	for w := range bufs {
		bufs[w] = make([]byte, 4096)
	}
	sink := &countingConsumer{}
	var read, readNs atomic.Int64
	round := func(r int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				runtime.LockOSThread() // the thread's CPU clock times this goroutine's reads
				defer runtime.UnlockOSThread()
				batch := pmetric.NewMetrics()
				var st unix.Stat_t
				for i := r + 10*w; i < len(procs); i += 10 * workers {
					f := procs[i]
					c0 := threadCPU()
					_, _ = unix.Pread(f.stat, bufs[w], 0)
					_, _ = unix.Pread(f.io, bufs[w], 0)
					_, _ = unix.Pread(f.sched, bufs[w], 0)
					_ = unix.Fstat(f.fd, &st)
					readNs.Add(threadCPU() - c0)
					if tree {
						ref.CopyTo(batch.ResourceMetrics().AppendEmpty())
					}
					read.Add(1)
				}
				_ = sink.ConsumeMetrics(context.Background(), batch)
			})
		}
		wg.Wait()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for r := 0; ; r = (r + 1) % 10 {
			select {
			case <-stop:
				return
			case <-tick.C:
				round(r)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	clock := clockCost()
	time.Sleep(2 * time.Second) //nolint:forbidigo // two passes over every task before the window
	n0, ns0 := read.Load(), readNs.Load()
	suffix := ".floor"
	if !tree {
		suffix = ".reads"
	}
	m := measureWindow(t, read.Load, suffix)
	n, ns := read.Load()-n0, readNs.Load()-ns0
	return m, time.Duration(float64(ns)/float64(max(n, 1))) - clock
}

// threadCPU is the calling thread's CPU time, in nanoseconds.
func threadCPU() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

// clockCost is what a pair of threadCPU calls adds to what they time.
func clockCost() time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const pairs = 10000
	var sum int64
	for range pairs {
		c0 := threadCPU()
		sum += threadCPU() - c0
	}
	return time.Duration(sum / pairs)
}

// window is the collector's CPU over a steady window, as shares of one core.
type window struct {
	user, kernel float64
	perSecond    float64 // samples per second
}

func (w window) share() float64 { return w.user + w.kernel }

func (w window) String() string {
	return fmt.Sprintf("samples/s=%.0f collector CPU=%.2f%% of one core (user %.2f%%, kernel %.2f%%)",
		w.perSecond, w.share()*100, w.user*100, w.kernel*100)
}

// measureWindow measures 20 s of steady state; count returns the samples taken so far. With
// PROPLET_SCALE_PROFILE set, the window is CPU-profiled into that file with suffix added.
func measureWindow(t *testing.T, count func() int64, suffix string) window {
	const length = 20 * time.Second
	if path := os.Getenv("PROPLET_SCALE_PROFILE"); path != "" {
		f, err := os.Create(path + suffix)
		require.NoError(t, err)
		require.NoError(t, pprof.StartCPUProfile(f))
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	user0, sys0 := cpuTime()
	wall0, n0 := time.Now(), count()
	time.Sleep(length) //nolint:forbidigo // a steady-state window is what is measured
	user1, sys1 := cpuTime()
	wall1, n1 := time.Now(), count()
	secs := wall1.Sub(wall0).Seconds()
	return window{
		user:      (user1 - user0).Seconds() / secs,
		kernel:    (sys1 - sys0).Seconds() / secs,
		perSecond: float64(n1-n0) / secs,
	}
}

// countingConsumer counts data points and drops the data, as a fast exporter would, so the
// test measures the receiver and not a growing in-memory sink.
type countingConsumer struct{ points, resources atomic.Int64 }

func (*countingConsumer) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (c *countingConsumer) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	c.points.Add(int64(md.DataPointCount()))
	c.resources.Add(int64(md.ResourceMetrics().Len()))
	return nil
}

func (c *countingConsumer) DataPointCount() int { return int(c.points.Load()) }

// cpuTime returns the process's user and kernel CPU time. The kernel splits the total by
// sampled ticks, so the split is approximate and the sum exact.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
