package monitor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schedule"
)

const mib = 1 << 20

// memRun feeds a memWatch usages one step apart and returns the events, keyed by the index of
// the sample that raised each.
type memRun struct {
	w     memWatch
	start time.Time
	at    time.Time
	limit uint64
	share float64
}

func newMemRun(limit uint64, share float64) *memRun {
	start := time.Unix(1_700_000_000, 0)
	return &memRun{start: start, at: start, limit: limit, share: share}
}

// feed observes usages (MiB), step apart, and returns the events raised, by sample index.
func (r *memRun) feed(step time.Duration, usagesMiB ...float64) map[int]MemoryEvent {
	out := map[int]MemoryEvent{}
	for i, u := range usagesMiB {
		r.at = r.at.Add(step)
		if ev, ok := r.w.observe(r.at, uint64(u*mib), r.limit, r.share); ok {
			out[i] = ev
		}
	}
	return out
}

func TestMemoryWarningCrossing(t *testing.T) {
	r := newMemRun(100*mib, 0.9)
	evs := r.feed(time.Second, 50, 60, 70, 80, 85)
	assert.Empty(t, evs, "below 90%")
	evs = r.feed(time.Second, 91)
	require.Len(t, evs, 1)
	ev := evs[0]
	assert.Equal(t, MemoryHigh, ev.Kind)
	assert.True(t, ev.First)
	assert.Equal(t, uint64(91*mib), ev.Usage)
	assert.Equal(t, uint64(100*mib), ev.Limit)
	assert.InDelta(t, 0.91, ev.Share, 1e-9)
	// The last four samples: 70, 80, 85, 91 MiB a second apart; least squares: 34/5 MiB/s.
	require.True(t, ev.HasGrowthRate)
	assert.InDelta(t, 6.8*mib, ev.GrowthRate, 1)
	require.True(t, ev.HasSecondsToLimit)
	assert.InDelta(t, 9/6.8, ev.SecondsToLimit, 1e-6)
	assert.True(t, r.w.high)
}

