package fleet

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

func taskMessage(i int) *propeller.Received {
	return &propeller.Received{Topic: taskTopic, Task: propeller.TaskMessage{
		TaskID: fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), PropletID: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
	}}
}

func TestTrackerBoundsDistinctTasks(t *testing.T) {
	tr := NewTracker(Limits{MaxTasks: 1000, MaxProplets: 10, Expiration: time.Minute})
	passed := 0
	for i := range 100_000 {
		if tr.Track(taskMessage(i), now) {
			passed++
		}
	}
	assert.Equal(t, 1000, passed)
	assert.Equal(t, 1000, tr.Len(schema.KindTask))
	assert.True(t, tr.Track(taskMessage(5), now), "a tracked task goes on")
	assert.Zero(t, tr.Len(schema.KindProplet), "the kinds are bounded apart")
}

func TestTrackedEntriesExpire(t *testing.T) {
	tr := NewTracker(Limits{MaxTasks: 2, MaxProplets: 1, Expiration: time.Minute})
	assert.True(t, tr.Track(taskMessage(1), now))
	assert.True(t, tr.Track(taskMessage(2), now+int64(30*time.Second)))
	assert.False(t, tr.Track(taskMessage(3), now+int64(59*time.Second)), "full, nothing idle for a minute")
	// Task 1 is idle for a minute: it is forgotten, and task 3 takes its place; task 2 is not.
	assert.True(t, tr.Track(taskMessage(3), now+int64(61*time.Second)))
	assert.False(t, tr.Track(taskMessage(4), now+int64(62*time.Second)))
	assert.Equal(t, 2, tr.Len(schema.KindTask))

	// Entries are forgotten after the expiration even when the tracker is not full.
	later := now + int64(10*time.Minute)
	assert.True(t, tr.Track(taskMessage(9), later))
	assert.Equal(t, 1, tr.Len(schema.KindTask))
}

func TestMessagesOfOneSeriesShareAnEntry(t *testing.T) {
	tr := NewTracker(Limits{MaxTasks: 1, MaxProplets: 1, Expiration: time.Minute})
	p := &propeller.Received{Topic: propletTopic, Proplet: propeller.PropletMessage{PropletID: "p", Namespace: "default"}}
	assert.True(t, tr.Track(p, now))
	assert.True(t, tr.Track(p, now+1))
	other := *p
	other.Topic.Channel = "c2"
	assert.False(t, tr.Track(&other, now+2), "another channel is another series")
}

func BenchmarkTrack(b *testing.B) {
	tr := NewTracker(DefaultLimits())
	m := taskMessage(1)
	b.ReportAllocs()
	for b.Loop() {
		tr.Track(m, now)
	}
}
