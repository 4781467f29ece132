package monitor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schedule"
)

func TestFirstSamplesAreSpreadInBlocksOfTasksFoundTogether(t *testing.T) {
	t.Parallel()
	// A 500 ms window is five rounds of the scheduler's grid: the tasks made active take them
	// in turn, a block at a time, and start over after the last.
	m := &Monitor{cfg: Config{StartJitter: 500 * time.Millisecond}}
	var got []time.Duration
	for range 6 * spreadBlock {
		got = append(got, m.spread())
	}
	for i, d := range got {
		want := time.Duration(i/spreadBlock%5) * schedule.Granularity
		assert.Equal(t, want, d, "task %d", i)
	}

	// A window of one round or none leaves the first samples where the interval puts them.
	for _, window := range []time.Duration{0, time.Millisecond, 150 * time.Millisecond} {
		m := &Monitor{cfg: Config{StartJitter: window}}
		for range 2 * spreadBlock {
			assert.Zero(t, m.spread(), "start_jitter %s", window)
		}
	}
}
