package kmsg

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

func TestMain(m *testing.M) {
	if os.Getenv("KMSG_TEST_HOG") != "" {
		// Wait until the parent has put this process in the limited cgroup, then use far more
		// memory than it allows.
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		for {
			b := make([]byte, 16<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			hog = append(hog, b)
		}
	}
	os.Exit(m.Run())
}

var hog [][]byte

// memoryCgroup makes a memory cgroup limited to limit bytes, on cgroup v2 or the v1 memory
// controller, and returns its directory and the file holding its OOM kill count.
func memoryCgroup(t *testing.T, limit int) (dir, counts string) {
	t.Helper()
	name := "kmsg-test-" + strconv.Itoa(os.Getpid())
	v2 := "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(v2, "cgroup.controllers")); err == nil {
		dir = filepath.Join(v2, name)
		counts = "memory.events"
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("cannot create a cgroup: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(strconv.Itoa(limit)), 0); err != nil {
			_ = os.Remove(dir)
			t.Skipf("cannot limit a cgroup's memory (memory controller not enabled?): %v", err)
		}
	} else {
		dir = filepath.Join(v2, "memory", name)
		counts = "memory.oom_control"
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("cannot create a v1 memory cgroup: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.Itoa(limit)), 0); err != nil {
			_ = os.Remove(dir)
			t.Skipf("cannot limit a cgroup's memory: %v", err)
		}
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for os.Remove(dir) != nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	})
	return dir, filepath.Join(dir, counts)
}

func oomKills(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) == "memory.events" {
		var e procfs.MemoryEvents
		if err := procfs.ParseMemoryEvents(b, &e); err != nil {
			t.Fatal(err)
		}
		return e.OOMKill
	}
	var c procfs.MemoryOOMControl
	if err := procfs.ParseMemoryOOMControl(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.OOMKill
}

// TestFollowerSeesOOMKill: a child in a cgroup limited to 64 MiB that allocates without end is
// killed by the kernel; the follower names it, and the cgroup counts the kill.
func TestFollowerSeesOOMKill(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: reading /dev/kmsg and creating a cgroup")
	}
	fl, err := OpenFollower()
	if err != nil {
		t.Skipf("kernel log unreadable here: %v", err)
	}
	kills := make(chan OOMKill, 16)
	done := make(chan error, 1)
	go func() { done <- fl.Run(context.Background(), func(k OOMKill) { kills <- k }) }()
	t.Cleanup(func() {
		_ = fl.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	dir, counts := memoryCgroup(t, 64<<20)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "KMSG_TEST_HOG=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("move the child into the cgroup: %v", err)
	}
	_, _ = stdin.Write([]byte("go\n"))
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL", err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case k := <-kills:
			if k.PID != cmd.Process.Pid {
				continue
			}
			t.Logf("%+v", k)
			if !k.MemoryCgroup || filepath.Base(k.Cgroup) != filepath.Base(dir) || filepath.Base(k.TaskCgroup) != filepath.Base(dir) {
				t.Errorf("kill %+v, want a memory cgroup kill in %s", k, filepath.Base(dir))
			}
			if n := oomKills(t, counts); n != 1 {
				t.Errorf("%s: oom_kill %d, want 1", counts, n)
			}
			return
		case <-timeout:
			t.Fatalf("no OOM kill reported for pid %d; stats %+v", cmd.Process.Pid, fl.Stats())
		}
	}
}

// TestFollowerFromTheEnd: records written before OpenFollower are not reported, and Close
// ends Run at once.
func TestFollowerFromTheEnd(t *testing.T) {
	// A reader opened at the end just before the follower reads every record the follower
	// may read (other tests and the host write to the log meanwhile: an OOM kill is some 80
	// records); the log's records since boot are not among them.
	ref, err := syscall.Open(Path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("kernel log unreadable here: %v", err)
	}
	defer syscall.Close(ref)
	_, err = syscall.Seek(ref, 0, io.SeekEnd)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := OpenFollower()
	if err != nil {
		t.Skipf("kernel log unreadable here: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- fl.Run(context.Background(), func(OOMKill) {}) }()
	time.Sleep(50 * time.Millisecond)
	read := fl.Stats().Records
	if logged := drainCount(t, ref); read > logged {
		t.Errorf("read %d records, %d were logged since it opened: not from the end", read, logged)
	}
	start := time.Now()
	_ = fl.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Run returned %v after Close", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
}

// drainCount reads a non-blocking /dev/kmsg descriptor to its end and counts the records, those
// overwritten before they were read included.
func drainCount(t *testing.T, fd int) uint64 {
	t.Helper()
	buf := make([]byte, 8192)
	var n uint64
	for {
		_, err := syscall.Read(fd, buf)
		switch {
		case err == nil, errors.Is(err, syscall.EPIPE):
			n++
		case errors.Is(err, syscall.EAGAIN):
			return n
		default:
			t.Fatalf("read %s: %v", Path, err)
		}
	}
}
