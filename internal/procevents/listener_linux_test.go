package procevents

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

const envWorkload = "PROCEVENTS_TEST_WORKLOAD"

func TestMain(m *testing.M) {
	if kind := os.Getenv(envWorkload); kind != "" {
		os.Exit(workload(kind))
	}
	os.Exit(m.Run())
}

var sink []byte

// burn keeps the calling thread busy for d of its own CPU time.
func burn(d time.Duration) {
	var ru syscall.Rusage
	cpu := func() time.Duration {
		_ = syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	end := cpu() + d
	x := 0
	for cpu() < end {
		for range 100000 {
			x++
		}
	}
	_ = x
}

// workload runs as a child of the test binary and returns its exit code.
func workload(kind string) int {
	start := time.Now()
	switch kind {
	case "usage":
		// 200 MiB touched, half a second of CPU, 8 MiB written with fsync, exit 3 at 1.5 s.
		sink = make([]byte, 200<<20)
		for i := 0; i < len(sink); i += os.Getpagesize() {
			sink[i] = 1
		}
		burn(500 * time.Millisecond)
		f, err := os.Create("workload.out")
		if err != nil {
			panic(err)
		}
		chunk := make([]byte, 1<<20)
		for range 8 {
			if _, err := f.Write(chunk); err != nil {
				panic(err)
			}
		}
		if err := f.Sync(); err != nil {
			panic(err)
		}
		_ = f.Close()
		time.Sleep(1500*time.Millisecond - time.Since(start))
		return 3
	case "threads":
		// Four OS threads, each burning 150 ms of CPU, then exit_group with all of them alive.
		runtime.GOMAXPROCS(4)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				runtime.LockOSThread()
				burn(150 * time.Millisecond)
				wg.Done()
				select {}
			}()
		}
		wg.Wait()
		return 0
	case "sleep":
		fmt.Println("ready")
		time.Sleep(time.Hour)
		return 0
	case "storm":
		// Start short processes (/bin/true) at a fixed rate for a while.
		rate, _ := strconv.Atoi(os.Getenv("PROCEVENTS_STORM_RATE"))
		d, _ := time.ParseDuration(os.Getenv("PROCEVENTS_STORM_FOR"))
		tick := time.Second / time.Duration(rate)
		next := time.Now()
		for time.Since(start) < d {
			pid, err := syscall.ForkExec("/bin/true", []string{"true"}, nil)
			if err != nil {
				panic(err)
			}
			go func() {
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, 0, nil)
			}()
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
		return 0
	case "open":
		// Report how Open fails here, as an exit code.
		l, err := Open(Options{})
		switch {
		case err == nil:
			_ = l.Close()
			return 0
		case errors.Is(err, ErrNotPermitted):
			return 10
		case errors.Is(err, ErrNotInitialNamespace):
			return 11
		case errors.Is(err, ErrUnsupported):
			return 12
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	case "short":
		time.Sleep(200 * time.Millisecond)
		return 0
	}
	panic("unknown workload " + kind)
}

func command(t testing.TB, kind string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorkload+"="+kind)
	cmd.Dir = t.TempDir()
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// recorder is a Handler that keeps what it hears.
type recorder struct {
	l     *Listener
	watch func(pid int) bool // which forked children to watch from their Fork
	mu    sync.Mutex
	forks map[int]int // child -> parent
	execs map[int]bool
	exits chan Exit
	lost  int
}

func newRecorder() *recorder {
	return &recorder{forks: map[int]int{}, execs: map[int]bool{}, exits: make(chan Exit, 1024)}
}

func (r *recorder) Fork(parent, child int) {
	r.mu.Lock()
	r.forks[child] = parent
	r.mu.Unlock()
	if r.watch != nil && r.watch(parent) {
		r.l.Watch(child)
	}
}

func (r *recorder) Exec(pid int) {
	r.mu.Lock()
	r.execs[pid] = true
	r.mu.Unlock()
}

func (r *recorder) Exit(e Exit) { r.exits <- e }

func (r *recorder) Lost() {
	r.mu.Lock()
	r.lost++
	r.mu.Unlock()
}

// open opens a listener and runs it with a recorder until the test ends; it skips the test
// when the sockets cannot be opened here.
func open(t testing.TB, opts Options) (*Listener, *recorder) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("process events need root")
	}
	l, err := Open(opts)
	if err != nil {
		if errors.Is(err, ErrNotPermitted) || errors.Is(err, ErrUnsupported) || errors.Is(err, ErrNotInitialNamespace) {
			t.Skipf("process events unavailable here: %v", err)
		}
		t.Fatal(err)
	}
	rec := newRecorder()
	rec.l = l
	// Watch every child this test process forks: the children start at once, before the test
	// can call Watch with their pid.
	self := os.Getpid()
	rec.watch = func(parent int) bool { return parent == self }
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background(), rec) }()
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after Close")
		}
	})
	return l, rec
}