// TestMemoryWarningRateLimit: while high and nearing the limit no faster, a new event comes
// memRepeat after the last one, not with every sample.
func TestMemoryWarningRateLimit(t *testing.T) {
	r := newMemRun(1000*mib, 0.5)
	require.Len(t, r.feed(time.Second, 500), 1, "the crossing: no rate yet")
	// Not growing: no time to the limit, nothing halves; one reminder every 10 s.
	evs := r.feed(time.Second, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	require.Len(t, evs, 1, "%v", evs)
	ev, ok := evs[9]
	require.True(t, ok, "10 s after the crossing: %v", evs)
	assert.Equal(t, MemoryHigh, ev.Kind)
	assert.False(t, ev.First)
	assert.False(t, ev.HasSecondsToLimit, "not growing")
	assert.True(t, ev.HasGrowthRate)
	assert.Zero(t, ev.GrowthRate)
}

// TestMemoryWarningHalving: an event whenever the time to the limit halves since the last
// event, whatever the rate limit.
func TestMemoryWarningHalving(t *testing.T) {
	r := newMemRun(1000*mib, 0.5)
	// 10 MiB/s from 470 MiB: crosses at 500 MiB with (1000-500)/10 = 50 s to go.
	evs := r.feed(time.Second, 470, 480, 490, 500)
	require.Len(t, evs, 1)
	assert.InDelta(t, 50, evs[3].SecondsToLimit, 1e-6)
	// Steady: 49 s, 48 s ... no event until 10 s have passed (the reminder, at 40 s to go).
	evs = r.feed(time.Second, 510, 520, 530, 540, 550, 560, 570, 580, 590, 600)
	require.Len(t, evs, 1, "%v", evs)
	assert.InDelta(t, 40, evs[9].SecondsToLimit, 1e-6)
	// A burst: 100 MiB/s for a few samples brings the limit within 20 s (half of 40) at
	// once, and then within half of that.
	evs = r.feed(100*time.Millisecond, 610, 620, 630)
	assert.NotContains(t, evs, 0, "%v", evs)
	require.Contains(t, evs, 1, "%v", evs)
	last := 40.0
	for i := 1; i <= 2; i++ {
		ev, ok := evs[i]
		if !ok {
			continue
		}
		assert.LessOrEqual(t, ev.SecondsToLimit, last/2, "sample %d", i)
		assert.Equal(t, MemoryHigh, ev.Kind)
		assert.False(t, ev.First)
		last = ev.SecondsToLimit
	}
}

// TestMemoryWarningHysteresis: a task hovering at its share does not recover until it is
// memHysteresis below it; then one recovery, and a new crossing is a new episode.
func TestMemoryWarningHysteresis(t *testing.T) {
	r := newMemRun(100*mib, 0.9)
	require.Len(t, r.feed(time.Second, 90), 1)
	assert.Empty(t, r.feed(time.Second, 89, 88, 87, 86, 85.5, 85.2), "between 85% and 90%: still high, nothing new")
	assert.True(t, r.w.high)
	evs := r.feed(time.Second, 84.9)
	require.Len(t, evs, 1)
	assert.Equal(t, MemoryRecovered, evs[0].Kind)
	usage := 84.9 * mib
	assert.Equal(t, uint64(usage), evs[0].Usage)
	assert.InDelta(t, 0.849, evs[0].Share, 1e-6)
	assert.False(t, r.w.high)
	assert.Empty(t, r.feed(time.Second, 89.9, 85, 80))
	evs = r.feed(time.Second, 95)
	require.Len(t, evs, 1)
	assert.True(t, evs[0].First, "a new episode")

	// A small share recovers at half of it, not below zero.
	assert.InDelta(t, 0.85, recoverAt(0.9), 1e-12)
	assert.InDelta(t, 0.03, recoverAt(0.06), 1e-12)
}

// TestMemoryWarningOff: no limit, or memory_warning 0, never warns; turning it off during an
// episode ends the episode with a recovery.
func TestMemoryWarningOff(t *testing.T) {
	r := newMemRun(0, 0.9)
	assert.Empty(t, r.feed(time.Second, 1, 1e6, 1e9), "no limit")
	r = newMemRun(100*mib, 0)
	assert.Empty(t, r.feed(time.Second, 99, 100, 200), "memory_warning 0")

	r = newMemRun(100*mib, 0.9)
	require.Len(t, r.feed(time.Second, 95), 1)
	r.limit = 0 // the cgroup's limit was removed
	evs := r.feed(time.Second, 96)
	require.Len(t, evs, 1)
	assert.Equal(t, MemoryRecovered, evs[0].Kind)
	assert.Equal(t, uint64(95*mib), evs[0].Usage, "the last usage measured against a limit")
	assert.Equal(t, uint64(100*mib), evs[0].Limit)
	assert.Zero(t, r.w.n, "the growth rate starts over")
}

func TestMemoryGrowthRate(t *testing.T) {
	var w memWatch
	at := time.Unix(0, 0)
	_, ok := w.growthRate()
	assert.False(t, ok)
	for i := range 10 { // the ring wraps around: the last four points count
		at = at.Add(250 * time.Millisecond)
		w.observe(at, uint64(i)*2*mib, 1<<40, 0.9)
		if i == 0 {
			_, ok := w.growthRate()
			assert.False(t, ok, "one point")
		}
	}
	rate, ok := w.growthRate()
	require.True(t, ok)
	assert.InDelta(t, 8*mib, rate, 1e-3, "2 MiB every 250 ms")

	// Shrinking: a negative rate and no time to the limit.
	var shrink memWatch
	shrink.observe(at, 95*mib, 100*mib, 0.99) // below a share of 99%
	ev, ok := shrink.observe(at.Add(time.Second), 91*mib, 100*mib, 0.9)
	require.True(t, ok, "the crossing")
	assert.InDelta(t, -4*mib, ev.GrowthRate, 1e-3)
	assert.False(t, ev.HasSecondsToLimit)

	// Past the limit: 0 s to go.
	var past memWatch
	past.observe(at, 90*mib, 100*mib, 0.95)
	ev, ok = past.observe(at.Add(time.Second), 110*mib, 100*mib, 0.95)
	require.True(t, ok)
	assert.True(t, ev.HasSecondsToLimit)
	assert.Zero(t, ev.SecondsToLimit)
}

// TestMemoryWarningAllocatesNothing: a sample's decision costs no allocation.
func TestMemoryWarningAllocatesNothing(t *testing.T) {
	var w memWatch
	at := time.Unix(0, 0)
	var u uint64
	allocs := testing.AllocsPerRun(1000, func() {
		at = at.Add(time.Second)
		u = (u + mib) % (100 * mib)
		w.observe(at, u, 100*mib, 0.9)
	})
	assert.Zero(t, allocs)
}

// memTask is a task as bind leaves it for watchMemory, without a process: its cgroup limit
// read at bind is cgLimit.
func memTask(p profile.Profile, cgLimit uint64) *task {
	return &task{spec: admission.Spec{ID: "t", Profile: p}, cgLimit: cgLimit}
}

func memMonitor(t *testing.T) *Monitor {
	return &Monitor{log: zaptest.NewLogger(t), tel: noTelemetry{}, sched: schedule.New(1)}
}

// TestMemoryWarningLimitAndInterval: the profile's memory_limit wins over the cgroup's; a
// high task is sampled at its warning interval, and at its interval again once recovered.
func TestMemoryWarningLimitAndInterval(t *testing.T) {
	p, ok := profile.Builtin(profile.Standard)
	require.True(t, ok)
	m := memMonitor(t)
	sample := func(tk *task, at time.Time, usage uint64) *MemoryEvent {
		s := Sample{Time: at, Got: process.FieldMemory, RSS: usage}
		m.watchMemory(tk, &s)
		tk.samples++
		return s.Memory
	}
	at := time.Unix(1_700_000_000, 0)

	tk := memTask(p, 1000*mib) // the cgroup's limit: 91% of 100 MiB is 9.1% of it
	assert.Nil(t, sample(tk, at, 91*mib))
	assert.Equal(t, p.Interval, m.sampleInterval(tk))

	p.MemoryLimit = 100 * mib
	tk = memTask(p, 1000*mib)
	ev := sample(tk, at, 91*mib)
	require.NotNil(t, ev, "the profile's 100 MiB wins")
	assert.Equal(t, uint64(100*mib), ev.Limit)
	assert.True(t, tk.mem != nil && tk.mem.fast)
	assert.Equal(t, time.Second, m.sampleInterval(tk), "the warning interval")
	ev = sample(tk, at.Add(time.Second), 80*mib)
	require.NotNil(t, ev)
	assert.Equal(t, MemoryRecovered, ev.Kind)
	assert.False(t, tk.mem != nil && tk.mem.fast)
	assert.Equal(t, 10*time.Second, m.sampleInterval(tk))

	// Without either limit, nothing, and no state kept; nor without memory figures.
	p.MemoryLimit = 0
	tk = memTask(p, 0)
	assert.Nil(t, sample(tk, at, 1<<40))
	assert.Nil(t, tk.mem, "a task without a limit keeps no warning state")
	tk = memTask(p, 100*mib)
	s := Sample{Time: at, RSS: 99 * mib}
	m.watchMemory(tk, &s)
	assert.Nil(t, s.Memory, "collect_memory false: no usage to measure")

	// The task's cgroup limit, read at bind, when the profile sets none.
	tk = memTask(p, 100*mib)
	ev = sample(tk, at, 95*mib)
	require.NotNil(t, ev)
	assert.Equal(t, uint64(100*mib), ev.Limit)

	// A limit that goes away ends the episode, then the state goes with it.
	tk.cgLimit, tk.memBind.cgLimit = 0, 0
	ev = sample(tk, at.Add(time.Second), 95*mib)
	require.NotNil(t, ev)
	assert.Equal(t, MemoryRecovered, ev.Kind)
	assert.Nil(t, tk.mem, "no limit, no episode: no state kept")

	// A final sample ends sampling: no event.
	tk = memTask(p, 100*mib)
	s = Sample{Time: at, Got: process.FieldMemory, RSS: 99 * mib, Final: true}
	m.watchMemory(tk, &s)
	assert.Nil(t, s.Memory)

	// A warning interval no shorter than the interval changes nothing.
	p.MemoryWarningInterval = p.Interval
	tk = memTask(p, 100*mib)
	require.NotNil(t, sample(tk, at, 95*mib))
	assert.False(t, tk.mem != nil && tk.mem.fast)
}

// BenchmarkMemoryWarningObserve is the warning's cost on every sample of a task that has a
// limit: the ring, the least-squares rate, the decision.
func BenchmarkMemoryWarningObserve(b *testing.B) {
	var w memWatch
	at := time.Unix(0, 0)
	var u uint64
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Second)
		u = (u + mib) % (100 * mib)
		w.observe(at, u, 100*mib, 0.9)
	}
}

