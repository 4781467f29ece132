// Package schedule runs many jobs, each on its own interval or once after a delay, from one
// goroutine that keeps the due times in a heap and hands due jobs to a bounded pool of
// workers. There is no goroutine per job: a thousand tasks cost a heap entry each. Jobs due in
// the same round run in the order they were scheduled, and a job that ran goes back in the
// order it finished, so a round keeps its order from one interval to the next. A job that hangs
// (a process stuck in the kernel) occupies one worker, never the scheduler, so other jobs keep
// their cadence while workers remain.
package schedule // import "github.com/otelcol-propeller/otelcol-propeller/internal/schedule"

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Granularity is the grid due times are rounded up to. Jobs due within the same 100 ms run as
// one round: one timer wake-up for all of them, and their results can be batched. It equals
// the shortest interval allowed, and every whole-second interval is a multiple of it, so after
// the first run (at most this late) a job keeps an exact cadence. Rates are computed from the
// real time between runs, so rounding loses nothing. (Measured: 1,000 tasks at 1 s cost 4.5%
// of a core on a 20 ms grid, 2.9% on this one; see BENCHMARKS.md.)
const Granularity = 100 * time.Millisecond

func roundUp(t time.Time) time.Time {
	r := t.Round(Granularity)
	if r.Before(t) {
		r = r.Add(Granularity)
	}
	return r
}

// Job is one piece of work the scheduler runs. A job is its own key: the scheduler tells jobs
// apart with ==, so a job's dynamic type must be comparable (a pointer, or a small struct of
// pointers and values); two equal jobs are the same job. Run is called from a worker
// goroutine; the same job never runs twice at once.
type Job interface {
	Run(ctx context.Context)
}

// Scheduler runs jobs on their intervals. The zero value is not usable; call New.
type Scheduler struct {
	workers int

	mu      sync.Mutex
	entries map[Job]*entry
	due     dueHeap
	stamps  uint64   // entries put in the heap so far, for the order of those due together
	ready   []*entry // due, waiting for a free worker, in order
	wake    chan struct{}
	work    chan *entry

	cancel context.CancelFunc
	done   sync.WaitGroup
}

type entry struct {
	job      Job
	interval time.Duration // 0: a one-shot job (After), forgotten once it ran
	due      time.Time     // next run
	stamp    uint64        // when it was put in the heap: of jobs due together, the earlier runs first
	index    int           // position in the heap, -1 when not in it
	queued   bool          // in the ready list or handed to a worker
	running  bool
	again    bool // triggered while running: run once more right after
	rearmed  bool // a one-shot job given a new due time while it ran: run it then
	removed  bool
}

// New returns a Scheduler that runs jobs on at most workers goroutines at once.
func New(workers int) *Scheduler {
	return &Scheduler{
		workers: max(workers, 1),
		entries: map[Job]*entry{},
		wake:    make(chan struct{}, 1),
		work:    make(chan *entry),
	}
}

// Start starts the scheduler goroutine and the workers. Jobs added before Start run once it
// is called.
func (s *Scheduler) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.done.Add(1 + s.workers)
	go s.loop(ctx)
	for range s.workers {
		go s.worker(ctx)
	}
}

// Stop stops scheduling and waits for running jobs to return, or for ctx to end: a job
// stuck in the kernel must not stop the collector from shutting down.
func (s *Scheduler) Stop(ctx context.Context) error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	finished := make(chan struct{})
	go func() { s.done.Wait(); close(finished) }()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Add schedules job every interval (which must be positive), the first run after firstDelay.
// Adding a job that exists replaces its interval and next run.
func (s *Scheduler) Add(job Job, interval, firstDelay time.Duration) {
	s.schedule(job, max(interval, Granularity), firstDelay)
}

// After runs job once, delay from now (0: as soon as a worker is free), and then forgets it.
// Calling it again before the job ran moves the run to the new delay; calling it while the
// job runs runs it once more after the delay.
func (s *Scheduler) After(job Job, delay time.Duration) {
	s.schedule(job, 0, delay)
}

func (s *Scheduler) schedule(job Job, interval, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[job]
	if !ok {
		e = &entry{job: job, index: -1}
		s.entries[job] = e
	}
	e.interval = interval
	if interval == 0 && delay <= 0 {
		// At once: not on the grid, which is for cadences.
		switch {
		case e.running:
			e.again = true
		case e.queued:
		default:
			if e.index >= 0 {
				heap.Remove(&s.due, e.index)
			}
			s.enqueue(e)
		}
		s.signal()
		return
	}
	e.due = roundUp(time.Now().Add(delay))
	s.stampLocked(e)
	switch {
	case e.index >= 0:
		heap.Fix(&s.due, e.index)
	case e.running:
		e.rearmed = interval == 0
	case !e.queued:
		heap.Push(&s.due, e)
	}
	s.signal()
}

