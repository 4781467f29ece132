//go:build linux

package monitor

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

const envDelaysWorkload = "PROPLET_TEST_DELAYS_WORKLOAD"

// delaysWorkloadIfChild runs the delays workload when this process was started as one: it
// reports ready, waits for a line on stdin, writes 4 MiB in 256 KiB chunks each followed by
// fsync, spends 200 ms of its own CPU (on a CPU the test keeps busy), then prints what the
// kernel counted of its waits so far, summed over its threads: run_delay of schedstat in ns,
// delayacct_blkio_ticks of stat in clock ticks. The test compares the report with these.
func delaysWorkloadIfChild() {
	if os.Getenv(envDelaysWorkload) == "" {
		return
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	f, err := os.Create("delays.out")
	if err != nil {
		panic(err)
	}
	chunk := make([]byte, 256<<10)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for range 16 {
		if _, err := f.Write(chunk); err != nil {
			panic(err)
		}
		if err := f.Sync(); err != nil {
			panic(err)
		}
	}
	_ = f.Close()
	var ru syscall.Rusage
	for {
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= 200*time.Millisecond {
			break
		}
		for i := 0; i < 100000; i++ {
			runtime.KeepAlive(i)
		}
	}
	var runDelay, blkioTicks uint64
	tids, _ := filepath.Glob("/proc/self/task/*")
	for _, dir := range tids {
		if b, err := os.ReadFile(dir + "/schedstat"); err == nil {
			if f := strings.Fields(string(b)); len(f) >= 2 {
				v, _ := strconv.ParseUint(f[1], 10, 64)
				runDelay += v
			}
		}
		if b, err := os.ReadFile(dir + "/stat"); err == nil {
			s := string(b)
			// Field 42, counted from after the command name in parentheses (field 2).
			if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) >= 40 {
				v, _ := strconv.ParseUint(f[39], 10, 64)
				blkioTicks += v
			}
		}
	}
	fmt.Printf("%d %d\n", runDelay, blkioTicks)
	os.Exit(0)
}

// kernelWaits is what the workload read of its own waits just before it exited.
type kernelWaits struct {
	runDelay   time.Duration
	blkioTicks uint64
}

// runDelaysWorkload runs the delays workload as a task, on the last CPU, which two busy loops
// keep busy while it runs, and returns its usage report, what it read of its own waits, and the
// monitor's log.
func runDelaysWorkload(t *testing.T, id string) (*Usage, kernelWaits, *observer.ObservedLogs) {
	t.Helper()
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("taskset (util-linux) is not installed: the test pins its processes with it")
	}
	cpu := strconv.Itoa(runtime.NumCPU() - 1)
	pinned := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.Args = append([]string{"taskset", "-c", cpu, cmd.Path}, cmd.Args[1:]...)
		cmd.Path = taskset
		return cmd
	}
	for range 2 {
		testworkload.StartCmd(t, pinned(testworkload.Command(t, testworkload.Burn, 0)))
	}

	core, logs := observer.New(zap.InfoLevel)
	h := runMonitorWith(t, Config{Events: EventsOn}, nil, zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())))
	// The kind is not used: delaysWorkloadIfChild runs first in the child and exits.
	cmd := pinned(testworkload.Command(t, testworkload.Sleep, 0, envDelaysWorkload+"=1"))
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewReader(out)
	line, err := lines.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)

	require.NoError(t, h.m.AddTask(pidTask(id, cmd, 10*time.Second)))
	require.Eventually(t, func() bool { return h.m.Tasks()[0].State == StateActive }, 10*time.Second, 5*time.Millisecond)
	_, err = stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	line, err = lines.ReadString('\n')
	require.NoError(t, err, "the workload's own figures")
	var ns uint64
	var w kernelWaits
	_, err = fmt.Sscanf(line, "%d %d", &ns, &w.blkioTicks)
	require.NoError(t, err, "the workload's own figures: %q", line)
	w.runDelay = time.Duration(ns)

	u := h.waitReport(t, id, time.Minute)
	t.Logf("report: %+v; the workload's own figures before it exited: run delay %v, block I/O %d ticks", *u, w.runDelay, w.blkioTicks)
	require.True(t, u.Exact, "the totals come from the kernel's exit record")
	return u, w, logs
}

// TestUsageReportsDelays: a task that waits for its CPU (two busy loops pinned beside it) and
// for its disk (writes, each synced) gets the kernel's delay totals in its report, at least
// what it read of them itself just before it exited (the exit record adds what came after). With
// delay accounting off, the kernel counts no block I/O, swap-in or reclaim delays and the
// report leaves them out. Linux 6.18 counts the first block I/O wait of about four runs in ten
// from boot (the workload's own stat says so too): the report then leaves that delay out, and
// the log says why.
// Not parallel: it sets the kernel's delay accounting switch, and keeps a CPU busy.
func TestUsageReportsDelays(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the kernel's process events and the delay accounting switch need root")
	}
	t.Run("delay accounting on", func(t *testing.T) {
		testworkload.SetDelayAccounting(t, true)
		u, w, logs := runDelaysWorkload(t, "delays-on")
		require.True(t, u.HasCPUDelay, "CPU delay present")
		assert.Positive(t, u.CPUDelay, "it waited for its CPU")
		assert.GreaterOrEqual(t, u.CPUDelay, w.runDelay.Seconds(), "at least what schedstat said before the exit")
		impossible := logs.FilterMessageSnippet("longer than the process's threads lived").All()
		if u.HasBlockIODelay {
			assert.Empty(t, impossible)
			assert.GreaterOrEqual(t, u.BlockIODelay, float64(w.blkioTicks)/100, "at least what stat said before the exit")
			assert.Less(t, u.BlockIODelay, 60.0, "a plausible wait")
		} else {
			require.Len(t, impossible, 1, "the block I/O delay is left out only when the kernel's was impossible, and the log says so")
			assert.Equal(t, []any{"blkio"}, impossible[0].ContextMap()["delays"])
			t.Logf("the kernel counted an impossible block I/O delay (%v), left out of the report; the workload's own stat said %d ticks",
				impossible[0].ContextMap()["blkio_delay"], w.blkioTicks)
		}
		assert.True(t, u.HasSwapInDelay, "swap-in delay present")
		assert.True(t, u.HasMemoryReclaimDelay, "reclaim delay present")
	})
	t.Run("delay accounting off", func(t *testing.T) {
		testworkload.SetDelayAccounting(t, false)
		u, w, _ := runDelaysWorkload(t, "delays-off")
		assert.Zero(t, w.blkioTicks, "the kernel counts no block I/O delay with accounting off")
		assert.False(t, u.HasBlockIODelay, "block I/O delay absent, not zero")
		assert.False(t, u.HasSwapInDelay, "swap-in delay absent")
		assert.False(t, u.HasMemoryReclaimDelay, "reclaim delay absent")
		// Linux 6.x still fills the CPU delay from the scheduler's statistics; a kernel that
		// does not leaves it at zero, and the report leaves it out.
		if u.HasCPUDelay {
			assert.GreaterOrEqual(t, u.CPUDelay, w.runDelay.Seconds(), "at least what schedstat said before the exit")
		} else {
			t.Logf("this kernel's exit record carries no CPU delay with delay accounting off")
		}
	})
}