// waitExit waits for the Exit of pid.
func waitExit(t testing.TB, rec *recorder, pid int) Exit {
	t.Helper()
	// A busy machine can take long to run the workload to its end; a minute is a lost record.
	timeout := time.After(time.Minute)
	for {
		select {
		case e := <-rec.exits:
			if e.PID == pid {
				return e
			}
		case <-timeout:
			t.Fatalf("no Exit for pid %d within a minute", pid)
		}
	}
}

func TestExitAccounting(t *testing.T) {
	_, rec := open(t, Options{})
	cmd := command(t, "usage")
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, rec, cmd.Process.Pid)
	lived := time.Since(t0) // at least what the process lived, by the time its Exit is read
	_ = cmd.Wait()
	t.Logf("%+v", e)
	if !e.Status.Exited() || e.Status.ExitCode() != 3 || e.Status.Signaled() {
		t.Errorf("status %#x: exited %v code %d, want exit code 3", uint32(e.Status), e.Status.Exited(), e.Status.ExitCode())
	}
	if e.PeakRSS < 200<<20 {
		t.Errorf("peak RSS %d MiB, want at least 200", e.PeakRSS>>20)
	}
	if cpu := e.User + e.System; cpu < 400*time.Millisecond {
		t.Errorf("CPU %v, want at least 0.4 s", cpu)
	}
	if e.WriteBytes < 8<<20 {
		t.Errorf("written %d bytes, want at least 8 MiB", e.WriteBytes)
	}
	// The workload exits 1.5 s after it starts, later when the machine is too busy to do its
	// work in time: compare with what the test saw.
	if e.Elapsed < 1500*time.Millisecond || e.Elapsed > lived || e.Elapsed < lived-300*time.Millisecond {
		t.Errorf("elapsed %v, want at least 1.5 s and within 0.3 s of %v", e.Elapsed, lived)
	}
	if e.ParentPID != os.Getpid() {
		t.Errorf("parent %d, want %d", e.ParentPID, os.Getpid())
	}
	if !e.Complete {
		t.Error("not complete")
	}
	if e.Threads < 1 {
		t.Errorf("threads %d", e.Threads)
	}
}

func TestExitSignal(t *testing.T) {
	_, rec := open(t, Options{})
	cmd := command(t, "sleep")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	_, _ = out.Read(buf)
	_ = cmd.Process.Kill()
	e := waitExit(t, rec, cmd.Process.Pid)
	_ = cmd.Wait()
	if !e.Status.Signaled() || e.Status.Signal() != 9 || e.Status.Exited() || e.Status.ExitCode() != -1 {
		t.Errorf("status %#x: signal %d, want 9", uint32(e.Status), e.Status.Signal())
	}
}

// TestStartIdentity: the start time reckoned from the record matches /proc/<pid>/stat's.
func TestStartIdentity(t *testing.T) {
	_, rec := open(t, Options{})
	cmd := command(t, "sleep")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	_, _ = out.Read(buf)
	ticks := procStartTicks(t, cmd.Process.Pid)
	killed := time.Now()
	_ = cmd.Process.Kill()
	e := waitExit(t, rec, cmd.Process.Pid)
	read := time.Now()
	_ = cmd.Wait()
	if !e.SameStart(ticks, 50*time.Millisecond) {
		t.Errorf("start %d ticks from the record, %d in /proc", e.StartTicks(), ticks)
	}
	if e.SameStart(ticks+100, 50*time.Millisecond) || e.SameStart(ticks-100, 50*time.Millisecond) {
		t.Errorf("a start a second away matches")
	}
	// It ended after the test killed it and before the test read its record, however long
	// the machine took between the two.
	const slack = 100 * time.Millisecond // the start is reckoned back from the elapsed time
	if end := e.Start.Add(e.Elapsed); end.Before(killed.Add(-slack)) || end.After(read.Add(slack)) {
		t.Errorf("start %v, elapsed %v: ended at %v, killed at %v, record read at %v", e.Start, e.Elapsed, end, killed, read)
	}
}

func procStartTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	var s procfs.Stat
	if err := procfs.ParseStat(b, &s); err != nil {
		t.Fatal(err)
	}
	return s.StartTime
}