// SetInterval changes job's interval. The next run moves to one new interval after the
// previous one was due (or now, if that has passed), so the change takes effect on the next
// tick. A one-shot job keeps its one run.
func (s *Scheduler) SetInterval(job Job, interval time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[job]
	if !ok || e.interval == 0 || interval <= 0 || e.interval == interval {
		return
	}
	if e.index >= 0 {
		next := e.due.Add(interval - e.interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		e.due = roundUp(next)
		s.stampLocked(e)
		heap.Fix(&s.due, e.index)
	}
	e.interval = interval
	s.signal()
}

// Remove stops scheduling job. A run in progress finishes.
func (s *Scheduler) Remove(job Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(job)
}

func (s *Scheduler) removeLocked(job Job) {
	e, ok := s.entries[job]
	if !ok {
		return
	}
	e.removed = true
	if e.index >= 0 {
		heap.Remove(&s.due, e.index)
	}
	delete(s.entries, job)
}

// Trigger runs job as soon as a worker is free, without changing its regular cadence. It
// reports whether job is scheduled.
func (s *Scheduler) Trigger(job Job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[job]
	if !ok {
		return false
	}
	switch {
	case e.running:
		e.again = true
	case e.queued:
	default:
		heap.Remove(&s.due, e.index)
		s.enqueue(e)
	}
	s.signal()
	return true
}

// Interval returns job's interval (0 for a one-shot job), and whether job is scheduled: what a
// caller's SetInterval decided, for its tests.
func (s *Scheduler) Interval(job Job) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[job]
	if !ok {
		return 0, false
	}
	return e.interval, true
}

// Has reports whether job is scheduled.
func (s *Scheduler) Has(job Job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[job]
	return ok
}

// stampLocked marks e as put in the heap now: jobs due in the same round run in the order they
// were stamped. Due times are rounded to the grid, so without it a round's order would be the
// heap's, which is none. A caller's order can matter: the task monitor schedules tasks in the
// order their processes started, and reading processes in that order costs the kernel less.
// The caller holds s.mu.
func (s *Scheduler) stampLocked(e *entry) {
	s.stamps++
	e.stamp = s.stamps
}

func (s *Scheduler) enqueue(e *entry) {
	e.queued = true
	s.ready = append(s.ready, e)
}

func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) loop(ctx context.Context) {
	defer s.done.Done()
	defer close(s.work)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		for len(s.due) > 0 && !s.due[0].due.After(now) {
			s.enqueue(heap.Pop(&s.due).(*entry))
		}
		wait := time.Hour
		if len(s.due) > 0 {
			wait = s.due[0].due.Sub(now)
		}
		var out chan *entry
		var first *entry
		if len(s.ready) > 0 {
			out, first = s.work, s.ready[0]
		}
		s.mu.Unlock()

		timer.Reset(wait)
		select {
		case out <- first:
			s.mu.Lock()
			s.ready[0] = nil
			s.ready = s.ready[1:]
			s.mu.Unlock()
		case <-s.wake:
		case <-timer.C:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Scheduler) worker(ctx context.Context) {
	defer s.done.Done()
	for e := range s.work {
		s.mu.Lock()
		e.queued = false
		if e.removed {
			s.mu.Unlock()
			continue
		}
		e.running = true
		s.mu.Unlock()

		e.job.Run(ctx)

		s.mu.Lock()
		e.running = false
		switch {
		case e.removed:
		case e.interval == 0 && !e.rearmed && !e.again:
			s.removeLocked(e.job) // a one-shot job that ran
		default:
			e.rearmed = false
			now := time.Now()
			if e.interval > 0 && !e.due.After(now) {
				// Keep the phase: the next run is the first multiple of the interval after
				// now, so a late run does not shift every later one.
				missed := now.Sub(e.due)/e.interval + 1
				e.due = roundUp(e.due.Add(missed * e.interval))
			}
			if e.again {
				e.again = false
				s.enqueue(e)
				s.signal()
			} else {
				s.stampLocked(e)
				heap.Push(&s.due, e)
				if e.index == 0 {
					s.signal() // the loop's timer is set for a later job: re-arm it
				}
			}
		}
		s.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
	}
}

type dueHeap []*entry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].stamp < h[j].stamp
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}
