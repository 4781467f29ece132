package procevents

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

const envWorkload = "PROCEVENTS_TEST_WORKLOAD"

// manyThreads is how many burning threads the manythreads workload starts.
const manyThreads = 32

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
		// What it lived by its own clock, for the test: its life as the kernel counts it began
		// before this clock started (exec, the runtime's start) and ends after this write.
		if err := os.WriteFile("workload.lived", []byte(time.Since(start).String()), 0o600); err != nil {
			panic(err)
		}
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
	case "manythreads":
		// manyThreads OS threads, each burning 20 ms of CPU, then, once a line is read from
		// stdin, exit_group with all of them alive.
		var wg sync.WaitGroup
		for range manyThreads {
			wg.Add(1)
			go func() {
				runtime.LockOSThread()
				burn(20 * time.Millisecond)
				wg.Done()
				select {}
			}()
		}
		wg.Wait()
		fmt.Println("ready")
		_, _ = fmt.Scanln()
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
