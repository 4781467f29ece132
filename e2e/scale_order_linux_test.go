//go:build linux

package e2e

import (
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
)

// TestReadOrderFloor measures the kernel floor of SCALE_TASKS (10,000) processes' reads in
// process id order, as the collector takes a round's tasks, against the same reads in a
// shuffled order: processes started one after another have their kernel data side by side.
// Kept-open files for as many as the descriptor limit leaves room for, the rest by path; each
// paced as the collector paces one 10 s interval, one warm-up pass then two measured. Run with
// PROPLET_SCALE_HOST=1 (root).
func TestReadOrderFloor(t *testing.T) {
	if os.Getenv("PROPLET_SCALE_HOST") == "" {
		t.Skip("set PROPLET_SCALE_HOST=1 to run the read-order measurement")
	}
	n := envInt(t, "SCALE_TASKS", 10000)
	limit := raiseNoFile(t, uint64(4*n+4096))
	pids := scaleTasks(t, n)
	slices.Sort(pids)
	shuffled := slices.Clone(pids)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for pass := range 3 {
		inOrder := kernelFloor(t, pids, limit, 1, 10*time.Second)
		mixed := kernelFloor(t, shuffled, limit, 1, 10*time.Second)
		if pass == 0 {
			continue // every process's kernel data touched once
		}
		t.Logf("pass %d, paced: kept open %.2f µs a task in pid order, %.2f shuffled (%.2fx); by path %.2f in pid order, %.2f shuffled (%.2fx)",
			pass, micros(inOrder.keptPaced), micros(mixed.keptPaced), float64(mixed.keptPaced)/float64(inOrder.keptPaced),
			micros(inOrder.transientPaced), micros(mixed.transientPaced), float64(mixed.transientPaced)/float64(inOrder.transientPaced))
	}
}

func micros(d time.Duration) float64 { return d.Seconds() * 1e6 }
