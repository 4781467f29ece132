package procevents

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

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
	// The workload burnt 500 ms as its own thread measured it (getrusage, the scheduler's
	// run time): the Exit, the same run time summed over every thread, is no less, however
	// busy the machine (the tick samples alone fell a third short at four busy loops).
	if cpu := e.User + e.System; cpu < 500*time.Millisecond {
		t.Errorf("CPU %v, want at least 0.5 s", cpu)
	}
	if e.WriteBytes < 8<<20 {
		t.Errorf("written %d bytes, want at least 8 MiB", e.WriteBytes)
	}
	// The workload exits 1.5 s after it starts, later when the machine is too busy to do its
	// work in time. It lived at least what its own clock measured, and at most what the test
	// saw from before its start to its Exit (which a busy machine delivers late).
	b, err := os.ReadFile(filepath.Join(cmd.Dir, "workload.lived"))
	if err != nil {
		t.Fatal(err)
	}
	own, err := time.ParseDuration(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if own < 1500*time.Millisecond || e.Elapsed < own || e.Elapsed > lived {
		t.Errorf("elapsed %v, want from what the workload measured itself, %v (at least 1.5 s), to what the test saw, %v", e.Elapsed, own, lived)
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
	// The reckoned start is late by the time the record waited to be read: at most the time
	// from the kill to the test having the record, which the test measured, whatever the
	// machine's load made it.
	late := read.Sub(killed)
	if !e.SameStart(ticks, late) {
		t.Errorf("start %d ticks from the record, %d in /proc; the record was read %v after the kill", e.StartTicks(), ticks, late)
	}
	if late < 900*time.Millisecond && (e.SameStart(ticks+100, late) || e.SameStart(ticks-100, late)) {
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

// TestLateReaderMissesNoThread: the reader is held off (as a busy machine keeps it off the
// CPUs) while a process of 33 threads ends, so every thread's record waits in the socket, past
// the group's linger (a nanosecond; no coalescing, so each datagram is one read), when the
// reader gets to them. The Exit still sums every thread. That datagrams waiting past a
// deadline are read before the deadline's work is TestPastDeadlineReadsWhatWaits', with
// datagrams the test sends; here the kernel orders the records, and on this machine the
// group's own record came last in every run, so this one checks the sum, not that order.
func TestLateReaderMissesNoThread(t *testing.T) {
	l, rec := open(t, Options{Linger: time.Nanosecond, Coalesce: -1})
	cmd := command(t, "manythreads")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("workload: %v", err)
	}
	l.mu.Lock() // the reader stops at its next record
	fmt.Fprintln(in)
	var si unix.Siginfo
	for {
		// Ended, every thread: the kernel sent each record before the group became a zombie.
		err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &si, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			l.mu.Unlock()
			t.Fatal(err)
		}
	}
	l.mu.Unlock()
	e := waitExit(t, rec, cmd.Process.Pid)
	_ = cmd.Wait()
	if want := manyThreads + 1; e.Threads < want {
		t.Errorf("%d thread records in the Exit, want at least %d (the leader and %d burners)", e.Threads, want, manyThreads)
	}
	// Each burner burnt 20 ms, measured by the thread itself; less 10% for tick accounting.
	if cpu, want := e.User+e.System, time.Duration(manyThreads)*18*time.Millisecond; cpu < want {
		t.Errorf("CPU %v, want at least %v", cpu, want)
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
