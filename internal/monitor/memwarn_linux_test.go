//go:build linux

package monitor

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// rssOf is a process's resident set, as /proc/<pid>/statm says.
func rssOf(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	require.NoError(t, err)
	f := strings.Fields(string(b))
	require.GreaterOrEqual(t, len(f), 2)
	pages, err := strconv.ParseUint(f[1], 10, 64)
	require.NoError(t, err)
	return pages * uint64(os.Getpagesize())
}

// TestMemoryWarningSwitchesTheInterval: a real process over its profile's memory_limit share
// is warned about and scheduled at its warning interval; a new profile with a limit it is far
// below recovers it at its next sample, and it is scheduled at its interval again.
func TestMemoryWarningSwitchesTheInterval(t *testing.T) {
	t.Parallel()
	h := runMonitor(t, Config{})
	cmd := testworkload.Start(t, testworkload.Hold, 16)
	rss := rssOf(t, cmd.Process.Pid)

	spec := pidTask("near", cmd, time.Second)
	spec.Profile.MemoryLimit = rss // at its limit: well past a share of 0.5
	spec.Profile.MemoryWarning, spec.Profile.MemoryWarningInterval = 0.5, 200*time.Millisecond
	require.NoError(t, h.m.AddTask(spec))

	var high Sample
	require.Eventually(t, func() bool {
		for _, s := range h.of("near") {
			if s.Memory != nil {
				high = s
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "a memory warning")
	require.Equal(t, MemoryHigh, high.Memory.Kind)
	assert.True(t, high.Memory.First)
	assert.Equal(t, rss, high.Memory.Limit, "the profile's limit")
	assert.Equal(t, high.RSS, high.Memory.Usage)
	assert.GreaterOrEqual(t, high.Memory.Share, 0.5)

	tk, ok := h.m.lookup("near")
	require.True(t, ok)
	job := sampleJob{h.m, tk}
	iv, ok := h.m.sched.Interval(job)
	require.True(t, ok)
	assert.Equal(t, 200*time.Millisecond, iv, "sampled at the warning interval")

	// A limit it is far below: recovered at its next sample, at its interval again.
	relaxed := spec.Profile
	relaxed.MemoryLimit = 100 * rss
	require.True(t, h.m.SetProfile("near", "test", relaxed))
	var back Sample
	require.Eventually(t, func() bool {
		for _, s := range h.of("near") {
			if s.Memory != nil && s.Memory.Kind == MemoryRecovered {
				back = s
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "the recovery")
	assert.Equal(t, 100*rss, back.Memory.Limit)
	assert.Less(t, back.Memory.Share, 0.45)
	iv, _ = h.m.sched.Interval(job)
	assert.Equal(t, time.Second, iv, "sampled at its interval again")

	var highs, recovered int
	for _, s := range h.of("near") {
		switch {
		case s.Memory == nil:
		case s.Memory.Kind == MemoryHigh:
			highs++
		default:
			recovered++
		}
	}
	assert.Equal(t, 1, recovered)
	assert.GreaterOrEqual(t, highs, 1)
}
