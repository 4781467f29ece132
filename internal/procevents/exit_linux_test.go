package procevents

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

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
