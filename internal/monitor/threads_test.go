package monitor

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// TestDelaySince: the increase of a wait between readings of the main thread and of the
// thread group is only counted where it can be told.
func TestDelaySince(t *testing.T) {
	t.Parallel()
	main1 := &process.Reading{GroupThreads: 1}
	mainN := &process.Reading{GroupThreads: 5}
	group := &process.Reading{GroupThreads: 5, GroupDelays: true}
	assert.Equal(t, uint64(30), delaySince(main1, group, 130, 100), "one thread before: every other thread was born since")
	assert.Equal(t, uint64(0), delaySince(mainN, group, 130, 100), "other threads before: their past is not this interval's")
	assert.Equal(t, uint64(0), delaySince(group, mainN, 20, 100), "back to the main thread: nothing this interval")
	assert.Equal(t, uint64(5), delaySince(group, group, 105, 100))
	assert.Equal(t, uint64(0), delaySince(group, group, 95, 100), "never down")
	assert.Equal(t, uint64(5), delaySince(mainN, mainN, 105, 100))
}
