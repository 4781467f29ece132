package schedule

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// counted is a job that counts its runs, and calls hook first when set.
type counted struct {
	runs atomic.Int32
	hook func(ctx context.Context)
}

func (c *counted) Run(ctx context.Context) {
	if c.hook != nil {
		c.hook(ctx)
	}
	c.runs.Add(1)
}

func (c *counted) get() int { return int(c.runs.Load()) }

func start(t *testing.T, workers int) *Scheduler {
	s := New(workers)
	s.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

func TestIntervalsAreKeptApart(t *testing.T) {
	t.Parallel()
	began := time.Now()
	s := start(t, 2)
	fast, slow := &counted{}, &counted{}
	s.Add(fast, 100*time.Millisecond, 0)
	s.Add(slow, 300*time.Millisecond, 0)
	require.Eventually(t, func() bool { return slow.get() >= 6 }, 30*time.Second, 10*time.Millisecond)
	f, sl := fast.get(), slow.get()
	elapsed := time.Since(began)
	// What the scheduler decides: each job on its own grid, a missed run skipped rather than
	// made up, so neither runs more often than its interval allows in the time that passed,
	// however late a busy machine woke it.
	assert.LessOrEqual(t, f, int(elapsed/(100*time.Millisecond))+1, "fast=%d in %s", f, elapsed)
	assert.LessOrEqual(t, sl, int(elapsed/(300*time.Millisecond))+1, "slow=%d in %s", sl, elapsed)
	assert.Greater(t, f, sl, "fast=%d slow=%d", f, sl)
}

func TestHungJobDoesNotStopOthers(t *testing.T) {
	t.Parallel()
	s := start(t, 2)
	release := make(chan struct{})
	var hung atomic.Int32
	stuck := &counted{hook: func(context.Context) { hung.Add(1); <-release }}
	ok := &counted{}
	defer close(release)
	s.Add(stuck, 50*time.Millisecond, 0)
	s.Add(ok, 50*time.Millisecond, 0)
	require.Eventually(t, func() bool { return ok.get() >= 10 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int32(1), hung.Load(), "a hung job is not started again while it runs")
}

func TestTriggerRemoveAndSetInterval(t *testing.T) {
	t.Parallel()
	s := start(t, 1)
	a := &counted{}
	s.Add(a, time.Hour, time.Hour)
	assert.True(t, s.Trigger(a))
	require.Eventually(t, func() bool { return a.get() == 1 }, 2*time.Second, 5*time.Millisecond)
	assert.True(t, s.Has(a), "a triggered run keeps the job scheduled")

	s.SetInterval(a, 50*time.Millisecond)
	require.Eventually(t, func() bool { return a.get() >= 3 }, 3*time.Second, 5*time.Millisecond, "the new interval applies without a restart")
	iv, ok := s.Interval(a)
	assert.True(t, ok)
	assert.Equal(t, 50*time.Millisecond, iv, "what SetInterval set")

	s.Remove(a)
	assert.False(t, s.Has(a))
	assert.False(t, s.Trigger(a))
	_, ok = s.Interval(a)
	assert.False(t, ok)
	n := a.get()
	// A removed job never runs again; one already handed to a worker may finish.
	time.Sleep(200 * time.Millisecond) //nolint:forbidigo // checking that nothing happens needs a wait
	assert.LessOrEqual(t, a.get(), n+1)
}

// valueJob is a job compared by value: two equal values are one job.
type valueJob struct {
	c  *counted
	id int
}

func (j valueJob) Run(ctx context.Context) { j.c.Run(ctx) }

func TestAfterRunsOnceAndIsForgotten(t *testing.T) {
	t.Parallel()
	s := start(t, 2)
	c := &counted{}
	first, second := valueJob{c, 1}, valueJob{c, 2}
	s.After(first, time.Hour)
	s.After(first, 0) // moves the one run, does not add one
	s.After(second, 0)
	require.Eventually(t, func() bool { return c.get() == 2 && !s.Has(first) && !s.Has(second) }, 2*time.Second, 5*time.Millisecond,
		"each of two distinct jobs runs once, then is forgotten")

	// After called while the job runs: it runs once more, then is forgotten.
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	r := &counted{hook: func(context.Context) { started <- struct{}{}; <-release }}
	s.After(r, 0)
	<-started
	s.After(r, 0)
	release <- struct{}{}
	<-started
	close(release)
	require.Eventually(t, func() bool { return r.get() == 2 && !s.Has(r) }, 2*time.Second, 5*time.Millisecond)

	// A removed one-shot job never runs.
	gone := &counted{}
	s.After(gone, 100*time.Millisecond)
	s.Remove(gone)
	time.Sleep(300 * time.Millisecond) //nolint:forbidigo // checking that nothing happens needs a wait
	assert.Zero(t, gone.get())
}

func TestStopGivesUpOnHungJob(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	defer close(block)
	s := New(1)
	s.Start(context.Background())
	x := &counted{hook: func(context.Context) { <-block }}
	started := make(chan struct{})
	go func() {
		for !s.isRunning(x) {
			time.Sleep(time.Millisecond)
		}
		close(started)
	}()
	s.Add(x, time.Hour, 0)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Stop(ctx), context.DeadlineExceeded)
}

func (s *Scheduler) isRunning(job Job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[job]
	return ok && e.running
}

// logged is a job that appends its number to a shared log when it runs.
type logged struct {
	n   int
	log *runLog
}

type runLog struct {
	mu   sync.Mutex
	runs []int
}

func (j *logged) Run(context.Context) {
	j.log.mu.Lock()
	defer j.log.mu.Unlock()
	j.log.runs = append(j.log.runs, j.n)
}

func (l *runLog) get() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs)
}

func TestJobsDueTogetherRunInTheOrderTheyWereScheduled(t *testing.T) {
	t.Parallel()
	// One worker, so the order of the runs is the order the scheduler hands jobs out. The
	// jobs are due on the same grid point (or, should a point pass while they are added, on
	// two in a row): each round runs them in the order they were added, and puts each back in
	// the order it ran, so the next round keeps that order.
	const jobs = 50
	s := start(t, 1)
	log := &runLog{}
	for i := range jobs {
		s.Add(&logged{n: i, log: log}, 300*time.Millisecond, 0)
	}
	require.Eventually(t, func() bool { return len(log.get()) >= 2*jobs }, 30*time.Second, 10*time.Millisecond)
	want := make([]int, 0, 2*jobs)
	for range 2 {
		for i := range jobs {
			want = append(want, i)
		}
	}
	assert.Equal(t, want, log.get()[:2*jobs])
}
