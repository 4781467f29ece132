package schedule

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type counter struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *counter) run(_ context.Context, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[key]++
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[key]
}

func start(t *testing.T, workers int, run Func) *Scheduler {
	s := New(workers, run)
	s.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

func TestIntervalsAreKeptApart(t *testing.T) {
	c := &counter{runs: map[string]int{}}
	began := time.Now()
	s := start(t, 2, c.run)
	s.Add("fast", 100*time.Millisecond, 0)
	s.Add("slow", 300*time.Millisecond, 0)
	require.Eventually(t, func() bool { return c.get("slow") >= 6 }, 30*time.Second, 10*time.Millisecond)
	fast, slow := c.get("fast"), c.get("slow")
	elapsed := time.Since(began)
	// What the scheduler decides: each job on its own grid, a missed run skipped rather than
	// made up, so neither runs more often than its interval allows in the time that passed,
	// however late a busy machine woke it.
	assert.LessOrEqual(t, fast, int(elapsed/(100*time.Millisecond))+1, "fast=%d in %s", fast, elapsed)
	assert.LessOrEqual(t, slow, int(elapsed/(300*time.Millisecond))+1, "slow=%d in %s", slow, elapsed)
	assert.Greater(t, fast, slow, "fast=%d slow=%d", fast, slow)
}

func TestHungJobDoesNotStopOthers(t *testing.T) {
	c := &counter{runs: map[string]int{}}
	release := make(chan struct{})
	var hung atomic.Int32
	s := start(t, 2, func(ctx context.Context, key string) {
		if key == "stuck" {
			hung.Add(1)
			<-release
			return
		}
		c.run(ctx, key)
	})
	defer close(release)
	s.Add("stuck", 50*time.Millisecond, 0)
	s.Add("ok", 50*time.Millisecond, 0)
	require.Eventually(t, func() bool { return c.get("ok") >= 10 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int32(1), hung.Load(), "a hung job is not started again while it runs")
}

func TestTriggerRemoveAndSetInterval(t *testing.T) {
	c := &counter{runs: map[string]int{}}
	s := start(t, 1, c.run)
	s.Add("a", time.Hour, time.Hour)
	assert.True(t, s.Trigger("a"))
	require.Eventually(t, func() bool { return c.get("a") == 1 }, 2*time.Second, 5*time.Millisecond)
	assert.True(t, s.Has("a"), "a triggered run keeps the job scheduled")

	s.SetInterval("a", 50*time.Millisecond)
	require.Eventually(t, func() bool { return c.get("a") >= 3 }, 3*time.Second, 5*time.Millisecond, "the new interval applies without a restart")

	s.Remove("a")
	assert.False(t, s.Has("a"))
	assert.False(t, s.Trigger("a"))
	n := c.get("a")
	// A removed job never runs again; one already handed to a worker may finish.
	time.Sleep(200 * time.Millisecond) //nolint:forbidigo // checking that nothing happens needs a wait
	assert.LessOrEqual(t, c.get("a"), n+1)
}

func TestStopGivesUpOnHungJob(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	s := New(1, func(context.Context, string) { <-block })
	s.Start(context.Background())
	started := make(chan struct{})
	go func() {
		for !s.isRunning("x") {
			time.Sleep(time.Millisecond)
		}
		close(started)
	}()
	s.Add("x", time.Hour, 0)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Stop(ctx), context.DeadlineExceeded)
}

func (s *Scheduler) isRunning(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	return ok && e.running
}
