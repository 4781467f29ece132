//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// scaleWindow is what one scale run measured over its window, and its report.
type scaleWindow struct {
	tasks        int
	exporters    []string
	kept         float64 // the share of tasks whose files the collector keeps open
	load0, load1 string
	over         time.Duration
	used         cpu
	samples      float64 // task samples taken
	delivered    int64   // task messages the subscriber was delivered
	rss, heap    []float64
	hwm          uint64
	scrapes      []timedScrape
	cpuProfile   *profile.Profile
	heapProfile  *profile.Profile
	floor        floor
}

func (w *scaleWindow) String() string {
	var b strings.Builder
	n, over, samples := w.tasks, w.over, w.samples
	fmt.Fprintf(&b, "\n%d tasks at 10 s, exporters %s, %s window (load average %s at its start, %s at its end)\n", n, strings.Join(w.exporters, ","), over.Round(time.Second), w.load0, w.load1)
	fmt.Fprintf(&b, "collector CPU: %s\n", w.used.String(over))
	fmt.Fprintf(&b, "task samples: %.1f/s (%.0f); task messages delivered: %.1f/s (%d)\n", samples/over.Seconds(), samples, float64(w.delivered)/over.Seconds(), w.delivered)
	fmt.Fprintf(&b, "RSS: mean %.1f MiB, max %.1f MiB, VmHWM %.1f MiB; Go heap (otelcol_process_runtime_heap_alloc_bytes): mean %.1f MiB, max %.1f MiB, %.0f B a task\n",
		mean(w.rss)/(1<<20), maxOf(w.rss)/(1<<20), float64(w.hwm)/(1<<20), mean(w.heap)/(1<<20), maxOf(w.heap)/(1<<20), mean(w.heap)/float64(n))
	if len(w.scrapes) > 0 {
		var took []float64
		for _, s := range w.scrapes {
			took = append(took, s.took.Seconds())
		}
		last := w.scrapes[len(w.scrapes)-1]
		fmt.Fprintf(&b, "prometheus scrapes: %d, duration mean %.3f s, max %.3f s; %d series, %.1f MiB\n",
			len(w.scrapes), mean(took), maxOf(took), last.series, float64(last.bytes)/(1<<20))
	}
	if w.cpuProfile != nil {
		st, total := byStage(w.cpuProfile, "cpu")
		// The sampling itself: the reads, the rest of a sample, and the scheduler that runs them.
		sampling := st["sampling: process reads"] + st["sampling: the rest"] + st["scheduler"]
		fmt.Fprintf(&b, "CPU profile: %.1f s of %.1f s measured from /proc; per stage (%% of one core, µs a sample, share):\n", float64(total)/1e9, w.used.total().Seconds())
		for _, name := range stageOrder(st) {
			fmt.Fprintf(&b, "  %-36s %6.3f%%  %7.2f µs  %5.1f%%\n", name, 100*float64(st[name])/float64(over), float64(st[name])/1e3/samples, 100*float64(st[name])/float64(total))
		}
		reads := float64(st["sampling: process reads"]) / samples
		fmt.Fprintf(&b, "sampling (reads, the rest, scheduler): %.3f%% of one core, %.2f µs a sample; the reads alone %.2f µs\n",
			100*float64(sampling)/float64(over), float64(sampling)/1e3/samples, reads/1e3)
		fmt.Fprintf(&b, "beyond the sampling: %.3f%% of one core\n", 100*(w.used.total().Seconds()-float64(sampling)/1e9)/over.Seconds())
		tight, paced := w.floor.mix(w.kept)
		fmt.Fprintf(&b, "kernel floor: %s; for this run's mix (%.0f%% of tasks kept open) %.2f µs tight, %.2f µs paced\n",
			w.floor, 100*w.kept, tight/1e3, paced/1e3)
		fmt.Fprintf(&b, "the reads over the floor: %.2fx tight, %.2fx paced; the whole sampling over the paced floor: %.2fx\n",
			reads/tight, reads/paced, float64(sampling)/samples/paced)
		// Each kind against its own floor: the share kept open is a property of the machine's
		// descriptor limit, the cost of each kind is the collector's.
		kept, byPath, rest := readsByKind(w.cpuProfile)
		keptSamples, pathSamples := samples*w.kept, samples*(1-w.kept)
		fmt.Fprintf(&b, "the reads by kind: kept open %.2f µs a kept task's sample (%.2fx its paced floor, %.2fx tight), by path %.2f µs (%.2fx, %.2fx), parsing and the rest %.2f µs a sample\n",
			float64(kept)/1e3/max(keptSamples, 1), float64(kept)/max(keptSamples, 1)/float64(w.floor.keptPaced), float64(kept)/max(keptSamples, 1)/float64(w.floor.keptTight),
			float64(byPath)/1e3/max(pathSamples, 1), float64(byPath)/max(pathSamples, 1)/float64(w.floor.transientPaced), float64(byPath)/max(pathSamples, 1)/float64(w.floor.transientTight),
			float64(rest)/1e3/samples)
		fmt.Fprintf(&b, "top functions (flat CPU):%s\n", topFunctions(w.cpuProfile, "cpu", 15))
	}
	hs, htotal := byStage(w.heapProfile, "inuse_space")
	fmt.Fprintf(&b, "heap in use at the end (pprof, sampled): %.1f MiB; per stage:\n", float64(htotal)/(1<<20))
	for _, name := range stageOrder(hs) {
		fmt.Fprintf(&b, "  %-36s %7.2f MiB  %6.0f B a task\n", name, float64(hs[name])/(1<<20), float64(hs[name])/float64(n))
	}
	fmt.Fprintf(&b, "top functions (heap in use):%s\n", topFunctions(w.heapProfile, "inuse_space", 10))
	return b.String()
}