// TestThreadsSummed: a process whose CPU is burnt in four threads; the kernel sends one record
// per thread, and the Exit sums them all.
func TestThreadsSummed(t *testing.T) {
	_, rec := open(t, Options{})
	cmd := command(t, "threads")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, rec, cmd.Process.Pid)
	_ = cmd.Wait()
	t.Logf("%+v", e)
	// Each of the four threads burnt 150 ms, measured by the thread itself.
	// One thread's record alone would be about 150 ms.
	if cpu := e.User + e.System; cpu < 540*time.Millisecond {
		t.Errorf("CPU %v, want at least 4 × 150 ms (less 10%% for tick accounting)", cpu)
	}
	if e.Threads < 5 {
		t.Errorf("%d thread records, want at least 5 (the leader and four burners)", e.Threads)
	}
	if e.Status.ExitCode() != 0 {
		t.Errorf("status %#x", uint32(e.Status))
	}
}

// TestManyShort: twenty processes living 0.2 s each, all at once: twenty Exits.
func TestManyShort(t *testing.T) {
	_, rec := open(t, Options{})
	want := map[int]bool{}
	var cmds []*exec.Cmd
	for range 20 {
		cmd := command(t, "short")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		want[cmd.Process.Pid] = true
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		_ = c.Wait()
	}
	timeout := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case e := <-rec.exits:
			if !want[e.PID] {
				continue
			}
			delete(want, e.PID)
			if e.Elapsed < 200*time.Millisecond || e.Status.ExitCode() != 0 {
				t.Errorf("pid %d: elapsed %v status %#x", e.PID, e.Elapsed, uint32(e.Status))
			}
		case <-timeout:
			t.Fatalf("no Exit for %d of 20 processes", len(want))
		}
	}
}

