package procevents

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

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
