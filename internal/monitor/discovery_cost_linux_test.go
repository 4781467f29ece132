//go:build linux

package monitor

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
)

// TestDiscoveryCost measures what finding tasks costs with /proc scans and with the kernel's
// process events, in one run: 100 tasks a discovery rule found, sampled every second, on a
// host with PROPLET_DISCOVERY_BACKGROUND (default 4,500) other processes. The window is
// hooks.reconcileEvery long, so the events mode pays its one reconciliation scan in it. Run it with
// `make discovery-cost` (PROPLET_DISCOVERY_COST=1); it needs root for the events mode.
func TestDiscoveryCost(t *testing.T) {
	if os.Getenv("PROPLET_DISCOVERY_COST") == "" {
		t.Skip("set PROPLET_DISCOVERY_COST=1 (make discovery-cost) to run the discovery cost measurement")
	}
	background := 4500
	if v, err := strconv.Atoi(os.Getenv("PROPLET_DISCOVERY_BACKGROUND")); err == nil {
		background = v
	}
	startSleepers(t, background, func(int) string { return "7200" })
	startSleepers(t, 100, func(i int) string { return fmt.Sprintf("3600.%05d", i) })
	match, err := procmatch.Compile(procmatch.Spec{Executable: "^sleep$", Cmdline: `^sleep (?P<task_id>3600\.[0-9]+)$`})
	require.NoError(t, err)
	rule := Rule{Match: match, ProfileName: "test", Profile: prof(time.Second)}
	procs, _ := os.ReadDir("/proc")
	t.Logf("host processes: about %d", len(procs))
	results := map[EventsMode]float64{}
	for _, mode := range []EventsMode{EventsOff, EventsOn} {
		t.Run(string(mode), func(t *testing.T) {
			h := runMonitor(t, Config{Events: mode, Rules: []Rule{rule}, DiscoveryInterval: time.Second})
			require.Eventually(t, func() bool { return len(h.m.Tasks()) == 100 }, 30*time.Second, 100*time.Millisecond)
			time.Sleep(2 * time.Second)
			u0, s0 := selfCPU()
			w0 := time.Now()
			time.Sleep(defaultHooks().reconcileEvery) //nolint:forbidigo // a steady-state window is what is measured
			u1, s1 := selfCPU()
			secs := time.Since(w0).Seconds()
			share := ((u1 - u0) + (s1 - s0)).Seconds() / secs
			results[mode] = share
			t.Logf("%s: 100 discovered tasks at 1 s, %d other processes: %.2f%% of one core (user %.2f%%, kernel %.2f%%)",
				mode, background, share*100, (u1-u0).Seconds()/secs*100, (s1-s0).Seconds()/secs*100)
		})
	}
	if results[EventsOn] > 0 {
		t.Logf("scan / events: %.1fx", results[EventsOff]/results[EventsOn])
	}
}

func startSleepers(t *testing.T, n int, arg func(int) string) {
	t.Helper()
	cmds := make([]*exec.Cmd, 0, n)
	t.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	for i := range n {
		c := exec.Command("sleep", arg(i))
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, c.Start())
		cmds = append(cmds, c)
	}
}

func selfCPU() (user, sys time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
