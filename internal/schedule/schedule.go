// Package schedule runs many jobs, each on its own interval, from one goroutine that keeps
// the due times in a heap and hands due jobs to a bounded pool of workers. There is no
// goroutine per job: a thousand tasks cost a heap entry each. A job that hangs (a process
// stuck in the kernel) occupies one worker, never the scheduler, so other jobs keep their
// cadence while workers remain.
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

// Func runs one job. It is called from a worker goroutine; the same key never runs twice at
// once.
type Func func(ctx context.Context, key string)

// Scheduler runs jobs on their intervals. The zero value is not usable; call New.
type Scheduler struct {
	run     Func
	workers int

	mu      sync.Mutex
	entries map[string]*entry
	due     dueHeap
	ready   []*entry // due, waiting for a free worker, in order
	wake    chan struct{}
	work    chan *entry

	cancel context.CancelFunc
	done   sync.WaitGroup
}

type entry struct {
	key      string
	interval time.Duration
	due      time.Time // next run
	index    int       // position in the heap, -1 when not in it
	queued   bool      // in the ready list or handed to a worker
	running  bool
	again    bool // triggered while running: run once more right after
	removed  bool
}

// New returns a Scheduler that runs jobs with run on at most workers goroutines at once.
func New(workers int, run Func) *Scheduler {
	return &Scheduler{
		run:     run,
		workers: max(workers, 1),
		entries: map[string]*entry{},
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

// Add schedules key every interval, the first run after firstDelay. Adding a key that exists
// replaces its interval and next run.
func (s *Scheduler) Add(key string, interval, firstDelay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		e = &entry{key: key, index: -1}
		s.entries[key] = e
	}
	e.interval = interval
	e.due = roundUp(time.Now().Add(firstDelay))
	if e.index >= 0 {
		heap.Fix(&s.due, e.index)
	} else if !e.queued && !e.running {
		heap.Push(&s.due, e)
	}
	s.signal()
}

// SetInterval changes key's interval. The next run moves to one new interval after the
// previous one was due (or now, if that has passed), so the change takes effect on the next
// tick.
func (s *Scheduler) SetInterval(key string, interval time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || e.interval == interval {
		return
	}
	if e.index >= 0 {
		next := e.due.Add(interval - e.interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		e.due = roundUp(next)
		heap.Fix(&s.due, e.index)
	}
	e.interval = interval
	s.signal()
}

// Remove stops scheduling key. A run in progress finishes.
func (s *Scheduler) Remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		return
	}
	e.removed = true
	if e.index >= 0 {
		heap.Remove(&s.due, e.index)
	}
	delete(s.entries, key)
}

// Trigger runs key as soon as a worker is free, without changing its regular cadence. It
// reports whether key is scheduled.
func (s *Scheduler) Trigger(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
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

// Has reports whether key is scheduled.
func (s *Scheduler) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[key]
	return ok
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

		s.run(ctx, e.key)

		s.mu.Lock()
		e.running = false
		if !e.removed {
			now := time.Now()
			if !e.due.After(now) {
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

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
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