// TestMemoryWarningFollowsTheIncarnation: a task bound to another cgroup (or process) starts
// afresh, on the interval activate scheduled; the same cgroup keeps its episode.
func TestMemoryWarningFollowsTheIncarnation(t *testing.T) {
	p, _ := profile.Builtin(profile.Standard)
	m := memMonitor(t)
	tk := memTask(p, 100*mib)
	tk.cg = &process.Cgroup{}
	at := time.Unix(1_700_000_000, 0)
	s := Sample{Time: at, Got: process.FieldMemory, RSS: 95 * mib}
	m.watchMemory(tk, &s)
	require.NotNil(t, s.Memory)
	assert.True(t, tk.mem != nil && tk.mem.fast)

	s = Sample{Time: at.Add(time.Second), Got: process.FieldMemory, RSS: 95 * mib}
	m.watchMemory(tk, &s)
	assert.Nil(t, s.Memory, "the same episode, not growing: nothing new within 10 s")
	assert.True(t, tk.mem != nil && tk.mem.high)

	tk.cg = &process.Cgroup{} // bound again
	s = Sample{Time: at.Add(2 * time.Second), Got: process.FieldMemory, RSS: 50 * mib}
	m.watchMemory(tk, &s)
	assert.Nil(t, s.Memory, "a new incarnation below its share: no recovery of the old one's episode")
	assert.False(t, tk.mem != nil && tk.mem.high)
	assert.False(t, tk.mem != nil && tk.mem.fast, "activate scheduled it on its interval")
}