// TestForkExec: a child's fork names its parent, and its exec is seen.
func TestForkExec(t *testing.T) {
	_, rec := open(t, Options{})
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no /bin/true: %v", err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		parent, forked := rec.forks[pid]
		execed := rec.execs[pid]
		rec.mu.Unlock()
		if forked && execed {
			if parent != os.Getpid() {
				t.Errorf("child %d forked by %d, want %d", pid, parent, os.Getpid())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d: fork seen %v, exec seen %v", pid, forked, execed)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Threads are not thread groups: the test binary's own threads never show up as forks.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for child, parent := range rec.forks {
		if parent == os.Getpid() && child != pid {
			if _, err := os.Stat("/proc/" + strconv.Itoa(os.Getpid()) + "/task/" + strconv.Itoa(child)); err == nil {
				t.Errorf("thread %d reported as a fork", child)
			}
		}
	}
}

// TestCloseEndsRun: Close makes Run return at once, and a cancelled context too.
func TestCloseEndsRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("process events need root")
	}
	for _, how := range []string{"close", "cancel"} {
		t.Run(how, func(t *testing.T) {
			l, err := Open(Options{})
			if err != nil {
				t.Skipf("process events unavailable here: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx, newRecorder()) }()
			time.Sleep(50 * time.Millisecond) // let Run block in both receives
			start := time.Now()
			if how == "close" {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				cancel()
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
				// Promptly: no linger, coalescing pause or read is waited for to the end.
				if d := time.Since(start); d > time.Second {
					t.Errorf("Run returned %v after %s", d, how)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Run did not return after %s", how)
			}
			_ = l.Close()
		})
	}
}

// TestOverflow: a receive buffer far too small for a burst of forks and exits: Lost is called
// and counted, and the listener keeps going.
func TestOverflow(t *testing.T) {
	l, rec := open(t, Options{ReceiveBuffer: 1})
	// Hold the handler so nothing is read while the burst fills both buffers.
	l.hmu.Lock()
	var cmds []*exec.Cmd
	for range 50 {
		c := exec.Command("/bin/true")
		if err := c.Start(); err != nil {
			l.hmu.Unlock()
			t.Skipf("no /bin/true: %v", err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		_ = c.Wait()
	}
	l.hmu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		lost := rec.lost
		rec.mu.Unlock()
		if lost > 0 && l.Stats().Lost > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lost called %d times, stats %+v", lost, l.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Still listening: keep starting processes until the fork of one is heard (the tiny
	// buffer may overflow again with whatever else the host does).
	for {
		c := exec.Command("/bin/true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		rec.mu.Lock()
		_, seen := rec.forks[c.Process.Pid]
		rec.mu.Unlock()
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fork heard after the overflow: %+v", l.Stats())
		}
	}
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkListenerStorm measures the listener's CPU (this process's, as a share of one core)
// for 5 s idle and for 5 s while a separate process starts short processes (/bin/true) at a
// fixed rate (env PROCEVENTS_STORM_RATE, default 1000/s), each watched from its Fork as a
// collector would watch a matching task, with reads coalesced or not. Run with
// -benchtime=1x.
func BenchmarkListenerStorm(b *testing.B) {
	rate := 1000
	if s := os.Getenv("PROCEVENTS_STORM_RATE"); s != "" {
		rate, _ = strconv.Atoi(s)
	}
	for _, c := range []time.Duration{-1, 5 * time.Millisecond, 20 * time.Millisecond} {
		name := "coalesce=" + c.String()
		if c < 0 {
			name = "coalesce=off"
		}
		b.Run(name, func(b *testing.B) { storm(b, rate, Options{Coalesce: c}) })
	}
}

// stormHandler watches the children of one process, as a collector watches matching tasks,
// and does nothing else, so the figures are the listener's.
type stormHandler struct {
	l      *Listener
	parent atomic.Int64
}

func (h *stormHandler) Fork(parent, child int) {
	if int64(parent) == h.parent.Load() {
		h.l.Watch(child)
	}
}
func (h *stormHandler) Exec(int)  {}
func (h *stormHandler) Exit(Exit) {}
func (h *stormHandler) Lost()     {}

func storm(b *testing.B, rate int, opts Options) {
	if os.Geteuid() != 0 {
		b.Skip("process events need root")
	}
	l, err := Open(opts)
	if err != nil {
		b.Skipf("process events unavailable here: %v", err)
	}
	h := &stormHandler{l: l}
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background(), h) }()
	defer func() {
		_ = l.Close()
		<-done
	}()
	const window = 5 * time.Second
	for b.Loop() {
		s0, c0 := l.Stats(), cpuTime()
		time.Sleep(window)
		s1, c1 := l.Stats(), cpuTime()
		idle := float64(c1-c0) / float64(window) * 100
		cmd := command(b, "storm")
		cmd.Env = append(cmd.Env, "PROCEVENTS_STORM_RATE="+strconv.Itoa(rate), "PROCEVENTS_STORM_FOR="+window.String())
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		h.parent.Store(int64(cmd.Process.Pid))
		c2 := cpuTime()
		t2 := time.Now()
		_ = cmd.Wait()
		time.Sleep(100 * time.Millisecond) // the last lingering Exits
		s3, c3, d := l.Stats(), cpuTime(), time.Since(t2)
		msgs := s3.Records - s1.Records + s3.Events - s1.Events
		b.ReportMetric(idle, "%cpu-idle")
		b.ReportMetric(float64(c3-c2)/float64(d)*100, "%cpu-storm")
		b.ReportMetric(float64(s3.Exits-s1.Exits)/d.Seconds(), "exits/s")
		b.ReportMetric(float64(s3.Records-s1.Records)/d.Seconds(), "records/s")
		b.ReportMetric(float64(s3.Events-s1.Events)/d.Seconds(), "events/s")
		b.ReportMetric(float64(c3-c2)/float64(msgs), "cpu-ns/message")
		b.ReportMetric(float64(s3.Lost-s0.Lost), "lost")
	}
}

// TestOpenRefused: Open run by an unprivileged user says ErrNotPermitted, and run in a PID
// namespace of its own says ErrNotInitialNamespace (where the kernel would accept the sockets
// and send nothing).
func TestOpenRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		_, err := Open(Options{})
		if !errors.Is(err, ErrNotPermitted) {
			t.Fatalf("Open as uid %d: %v, want ErrNotPermitted", os.Geteuid(), err)
		}
		return
	}
	// A copy of the test binary that an unprivileged user may run.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	copyExe := dir + "/procevents.test"
	if err := os.WriteFile(copyExe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		attr *syscall.SysProcAttr
		want int
	}{
		{"unprivileged user", &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, 10},
		{"PID namespace", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}, 11},
		{"root", &syscall.SysProcAttr{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(copyExe, "-test.run=^$")
			cmd.Env = append(os.Environ(), envWorkload+"=open")
			cmd.Dir = dir
			cmd.Stderr = os.Stderr
			cmd.SysProcAttr = tt.attr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Skipf("cannot start the child this way here: %v", err)
			}
			if code != tt.want {
				t.Errorf("Open in the child: exit code %d, want %d (0 opened, 10 not permitted, 11 namespace, 12 unsupported)", code, tt.want)
			}
		})
	}
}
