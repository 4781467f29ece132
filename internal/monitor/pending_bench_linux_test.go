//go:build linux

package monitor

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// This file uses only what the monitor had before discovery was made to cost one read per
// input per pass, so the benchmark runs unchanged on the commit before it (a git worktree).

// propletStandIn is a shell standing in for the proplet: it writes its pid to a pid file and starts
// a child for every line written to it, as the proplet starts tasks.
type propletStandIn struct {
	pid     int
	pidFile string
	stdin   io.Writer
	exe     string
}

func startProplet(tb testing.TB) *propletStandIn {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	pidFile := filepath.Join(tb.TempDir(), "proplet.pid")
	cmd := exec.Command("sh", "-c", `echo $$ > "$1"; while read -r line; do eval "$line" & done; wait`, "proplet", pidFile)
	// Its children are workloads of this test binary that do nothing.
	cmd.Env = append(os.Environ(), "PROPLET_TEST_WORKLOAD=sleep")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if pid, ok := procmatch.ReadPIDFile(pidFile); ok && int(pid) == cmd.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("the proplet stand-in did not write its pid file")
		}
		time.Sleep(5 * time.Millisecond) //nolint:forbidigo // polling a file another process writes
	}
	return &propletStandIn{pid: cmd.Process.Pid, pidFile: pidFile, stdin: stdin, exe: exe}
}

// start makes the proplet start a task process whose command line ends with args.
func (p *propletStandIn) start(tb testing.TB, args ...string) {
	tb.Helper()
	line := "exec " + shellQuote(p.exe) + " -test.run='^$'"
	for _, a := range args {
		line += " " + shellQuote(a)
	}
	if _, err := fmt.Fprintln(p.stdin, line); err != nil {
		tb.Fatal(err)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// taskID is the id of the i-th of many tasks, shaped as Propeller's.
func taskID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// startedTask is a task as the control plane registers it for a start request: the default
// rule cmdline '{task_id}', quoted, restricted to children of the proplet.
func startedTask(tb testing.TB, id, propletPIDFile string) admission.Spec {
	tb.Helper()
	m, err := procmatch.Compile(procmatch.Spec{Cmdline: regexp.QuoteMeta(id), ParentPIDFile: propletPIDFile})
	if err != nil {
		tb.Fatal(err)
	}
	p, _ := profile.Builtin(profile.Standard)
	return admission.Spec{ID: id, Name: "t", ProfileName: profile.Standard, Profile: p, Locator: admission.Locator{Match: m}}
}

// BenchmarkDiscoveryPassTenThousandPending measures one discovery pass with 10,000 pending
// tasks started through the control plane (each with the rule cmdline '<id>' restricted to
// children of the proplet, found through its pid file), on a host with 300 more processes
// than it had.
func BenchmarkDiscoveryPassTenThousandPending(b *testing.B) {
	const pending = 10_000
	p := startProplet(b)
	testworkload.Sleepers(b, 300)
	// An hour's interval: every pass looks at every task, whatever the time it takes.
	m, err := New(Config{ProcRoot: "/proc", CgroupRoot: "/sys/fs/cgroup", DiscoveryInterval: time.Hour}, zap.NewNop(), nil, drained(b))
	if err != nil {
		b.Fatal(err)
	}
	for i := range pending {
		if err := m.AddTask(startedTask(b, taskID(i), p.pidFile)); err != nil {
			b.Fatal(err)
		}
	}
	m.discover(context.Background())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.discover(context.Background())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/pending, "ns/task")
}
