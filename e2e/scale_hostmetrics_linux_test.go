//go:build linux

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// TestScaleAgainstHostmetrics compares the proplet receiver with the contrib hostmetrics
// process scraper of the same distribution on the same SCALE_TASKS (500) idle processes at 1 s,
// each collector alone in turn with the debug exporter (basic: a line per batch), SCALE_SECONDS
// (60) of CPU each from /proc/<pid>/stat after a warm-up, alternated twice (ours, theirs, ours,
// theirs), both CPU-profiled (SCALE_PROFILE_DIR keeps the profiles). Run with
// SCALE_COMPARE=hostmetrics (make scale-10k SCALE_COMPARE=hostmetrics).
func TestScaleAgainstHostmetrics(t *testing.T) {
	if os.Getenv("SCALE_COMPARE") != "hostmetrics" {
		t.Skip("set SCALE_COMPARE=hostmetrics (make scale-10k SCALE_COMPARE=hostmetrics) to compare with the hostmetrics process scraper")
	}
	n := envInt(t, "SCALE_TASKS", 500)
	window := time.Duration(envInt(t, "SCALE_SECONDS", 60)) * time.Second
	bin := envOr("SCALE_BINARY", "")
	if bin == "" {
		bin = binary(t)
	}
	limit := raiseNoFile(t, uint64(4*n+4096))
	pids := scaleTasks(t, n)

	receivers := map[string]string{
		"proplet": fmt.Sprintf(`proplet:
    proplet_id: %s
    profiles: { every-second: { interval: 1s } }
    discovery: [ { match: %s, profile: every-second } ]`, propletID, scaleRule),
		// Every process error muted: the scraper reads every process of the host to find ours,
		// and would log each one it may not read.
		"hostmetrics": fmt.Sprintf(`hostmetrics:
    collection_interval: 1s
    scrapers:
      process:
        include: { names: [%s], match_type: strict }
        mute_process_all_errors: true`, scaleExe),
	}
	var lines []string
	ratio := map[string][]float64{}
	for round := range 2 {
		for _, name := range []string{"proplet", "hostmetrics"} {
			telPort, pprofPort := freePort(t), freePort(t)
			cfg := fmt.Sprintf(`
extensions:
  pprof: { endpoint: 127.0.0.1:%d }
receivers:
  %s
exporters:
  debug: { verbosity: basic }
service:
  extensions: [pprof]
  telemetry: { metrics: { readers: [ { pull: { exporter: { prometheus: { host: 127.0.0.1, port: %d } } } } ] } }
  pipelines:
    metrics: { receivers: [%s], exporters: [debug] }
`, pprofPort, receivers[name], telPort, name)
			c := startScaleCollector(t, bin, cfg, telPort, pprofPort)
			points := func() float64 {
				return c.telemetry(t, "otelcol_receiver_accepted_metric_points", "receiver="+name)
			}
			// Warm-up: the receiver delivers, then ten more seconds (every task bound, the
			// scraper's caches of the processes filled).
			waitUntil(t, 5*time.Minute, func() bool {
				time.Sleep(time.Second) //nolint:forbidigo // polling the collector's telemetry
				return points() > 0
			})
			time.Sleep(10 * time.Second) //nolint:forbidigo // the warm-up
			load0 := loadAverage()
			cpu0, p0, t0 := procCPU(t, c.pid), points(), time.Now()
			// Both collectors are profiled alike (the pprof extension, 100 samples a second), so
			// the comparison says where each one's time goes.
			p, err := c.fetchProfile(fmt.Sprintf("profile?seconds=%d", int(window.Seconds())))
			require.NoError(t, err)
			cpu1, p1, t1 := procCPU(t, c.pid), points(), time.Now()
			rss := procStatus(t, c.pid, "VmRSS")
			c.stop()
			used := cpu1.sub(cpu0)
			ratio[name] = append(ratio[name], used.total().Seconds())
			lines = append(lines, fmt.Sprintf("round %d %-11s %s, %.0f data points/s, RSS %.1f MiB, load average %s -> %s",
				round+1, name, used.String(t1.Sub(t0)), (p1-p0)/t1.Sub(t0).Seconds(), float64(rss)/(1<<20), load0, loadAverage()))
			keepProfile(t, p, fmt.Sprintf("cpu-%s-%d", name, round+1))
			st, total := byStage(p, "cpu")
			for _, stage := range stageOrder(st)[:min(6, len(st))] {
				lines = append(lines, fmt.Sprintf("    %-36s %5.1f%% of its profile, %6.2f µs a data point", stage, 100*float64(st[stage])/float64(total), float64(st[stage])/1e3/(p1-p0)))
			}
			assert.Positive(t, p1-p0, "%s delivered data points", name)
		}
	}
	var ours, theirs float64
	for i := range ratio["proplet"] {
		ours += ratio["proplet"][i]
		theirs += ratio["hostmetrics"][i]
		lines = append(lines, fmt.Sprintf("round %d: proplet over hostmetrics %.3f", i+1, ratio["proplet"][i]/ratio["hostmetrics"][i]))
	}
	lines = append(lines, fmt.Sprintf("%d tasks at 1 s, %s each: proplet %.2f s of CPU, hostmetrics %.2f s, ratio %.3f (goal 0.08)",
		n, window, ours, theirs, ours/theirs))
	// The floor under the ratio: what the kernel alone takes for the reads of these tasks at
	// this pace, against hostmetrics' CPU.
	f := kernelFloor(t, pids, limit, 10, time.Second)
	tight, paced := f.mix(float64(min(n, int(process.DefaultKeptOpenDescriptors(limit)/4))) / float64(n)) // stat, io, fd/, schedstat
	hostShare := theirs / (float64(len(ratio["hostmetrics"])) * window.Seconds())
	share := func(perSample float64) float64 { return perSample / 1e9 * float64(n) }
	lines = append(lines, fmt.Sprintf("the kernel floor of the reads (%s): %.2f%% of one core paced (%.2f%% tight), %.3f of hostmetrics (%.3f tight)",
		f, 100*share(paced), 100*share(tight), share(paced)/hostShare, share(tight)/hostShare))
	t.Log("\n" + strings.Join(lines, "\n"))
}
